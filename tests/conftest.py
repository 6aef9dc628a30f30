"""Shared fixtures: real git repos, real subprocesses, real stores in temp dirs."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GIT = [
    "git",
    "-c",
    "user.name=Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "init.defaultBranch=main",
]


def require(module: str) -> Any:
    """Import a test dependency. The test extra installs every one of them, so a missing
    one FAILS the test (a skip would let CI pass without testing the integration)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{module} is required by this test: pip install -e '.[test]' ({e})")


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a run, store, server login or token of the developer's shell."""
    for var in (
        "RUNBASE_DIR",
        "RUNBASE_RUN_ID",
        "RUNBASE_PACKAGE_DIR",
        "RUNBASE_SUPERVISOR_PID",
        "RUNBASE_TOKEN",
        "RUNBASE_SERVER_DB",
        "RUNBASE_SERVER_OBJECTS",
        "RUNBASE_PUBLISH",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNBASE_CONFIG", str(tmp_path / "runbase-config.json"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with one commit, as the current directory."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / "README.md").write_text("# project\n")
    (root / ".gitignore").write_text("*.log\nignored/\n")
    commit(root, "initial")
    monkeypatch.chdir(root)
    return root


def commit(root: Path, message: str = "commit") -> str:
    subprocess.run([*GIT, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-q", "-m", message], check=True)
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def runbase_cmd(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `runbase` entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "runbase", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"runbase {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def cli():
    return runbase_cmd


# -- a throwaway PostgreSQL cluster (test_db_contract.py, test_bundle.py) ----------------------


def _pg_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")],
    )
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl") or shutil.which("initdb")
    if exe:
        return Path(exe).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) are required by the database contract "
        "tests: apt-get install postgresql (scripts/install-test-deps does it)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT``: a cluster for this session (fsync off),
    stopped with ``-m immediate`` and deleted at the end."""
    require("psycopg")
    bindir = _pg_bindir()
    as_postgres: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="runbase-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()

    def run(*args: str) -> None:
        p = subprocess.run([*as_postgres, *args], capture_output=True, text=True)
        if p.returncode:
            log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed:\n{p.stdout}{p.stderr}{log}")

    run(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8", "--no-sync", "--no-instructions",
    )  # fmt: skip
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60",
        "-o", opts, "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
             "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
