"""A run_clm.py-style Hugging Face ``Trainer`` script (HfArgumentParser, a GPT-2 config
with pad/bos/eos token ids, ``load_best_model_at_end``): the model config's token ids are
recorded as numbers, never as ``***``; the hub token in the environment never reaches
the store; the checkpoint the Trainer saves and reloads as the best model is an output
only; and a seeded re-run is "reproduced" although the Trainer's timings differ."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    assert_params,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    rb,
    reproduce,
    run,
)

CMD = [
    "python", "run_clm.py",
    "--train_file", "data/train.txt", "--validation_file", "data/validation.txt",
    "--output_dir", "out", "--do_train", "--do_eval",
    "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3",
    "--seed", "42", "--logging_steps", "2", "--eval_strategy", "epoch", "--save_strategy", "epoch",
    "--load_best_model_at_end", "--metric_for_best_model", "eval_loss", "--save_total_limit", "1",
    "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
]  # fmt: skip
HF_TOKEN = "hf_" + "kQ7vRwZpLx3mTn8sYbUc4eJd2hGfAo9iVt"  # shaped like a real one, not one
TIMINGS = {"train_runtime", "train_samples_per_second", "train_steps_per_second",
           "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}  # fmt: skip


def test_trainer_script_record_and_reproduction(tmp_path: Path) -> None:
    root = make_project(tmp_path, "hf_trainer", ignore=["data/", "out/"])
    rec = run(root, *CMD, env={"HF_TOKEN": HF_TOKEN})
    assert rec["status"] == "finished"

    # the model config: token ids are numbers (issue 15.1), not secrets
    # TrainingArguments takes the hub token from the environment (and hides it as
    # "<HUB_TOKEN>" itself): a secret, the one param allowed to be redacted
    assert_no_redaction(rec, secrets=[HF_TOKEN], allowed={"hub_token", "transformers.hub_token"})
    assert_params(
        rec,
        {"model.pad_token_id": 0, "model.bos_token_id": 1, "model.eos_token_id": 2,
         "model.vocab_size": 30, "model.n_embd": 16, "model.n_layer": 1,
         "model.model_type": "gpt2", "model.class": "GPT2LMHeadModel"},
        sources={"model.pad_token_id": "transformers", "model.eos_token_id": "transformers"},
    )  # fmt: skip
    # the script's own arguments (HfArgumentParser is an argparse parser)
    assert_params(
        rec,
        {"train_file": "data/train.txt", "validation_file": "data/validation.txt",
         "block_size": 32, "n_embd": 16, "seed": 42, "learning_rate": 5e-3,
         "per_device_train_batch_size": 8, "load_best_model_at_end": True,
         "metric_for_best_model": "eval_loss"},
        sources={"train_file": "argparse", "block_size": "argparse"},
    )  # fmt: skip
    assert rec["env"]["vars"]["HF_TOKEN"] == "***"
    logs = rb(root, "logs", rec["id"]).stdout
    assert "hub token configured: True" in logs and HF_TOKEN not in logs

    # data: the two text files in; everything the Trainer wrote out, nothing read back
    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/train.txt", "data/validation.txt"]))
    written = sorted(str(p.relative_to(root)) for p in (root / "out").rglob("*") if p.is_file())
    assert "out/checkpoint-14/model.safetensors" in written  # the best one, reloaded at the end
    assert not (root / "out/checkpoint-7").exists()  # rotated away
    declared = ["out", "out/checkpoint-14"]  # Trainer.save_model(), the kept checkpoint
    assert_files(rec, "outputs", expected_files(root, [*written, *declared]))
    assert lineage(root, "out/model.safetensors") == [rec["id"]]

    # metrics: the training curve, and the Trainer's timings as summaries
    m = model_metrics(rec)
    assert m["loss"]["count"] == 7 and m["loss"]["step"] == 14  # every 2nd of 14 steps
    assert m["eval_loss"]["count"] == 3  # each epoch, then trainer.evaluate()
    assert set(m) >= TIMINGS and m["train_runtime"]["value"] > 0

    # seeded: re-run, it reproduces; wall-clock figures are not part of the verdict
    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
    compared = {c["key"] for c in verdict["metrics"]}
    assert {"loss", "eval_loss", "train_loss", "grad_norm"} <= compared
    assert not compared & TIMINGS, f"timings judged: {compared & TIMINGS}"
