"""A fairseq-style training command line: token ids, ``--max-tokens``, ``--sort-key``,
``--key``, a tokenizer regex are ordinary params recorded as they are (issue 15.1); the
tracker key on the command line, the hub token in the YAML config, the password in the
dataset URL and a GitHub token in the environment are credentials, which never reach the
store — not the record, not the logs the script prints its whole config to, not any
object (the config file holding one is withheld, by hash only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rwkit import (
    REDACTED,
    assert_files,
    assert_no_self_inputs,
    b3,
    make_project,
    rb,
    run,
)

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B key
PASSWORD = "Tr0ub4dor-3x"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
HF_TOKEN = "hf_Zq3LmN8vBx2KcT7wYp4RjD9sFgH6aUe1Io"  # in conf/train.yaml
URL = f"https://alice:{PASSWORD}@data.example.com/corpus/en-fr.tsv"


def test_ml_params_kept_credentials_never_stored(tmp_path: Path) -> None:
    root = make_project(tmp_path, "seq2seq_args", ignore=["data/", "checkpoints/"])
    rec = run(
        root, "python", "train.py", "data/train.tsv", "--config", "conf/train.yaml",
        "--max-tokens", "512", "--wandb-api-key", WANDB_KEY, "--dataset-url", URL,
        "--wandb-project", "mt", env={"GITHUB_TOKEN": GITHUB_TOKEN},
    )  # fmt: skip
    assert rec["status"] == "finished"
    assert rec["params"] == {
        # the command line (argparse, defaults included)
        "data": "data/train.tsv", "config": "conf/train.yaml", "max_tokens": 512,
        "max_positions": 1024, "pad_token_id": 1, "eos_token_id": 2, "bos_token_id": 0,
        "unk_token": "<unk>", "sort_key": "length", "key": "src",
        "tokenizer_pattern": r"\w+|[^\w\s]", "lr": 0.0005, "seed": 1,
        "save_dir": "checkpoints", "wandb_project": "mt", "wandb_api_key": REDACTED,
        "dataset_url": "https://alice:***@data.example.com/corpus/en-fr.tsv",
        # the config file named on the command line
        "optimizer.name": "adam", "optimizer.betas": [0.9, 0.98], "optimizer.eps": 1e-08,
        "lr_scheduler": "inverse_sqrt", "warmup_updates": 4000,
        "hub.model_id": "acme/tiny-mt", "hub.hf_token": REDACTED,
    }  # fmt: skip
    assert rec["command"][rec["command"].index("--wandb-api-key") + 1] == REDACTED
    assert rec["env"]["vars"]["GITHUB_TOKEN"] == REDACTED

    # the config file holding a token: read, recorded by hash, its bytes withheld
    assert_no_self_inputs(rec)
    assert_files(rec, "outputs", {"checkpoints/dict.txt": b3(root / "checkpoints/dict.txt")})
    ins = {f["path"]: f for f in rec["inputs"]}
    assert set(ins) == {"conf/train.yaml", "data/train.tsv"}  # conf/local.yaml: probed, absent
    assert ins["data/train.tsv"]["hash"] == b3(root / "data/train.tsv")
    conf = ins["conf/train.yaml"]
    assert (conf["hash"], conf["stored"], conf.get("withheld")) == (
        b3(root / "conf/train.yaml"), False, True)  # fmt: skip
    assert "conf/train.yaml" in {s["path"] for s in rec["code"]["skipped"]}

    # the script printed its whole configuration: the log has it, scrubbed
    logs = rb(root, "logs", rec["id"]).stdout
    assert "'max_tokens': 512" in logs and "'pad_token_id': 1" in logs
    assert "'sort_key': 'length'" in logs and "tracker key set: True" in logs
    secrets = [WANDB_KEY, PASSWORD, GITHUB_TOKEN, HF_TOKEN]
    for s in secrets:
        assert s not in logs and s not in str(rec)
    # and no byte of any of them anywhere in the store (database, objects, spool)
    found = subprocess.run(
        ["grep", "-rlaF", *[a for s in secrets for a in ("-e", s)], str(root / ".runbase")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert found.stdout == "", f"a secret reached the store: {found.stdout}"
