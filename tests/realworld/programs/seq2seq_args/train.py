"""A sequence-to-sequence training entry point in the style of fairseq-train and the
Hugging Face translation scripts: a long argparse command line (token ids, batching by
``--max-tokens``, ``--sort-key``, a tokenizer regex, the column ``--key``), a YAML config
file merged over it, credentials for the experiment tracker and the hub given as options,
in the environment and in the config, a dataset URL with a password in it, optional
per-machine overrides looked for and not found. Like fairseq,
it prints its whole configuration first."""

import argparse
import os
import re

import yaml


def get_parser():
    parser = argparse.ArgumentParser(prog="seq2seq-train")
    parser.add_argument("data", help="a TSV of sentence pairs")
    parser.add_argument("--config", help="YAML config merged over the defaults")
    parser.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch")
    parser.add_argument("--max-positions", type=int, default=1024)
    parser.add_argument("--pad-token-id", type=int, default=1)
    parser.add_argument("--eos-token-id", type=int, default=2)
    parser.add_argument("--bos-token-id", type=int, default=0)
    parser.add_argument("--unk-token", default="<unk>")
    parser.add_argument("--sort-key", default="length", choices=["length", "none"])
    parser.add_argument("--key", default="src", help="the column to batch by")
    parser.add_argument("--tokenizer-pattern", default=r"\w+|[^\w\s]")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-dir", default="checkpoints")
    parser.add_argument("--wandb-project", default=None)
    parser.add_argument("--wandb-api-key", default=None)
    parser.add_argument("--dataset-url", default=None, help="where the full corpus lives")
    return parser


def main():
    args = get_parser().parse_args()
    cfg = vars(args).copy()
    if args.config:
        with open(args.config) as f:
            cfg.update(yaml.safe_load(f))
    try:  # per-machine overrides, never committed; most checkouts have none
        with open("conf/local.yaml") as f:
            cfg.update(yaml.safe_load(f) or {})
    except FileNotFoundError:
        pass
    print(f"configuration: {cfg}")
    print(f"tracker key set: {bool(os.environ.get('WANDB_API_KEY') or args.wandb_api_key)}")

    tokenize = re.compile(args.tokenizer_pattern).findall
    with open(args.data) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        pairs = [dict(zip(header, row, strict=True)) for row in rows]
    if args.sort_key == "length":
        pairs.sort(key=lambda p: len(tokenize(p[args.key])))
    vocab = sorted({t for p in pairs for side in header for t in tokenize(p[side].lower())})
    os.makedirs(args.save_dir, exist_ok=True)
    with open(os.path.join(args.save_dir, "dict.txt"), "w") as f:
        f.writelines(f"{t} 1\n" for t in vocab)
    print(f"{len(pairs)} pairs, {len(vocab)} types, max tokens {args.max_tokens}")


if __name__ == "__main__":
    main()
