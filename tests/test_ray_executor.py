"""Jobs on a REAL local Ray cluster (two nodes, 1 CPU each: tests/raycluster.py): runs
spread over both nodes and recorded in full, on the team server when they publish; a
node killed mid-run (its run ``lost``, the job retried on the other node); Ctrl-C
cancels the tasks; no Ray or no cluster is a clear error before any run; ``explain --on
ray`` ranks as locally. Few and quick: the cluster starts once for the module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import conftest
import raycluster
import test_publish
from conftest import commit, runbase_cmd, wait_until, write
from raycluster import RayCluster, free_port
from runbase.errors import UsageError
from runbase.store import Store
from runbase.tracking.executor import SPEC_TOKEN, Job, make_executor, runbase_run_argv
from test_publish import TeamServer, _login

conftest.require("ray")

# the fixtures this module uses, defined where S and T reuse them too
ray_cluster = raycluster.ray_cluster
team = test_publish.team

TRAIN = """\
import argparse, os, time, runbase
p = argparse.ArgumentParser(); p.add_argument("--lr", type=float)
lr = p.parse_args().lr
for step in range(3):
    runbase.log(loss=lr / (step + 1), step=step)
time.sleep(float(os.environ.get("HOLD", "1")))
runbase.summary(acc=1 - lr)
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


def _store(project: Path) -> Store:
    return Store.open(project / ".runbase")


def _record(project: Path, run_id: str) -> dict[str, Any]:
    r = runbase_cmd("show", run_id, "--json", cwd=project, check=True)
    return dict(json.loads(r.stdout))


def test_a_sweep_on_ray_spreads_over_both_nodes_each_run_complete_and_published(
    project: Path, ray_cluster: RayCluster, team: tuple[TeamServer, str]
) -> None:
    srv, token = team
    _login(srv, token, project)
    write(project, "train.py", TRAIN)
    commit(project, "train")
    lrs = ",".join(f"0.{i}" for i in range(1, 9))
    r = runbase_cmd(
        "sweep", "--grid", f"lr={lrs}", "--on", "ray", "--publish", "team",
        "--", sys.executable, "train.py",
        cwd=project, env={"RAY_ADDRESS": ray_cluster.address}, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 at a time" in r.stderr + r.stdout  # two nodes of 1 CPU, trials of 1 CPU
    sweep = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["sweep_id"]
    rows = json.loads(runbase_cmd("ls", "--json", "--sweep", sweep, cwd=project).stdout)
    assert len(rows) == 8
    nodes = set()
    for row in rows:
        rec = _record(project, row["id"])
        assert rec["status"] == "finished", rec
        assert rec["executor"]["kind"] == "ray" and rec["executor"]["attempt"] == 0
        nodes.add(rec["executor"]["node_id"])
        assert rec["code"]["tree"] and rec["env"] and rec["metrics"], rec
        assert rec["metrics"]["acc"]["value"] == pytest.approx(1 - rec["params"]["lr"])
        assert rec["metrics"]["loss"]["count"] == 3
        on_server = wait_until(
            lambda rid=row["id"]: _server_run(srv, token, rid),
            what=f"run {row['id']} finished on the team server",
        )
        assert on_server["status"] == "finished"
    assert len(nodes) == 2, "the runs went to both nodes"


def _server_run(srv: TeamServer, token: str, run_id: str) -> dict[str, Any] | None:
    try:
        rec = srv.get(f"/p/default/api/runs/{run_id}", token)
    except OSError:
        return None
    return rec if rec.get("status") == "finished" else None


def test_no_cluster_or_no_ray_is_a_clear_error_before_any_job(tmp_path: Path) -> None:
    ex = make_executor(f"ray://127.0.0.1:{free_port()}")
    with pytest.raises(UsageError, match="cannot reach the Ray cluster"):
        ex.check()
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from runbase.tracking.executor import make_executor\n"
        "make_executor('ray').check()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "pip install 'runbase[ray]'" in r.stderr


def test_ctrl_c_cancels_the_tasks_and_the_runs_end_killed(
    project: Path, ray_cluster: RayCluster
) -> None:
    """SIGINT to ``runbase sweep --on ray``: the running tasks are cancelled (their runs
    end killed, none left running), the third trial never starts, exit 130."""
    write(project, "slow.py", "import time\ntime.sleep(600)\n")
    commit(project, "slow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "sweep", "--grid", "x=1,2,3", "--on", "ray",
         "--", sys.executable, "slow.py"],
        cwd=project, env={**env, "RAY_ADDRESS": ray_cluster.address},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _running_count(project) == 2, what="two runs started", timeout=120)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    rows = json.loads(runbase_cmd("ls", "--json", cwd=project).stdout)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"killed"}, rows


def _running_count(project: Path) -> int:
    if not (project / ".runbase" / "runbase.db").exists():
        return 0
    s = _store(project)
    try:
        return len(s.db.query("SELECT id FROM runs WHERE status = 'running'"))
    finally:
        s.close()


EXPLAINED = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
rows = [float(x) for x in open("data/train.csv").read().split()]
runbase.summary(acc=sum(rows) / len(rows) / 10)
"""


def test_explain_on_ray_ranks_as_locally(project: Path, ray_cluster: RayCluster) -> None:
    write(project, "train.py", EXPLAINED)
    write(project, "data/train.csv", "1 2 3 4\n")
    write(project, ".gitignore", "data/\n")
    commit(project, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=project, check=True, timeout=300)
    a = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    write(project, "data/train.csv", "1 2 3 4 10 10\n")
    runbase_cmd("run", "--", sys.executable, "train.py", "--lr", "0.2", cwd=project, check=True)
    b = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]

    def ranking(*options: str) -> list[tuple[str, bool]]:
        r = runbase_cmd(
            "explain", a, b, "-m", "acc", "--json", "--fresh", *options, cwd=project, timeout=600
        )
        assert r.returncode == 0, r.stderr
        return [(f["name"], f["significant"]) for f in json.loads(r.stdout)["factors"]]

    local = ranking("-j", "2")
    assert local[0] == ("data/train.csv", True)
    assert ranking("--on", "ray") == local
    every = json.loads(runbase_cmd("ls", "--all", "--json", "-l", "0", cwd=project).stdout)
    kinds = {_record(project, r["id"])["executor"]["kind"] for r in every if r["id"] not in (a, b)}
    assert kinds == {"local", "ray"}


def test_an_unreachable_cluster_fails_the_command_before_any_run(project: Path) -> None:
    write(project, "t.py", "import runbase\nrunbase.summary(acc=1.0)\n")
    runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    orig = json.loads(runbase_cmd("ls", "--json", cwd=project).stdout)[0]["id"]
    address = f"ray://127.0.0.1:{free_port()}"
    r = runbase_cmd("reproduce", orig, "--on", address, cwd=project)
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr, r.stderr
    r = runbase_cmd("explain", orig, orig, "--on", address, cwd=project)
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr, r.stderr
    assert len(json.loads(runbase_cmd("ls", "--all", "--json", cwd=project).stdout)) == 1


# last: it leaves the cluster one node short
def test_a_node_killed_mid_run_is_lost_and_the_job_retried_elsewhere(
    project: Path, ray_cluster: RayCluster, tmp_path: Path, team: tuple[TeamServer, str]
) -> None:
    """The lost attempt's run is ``lost`` here and on the team server it published to
    (never running forever); the retry is a new run that says which run it retries."""
    srv, token = team
    _login(srv, token, project)
    write(project, "hold.py", HOLD)
    commit(project, "hold")
    store = str(project / ".runbase")
    Store.open(store, create=True).close()
    release = tmp_path / "release"
    ex = make_executor("ray", jobs=2, retries=1)
    ex.check(store=store, publish="team")
    found: dict[str, Any] = {}

    def jobs() -> Any:
        for i in range(2):
            argv = runbase_run_argv(store, "--publish", "team", "--spec", SPEC_TOKEN, "--")
            yield Job(
                [*argv, sys.executable, "hold.py", str(tmp_path / f"m{i}"), str(release)],
                cwd=str(project),
                label=str(i),
                spec={"name": f"hold{i}"},
            )

    def kill_when_both_run() -> None:
        try:
            wait_until(lambda: len(ex.running()) == 2, what="two jobs submitted")
            runs = wait_until(lambda: _both_running(project), what="both runs started")
            worker = _worker_node(ray_cluster)
            lost = next(r for r in runs if r["executor"]["node_id"] == worker)
            found["lost"] = lost["id"]
            ray_cluster.kill_worker_node()  # with the run it ran
        finally:
            release.write_text("go")  # the other job ends, whatever happened here

    import threading

    killer = threading.Thread(target=kill_when_both_run)
    killer.start()
    assert not ex.run(jobs(), total=2)
    killer.join()
    lost = _record(project, found["lost"])
    assert lost["status"] == "lost"
    rows = [
        _record(project, r["id"])
        for r in json.loads(runbase_cmd("ls", "--json", cwd=project).stdout)
    ]
    retry = [r for r in rows if (r.get("executor") or {}).get("retry_of") == found["lost"]]
    assert len(rows) == 3 and len(retry) == 1
    rec = _record(project, retry[0]["id"])
    assert rec["status"] == "finished" and rec["executor"]["attempt"] == 1
    assert rec["executor"]["node_id"] != lost["executor"]["node_id"]
    on_server = srv.get(f"/p/default/api/runs/{found['lost']}", token)
    assert on_server["status"] == "lost"
    wait_until(lambda: _server_run(srv, token, rec["id"]), what="the retry on the server")


def _both_running(project: Path) -> list[dict[str, Any]] | None:
    s = _store(project)
    try:
        rows = s.db.query("SELECT id, owner_pid, executor_json FROM runs WHERE status = 'running'")
    finally:
        s.close()
    runs = [{"id": r[0], "owner_pid": r[1], "executor": json.loads(r[2] or "{}")} for r in rows]
    return runs if len(runs) == 2 else None


def _worker_node(cluster: RayCluster) -> str:
    return next(
        n["NodeID"] for n in cluster.nodes() if "node:__internal_head__" not in n["Resources"]
    )
