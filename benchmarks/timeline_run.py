"""Where the time of ``runbase run -- python noop.py`` goes: a timeline (diagnostic).

Runs the CLI in-process, in a scratch git repository, with timestamps around the
supervisor's steps (imports, store open, run creation, code snapshot, the child
process, the ingester's final pass with the environment capture, finalize). The
first pass warms caches; the second is printed. Not part of run_all.

    .venv/bin/python benchmarks/timeline_run.py
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

T0 = time.perf_counter()
MARKS: list[tuple[float, str, str]] = []


def mark(name: str) -> None:
    MARKS.append((time.perf_counter() - T0, threading.current_thread().name, name))


def child() -> None:
    mark("interpreter up")
    import runbase.cli as cli

    mark("imported runbase.cli (click)")
    import runbase.tracking.supervisor as sup

    mark("imported runbase.tracking.supervisor")
    from runbase.capture import code as codecap
    from runbase.capture import env as envcap
    from runbase.records import lifecycle

    def wrap(obj, name):  # type: ignore[no-untyped-def]
        f = getattr(obj, name, None)
        if f is None:  # renamed in this version of runbase: nothing to time
            return

        @functools.wraps(f)
        def g(*a, **k):  # type: ignore[no-untyped-def]
            mark(f"{name} start")
            try:
                return f(*a, **k)
            finally:
                mark(f"{name} end")

        setattr(obj, name, g)

    for obj, name in [
        (sup.Store, "open"),
        (lifecycle, "recover_orphans"),
        (lifecycle, "create_run"),
        (codecap, "snapshot"),
        (sup, "_tee"),
        (lifecycle, "ingest_and_handle"),
        (lifecycle, "record_env"),
        (envcap, "packages"),
        (envcap, "gpus"),
        (lifecycle, "finalize"),
    ]:
        wrap(obj, name)
    orig_join = threading.Thread.join

    def join(self, *a, **k):  # type: ignore[no-untyped-def]
        mark(f"join {self.name} start")
        r = orig_join(self, *a, **k)
        mark(f"join {self.name} end")
        return r

    threading.Thread.join = join  # type: ignore[method-assign]
    try:
        cli.main(["run", "--", sys.executable, "noop.py"], standalone_mode=False)
    except SystemExit:
        pass
    mark("done")
    for t, th, n in MARKS:
        print(f"{t * 1000:8.1f} ms  {th:15s} {n}")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common as C

    tmp = C.scratch_dir("timeline")
    try:
        repo = tmp / "proj"
        C.make_git_repo(repo, n_files=50)
        (repo / "noop.py").write_text("x = 1\n")
        C.git(repo, "add", "-A")
        C.git(repo, "commit", "-q", "-m", "noop")
        C.backdate(repo)
        env = C.clean_env(RUNBASE_BENCH_TIMELINE="1")
        for _ in range(2):  # the first pass warms caches
            t0 = time.perf_counter()
            p = subprocess.run(
                [C.PYTHON, __file__], cwd=repo, env=env, capture_output=True, text=True
            )
            wall = time.perf_counter() - t0
        print(p.stdout + p.stderr)
        print(f"process wall time: {wall * 1000:.1f} ms (interpreter start-up and exit included)")
    finally:
        C.rmtree(tmp)


if __name__ == "__main__":
    if os.environ.get("RUNBASE_BENCH_TIMELINE"):
        child()
    else:
        main()
