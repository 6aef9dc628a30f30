"""Shared fixtures: real git repos, real subprocesses, real stores in temp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a run or store of the developer's shell."""
    for var in ("RUNBASE_DIR", "RUNBASE_RUN_ID", "RUNBASE_PACKAGE_DIR", "RUNBASE_SUPERVISOR_PID"):
        monkeypatch.delenv(var, raising=False)


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
