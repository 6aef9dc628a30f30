"""Virtual environments with given package versions, built once per (Python version,
pins) and kept under ``<store>/envs/<hash>``: the one builder of ``reproduce --env
venv`` and ``explain --env venv``.

    venv, unresolvable = build_env(store, ["numpy==1.26.4"], "3.11.4", log=print)
    venv / "bin" / "python"

It uses ``uv`` when it is there (on ``PATH``, or the ``uv`` package of this Python:
``pip install 'runbase[env]'``): an environment that differs from a cached one by a
package version then installs in seconds, from uv's cache. Otherwise ``python -m venv``
and pip. A pin no index can provide fails the whole install; the failing pins are read
from the installer's message (one at a time when it names none), reported as
unresolvable and the rest installed.

Two builders of the same environment (parallel hybrids of ``explain``) build it once:
a lock file serializes them. The marker ``runbase-env.json`` is written last, so an
environment whose build was interrupted is never taken as done: it is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runbase.store import Store

DONE = "runbase-env.json"
INSTALLERS = ("uv", "pip")
# the pin an installer could not satisfy: uv "... you require foo==1.0, ...", pip
# "... for the requirement foo==1.0" / "No matching distribution found for foo==1.0"
_NAMED = re.compile(
    r"(?:you require|the requirement|distribution found for)\s+"
    r"([A-Za-z0-9][A-Za-z0-9._-]*\s*==\s*[^\s,;()]+)",
    re.IGNORECASE,
)


def env_key(pins: list[str], python_version: str | None) -> str:
    """Identifies an environment by its Python version and pins (in any order)."""
    return hashlib.sha256(json.dumps([python_version or "", sorted(pins)]).encode()).hexdigest()[
        :16
    ]


def find_uv() -> str | None:
    """The ``uv`` executable: on ``PATH``, else the ``uv`` package's; None without it."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]  # the optional [env] extra

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def activation(venv: Path) -> dict[str, str]:
    """The variables that run a command in ``venv`` as if it were activated, with the
    venv's packages alone: a PYTHONPATH of the caller would shadow the rebuilt versions
    (empty is unset for Python; ``runbase run`` still puts its bootstrap first)."""
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"VIRTUAL_ENV": str(venv), "PATH": path, "PYTHONPATH": ""}


def build_env(
    store: Store,
    pins: list[str],
    python_version: str | None,
    log: Callable[[str], Any] | None = None,
    *,
    installer: str | None = None,
) -> tuple[Path, list[str]]:
    """A virtual environment with ``pins`` (``name==version``) on ``python_version``
    (None: this Python's), built once and cached; returns its directory and the pins
    that could not be installed, each with the installer's reason. ``installer``:
    "uv" or "pip" (default: uv when it is found)."""
    if installer not in (None, *INSTALLERS):
        raise ValueError(f"installer must be one of {', '.join(INSTALLERS)}, not {installer!r}")
    say = log or (lambda _line: None)
    key = env_key(pins, python_version)
    venv = store.root / "envs" / key
    done = _read_done(venv)
    if done is not None:
        return venv, done
    with _locked(store.root / "tmp" / f"env-{key}.lock"):
        done = _read_done(venv)  # another builder finished it while this one waited
        if done is not None:
            return venv, done
        uv = find_uv() if installer in (None, "uv") else None
        if installer == "uv" and uv is None:
            raise RuntimeError("uv is not installed: pip install 'runbase[env]'")
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        venv.parent.mkdir(parents=True, exist_ok=True)
        tool = _Uv(uv, venv) if uv else _Pip(venv)
        say(f"runbase: building an environment with {tool.name} in {venv}")
        tool.create(python_version)
        failed = _install(tool, pins, say)
        actual = _python_version(venv)
        if python_version and python_version != actual:
            failed.insert(0, f"python=={python_version}: the environment uses Python {actual}")
        _write_done(venv, {"pins": sorted(pins), "unresolvable": failed, "installer": tool.name})
        return venv, failed


class _Uv:
    name = "uv"

    def __init__(self, exe: str, venv: Path) -> None:
        self.exe, self.venv = exe, venv

    def create(self, python_version: str | None) -> None:
        # the recorded version where uv finds (or fetches) it; else this Python, and the
        # difference is reported as unresolvable
        for python in [python_version, sys.executable] if python_version else [sys.executable]:
            cmd = [self.exe, "venv", "--quiet", "--python", str(python), str(self.venv)]
            if _call(cmd) is None:
                return
        raise RuntimeError(f"uv could not create a virtual environment in {self.venv}")

    def install(self, pins: list[str]) -> str | None:
        python = str(self.venv / "bin" / "python")
        return _call([self.exe, "pip", "install", "--quiet", "--python", python, *pins])


class _Pip:
    name = "pip"

    def __init__(self, venv: Path) -> None:
        self.venv = venv

    def create(self, python_version: str | None) -> None:
        why = _call([sys.executable, "-m", "venv", str(self.venv)])
        if why is not None:
            raise RuntimeError(f"cannot create a virtual environment in {self.venv}: {why}")

    def install(self, pins: list[str]) -> str | None:
        python = str(self.venv / "bin" / "python")
        return _call([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins])


# PEP 508 names, PEP 440-shaped versions (local labels included)
_PIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*")


def _install(tool: _Uv | _Pip, pins: list[str], say: Callable[[str], Any]) -> list[str]:
    """Install ``pins``; the unresolvable ones (with reasons) are left out and returned."""
    # a recorded name is not trusted (a pulled run's): only `name==version` in the
    # syntax of package indexes reaches the installer, never an option like --index-url
    remaining = [p for p in pins if _PIN.fullmatch(p)]
    failed = [f"{p}: not a package pin (name==version)" for p in pins if not _PIN.fullmatch(p)]
    while remaining:
        say(f"runbase: {tool.name} install {len(remaining)} package(s)")
        why = tool.install(remaining)
        if why is None:
            return failed
        named = _named_pins(why, remaining)
        if not named:
            break  # the message names none of them: find them one at a time
        failed += [f"{pin}: {why}" for pin in named]
        remaining = [p for p in remaining if p not in named]
    for pin in remaining:
        why = tool.install([pin])
        if why is not None:
            failed.append(f"{pin}: {why}")
    return failed


def _named_pins(message: str, pins: list[str]) -> list[str]:
    """The pins of ``pins`` that ``message`` says cannot be satisfied."""
    named = {_norm(m) for m in _NAMED.findall(message)}
    return [p for p in pins if _norm(p) in named]


def _norm(pin: str) -> str:
    name, _, version = pin.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip()).lower() + "==" + version.strip()


def _call(cmd: list[str]) -> str | None:
    """None when ``cmd`` succeeds, else its error message in one line."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return f"{cmd[0]}: {e.strerror or e}"
    if p.returncode == 0:
        return None
    lines = [ln.strip(" ×╰─▶│") for ln in p.stderr.splitlines()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]  # pip's summary lines
    text = errors[-1] if errors else " ".join(ln for ln in lines if ln)
    return text[-400:] or f"{os.path.basename(cmd[0])} exited {p.returncode}"


def _python_version(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _read_done(venv: Path) -> list[str] | None:
    """The unresolvable pins of a finished environment; None when it is not one (absent,
    interrupted, or a marker that is not what this module writes)."""
    try:
        body = json.loads((venv / DONE).read_text())
    except (OSError, ValueError):
        return None
    failed = body.get("unresolvable") if isinstance(body, dict) else None
    if not isinstance(failed, list) or not all(isinstance(f, str) for f in failed):
        return None
    if not (venv / "bin" / "python").exists():
        return None
    return failed


def _write_done(venv: Path, body: dict[str, Any]) -> None:
    tmp = venv / f".{DONE}.tmp"
    tmp.write_text(json.dumps(body))
    os.replace(tmp, venv / DONE)  # complete or absent, never half-written


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the block."""
    import fcntl  # lazy: POSIX only, like the virtual environments' bin/ layout

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
