"""Running many commands as subprocesses, ``jobs`` at a time: one executor for ``runbase
sweep`` and ``runbase explain`` (each job is normally a ``runbase run`` of its own).

    jobs = [Job(runbase_run_argv(root, "--", "python", "train.py"), label="1")]
    interrupted = LocalExecutor(jobs=4).run(jobs, on_done=lambda job, done, total: ...)
    jobs[0].returncode, jobs[0].stderr_tail

Ctrl-C or SIGTERM stops it: no new job starts, the running ones get SIGTERM (which
``runbase run`` forwards to its command, so those runs end as ``killed``), and ``run``
returns True. The interface is what a distributed executor needs too (a job is an argv,
a working directory and environment variables; results come back through the job), so
another backend can stand behind it without its callers changing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from runbase.errors import UsageError

TAIL_BYTES = 2000  # of a failed job's stderr: enough for a traceback's last frames


@dataclass
class Job:
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None  # added to os.environ
    label: str = ""
    returncode: int | None = None  # None: never started (the executor was interrupted)
    stderr_tail: str = ""  # the end of stderr when returncode is not 0


def runbase_run_argv(store_root: str, *options: str) -> list[str]:
    """``runbase run`` on ``store_root`` in this Python, quiet: its closing line would
    hide the failing run's last stderr line. ``options`` go on after ``run`` (the
    command last, after ``--``)."""
    return [sys.executable, "-m", "runbase", "--store", store_root, "run", "--quiet", *options]


# `runbase run --spec FILE` (hidden): the RunOptions a caller sets that have no option of
# their own (explain's hybrids: the tree they run, their project root, the overrides, the
# explanation's tags), each with the JSON type it must have
RUN_SPEC_FIELDS: dict[str, str] = {
    "code_record": "object",
    "project_root": "string",
    "param_sources": "object of strings",
    "reproduces": "string",
    "overrides": "object",
    "tags": "object of strings",
    "name": "string",
    "extra_env": "object of strings",
}


def write_run_spec(path: str | os.PathLike[str], **fields: Any) -> None:
    """Write a ``runbase run --spec`` file (checked: the reader refuses a bad one)."""
    check_run_spec(fields)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fields, f)


def read_run_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The RunOptions fields of a ``runbase run --spec`` file; UsageError when it is not
    JSON or not a spec."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read the run spec {os.fspath(path)}: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"the run spec {os.fspath(path)} is not JSON: {e}") from None
    return check_run_spec(doc)


def check_run_spec(doc: Any) -> dict[str, Any]:
    """``doc`` if it is a run spec: an object of :data:`RUN_SPEC_FIELDS` keys, each of
    its type (``code_record`` may be null); UsageError naming the first bad key."""
    if not isinstance(doc, dict):
        raise UsageError("a run spec must be a JSON object")
    for key, value in doc.items():
        want = RUN_SPEC_FIELDS.get(key)
        if want is None:
            known = ", ".join(RUN_SPEC_FIELDS)
            raise UsageError(f"unknown key {key!r} in the run spec; known: {known}")
        if not _is(value, want) and not (key == "code_record" and value is None):
            raise UsageError(f"{key!r} in the run spec must be a JSON {want}")
    return dict(doc)


def _is(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    return want == "object" or all(isinstance(v, str) for v in value.values())


class LocalExecutor:
    """Jobs as subprocesses of this machine, ``jobs`` at a time (threads wait on them)."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._done = 0

    def run(self, items: list[Job], on_done: Callable[[Job, int, int], None] | None = None) -> bool:
        """Run every job; ``on_done(job, done, total)`` as each ends (one call at a time,
        in the order they end). True when interrupted (Ctrl-C, SIGTERM)."""
        self._stop.clear()
        self._done = 0
        old = _sigterm_interrupts()
        try:
            with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="runbase-job") as ex:
                futures = [ex.submit(self._one, job, on_done, len(items)) for job in items]
                try:
                    for f in futures:
                        f.result()
                except KeyboardInterrupt:
                    self._interrupt()
                    ex.shutdown(wait=True, cancel_futures=True)
                    return True
            return False
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)

    def _interrupt(self) -> None:
        """No new jobs; the running ones get SIGTERM."""
        self._stop.set()
        with self._lock:
            for p in self._procs:
                if p.poll() is None:
                    p.terminate()

    def _one(self, job: Job, on_done: Callable[[Job, int, int], None] | None, total: int) -> None:
        if self._stop.is_set():
            return
        env = {**os.environ, **job.env} if job.env else None
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                job.argv,
                cwd=job.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            with self._lock:
                self._procs.add(proc)
            job.returncode = proc.wait()
            with self._lock:
                self._procs.discard(proc)
            if job.returncode:
                err.seek(max(0, err.seek(0, 2) - TAIL_BYTES))
                job.stderr_tail = err.read().decode("utf-8", "replace")
        with self._lock:  # one report at a time, in the order jobs end
            self._done += 1
            if on_done is not None:
                on_done(job, self._done, total)


def _sigterm_interrupts() -> Any:
    """Make SIGTERM stop the executor like Ctrl-C (the runs then end as ``killed``, and
    the caller still reports); returns the previous handler (None off the main thread)."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
