"""`runbase ls --remote NAME` (docs/server.md): the runs of a team server's project,
listed by the same table code as local `runbase ls`. One real `runbase server` process
(SQLite + a directory of objects) for the module; two runs made by the real CLI and
pushed, one created through the server's MLflow API by the real MLflow client; each
user with their own config (login + remote)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import require, runbase_cmd
from serverkit import PROJECT, TeamServer, mlflow_client_env, team_server, train_repo

PY = sys.executable

# the keys of a local `runbase ls --json` line (records.record.ls_entry), in order
LS_KEYS = [
    "id", "name", "status", "exit_code", "exit_signal", "started_at", "ended_at",
    "duration_s", "user", "sweep_id", "params", "metrics", "tags",
]  # fmt: skip


@dataclass
class Team:
    server: TeamServer
    root: Path  # alice's repo
    pushed: list[str] = field(default_factory=list)  # run ids, lr 0.25 then 0.5
    mlflow_run: str = ""

    @property
    def base(self) -> Path:
        return self.server.base

    def config(self, user: str) -> dict[str, str]:
        """``user``'s config (created once: login + remote ``team``)."""
        path = self.base / f"{user}.json"
        env = {"RUNBASE_CONFIG": str(path)}
        return env if path.exists() else self.server.login(user, env)

    def ls(self, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return runbase_cmd("ls", *args, cwd=self.root, env=self.config(user), check=check)


def _mlflow_run(uri: str, token: str) -> str:
    """A run created through the server's MLflow API by the real MLflow client."""
    mlflow = require("mlflow")  # the test extra has it: missing, the test fails
    with pytest.MonkeyPatch.context() as mp:
        for key, value in mlflow_client_env(token).items():
            mp.setenv(key, value)
        client = mlflow.MlflowClient(tracking_uri=uri)
        run = client.create_run("0", run_name="from-mlflow")
        client.log_param(run.info.run_id, "lr", "0.75")
        client.log_metric(run.info.run_id, "acc", 0.9, step=0)
        client.set_terminated(run.info.run_id)
        return str(run.info.run_id)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("remote-ls")
    users = (("alice", "writer", PROJECT), ("rita", "reader", PROJECT), ("otto", "writer", "other"))
    with team_server(base, users, projects=["other"]) as server:
        root = train_repo(base / "alice")
        t = Team(server, root)
        env = t.config("alice")
        for lr in ("0.25", "0.5"):
            runbase_cmd("run", "-q", "--", PY, "train.py", lr, cwd=root, env=env, check=True)
            shown = runbase_cmd("show", "latest", "--json", cwd=root, env=env, check=True)
            t.pushed.append(json.loads(shown.stdout)["id"])
        runbase_cmd("push", *t.pushed, cwd=root, env=env, check=True)
        t.mlflow_run = _mlflow_run(server.uri, server.tokens["alice"])
        yield t


def test_lists_pushed_and_mlflow_runs(team: Team) -> None:
    out = team.ls("alice", "--remote", "team").stdout
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["id", "name", "status", "started", "duration"]
    assert "lr" in header.split() and "acc" in header.split()
    assert len(lines) == 3
    assert lines[0].startswith(team.mlflow_run[:10])  # newest first
    assert "from-mlflow" in lines[0] and "finished" in lines[0]
    for run_id in team.pushed:
        assert any(line.startswith(run_id[:10]) for line in lines)


def test_json_lines_are_local_ls_json_lines(team: Team) -> None:
    remote = json.loads(team.ls("alice", "--remote", "team", "--json").stdout)
    assert [list(e) for e in remote] == [LS_KEYS] * 3
    assert [e["id"] for e in remote] == [team.mlflow_run, team.pushed[1], team.pushed[0]]
    mlflow_entry = remote[0]
    assert mlflow_entry["params"] == {"lr": 0.75}
    assert mlflow_entry["metrics"]["acc"]["value"] == 0.9
    # a pushed run reads as it does in the store it came from, but for its user (the
    # server's account that pushed it) and the tags the server adds
    local = json.loads(team.ls("alice", "--json").stdout)
    by_id = {e["id"]: e for e in local}
    for entry in remote[1:]:
        mine = by_id[entry["id"]]
        same = [k for k in LS_KEYS if k not in ("user", "tags")]
        assert {k: entry[k] for k in same} == {k: mine[k] for k in same}
        assert entry["user"] == "alice"
        assert mine["tags"].items() <= entry["tags"].items()


def test_where_sort_limit_and_columns(team: Team) -> None:
    found = json.loads(
        team.ls("alice", "--remote", "team", "-w", "params.lr > 0.3", "--json").stdout
    )
    assert [e["id"] for e in found] == [team.mlflow_run, team.pushed[1]]
    out = team.ls(
        "alice", "--remote", "team", "-s", "metrics.acc", "-l", "2", "-c", "name,metrics.acc"
    )
    header, *lines = out.stdout.splitlines()
    assert header.split() == ["name", "acc"]
    assert [line.split()[1] for line in lines[:2]] == ["0.75", "0.9"]
    assert lines[2] == "(2 of 3 runs; --limit 0 shows all)"
    none = team.ls("alice", "--remote", "team", "-w", "params.lr > 5")
    assert none.stdout.strip() == "no runs match"
    typo = team.ls("alice", "--remote", "team", "-w", "params.lrr > 0")
    assert "params.lrr" in typo.stderr and "params.lr" in typo.stderr


def test_reader_token_lists(team: Team) -> None:
    found = json.loads(team.ls("rita", "--remote", "team", "--json").stdout)
    assert len(found) == 3


def test_refusals_are_clear(team: Team) -> None:
    unknown = team.ls("alice", "--remote", "nowhere", check=False)
    assert unknown.returncode == 2 and "no remote 'nowhere'" in unknown.stderr
    outsider = team.ls("otto", "--remote", "team", check=False)
    assert outsider.returncode == 1
    assert "reader role" in outsider.stderr and "not a member" in outsider.stderr
    bad = team.ls("alice", "--remote", "team", "-w", "params.lr <", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "unexpected end of expression" in bad.stderr


def test_unreachable_server_is_said(team: Team) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {"RUNBASE_CONFIG": str(team.base / "nowhere.json")}
    runbase_cmd("remote", "add", "team", url, "--project", PROJECT, env=env, check=True)
    out = runbase_cmd("ls", "--remote", "team", cwd=team.root, env=env)
    assert out.returncode == 1 and f"cannot reach {url}" in out.stderr
    assert "Traceback" not in out.stderr


def test_short_ids_of_a_listing() -> None:
    """A remote's runs are abbreviated among themselves: at least 10 characters, longer
    only where two of them share more."""
    from runbase.core.ids import abbreviate_among

    ids = ["0mc4wh8rx98cm8kz", "0mc4wh8rx98cm8ka", "0mc4zzzzzzzzzzzz", "0mc4zzzzzzzzzzzy"]
    assert abbreviate_among(ids) == {
        "0mc4wh8rx98cm8ka": "0mc4wh8rx98cm8ka",
        "0mc4wh8rx98cm8kz": "0mc4wh8rx98cm8kz",
        "0mc4zzzzzzzzzzzy": "0mc4zzzzzzzzzzzy",
        "0mc4zzzzzzzzzzzz": "0mc4zzzzzzzzzzzz",
    }
    assert abbreviate_among(["0mc4wh8rx98cm8kz", "1abcdefghjkmnpqr"]) == {
        "0mc4wh8rx98cm8kz": "0mc4wh8rx9",
        "1abcdefghjkmnpqr": "1abcdefghj",
    }
    assert abbreviate_among(["0mc4wh8rx98cm8kz", "0mc4wh8rx98cm8kz"]) == {
        "0mc4wh8rx98cm8kz": "0mc4wh8rx9"
    }
