"""The administration commands: `runbase remote list/remove` (the client's config) and
`runbase server users list/disable`, `server projects list`, `server token` (the server's
control database), each checked for its exact output and its effect on a real
`runbase server` subprocess (SQLite and a local object directory)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ServerProcess, http_request, require, runbase_cmd, start_server

require("fastapi")
require("uvicorn")

TOKEN_PREFIX = "rbt_"  # server.control.TOKEN_PREFIX: the documented token format


class Team:
    """A migrated server database with user alice (server admin), and the server on it."""

    def __init__(self, base: Path) -> None:
        self.db = str(base / "server.db")
        self.objects = str(base / "objects")
        runbase_cmd("server", "migrate", "--db", self.db, "--objects", self.objects, check=True)
        self.alice = self.admin("users", "add", "alice", "--role", "admin")
        self.server: ServerProcess = start_server(self.db, self.objects, log_dir=base)
        self.url = self.server.url

    def admin(self, *args: str) -> str:
        """``runbase server ARGS --db DB``: its stdout (it must succeed)."""
        return runbase_cmd("server", *args, "--db", self.db, check=True).stdout

    def admin_fails(self, *args: str) -> str:
        """``runbase server ARGS --db DB`` that must fail: its stderr."""
        proc = runbase_cmd("server", *args, "--db", self.db)
        assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
        return proc.stderr

    def get(self, path: str, token: str) -> tuple[int, Any]:
        return http_request(self.url, "GET", path, token)


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    base = tmp_path / "srv"
    base.mkdir()
    t = Team(base)
    try:
        yield t
    finally:
        t.server.stop()


def _token_id(secret: str) -> str:
    """A token's id is part of its secret: ``rbt_<id>_<random>``."""
    assert secret.startswith(TOKEN_PREFIX), secret
    return secret[len(TOKEN_PREFIX) :].split("_", 1)[0]


# -- runbase remote list / remove -------------------------------------------------------------


def test_remote_list_and_remove(team: Team, tmp_path: Path) -> None:
    assert runbase_cmd("remote", "list", cwd=tmp_path, check=True).stdout == ""
    runbase_cmd("remote", "add", "team", team.url + "/", "-p", "ml", cwd=tmp_path, check=True)
    runbase_cmd("remote", "add", "other", "https://runs.example.com", cwd=tmp_path, check=True)
    runbase_cmd("login", team.url, "--token", team.alice.strip(), cwd=tmp_path, check=True)
    listed = runbase_cmd("remote", "list", cwd=tmp_path, check=True).stdout
    assert listed == (  # by name; the URL as `remote add` normalized it
        f"other\thttps://runs.example.com\tdefault\tno token\nteam\t{team.url}\tml\tlogged in\n"
    )

    removed = runbase_cmd("remote", "remove", "team", cwd=tmp_path, check=True)
    assert removed.stdout == "" and removed.stderr == ""
    listed = runbase_cmd("remote", "list", cwd=tmp_path, check=True).stdout
    assert listed == "other\thttps://runs.example.com\tdefault\tno token\n"
    config = json.loads(Path(os.environ["RUNBASE_CONFIG"]).read_text())
    assert list(config["remotes"]) == ["other"]
    assert team.url in json.dumps(config)  # the login (token) stays: it is per server URL
    runbase_cmd("init", cwd=tmp_path, check=True)
    pushed = runbase_cmd("push", "--all", "--to", "team", cwd=tmp_path)
    assert pushed.returncode != 0 and "no remote 'team'" in pushed.stderr, pushed.stderr

    again = runbase_cmd("remote", "remove", "team", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == "Error: no remote 'team'\n"


# -- runbase server users list / disable ------------------------------------------------------


def test_users_list_and_disable(team: Team) -> None:
    bob = team.admin("users", "add", "bob").strip()
    team.admin("users", "add", "carol", "--role", "admin", "--project", "default")
    assert team.admin("users", "list") == "alice\tadmin\nbob\tuser\ncarol\tadmin\n"
    assert team.get("/api/v1/me", bob)[0] == 200

    assert team.admin("users", "disable", "bob") == "user bob disabled\n"
    assert team.admin("users", "list") == "alice\tadmin\nbob\tuser  (disabled)\ncarol\tadmin\n"
    status, body = team.get("/api/v1/me", bob)
    assert status == 401, body  # at once: no restart, no cache
    assert team.get("/p/default/api/runs", bob)[0] == 401
    assert team.get("/api/v1/me", team.alice.strip())[0] == 200  # the others are unaffected
    assert "no user 'bob'" in team.admin_fails("token", "bob")  # no new token either

    assert team.admin("users", "disable", "bob", "--enable") == "user bob enabled\n"
    assert team.admin("users", "list") == "alice\tadmin\nbob\tuser\ncarol\tadmin\n"
    status, body = team.get("/api/v1/me", bob)
    assert status == 200 and body["user"] == "bob"

    assert team.admin_fails("users", "disable", "nobody") == "Error: no user 'nobody'\n"


# -- runbase server projects list -------------------------------------------------------------


def test_projects_list(team: Team) -> None:
    assert team.admin("projects", "list") == "default\n"
    assert team.admin("projects", "add", "zeta") == "project zeta added\n"
    assert team.admin("projects", "add", "alpha") == "project alpha added\n"
    assert team.admin("projects", "list") == "alpha\ndefault\nzeta\n"  # sorted by name
    # the server serves what the list says
    status, body = team.get("/api/v1/projects", team.alice.strip())
    assert status == 200
    assert sorted(p["name"] for p in body["projects"]) == ["alpha", "default", "zeta"]
    assert team.get("/p/alpha/api/runs", team.alice.strip())[0] == 200


# -- runbase server token ---------------------------------------------------------------------


def test_token_issue_list_and_revoke(team: Team) -> None:
    first = team.admin("users", "add", "bob").strip()
    out = team.admin("token", "bob")
    assert out.count("\n") == 1  # the secret alone on stdout, for scripts
    second = out.strip()
    assert second.startswith(TOKEN_PREFIX) and second != first
    status, body = team.get("/api/v1/me", second)
    assert status == 200 and body["user"] == "bob"

    first_id, second_id = _token_id(first), _token_id(second)
    assert team.admin("token", "bob", "--list") == (
        f"{first_id}\tactive\tfirst token\n{second_id}\tactive\tcli\n"
    )
    listed = team.admin("token", "bob", "--list")
    assert first not in listed and second not in listed  # never a secret

    assert team.admin("token", "bob", "--revoke", second_id) == f"token {second_id} revoked\n"
    assert team.get("/api/v1/me", second)[0] == 401
    assert team.get("/api/v1/me", first)[0] == 200  # only that one
    assert team.admin("token", "bob", "--list") == (
        f"{first_id}\tactive\tfirst token\n{second_id}\trevoked\tcli\n"
    )
    assert "no token 'feedfacecafe'" in team.admin_fails("token", "bob", "--revoke", "feedfacecafe")

    before = time.time()
    third = team.admin("token", "bob", "--expires-days", "0.5").strip()
    status, body = team.get("/api/v1/tokens", third)
    assert status == 200
    [info] = [t for t in body["tokens"] if t["id"] == _token_id(third)]
    assert before + 43200 <= info["expires_at"] <= time.time() + 43200

    assert team.admin_fails("token", "nobody") == "Error: no user 'nobody'\n"
