"""A real team server for tests: `runbase server` (SQLite and a directory of objects,
or a database the test made) migrated and started by :func:`team_server`, with users
of the roles a test needs and their tokens, and the requests tests make of it (its
REST API, its MLflow API, a user's login from the CLI). Built on conftest's
:func:`start_server`; the server stops when the ``with`` block ends."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import GIT, ServerProcess, commit, http_request, runbase_cmd, start_server, write

PROJECT = "default"  # the project every server has

# a program whose runs the tests push or publish: param lr, metric loss at steps 0 and 1,
# metric acc = 0.5 + lr
TRAIN = """
import sys
import runbase
lr = runbase.param("lr", float(sys.argv[1]))
for step, loss in enumerate([1.0, 0.5]):
    runbase.log(loss=loss, step=step)
runbase.log(acc=0.5 + lr)
"""


@dataclass
class TeamServer:
    """A running `runbase server` and the tokens of its users (name -> ``rbt_...``)."""

    db: str
    objects: Path
    base: Path  # where its files and log are
    server: ServerProcess
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def uri(self) -> str:
        """The MLflow tracking URI of project ``default``."""
        return f"{self.server.url}/p/{PROJECT}/mlflow"

    def admin(self, *args: str) -> str:
        """``runbase server ARGS --db DB``'s output (the test fails unless it exits 0)."""
        return runbase_cmd("server", *args, "--db", self.db, check=True).stdout

    def add_user(self, user: str, role: str, project: str = PROJECT) -> str:
        """A new user with ``role`` in ``project``; their token, also kept in ``tokens``."""
        out = self.admin("users", "add", user, "--project", project, "--project-role", role)
        self.tokens[user] = next(w for w in out.split() if w.startswith("rbt_"))
        return self.tokens[user]

    def login(self, user: str, env: dict[str, str], cwd: Path | None = None) -> dict[str, str]:
        """``runbase login`` as ``user`` and ``runbase remote add team`` (project
        ``default``) with ``env`` (its RUNBASE_CONFIG is the config they go to); ``env``."""
        runbase_cmd("login", self.url, "--token", self.tokens[user], cwd=cwd, env=env, check=True)
        runbase_cmd("remote", "add", "team", self.url, "--project", PROJECT, cwd=cwd, env=env,
                    check=True)  # fmt: skip
        return env

    def request(
        self,
        user: str | None,
        method: str,
        path: str,
        data: bytes | None = None,
        ctype: str = "application/json",
    ) -> tuple[int, Any]:
        """One request as ``user`` (None: without a token): ``(status, JSON or bytes)``."""
        token = self.tokens[user] if user else None
        return http_request(self.url, method, path, token, data, ctype)

    def mlflow(self, user: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A request to the MLflow API of project ``default`` (``body`` sent as JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        return self.request(user, method, f"/p/{PROJECT}/mlflow{path}", data)


@contextlib.contextmanager
def team_server(
    base: Path,
    users: Iterable[tuple[str, ...]] = (),
    *,
    projects: Iterable[str] = (),
    db: str | None = None,
) -> Iterator[TeamServer]:
    """A migrated and started server with its files in ``base`` (its database
    ``base/server.db`` unless ``db`` is given), the ``projects`` added and a user for
    each ``(name, role)`` or ``(name, role, project)`` of ``users``; stopped at the end."""
    db = db or str(base / "server.db")
    objects = base / "objects"
    runbase_cmd("server", "migrate", "--db", db, "--objects", str(objects), check=True)
    team = TeamServer(db, objects, base, start_server(db, str(objects), log_dir=base))
    try:
        for project in projects:
            team.admin("projects", "add", project)
        for user, role, *where in users:
            team.add_user(user, role, *where)
        yield team
    finally:
        team.server.stop()


def mlflow_client_env(token: str) -> dict[str, str]:
    """The MLflow client's environment to call a team server with ``token``, failing
    fast: an error is an answer, not a retry."""
    return {"MLFLOW_TRACKING_TOKEN": token, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


def train_repo(root: Path) -> Path:
    """A new git repo at ``root`` with :data:`TRAIN` as ``train.py``, committed."""
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    commit(root, "train")
    return root
