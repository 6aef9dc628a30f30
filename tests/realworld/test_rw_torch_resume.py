"""A pytorch/examples-style script that saves its checkpoint every epoch, reads it back to
evaluate, and resumes from it in a second run: the checkpoint is an output of the run
that wrote it (never its own input), the input of the run that resumed from it, and
``trace`` follows the bytes from run to run without a loop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rwkit import (
    PY,
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    assert_params,
    b3,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    record,
    reproduce,
    run,
    runs,
)

ARGS = {"batch_size": 16, "epochs": 3, "lr": 0.1, "gamma": 0.7, "hidden": 8, "seed": 1,
        "data": "data/train.csv", "checkpoint": "checkpoints/last.pt", "resume": False}  # fmt: skip


def test_checkpoint_written_read_back_then_resumed(tmp_path: Path) -> None:
    root = make_project(tmp_path, "torch_resume", ignore=["data/", "checkpoints/", "*.pkl"])
    data = b3(root / "data/train.csv")

    first = run(root, "python", "train.py")
    assert first["status"] == "finished" and first["mode"] == "run"
    assert first["params"] == ARGS and set(first["param_sources"].values()) == {"argparse"}
    assert_no_redaction(first)
    assert_no_self_inputs(first)
    ckpt_v1 = b3(root / "checkpoints/last.pt")
    assert_files(first, "inputs", {"data/train.csv": data})  # not train.local.json: absent
    assert_files(
        first, "outputs", {"checkpoints/last.pt": ckpt_v1, "history.pkl": b3(root / "history.pkl")}
    )
    m = model_metrics(first)
    assert set(m) == {"loss", "acc", "final_loss", "final_acc"}
    assert m["loss"]["count"] == 3 and m["loss"]["step"] == 2
    assert lineage(root, "checkpoints/last.pt") == [first["id"]]

    # resume: the checkpoint the first run made is read (its bytes then), then rewritten
    second = run(root, "python", "train.py", "--resume", "--epochs", "2")
    assert_params(second, {"resume": True, "epochs": 2, "lr": 0.1})
    assert_no_self_inputs(second)
    ckpt_v2 = b3(root / "checkpoints/last.pt")
    assert ckpt_v2 != ckpt_v1
    assert_files(second, "inputs", {"data/train.csv": data, "checkpoints/last.pt": ckpt_v1})
    assert_files(
        second,
        "outputs",
        {"checkpoints/last.pt": ckpt_v2, "history.pkl": b3(root / "history.pkl")},
    )
    assert model_metrics(second)["loss"]["step"] == 4  # epochs 3 and 4
    assert lineage(root, "checkpoints/last.pt") == [second["id"], first["id"]]
    assert lineage(root, ckpt_v1) == [first["id"]]

    # seeded, on CPU: both re-run to the same metrics from the stored code and data
    for original in (first, second):
        code, verdict = reproduce(root, original["id"])
        assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
        assert verdict["not_restorable"] == []
        compared = {c["key"] for c in verdict["metrics"]}
        assert {"loss", "acc", "final_loss", "final_acc"} <= compared


def test_plain_python_auto_started_run_records_what_runbase_run_would(tmp_path: Path) -> None:
    """`python train.py` (no `runbase run`) calls runbase.log: the run it auto-starts has
    the argparse params and the data it read, so that it can be reproduced."""
    root = make_project(tmp_path, "torch_resume", ignore=["data/", "checkpoints/", "*.pkl"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run(
        [PY, "train.py", "--epochs", "2", "--lr", "0.2"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (row,) = runs(root)
    rec = record(root, row["id"])
    assert rec["status"] == "finished" and rec["mode"] == "api"
    assert rec["params"] == {**ARGS, "epochs": 2, "lr": 0.2}
    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/train.csv"]))
    assert_files(rec, "outputs", expected_files(root, ["checkpoints/last.pt", "history.pkl"]))
    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
