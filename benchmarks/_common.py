"""Shared helpers of the runbase benchmark scripts (stdlib only).

Every benchmark writes ``benchmarks/results/<name>.json`` and prints a table. Timings
are wall-clock medians of repeated runs; nothing here asserts on a time.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
# $RUNBASE_BENCH_RESULTS redirects the JSON (run_all --quick uses results/quick/)
RESULTS_DIR = Path(os.environ.get("RUNBASE_BENCH_RESULTS") or BENCH_DIR / "results")
WORKERS_DIR = BENCH_DIR / "_workers"
VENVS_DIR = BENCH_DIR / ".venvs"
CACHE_DIR = BENCH_DIR / ".cache"
PYCACHE_DIR = CACHE_DIR / "pycache"

# The Python that has runbase installed (the one running this script, normally
# /work/main/.venv/bin/python) and its console script.
PYTHON = sys.executable
RUNBASE_CLI = str(Path(sys.executable).parent / "runbase")

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


# -- environment ---------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without anything that would attach a child to an existing run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("RUNBASE_BENCH_") or not k.startswith(("RUNBASE_", "WANDB_", "MLFLOW_"))
    }
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONSTARTUP", None)
    env.pop("PYTHONUNBUFFERED", None)
    # Measure what users get: cached bytecode. (This sandbox sets PYTHONDONTWRITEBYTECODE,
    # which would recompile every module of runbase, click, mlflow... on every start.)
    # The cache goes under benchmarks/.cache/ so nothing is written next to the sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    env.update(GIT_IDENTITY)
    env.update(extra)
    return env


def machine_info() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        distro = (
            dict(
                ln.split("=", 1)
                for ln in Path("/etc/os-release").read_text().splitlines()
                if "=" in ln
            )
            .get("PRETTY_NAME", "")
            .strip('"')
        )
    except OSError:
        distro = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = None
    commit = _git_out(REPO_DIR, "rev-parse", "--short", "HEAD")
    dirty = bool(_git_out(REPO_DIR, "status", "--porcelain", "--untracked-files=no", "--", "src"))
    try:
        from importlib.metadata import version

        rb_version = version("runbase")
    except Exception:  # noqa: BLE001
        rb_version = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "os": distro or platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "runbase_version": rb_version,
        "runbase_commit": (commit or "?") + ("+dirty-src" if dirty else ""),
        "loadavg_at_start": list(os.getloadavg()),
    }


def _git_out(cwd: Path, *args: str) -> str | None:
    try:
        p = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=30
        )
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# -- statistics ---------------------------------------------------------------------


def summarize(xs: Sequence[float]) -> dict[str, Any]:
    xs = list(xs)
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    return {
        "n": len(s),
        "median": statistics.median(s),
        "min": s[0],
        "max": s[-1],
        "p25": _pct(s, 25),
        "p75": _pct(s, 75),
    }


def _pct(sorted_xs: list[float], p: float) -> float:
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    k = (len(sorted_xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (k - lo)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f} /s"


def mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


# -- running commands ----------------------------------------------------------------


def timed_run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 600,
    check: bool = True,
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Wall time of one subprocess, output captured (never printed to a terminal)."""
    t0 = time.perf_counter()
    p = subprocess.run(
        list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
    )
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise RuntimeError(
            f"command failed ({p.returncode}): {' '.join(map(str, argv))}\n"
            f"stdout: {p.stdout.decode(errors='replace')[-2000:]}\nstderr: {p.stderr.decode(errors='replace')[-4000:]}"
        )
    return dt, p


def interleaved_times(
    commands: dict[str, dict[str, Any]],
    n: int,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Run each command ``n`` times, round-robin (so drift in machine load hits all of
    them alike); ``commands[name]`` holds ``argv`` and optional ``env``/``cwd``."""
    out: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(warmup):
        for spec in commands.values():
            timed_run(spec["argv"], env=spec.get("env"), cwd=spec.get("cwd"))
    for _ in range(n):
        for name, spec in commands.items():
            dt, _p = timed_run(spec["argv"], env=spec.get("env"), cwd=spec.get("cwd"))
            out[name].append(dt)
    return out


# -- results -------------------------------------------------------------------------


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    rows = [[("-" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    if title:
        print(f"\n== {title}")
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    sys.stdout.flush()


def target(value: float | None, limit: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "?"
    ok = value >= limit if higher_is_better else value <= limit
    return "ok" if ok else "MISSED"


# -- scratch directories and repositories --------------------------------------------


def scratch_dir(prefix: str) -> Path:
    """A temp directory (removed by the caller with ``shutil.rmtree``)."""
    base = os.environ.get("RUNBASE_BENCH_TMP")
    return Path(tempfile.mkdtemp(prefix=f"rb-bench-{prefix}-", dir=base))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def git(cwd: Path, *args: str) -> str:
    p = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, env=clean_env()
    )
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout


def make_git_repo(root: Path, n_files: int = 20, seed: int = 0) -> list[str]:
    """A committed git repository of ``n_files`` small Python/text files in nested
    directories (sizes 0.3-12 KB, like a real project); returns the relative paths."""
    import random

    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@example.invalid")
    paths = []
    exts = [".py"] * 7 + [".md", ".yaml", ".txt", ".cfg", ".toml"]
    n_dirs = max(1, n_files // 25)
    dirs = []
    for d in range(n_dirs):
        depth = 1 + d % 3
        parts = [f"pkg{d % 7}"] + [f"sub{(d // 7) % 5}_{k}" for k in range(depth - 1)] + [f"mod{d}"]
        dirs.append("/".join(parts))
    for i in range(n_files):
        rel = f"{dirs[i % n_dirs]}/file_{i:05d}{exts[i % len(exts)]}"
        size = int(300 + rnd.random() ** 2 * 12000)
        line = f"# file {i}: " + "x = compute(alpha, beta) + 1  # training code line\n"
        body = (line * (size // len(line) + 1))[:size]
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)
        paths.append(rel)
    (root / ".gitignore").write_text("__pycache__/\n*.pyc\n.runbase/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return paths


def backdate(root: Path, seconds: float = 120.0) -> None:
    """Set every file's mtime ``seconds`` into the past (outside .git) and refresh the
    git index, like a work tree edited a while before the run starts."""
    t = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        if ".runbase" in dirnames:
            dirnames.remove(".runbase")
        for f in filenames:
            os.utime(os.path.join(dirpath, f), (t, t))
    subprocess.run(
        ["git", "-C", str(root), "update-index", "-q", "--really-refresh"],
        capture_output=True,
        env=clean_env(),
    )
    subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, env=clean_env()
    )


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status in KiB, None if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def find_pids(*needles: str) -> list[int]:
    """Pids whose command line contains every needle."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            out.append(int(name))
    return out


def header(title: str) -> None:
    info = machine_info()
    print(f"# {title}")
    print(
        f"# {info['date_utc']}  {info['cpu']}  {info['cores']} cores  {info['os']}  "
        f"Python {info['python']}  runbase {info['runbase_version']} ({info['runbase_commit']})  "
        f"load {', '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}"
    )
    sys.stdout.flush()


def ensure_venv(name: str, pin: str, probe: list[str]) -> Path | None:
    """``VENVS_DIR/name`` with ``pin`` installed, created on first use; ``probe`` (a
    command relative to the venv's ``bin/``, e.g. ``["python", "-c", "import mlflow"]``)
    must succeed. Returns the venv's ``bin/`` directory, or None if that fails."""
    venv = VENVS_DIR / name
    bin_dir = venv / "bin"
    cmd = [str(bin_dir / probe[0]), *probe[1:]]

    def works() -> bool:
        return (bin_dir / probe[0]).exists() and subprocess.run(
            cmd, capture_output=True
        ).returncode == 0

    if works():
        return bin_dir
    print(f"creating {venv} and installing {pin} (once; a few minutes)...", flush=True)
    base = Path(sys.base_prefix) / "bin" / "python3"
    if subprocess.run([str(base), "-m", "venv", str(venv)]).returncode != 0:
        return None
    p = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", pin], capture_output=True, text=True
    )
    if p.returncode != 0:
        print(f"  pip install {pin} failed:\n{p.stderr[-2000:]}", flush=True)
        return None
    return bin_dir if works() else None
