"""Ray nodes that do not use the driver's store (``RUNBASE_WORKER_STORE`` set on them, as
on machines without a shared file system): a REAL local Ray cluster (tests/raycluster.py)
and a REAL team server (tests/serverkit.py). A sweep ``--on ray --publish team`` sends
the trials' code tree (an uncommitted edit included) and declared data by hash to the
server; each node fetches them into its own store, the runs land there, publish live,
and the driver pulls them back: each run is complete in the node's store, on the
server and in the driver's store, and the sweep's best run is found. Without a team
server such a cluster is refused before any trial."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import commit, runbase_cmd, write
from raycluster import RayCluster, running
from runbase.records.read import run_status
from runbase.records.sweeps import get_sweep
from runbase.store import Store
from serverkit import PROJECT, TeamServer, team_server

conftest.require("ray")
conftest.require("fastapi")
conftest.require("uvicorn")

PY = sys.executable
ROWS = 5

# reads gitignored data by a relative path; EDITED is 1 only in the uncommitted edit
TRAIN = """\
import argparse, runbase
EDITED = {edited}
p = argparse.ArgumentParser(); p.add_argument("--lr", type=float)
lr = p.parse_args().lr
rows = open("data/train.csv").read().splitlines()[1:]
for step in range(3):
    runbase.log(loss=lr / (step + 1), step=step)
runbase.summary(acc=1 - abs(lr - 0.5), rows=len(rows), edited=EDITED)
"""


@pytest.fixture(scope="module")
def node_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node") / "worker-store"


@pytest.fixture(scope="module")
def storeless_cluster(node_store: Path) -> Iterator[RayCluster]:
    """One node (1 CPU) whose Ray workers keep their own store at ``node_store``."""
    with running(RayCluster(nodes=1, node_env={"RUNBASE_WORKER_STORE": str(node_store)})) as c:
        yield c


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    with team_server(tmp_path_factory.mktemp("storeless-server"), [("alice", "writer")]) as t:
        yield t


def _project(project: Path) -> None:
    write(project, ".gitignore", "*.log\ndata/\n")
    write(project, "train.py", TRAIN.format(edited=0))
    write(project, "data/train.csv", "x,y\n" + "".join(f"{i},{i}\n" for i in range(ROWS)))
    commit(project, "train")
    write(project, "train.py", TRAIN.format(edited=1))  # not committed


def _record(project: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads(runbase_cmd("show", run_id, "--json", cwd=project, check=True).stdout))


def _declared(rec: dict[str, Any]) -> dict[str, str]:
    inputs = (rec.get("files") or rec).get("inputs") or []
    return {i["path"]: i["hash"] for i in inputs if i.get("source") == "declared"}


def test_a_cluster_of_own_stores_without_a_team_server_is_refused_before_any_trial(
    project: Path, storeless_cluster: RayCluster
) -> None:
    _project(project)
    r = runbase_cmd(
        "sweep", "--grid", "lr=0.1,0.2", "--on", "ray", "--input", "data/", "--", PY, "train.py",
        cwd=project, env={"RAY_ADDRESS": storeless_cluster.address}, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "has no team server to fetch the code from" in r.stderr, r.stderr
    assert "--publish NAME" in r.stderr and "Traceback" not in r.stderr
    out = runbase_cmd("ls", "--json", "-l", "0", "--all", cwd=project, check=True)
    assert json.loads(out.stdout) == []


def test_a_sweep_runs_on_nodes_with_their_own_store_through_the_team_server(
    project: Path, storeless_cluster: RayCluster, team: TeamServer, node_store: Path
) -> None:
    _project(project)
    team.login("alice", {}, cwd=project)
    # what a local run records of the same code and data
    runbase_cmd("run", "--input", "data", "--", PY, "train.py", "--lr", "0.5", cwd=project,
                check=True)  # fmt: skip
    local = _record(
        project, json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    )
    assert local["metrics"]["edited"]["value"] == 1
    r = runbase_cmd(
        "sweep", "--grid", "lr=0.2,0.5,0.7", "--objective", "acc", "--direction", "max",
        "--on", "ray", "--publish", "team", "--input", "data/", "--", PY, "train.py",
        cwd=project, env={"RAY_ADDRESS": storeless_cluster.address}, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    sweep_id = next(ln for ln in r.stdout.splitlines() if ln.startswith("sweep ")).split()[1]
    sweep_id = sweep_id.rstrip(":")
    out = runbase_cmd("ls", "--json", "-l", "0", "--sweep", sweep_id, cwd=project, check=True)
    recs = [_record(project, row["id"]) for row in json.loads(out.stdout)]
    assert len(recs) == 3  # pulled back into the driver's store
    for rec in recs:
        assert rec["status"] == "finished", rec
        assert rec["executor"]["kind"] == "ray"
        assert rec["code"]["tree"] == local["code"]["tree"]  # the uncommitted edit too
        assert rec["metrics"]["edited"]["value"] == 1 and rec["metrics"]["rows"]["value"] == ROWS
        assert rec["metrics"]["loss"]["count"] == 3
        assert _declared(rec) == _declared(local) and rec["env"]
        _on_server(team, rec, local)
    _in_node_store(node_store, [rec["id"] for rec in recs])
    best = next(rec for rec in recs if rec["params"]["lr"] == 0.5)
    store = Store.open(project / ".runbase")
    try:
        sweep = get_sweep(store, sweep_id)
    finally:
        store.close()
    assert sweep is not None and sweep["best_run"] == best["id"] and sweep["status"] == "finished"


def _on_server(team: TeamServer, rec: dict[str, Any], local: dict[str, Any]) -> None:
    status, there = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{rec['id']}")
    assert status == 200, there
    assert there["status"] == "finished" and there["code"]["tree"] == local["code"]["tree"]
    assert there["params"] == rec["params"] and there["env"] == rec["env"]
    assert there["metrics"]["acc"]["value"] == rec["metrics"]["acc"]["value"]
    assert there["executor"] == rec["executor"]


def _in_node_store(root: Path, run_ids: list[str]) -> None:
    store = Store.open(root)
    try:
        assert [run_status(store, rid) for rid in run_ids] == ["finished"] * len(run_ids)
    finally:
        store.close()
