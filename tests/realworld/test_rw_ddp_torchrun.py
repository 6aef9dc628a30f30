"""DDP training started by ``torchrun`` (its console script, as everyone runs it): the
params are the training script's arguments, not the launcher's ``--nproc_per_node``,
``--rdzv_backend``, ``--master_addr``...; the data all ranks read is one input, rank 0's
model the output."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    b3,
    lineage,
    make_project,
    run,
)


def test_torchrun_launcher_options_are_not_params(tmp_path: Path) -> None:
    root = make_project(tmp_path, "ddp_torchrun", ignore=["data/", "model.pt"])
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    rec = run(
        root, torchrun, "--standalone", "--nproc_per_node", "2", "train.py", "--lr", "0.05",
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert rec["status"] == "finished"
    assert_no_redaction(rec)
    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", {"data/train.csv": b3(root / "data/train.csv")})
    assert_files(rec, "outputs", {"model.pt": b3(root / "model.pt")})
    assert lineage(root, "model.pt") == [rec["id"]]
    # the launcher's options (torch.distributed.run's parser) are not the run's params
    script = {"data": "data/train.csv", "epochs": 2, "lr": 0.05, "batch_size": 8}
    launcher = sorted(set(rec["params"]) - set(script))
    assert launcher == [], f"torchrun's own options recorded as params: {launcher}"
    assert rec["params"] == script
