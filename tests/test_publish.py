"""Live publishing (`runbase run --publish`) and reproducing a run from a team server
on another machine (`runbase reproduce REMOTE:RUN`), against a real `runbase server`
subprocess (SQLite + a local object directory: the backends have their own suites)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, ServerProcess, _free_port, commit, runbase_cmd, start_server, write


class TeamServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.db = str(base / "server.db")
        self.objects = str(base / "objects")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ServerProcess | None = None

    def admin(self, *args: str) -> str:
        return runbase_cmd("server", *args, "--db", self.db, check=True).stdout.strip()

    def start(self) -> None:
        self.server = start_server(self.db, self.objects, port=self.port, log_dir=self.base)

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server = None

    def get(self, path: str, token: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


@pytest.fixture
def team(tmp_path: Path) -> Iterator[tuple[TeamServer, str]]:
    """A migrated server with user alice (admin), started; yields it and alice's token."""
    import conftest

    conftest.require("fastapi")
    conftest.require("uvicorn")
    srv = TeamServer(tmp_path / "srv")
    srv.base.mkdir()
    runbase_cmd("server", "migrate", "--db", srv.db, "--objects", srv.objects, check=True)
    token = srv.admin("users", "add", "alice", "--role", "admin")
    srv.start()
    try:
        yield srv, token
    finally:
        srv.stop()


SLOW = """\
import argparse, time, runbase
p = argparse.ArgumentParser(); p.add_argument("--steps", type=int, default=40)
a = p.parse_args()
for i in range(a.steps):
    runbase.log(loss=1.0 / (i + 1), step=i)
    print(f"step {i}", flush=True)
    time.sleep(0.1)
"""


def _login(srv: TeamServer, token: str, cwd: Path, remote: str = "team") -> None:
    runbase_cmd("login", srv.url, "--token", token, cwd=cwd, check=True)
    runbase_cmd("remote", "add", remote, srv.url, cwd=cwd, check=True)


def test_published_run_is_live_on_the_server_while_it_runs(
    project: Path, team: tuple[TeamServer, str]
) -> None:
    srv, token = team
    write(project, "slow.py", SLOW)
    commit(project, "slow")
    _login(srv, token, project)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") or k == "RUNBASE_CONFIG"
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runbase",
            "run",
            "--publish",
            "team",
            "--",
            sys.executable,
            "slow.py",
            "--steps",
            "60",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    live: dict[str, Any] | None = None
    deadline = time.monotonic() + 60
    live_log = ""
    while proc.poll() is None and time.monotonic() < deadline:
        runs = srv.get("/p/default/api/runs", token)["runs"]
        if runs and runs[0]["status"] == "running" and runs[0]["metrics"].get("loss"):
            log = srv.get(f"/p/default/api/runs/{runs[0]['id']}/logs", token)
            if log["status"] == "running" and "step 1\n" in log["text"]:
                live, live_log = runs[0], log["text"]
                break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert live is not None, "the run never showed up running with metrics and logs"
    assert live["user"] == "alice"
    assert live_log.startswith("step 0\nstep 1\n")
    # after the end: the whole run, every point, and its objects (code) are there
    final = srv.get(f"/p/default/api/runs/{live['id']}", token)
    assert final["status"] == "finished"
    local = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert final["metrics"]["loss"]["count"] == local["metrics"]["loss"]["count"] == 60
    log = srv.get(f"/p/default/api/runs/{live['id']}/logs?limit=100000", token)
    assert log["done"] and log["text"] == "".join(f"step {i}\n" for i in range(60))
    tree = srv.get(f"/p/default/api/runs/{live['id']}/code/tree", token)
    assert any(f["path"] == "slow.py" for f in tree["files"])


INIT = """\
import time, runbase
runbase.init(name="from-init", publish="team")
runbase.param("lr", 0.02)
for i in range(30):
    runbase.log(loss=1.0 / (i + 1), step=i)
    print(f"line {i}", flush=True)
    time.sleep(0.1)
runbase.finish()
"""


def test_runbase_init_publishes_from_its_watcher(
    project: Path, team: tuple[TeamServer, str]
) -> None:
    srv, token = team
    write(project, "init_run.py", INIT)
    commit(project, "init")
    _login(srv, token, project)
    proc = subprocess.Popen(
        [sys.executable, "init_run.py"], cwd=project, env=_client_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    seen_running = False
    deadline = time.monotonic() + 90
    final: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        runs = srv.get("/p/default/api/runs", token)["runs"]
        if runs:
            seen_running |= runs[0]["status"] == "running" and proc.poll() is None
            if runs[0]["status"] == "finished" and "loss" in runs[0]["metrics"]:
                final = srv.get(f"/p/default/api/runs/{runs[0]['id']}", token)
                if final["metrics"]["loss"]["count"] == 30:
                    break
        time.sleep(0.2)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert seen_running, "the run was not visible on the server while it ran"
    assert final is not None and final["name"] == "from-init"
    assert final["params"]["lr"] == 0.02
    log = srv.get(f"/p/default/api/runs/{final['id']}/logs?limit=100000", token)
    assert log["text"] == "".join(f"line {i}\n" for i in range(30))


def test_init_refuses_an_unknown_remote_before_the_run(project: Path) -> None:
    write(project, "bad.py", "import runbase\nrunbase.init(publish='nowhere')\n")
    r = subprocess.run(
        [sys.executable, "bad.py"], cwd=project, env=_client_env(), capture_output=True, text=True
    )
    assert r.returncode != 0 and "no remote 'nowhere'" in r.stderr
    assert runbase_cmd("ls", cwd=project).stdout.count("\n") <= 1  # no run was started


def _client_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") or k == "RUNBASE_CONFIG"
    }


def test_unreachable_server_never_blocks_the_run_and_push_catches_up(
    project: Path, tmp_path: Path
) -> None:
    write(project, "slow.py", SLOW)
    commit(project, "slow")
    srv = TeamServer(tmp_path / "srv")
    srv.base.mkdir()
    runbase_cmd("server", "migrate", "--db", srv.db, "--objects", srv.objects, check=True)
    token = srv.admin("users", "add", "alice")
    # logged in and configured, but the server is down for the whole run
    cfg = Path(os.environ["RUNBASE_CONFIG"])
    cfg.write_text(
        json.dumps(
            {
                "servers": {srv.url: {"token": token}},
                "remotes": {"team": {"url": srv.url, "project": "default"}},
                "publish": "team",
            }
        )
    )
    r = runbase_cmd("run", "--", sys.executable, "slow.py", "--steps", "10", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "runbase push" in r.stderr  # the warning says how it catches up
    run_id = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)["id"]
    # a second run while still down; then the server comes back and `runbase push` sends both
    runbase_cmd("run", "--", sys.executable, "slow.py", "--steps", "3", cwd=project, check=True)
    srv.start()
    try:
        out = runbase_cmd("push", cwd=project, check=True).stdout
        assert "2 run(s) pushed" in out
        ids = {r["id"] for r in srv.get("/p/default/api/runs", token)["runs"]}
        assert run_id in ids and len(ids) == 2
        # nothing pending any more: pushing again sends nothing
        again = runbase_cmd("push", cwd=project, check=True).stdout
        assert "0 run(s) pushed" in again
    finally:
        srv.stop()


TRAIN = """\
import argparse, hashlib, json, runbase
p = argparse.ArgumentParser(); p.add_argument("--lr", type=float, default=0.1)
a = p.parse_args()
data = open("data/train.csv", "rb").read()
score = int(hashlib.sha256(data + str(a.lr).encode()).hexdigest()[:8], 16) / 16**8
runbase.summary(score=score)
open("model.json", "w").write(json.dumps({"score": score}))
"""


def test_reproduce_a_teammates_run_from_the_server(
    project: Path, tmp_path: Path, team: tuple[TeamServer, str]
) -> None:
    srv, token = team
    write(project, "train.py", TRAIN)
    write(project, "data/train.csv", "x,y\n1,2\n3,4\n")
    commit(project, "train")
    _login(srv, token, project)
    runbase_cmd("run", "--", sys.executable, "train.py", "--lr", "0.05", cwd=project, check=True)
    runbase_cmd("push", cwd=project, check=True)
    run_id = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)["id"]
    # which runs used this exact dataset? (hashed here, searched on the server)
    found = json.loads(
        runbase_cmd("search", "--data", "data/train.csv", "--json", cwd=project, check=True).stdout
    )
    assert [(r["id"], r["data_role"], r["project"]) for r in found["runs"]] == [
        (run_id, "input", "default")
    ]
    out = runbase_cmd("search", "--where", "params.lr < 0.1", cwd=project, check=True).stdout
    assert run_id[:10] in out and "alice" in out
    assert "0 run(s)" in runbase_cmd("search", "-w", "params.lr > 1", cwd=project).stderr
    # the data changes on the first machine after the run: the server has the exact bytes
    write(project, "data/train.csv", "x,y\n9,9\n")

    # a colleague: another machine (empty directory, own config and store), another user
    bob_token = srv.admin("users", "add", "bob", "--project-role", "reader")
    other = tmp_path / "bob"
    other.mkdir()
    subprocess.run([*GIT, "init", "-q", str(other)], check=True)
    bob_env = {"RUNBASE_CONFIG": str(tmp_path / "bob-config.json")}
    runbase_cmd("login", srv.url, "--token", bob_token, cwd=other, env=bob_env, check=True)
    runbase_cmd("remote", "add", "team", srv.url, cwd=other, env=bob_env, check=True)
    r = runbase_cmd("reproduce", f"team:{run_id[:10]}", "--json", cwd=other, env=bob_env)
    assert r.returncode == 0, r.stdout + r.stderr
    verdict = json.loads(r.stdout)
    assert verdict["verdict"] == "reproduced"
    assert verdict["original"] == run_id
    assert [m["key"] for m in verdict["metrics"]] == ["score"]
    # and by the run's URL, too
    r2 = runbase_cmd("reproduce", f"{srv.url}/p/default/runs/{run_id}", cwd=other, env=bob_env)
    assert r2.returncode == 0, r2.stdout + r2.stderr
