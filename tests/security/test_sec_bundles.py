"""Issue 14.5 and 14.8: one writer cannot break a project for every reader. Crafted
bundles and live updates (non-finite or out-of-range times, wrong-shaped JSON columns,
JSON nested 5,000 deep) are pushed to a real `runbase server` (SQLite, local objects)
and refused with a 422 naming the field; legitimate non-finite metric values are kept.
Rows planted behind the server's back (as an older version stored them) leave its
routes answering, and `runbase pull` of such a run is a clear error."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, ServerProcess, commit, require, runbase_cmd, start_server, write
from runbase.core import ids

TRAIN = """
import runbase
runbase.param("lr", 0.1)
for i in range(3):
    runbase.log(loss=1.0 / (i + 1), step=i)
"""
TABLES = ("params", "tags", "metrics", "metric_chunks", "run_files")
DEEP = 5000


@dataclass
class Team:
    server: ServerProcess
    db: Path  # the server's control database; the project "default" is beside it
    token: str
    root: Path  # alice's project, logged in, remote "team"
    run_id: str  # pushed
    bundle: dict[str, Any]  # as the server gives it back

    def request(self, method: str, path: str, body: Any = None, raw: str | None = None) -> Any:
        httpx = require("httpx")
        content = raw if raw is not None else json.dumps(body) if body is not None else None
        return httpx.request(
            method,
            self.server.url + path,
            content=content,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=60,
        )

    def fresh(self) -> tuple[str, dict[str, Any]]:
        """The pushed run's bundle as a new run (its own id)."""
        new_id = ids.new_run_id()
        b = copy.deepcopy(self.bundle)
        b["run"]["id"] = new_id
        for table in TABLES:
            for row in b[table]:
                row["run_id"] = new_id
        return new_id, b


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    require("fastapi")
    require("uvicorn")
    base = tmp_path_factory.mktemp("team")
    db, objects = base / "server.db", base / "objects"
    runbase_cmd("server", "migrate", "--db", str(db), "--objects", str(objects), check=True)
    token = runbase_cmd(
        "server", "users", "add", "alice", "--role", "admin", "--db", str(db), check=True
    ).stdout.strip()
    root = base / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    commit(root, "train")
    server = start_server(str(db), str(objects), log_dir=base)
    try:
        env = {"RUNBASE_CONFIG": str(base / "alice.json")}
        runbase_cmd("login", server.url, "--token", token, cwd=root, env=env, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=root, env=env, check=True)
        runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, env=env, check=True)
        runbase_cmd("push", cwd=root, env=env, check=True)
        run_id = json.loads(runbase_cmd("show", "--json", cwd=root, check=True).stdout)["id"]
        t = Team(server, db, token, root, run_id, {})
        r = t.request("GET", f"/p/default/api/runs/{run_id}/bundle")
        assert r.status_code == 200, r.text
        t.bundle = r.json()
        yield t
    finally:
        server.stop()


def _deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def _run(**columns: Any) -> dict[str, Any]:
    return columns


# (what is changed in a fresh copy of a good bundle, the field the 422 must name)
HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "started_at Infinity": (_run(started_at="Infinity"), "run.started_at"),
    "started_at -Infinity": (_run(started_at="-Infinity"), "run.started_at"),
    "started_at NaN": (_run(started_at="NaN"), "run.started_at"),
    "started_at 1e300": (_run(started_at=1e300), "run.started_at"),
    "started_at negative": (_run(started_at=-5.0), "run.started_at"),
    "ended_at NaN": (_run(ended_at="NaN"), "run.ended_at"),
    "heartbeat_at 1e300": (_run(heartbeat_at=1e300), "run.heartbeat_at"),
    "env_json list": (_run(env_json="[1, 2]"), "run.env_json"),
    "env_json python text": (_run(env_json='{"python": "3.11"}'), "run.env_json.python"),
    "env_json Infinity": (_run(env_json='{"memory_bytes": Infinity}'), "run.env_json"),
    "env_json gpus object": (_run(env_json='{"gpus": {"a": 1}}'), "run.env_json.gpus"),
    "env_json deep": (_run(env_json='{"x": ' + _deep(100) + "}"), "run.env_json"),
    "env_json 5000 deep": (_run(env_json=_deep()), "run.env_json"),
    "code_json string": (_run(code_json='"x"'), "run.code_json"),
    "code_json skipped": (_run(code_json='{"skipped": "all"}'), "run.code_json.skipped"),
    "code_json tree": (_run(code_json='{"tree": 5}'), "run.code_json.tree"),
    "code_json seconds": (_run(code_json='{"seconds": Infinity}'), "run.code_json.seconds"),
    "logs_json entry": (_run(logs_json='{"output": "x"}'), "run.logs_json.output"),
    "notebook_json oid": (_run(notebook_json='{"oid": 5}'), "run.notebook_json.oid"),
    "command string": (_run(command='"ls"'), "run.command"),
    "name 1 MB": (_run(name="n" * (1 << 20)), "run.name"),
    "exit_signal huge": (_run(exit_signal=1 << 40), "run.exit_signal"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bundle_is_refused_naming_the_field(team: Team, case: str) -> None:
    change, field = HOSTILE[case]
    run_id, b = team.fresh()
    b["run"].update(change)
    r = team.request("PUT", f"/p/default/api/runs/{run_id}/bundle", b)
    assert r.status_code == 422, f"{case}: {r.status_code} {r.text[:300]}"
    assert field in r.json()["detail"], r.text[:300]
    assert team.request("GET", f"/p/default/api/runs/{run_id}").status_code == 404


def test_hostile_rows_are_refused(team: Team) -> None:
    cases = [
        ("metrics", {"last_time": "Infinity"}, "metrics[0].last_time"),
        ("metrics", {"count": -1}, "metrics[0].count"),
        ("params", {"value": _deep()}, "params[0].value"),
        ("params", {"key": "k" * 5000}, "params[0].key"),
    ]
    for table, change, field in cases:
        run_id, b = team.fresh()
        b[table][0].update(change)
        r = team.request("PUT", f"/p/default/api/runs/{run_id}/bundle", b)
        assert r.status_code == 422 and field in r.json()["detail"], (change, r.text[:300])


def test_live_updates_are_checked_too(team: Team) -> None:
    path = f"/p/default/api/runs/{team.run_id}/live"
    for change, field in [
        ({"started_at": "Infinity"}, "run.started_at"),
        ({"ended_at": 1e300}, "run.ended_at"),
        ({"env_json": "[1]"}, "run.env_json"),
    ]:
        delta = {"bundle_version": 1, "run": {"id": team.run_id, **change}}
        r = team.request("POST", path, delta)
        assert r.status_code == 422 and field in r.json()["detail"], r.text[:300]


@pytest.mark.parametrize("method,route", [("PUT", "bundle"), ("POST", "live")])
def test_bodies_nested_5000_deep_are_client_errors(team: Team, method: str, route: str) -> None:
    path = f"/p/default/api/runs/{team.run_id}/{route}"
    for raw in (_deep(), '{"a":' * DEEP + "1" + "}" * DEEP):
        r = team.request(method, path, raw=raw)
        assert r.status_code == 422, f"{r.status_code} {r.text[:300]}"
        assert "nested" in r.json()["detail"]


def test_non_finite_metric_values_are_kept_and_shown_as_strings(team: Team) -> None:
    """A diverged loss is a legitimate value: stored, and every reader shows it as the
    strings the run record uses (strict JSON)."""
    run_id, b = team.fresh()
    b["metrics"][0].update(last="Infinity", max="Infinity", value="NaN", summary=None)
    r = team.request("PUT", f"/p/default/api/runs/{run_id}/bundle", b)
    assert r.status_code == 200, r.text[:300]
    run = team.request("GET", f"/p/default/api/runs/{run_id}")
    assert run.status_code == 200
    metric = run.json()["metrics"][b["metrics"][0]["key"]]
    assert metric["last"] == "Infinity" and metric["max"] == "Infinity"


def test_rows_an_old_server_stored_are_read_and_refused_by_pull(team: Team, tmp_path: Path) -> None:
    # planted behind the server's back, as a version without these checks stored them
    run_id, b = team.fresh()
    assert team.request("PUT", f"/p/default/api/runs/{run_id}/bundle", b).status_code == 200
    project_db = team.db.parent / "projects" / "default.db"
    assert project_db.exists(), sorted(p.name for p in team.db.parent.iterdir())
    con = sqlite3.connect(project_db)
    with con:
        con.execute(
            "UPDATE runs SET started_at = 1e300, env_json = '[1, 2]', code_json = '\"x\"' "
            "WHERE id = ?",
            (run_id,),
        )
    con.close()
    p = "/p/default/api"
    for url in [
        f"{p}/runs",
        f"{p}/runs/{run_id}",
        f"{p}/compare?runs={run_id},{team.run_id}",
        f"{p}/diff?a={run_id}&b={team.run_id}",
        f"{p}/runs/{run_id}/lineage",
        "/api/v1/search?where=params.lr%20%3E%200",
        f"/p/default/runs/{run_id}",
    ]:
        r = team.request("GET", url)
        assert r.status_code < 500, f"{url}: {r.status_code} {r.text[:300]}"
    # a colleague pulls it: refused with the field named, nothing imported
    other = tmp_path / "bob"
    other.mkdir()
    subprocess.run([*GIT, "init", "-q", str(other)], check=True)
    env = {"RUNBASE_CONFIG": str(tmp_path / "bob.json")}
    runbase_cmd("login", team.server.url, "--token", team.token, cwd=other, env=env, check=True)
    runbase_cmd("remote", "add", "team", team.server.url, cwd=other, env=env, check=True)
    pulled = runbase_cmd("pull", run_id, cwd=other, env=env)
    assert pulled.returncode != 0 and "Traceback" not in pulled.stderr, pulled.stderr[-2000:]
    assert "run.started_at" in pulled.stderr, pulled.stderr[-500:]
    assert runbase_cmd("show", run_id, cwd=other, env=env).returncode != 0
    # the good run still pulls
    good = runbase_cmd("pull", team.run_id, cwd=other, env=env)
    assert good.returncode == 0, good.stderr[-2000:]


ODD_WALLTIMES = """
from tensorboardX import SummaryWriter
w = SummaryWriter("tb")
w.add_scalar("loss", 1.0, 0, walltime=float("nan"))
w.add_scalar("loss", 0.5, 1, walltime=float("inf"))
w.add_scalar("loss", 0.25, 2, walltime=1e300)  # the last point: the run's last_time
w.close()
"""


def test_a_run_whose_points_carry_odd_times_can_be_pushed(team: Team) -> None:
    """What a framework passes as a point's wall time is recorded as a time (the time
    it was logged), so the run stays one a server accepts."""
    require("tensorboardX")
    write(team.root, "tb_train.py", ODD_WALLTIMES)
    env = {"RUNBASE_CONFIG": str(team.db.parent / "alice.json")}
    runbase_cmd("run", "--", sys.executable, "tb_train.py", cwd=team.root, env=env, check=True)
    run_id = json.loads(runbase_cmd("show", "--json", cwd=team.root, check=True).stdout)["id"]
    pushed = runbase_cmd("push", run_id, cwd=team.root, env=env)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    series = team.request("GET", f"/p/default/api/runs/{run_id}/series/loss")
    assert series.status_code == 200 and series.json()["values"] == [1.0, 0.5, 0.25]
    from runbase.core.shapes import MAX_TIME
    from runbase.records.read import series as read_series
    from runbase.store import Store

    store = Store.open(team.root / ".runbase")
    try:
        times = read_series(store, run_id, "loss").times
    finally:
        store.close()
    assert len(times) == 3 and all(0 < t <= MAX_TIME for t in times), times
