"""``runbase sweep --input``: a sweep's declared data inputs are stored once and recorded
by every trial with the hash a local ``runbase run --input`` gives; on Ray (a REAL local
cluster, tests/raycluster.py) each trial's node gets them by hash next to the code
snapshot, so a program reading gitignored ``data/train.csv`` by a relative path runs
there as it does here. A bad ``--input`` is a usage error before any trial."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import conftest
import raycluster
from conftest import commit, runbase_cmd, write
from raycluster import RayCluster
from runbase.errors import UsageError
from runbase.records.sweeps import get_sweep
from runbase.store import Store
from runbase.tracking.launch import check_inputs

conftest.require("ray")

ray_cluster = raycluster.ray_cluster

PY = sys.executable
ROWS = 7

# reads its data by a relative path: it must be there where the trial runs
TRAIN = """\
import argparse, runbase
p = argparse.ArgumentParser(); p.add_argument("--lr", type=float)
lr = p.parse_args().lr
lines = open("data/train.csv").read().splitlines()[1:]
runbase.summary(rows=len(lines), total=sum(int(ln.split(",")[1]) for ln in lines), lr=lr)
"""


def _data_project(project: Path) -> None:
    write(project, ".gitignore", "*.log\nignored/\ndata/\n")
    write(project, "train.py", TRAIN)
    rows = "".join(f"{i},{i * i}\n" for i in range(ROWS))
    write(project, "data/train.csv", "x,y\n" + rows)
    write(project, "data/README", "the training rows\n")
    commit(project, "train")


def _total() -> int:
    return sum(i * i for i in range(ROWS))


def _sweep_runs(project: Path, proc: Any) -> list[dict[str, Any]]:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("sweep "))
    sweep_id = line.split()[1].rstrip(":")
    out = runbase_cmd("ls", "--json", "-l", "0", "--sweep", sweep_id, cwd=project, check=True)
    return [_record(project, row["id"]) for row in json.loads(out.stdout)]


def _record(project: Path, run_id: str) -> dict[str, Any]:
    r = runbase_cmd("show", run_id, "--json", cwd=project, check=True)
    return dict(json.loads(r.stdout))


def _declared(rec: dict[str, Any]) -> dict[str, str]:
    """path -> hash of the run's declared inputs."""
    inputs = (rec.get("files") or rec).get("inputs") or []
    return {i["path"]: i["hash"] for i in inputs if i.get("source") == "declared"}


def _local_hashes(project: Path, *paths: str) -> dict[str, str]:
    """What a plain ``runbase run --input`` records for ``paths``."""
    args = [a for p in paths for a in ("--input", p)]
    runbase_cmd("run", *args, "--", PY, "train.py", "--lr", "1", cwd=project, check=True)
    out = runbase_cmd("ls", "--json", "-l", "1", cwd=project, check=True)
    rec = _record(project, json.loads(out.stdout)[0]["id"])
    assert rec["metrics"]["total"]["value"] == _total()
    return _declared(rec)


def test_a_local_sweep_records_its_inputs_on_every_trial(project: Path) -> None:
    _data_project(project)
    want = _local_hashes(project, "data/train.csv")
    assert set(want) == {"data/train.csv"}
    proc = runbase_cmd(
        "sweep", "--grid", "lr=0.1,0.2", "--input", "data/train.csv",
        "--", PY, "train.py", cwd=project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recs = _sweep_runs(project, proc)
    assert len(recs) == 2
    for rec in recs:
        assert rec["status"] == "finished", rec
        assert _declared(rec) == want
        assert rec["metrics"]["rows"]["value"] == ROWS


def test_a_sweep_on_ray_gets_its_gitignored_data_by_hash(
    project: Path, ray_cluster: RayCluster
) -> None:
    _data_project(project)
    want = _local_hashes(project, "data")
    assert set(want) == {"data"}
    proc = runbase_cmd(
        "sweep", "--grid", "lr=0.1,0.2", "--on", "ray", "--input", "data/",
        "--", PY, "train.py",
        cwd=project, env={"RAY_ADDRESS": ray_cluster.address}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recs = _sweep_runs(project, proc)
    assert len(recs) == 2
    for rec in recs:
        assert rec["status"] == "finished", rec
        assert rec["executor"]["kind"] == "ray"
        assert rec["metrics"]["rows"]["value"] == ROWS
        assert rec["metrics"]["total"]["value"] == _total()
        assert _declared(rec) == want
    store = Store.open(project / ".runbase")
    try:
        rec = get_sweep(store, recs[0]["sweep_id"])
    finally:
        store.close()
    assert rec is not None and rec["spec"]["inputs"] == ["data"]  # what --resume reuses


def test_a_missing_or_outside_input_is_a_usage_error_before_any_trial(
    project: Path, tmp_path: Path
) -> None:
    _data_project(project)
    for bad in ("data/nope.csv", str(tmp_path)):
        proc = runbase_cmd(
            "sweep", "--grid", "lr=0.1", "--input", bad, "--", PY, "train.py", cwd=project
        )
        assert proc.returncode == 2, proc.stderr
        assert "--input" in proc.stderr and "Traceback" not in proc.stderr
    out = runbase_cmd("ls", "--json", "-l", "0", cwd=project, check=True)
    assert json.loads(out.stdout) == []


def test_a_job_trees_inputs_are_checked_where_they_are_read() -> None:
    oid = "blake3:" + "0" * 64
    good = {"path": "data/train.csv", "oid": oid, "kind": "file"}
    assert check_inputs([good]) == [good] and check_inputs(None) == []
    for bad in (
        {**good, "path": "../outside"},
        {**good, "path": "/etc/passwd"},
        {**good, "path": ".git/config"},
        {**good, "oid": "sha1:abc"},
        {**good, "kind": "link"},
        "data",
    ):
        with pytest.raises(UsageError):
            check_inputs([bad])


def test_resume_keeps_the_recorded_inputs(project: Path) -> None:
    _data_project(project)
    proc = runbase_cmd("sweep", "--resume", "X", "--input", "data", cwd=project)
    assert proc.returncode == 2 and "--input cannot change it" in proc.stderr
