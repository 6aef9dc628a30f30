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
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import commit, runbase_cmd, wait_until, write
from raycluster import RayCluster, _disconnect, running
from runbase.records.read import run_status
from runbase.records.sweeps import get_sweep
from runbase.store import Store
from runbase.tracking import rayexec
from runbase.tracking.executor import SPEC_TOKEN, Job, make_executor, runbase_run_argv
from runbase.tracking.rayexec import probe_node
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

# waits while its own marker says an earlier attempt ran; exits at once on a retry
HOLD = """\
import os, sys, time, pathlib
marker = pathlib.Path(sys.argv[1])
if marker.exists():
    sys.exit(0)
marker.write_text(str(os.getpid()))
release = pathlib.Path(sys.argv[2])
while not release.exists():
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def node_stores(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The head's and the worker node's own stores (each machine its own)."""
    base = tmp_path_factory.mktemp("nodes")
    return [base / "head-store", base / "worker-store"]


@pytest.fixture(scope="module")
def storeless_cluster(node_stores: list[Path]) -> Iterator[RayCluster]:
    """Two nodes (1 CPU each) whose Ray workers keep their own stores (``node_stores``)."""
    head, worker = ({"RUNBASE_WORKER_STORE": str(p)} for p in node_stores)
    with running(RayCluster(nodes=2, node_env=head, worker_env=worker)) as c:
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


def test_a_nodes_own_store_is_made_once_by_tasks_starting_together(tmp_path: Path) -> None:
    """Four processes open a node's own store that does not exist yet, at once: each
    gets it, and it is one store (node_store picks it from RUNBASE_WORKER_STORE)."""
    root = tmp_path / "cache" / "worker-store"
    code = (
        "import sys; from runbase.tracking.rayexec import node_store, open_node_store\n"
        "mode, root = node_store(sys.argv[1])\n"
        "assert mode == 'own', mode\n"
        "open_node_store(mode, root).close(); print(root)\n"
    )
    env = {**os.environ, "RUNBASE_WORKER_STORE": str(root)}
    procs = [
        subprocess.Popen([PY, "-c", code, str(tmp_path / "nowhere")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert {out.strip() for out, _ in outs} == {str(root)}
    store = Store.open(root)
    store.close()


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
    project: Path, storeless_cluster: RayCluster, team: TeamServer, node_stores: list[Path]
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
    _in_node_stores(node_stores, [rec["id"] for rec in recs])
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


def _in_node_stores(roots: list[Path], run_ids: list[str]) -> None:
    """Each run finished in one node's own store (a node that ran none has no store)."""
    found: dict[str, str | None] = {}
    for root in roots:
        if not (root / "FORMAT").is_file():
            continue
        store = Store.open(root)
        try:
            for rid in run_ids:
                found[rid] = found.get(rid) or run_status(store, rid)
        finally:
            store.close()
    assert found == dict.fromkeys(run_ids, "finished")


def test_reproduce_on_nodes_with_their_own_store_is_refused_before_it_runs(
    project: Path, storeless_cluster: RayCluster, team: TeamServer
) -> None:
    """reproduce's re-run runs in a directory made on this machine: a node with its own
    store cannot have it, whatever the team server."""
    team.login("alice", {}, cwd=project)
    runbase_cmd("run", "--", PY, "-c", "pass", cwd=project, check=True)
    run_id = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    env = {"RAY_ADDRESS": storeless_cluster.address, "RUNBASE_PUBLISH": "team"}
    r = runbase_cmd("reproduce", run_id, "--on", "ray", cwd=project, env=env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "share the store and that directory on every node" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    rows = json.loads(runbase_cmd("ls", "--json", "--all", cwd=project, check=True).stdout)
    assert [row["id"] for row in rows] == [run_id]


def test_a_relative_own_store_is_refused_by_the_probe(tmp_path: Path) -> None:
    """A relative RUNBASE_WORKER_STORE would be a new store in each job's directory."""
    os.environ.pop("RUNBASE_WORKER_STORE", None)
    answer = probe_node(str(tmp_path / "nowhere"), None, {"RUNBASE_WORKER_STORE": "rel/store"})
    assert answer["problem"] and "relative path" in answer["problem"], answer
    assert "RUNBASE_WORKER_STORE=rel/store" in answer["problem"]
    assert "RUNBASE_WORKER_STORE" not in os.environ


STEPS = """\
import signal, sys, time, runbase
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
x = runbase.param("x", 1.0)
for step in range(16):
    runbase.log(loss=x * (1 + 1 / (step + 1)), step=step)
    time.sleep(0.5)
runbase.summary(loss=x)
"""


def test_a_trial_on_a_node_with_its_own_store_is_pruned_from_its_points_on_the_server(
    project: Path, storeless_cluster: RayCluster, team: TeamServer
) -> None:
    """The pruner reads a running trial's points from the team server (the driver's
    store has no such run until it ended) and stops the worse trials."""
    team.login("alice", {}, cwd=project)
    write(project, "steps.py", STEPS)
    commit(project, "steps")
    r = runbase_cmd(
        "sweep", "--grid", "x=1,2,3", "--objective", "loss", "--direction", "min",
        "--prune", "median", "--prune-startup", "1", "--grace", "3", "-j", "1",
        "--on", "ray", "--publish", "team", "--", PY, "steps.py",
        cwd=project, env={"RAY_ADDRESS": storeless_cluster.address}, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pruning trial" in r.stderr, r.stderr
    sweep_id = next(ln for ln in r.stdout.splitlines() if ln.startswith("sweep ")).split()[1]
    out = runbase_cmd("ls", "--json", "-l", "0", "--sweep", sweep_id.rstrip(":"), cwd=project)
    recs = sorted((_record(project, row["id"]) for row in json.loads(out.stdout)),
                  key=lambda rec: rec["params"]["x"])  # fmt: skip
    assert [rec["status"] for rec in recs] == ["finished", "pruned", "pruned"], recs
    for rec in recs[1:]:
        assert rec["metrics"]["loss"]["count"] < 16
        status, there = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{rec['id']}")
        assert status == 200 and there["status"] == "pruned", there


# ignores SIGTERM: a trial that outlives its grace (SIGKILL: no final push)
STUBBORN = """\
import signal, time, runbase
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for step in range(100000):
    runbase.log(x=float(step), step=step)
    time.sleep(0.2)
"""


def test_a_pruned_trial_killed_past_its_grace_ends_pruned_on_the_server_and_here(
    project: Path,
    storeless_cluster: RayCluster,
    team: TeamServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL leaves no final push: the node pushes the run's pruned end itself."""
    team.login("alice", {}, cwd=project)
    write(project, "stubborn.py", STUBBORN)
    commit(project, "stubborn")
    code = _code_record(project)
    store = str(project / ".runbase")
    # no grace: SIGKILL right after SIGTERM, before a live publish could carry the mark
    monkeypatch.setattr(rayexec, "CANCEL_GRACE", 0.0)
    ex = make_executor("ray", jobs=1)
    ex.check(store=store, publish="team")
    argv = runbase_run_argv(store, "--publish", "team", "--no-code", "--spec", SPEC_TOKEN, "--")
    job = Job([*argv, PY, "stubborn.py"], label="0", spec={"name": "stubborn"},
              tree={"store": store, "code": code, "cwd": "."})  # fmt: skip

    def prune_when_live() -> None:
        wait_until(lambda: _logging_on_server(team, job.run_id), what="live points", timeout=120)
        ex.cancel(job)

    pruner = threading.Thread(target=prune_when_live)
    pruner.start()
    assert not ex.run([job], total=1)
    pruner.join()
    assert job.cancelled and job.run_id is not None
    status, there = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{job.run_id}")
    assert status == 200 and there["status"] == "pruned", there
    assert _record(project, job.run_id)["status"] == "pruned"


def _logging_on_server(team: TeamServer, run_id: str | None) -> bool:
    if run_id is None:
        return False
    status, there = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{run_id}")
    return status == 200 and there["status"] == "running" and bool(there.get("metrics"))


# last: it leaves the cluster one node short
def test_a_node_killed_mid_run_is_lost_on_the_server_and_retried_from_it(
    project: Path,
    storeless_cluster: RayCluster,
    team: TeamServer,
    node_stores: list[Path],
    tmp_path: Path,
) -> None:
    """The retry, on a node whose store never saw the lost attempt, finds it on the team
    server (where it published live), marks it ``lost`` there; the driver's store gets
    both runs."""
    retry = _kill_and_retry(project, storeless_cluster, team, tmp_path)
    _in_node_stores(node_stores[:1], [retry["id"]])


@pytest.fixture(scope="module")
def mixed_cluster(node_stores: list[Path], storeless_cluster: RayCluster) -> Iterator[RayCluster]:
    """The head sees the driver's store (no RUNBASE_WORKER_STORE); the worker node keeps
    its own (the usual mixed cluster: the driver's machine and workers without it). The
    storeless cluster goes first: two clusters do not fit a small machine, and this
    process connects to one cluster at a time."""
    _disconnect()
    storeless_cluster.stop()
    worker = {"RUNBASE_WORKER_STORE": str(node_stores[1].with_name("mixed-worker-store"))}
    with running(RayCluster(nodes=2, worker_env=worker)) as c:
        yield c


def test_a_node_with_its_own_store_killed_is_retried_as_a_new_run_on_a_shared_node(
    project: Path, mixed_cluster: RayCluster, team: TeamServer, tmp_path: Path
) -> None:
    """The retry on the head (the driver's store) finds the lost attempt on the server,
    not in its store: it is marked lost there and here, never reused by the retry."""
    retry = _kill_and_retry(project, mixed_cluster, team, tmp_path)
    assert retry["executor"]["host"] and retry["status"] == "finished"


def _kill_and_retry(
    project: Path, cluster: RayCluster, team: TeamServer, tmp_path: Path
) -> dict[str, Any]:
    """Two jobs, one per node; the worker node killed while both run. The retry's record
    (the lost run checked: lost on the server and in the driver's store)."""
    team.login("alice", {}, cwd=project)
    write(project, "hold.py", HOLD)
    commit(project, "hold")
    code = _code_record(project)
    store = str(project / ".runbase")
    release = tmp_path / "release"
    ex = make_executor("ray", jobs=2, retries=1)
    ex.check(store=store, publish="team")
    found: dict[str, Any] = {}

    def jobs() -> Iterator[Job]:
        for i in range(2):
            argv = runbase_run_argv(
                store, "--publish", "team", "--no-code", "--spec", SPEC_TOKEN, "--"
            )
            yield Job(
                [*argv, PY, "hold.py", str(tmp_path / f"m{i}"), str(release)],
                label=str(i),
                spec={"name": f"hold{i}"},
                tree={"store": store, "code": code, "cwd": "."},
            )

    def kill_when_both_run() -> None:
        try:
            runs = wait_until(lambda: _running_on_server(team), what="both runs live", timeout=120)
            worker = _worker_node(cluster)
            found["lost"] = next(r["id"] for r in runs if r["executor"]["node_id"] == worker)
            cluster.kill_worker_node()  # with the run it ran
        finally:
            release.write_text("go")  # the other job ends, whatever happened here

    killer = threading.Thread(target=kill_when_both_run)
    killer.start()
    assert not ex.run(jobs(), total=2)
    killer.join()
    status, lost = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{found['lost']}")
    assert status == 200 and lost["status"] == "lost", lost
    assert _record(project, found["lost"])["status"] == "lost"  # pulled back too
    rows = json.loads(runbase_cmd("ls", "--json", "-l", "0", cwd=project, check=True).stdout)
    retry = [_record(project, r["id"]) for r in rows if r["id"] != found["lost"]]
    retry = [r for r in retry if r["executor"].get("retry_of") == found["lost"]]
    assert len(retry) == 1 and retry[0]["status"] == "finished", rows
    assert retry[0]["executor"]["attempt"] == 1
    assert retry[0]["executor"]["node_id"] != lost["executor"]["node_id"]
    return retry[0]


def _code_record(project: Path) -> dict[str, Any]:
    """The code record of a run of the project as it is (what a sweep's tree names)."""
    runbase_cmd("run", "--", PY, "-c", "pass", cwd=project, check=True)
    run_id = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    store = Store.open(project / ".runbase")
    try:
        row = store.db.query("SELECT code_json FROM runs WHERE id = ?", (run_id,))[0][0]
    finally:
        store.close()
    return dict(json.loads(row))


def _running_on_server(team: TeamServer) -> list[dict[str, Any]] | None:
    status, page = team.request(
        "alice", "GET", f"/p/{PROJECT}/api/runs?where=status%20%3D%3D%20%22running%22"
    )
    if status != 200 or len(page["runs"]) != 2:
        return None
    runs = [
        team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{r['id']}")[1] for r in page["runs"]
    ]
    return runs if all((r.get("executor") or {}).get("node_id") for r in runs) else None


def _worker_node(cluster: RayCluster) -> str:
    return next(
        n["NodeID"] for n in cluster.nodes() if "node:__internal_head__" not in n["Resources"]
    )


def test_a_store_at_the_drivers_path_that_is_not_the_drivers_is_not_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with a store of its own disk at the path of the driver's (same layout, no
    shared file system) must not take it for the driver's: it sees the driver's store only
    if it sees the mark file the driver wrote in that store's tmp/."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default own store's home
    monkeypatch.delenv("RUNBASE_WORKER_STORE", raising=False)
    root = tmp_path / "store"
    Store.open(root, create=True).close()
    mark = rayexec.RayExecutor()._mark(str(root))  # what the driver names to every task
    assert (root / "tmp" / mark).is_file()
    shared = probe_node(str(root), None, {rayexec.STORE_MARK_ENV: mark})
    assert shared == {"store": "shared", "problem": None}
    (root / "tmp" / mark).unlink()  # the node's disk: a store there, not the driver's
    other = probe_node(str(root), None, {rayexec.STORE_MARK_ENV: mark})
    assert other["store"] == "own"
    assert f"has a store at {root} that is not the driver's" in other["problem"]
    assert "publish the sweep" in other["problem"]
    assert (tmp_path / "home" / ".cache" / "runbase" / "worker-store" / "FORMAT").is_file()
    # a mark that is not one the driver makes names no file
    for bad in ("../FORMAT", "ray-node-check-xyz", ""):
        assert rayexec.node_store(str(root), bad)[0] == "own"
    assert rayexec.node_store(str(root), None) == ("shared", str(root))  # an older driver
