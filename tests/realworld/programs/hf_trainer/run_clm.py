"""Causal language modelling with the Hugging Face ``Trainer``, shaped like
transformers' examples/pytorch/language-modeling/run_clm.py: three argument dataclasses
parsed by ``HfArgumentParser``, ``set_seed``, text files grouped into blocks, a model
built from a config (here a tiny GPT-2 with its special token ids), train + evaluate,
``save_model``, ``log_metrics``/``save_metrics``/``save_state``. A character vocabulary
stands in for a downloaded tokenizer (no network in tests)."""

import logging
import math
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    set_seed,
)

logger = logging.getLogger(__name__)

PAD, BOS, EOS = 0, 1, 2
CHARS = "abcdefghijklmnopqrstuvwxyz "
VOCAB = {c: i + 3 for i, c in enumerate(CHARS)}


@dataclass
class ModelArguments:
    n_embd: int = field(default=16, metadata={"help": "Hidden size."})
    n_layer: int = field(default=1)
    n_head: int = field(default=2)


@dataclass
class DataTrainingArguments:
    train_file: str | None = field(default=None, metadata={"help": "A text file."})
    validation_file: str | None = field(default=None)
    block_size: int = field(default=32, metadata={"help": "Sequence length after grouping."})


def encode(line: str) -> list:
    return [BOS] + [VOCAB[c] for c in line.lower() if c in VOCAB] + [EOS]


class Blocks(torch.utils.data.Dataset):
    """Every line tokenized, concatenated, cut into ``block_size`` chunks (group_texts)."""

    def __init__(self, path: str, block_size: int) -> None:
        with open(path) as f:
            ids = [t for line in f if line.strip() for t in encode(line.strip())]
        n = len(ids) // block_size * block_size
        self.blocks = torch.tensor(ids[:n]).view(-1, block_size)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i].clone()}


def main() -> None:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(format="%(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info("hub token configured: %s", bool(os.environ.get("HF_TOKEN")))
    set_seed(training_args.seed)

    config = GPT2Config(
        vocab_size=len(VOCAB) + 3,
        n_positions=data_args.block_size,
        n_embd=model_args.n_embd,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    model = GPT2LMHeadModel(config)
    train = Blocks(data_args.train_file, data_args.block_size) if training_args.do_train else None
    valid = (
        Blocks(data_args.validation_file, data_args.block_size) if training_args.do_eval else None
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=valid)

    if training_args.do_train:
        train_result = trainer.train()
        trainer.save_model()
        metrics = train_result.metrics
        metrics["train_samples"] = len(train)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(valid)
        metrics["perplexity"] = math.exp(metrics["eval_loss"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)


if __name__ == "__main__":
    sys.exit(main())
