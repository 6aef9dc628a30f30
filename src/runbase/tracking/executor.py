"""Running many commands, ``slots`` at a time, on this machine or a Ray cluster: one
executor interface for ``runbase sweep``, ``runbase explain`` and ``runbase reproduce``
(each job is normally a ``runbase run`` of its own).

    ex = make_executor(on=None, jobs=4)          # "ray", "ray://host:10001": a cluster
    ex.check()                                   # UsageError before any job when it cannot run
    jobs = (Job(runbase_run_argv(root, "--spec", SPEC_TOKEN, "--", "python", "t.py"),
                spec={"name": f"t{i}", "run_id": new_run_id()}) for i in range(8))
    interrupted = ex.run(jobs, on_done=lambda job, done, total: ..., total=8)

Jobs are pulled from ``items`` lazily: the next one is taken when a slot is free, after
``on_done`` of every job that ended before it, so a search can ask for trial n+1 after it
was told the result of trial n. A job's ``spec`` (the ``runbase run --spec`` fields) is
written to a file on the machine that runs it, whose path replaces :data:`SPEC_TOKEN` in
its argv; a job's ``tree`` (a recorded code tree) is materialized there from the store in
a fresh directory, the job runs in it and the directory is removed after.

Ctrl-C or SIGTERM stops it: no new job starts, the running ones get SIGTERM (which
``runbase run`` forwards to its command, so those runs end as ``killed``), and ``run``
returns True. :meth:`Executor.cancel` stops one job (a pruned trial) the same way.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from typing import Protocol

from runbase.core.heldsignals import held_signals
from runbase.errors import UsageError
from runbase.tracking.launch import (
    EXECUTOR_ENV,
    RUN_SPEC_FIELDS,
    SPEC_TOKEN,
    TAIL_BYTES,
    Job,
    Launch,
    OnDone,
    Resources,
    check_run_spec,
    local_info,
    parse_memory,
    prepare,
    read_run_spec,
    runbase_run_argv,
    signal_job,
    sigterm_interrupts,
    start,
    stderr_tail,
    write_run_spec,
    write_tree,
)

# what callers import from here (the executor's interface), defined in tracking.launch
__all__ = [
    "EXECUTOR_ENV",
    "RUN_SPEC_FIELDS",
    "SPEC_TOKEN",
    "TAIL_BYTES",
    "Executor",
    "Job",
    "Launch",
    "LocalExecutor",
    "OnDone",
    "Resources",
    "check_run_spec",
    "local_info",
    "make_executor",
    "parse_memory",
    "prepare",
    "read_run_spec",
    "runbase_run_argv",
    "signal_job",
    "stderr_tail",
    "write_run_spec",
    "write_tree",
]


class Executor(Protocol):
    kind: str  # "local" | "ray"
    slots: int  # how many jobs run at once

    def check(self, store: str | None = None, publish: str | None = None) -> None:
        """Before any job: UsageError when the executor cannot run them (Ray: no Ray,
        no cluster; with ``store``, a node that cannot reach that store, or the remote
        ``publish`` names or its default)."""

    def run(
        self, items: Iterable[Job], on_done: OnDone | None = None, total: int | None = None
    ) -> bool:
        """Run every job of ``items`` (pulled lazily); ``on_done(job, done, total)`` as
        each ends, one call at a time, on the calling thread (``total`` is 0 when
        neither given nor known). True when interrupted."""

    def running(self) -> list[Job]:
        """The jobs started and not ended."""

    def cancel(self, job: Job, grace: float = 10.0) -> None:
        """Stop one running job (SIGTERM, SIGKILL after ``grace`` s); sets
        ``job.cancelled``. Thread-safe."""


def make_executor(
    on: str | None = None,
    jobs: int | None = None,
    resources: Resources | None = None,
    retries: int = 0,
) -> Executor:
    """The executor for ``--on``: None or ``"local"``: this machine, ``jobs`` at a time
    (1 when None); ``"ray"``: the cluster at RAY_ADDRESS, else the local one
    (``"auto"``); ``"ray://HOST:PORT"``: a cluster through Ray Client. For Ray, ``jobs``
    None means as many as the cluster's CPUs (GPUs) hold trials of ``resources``."""
    if jobs is not None and jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    if retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {retries}")
    where = (on or "local").strip()
    if where == "local":
        return LocalExecutor(jobs or 1)
    if where == "ray" or where.startswith("ray://"):
        # lazy: the Ray executor (and its checks) loads only for --on ray
        from runbase.tracking.rayexec import RayExecutor

        address = None if where == "ray" else where
        return RayExecutor(address, jobs=jobs, resources=resources or Resources(), retries=retries)
    raise UsageError(f"unknown --on {on!r}: local, ray or ray://HOST:PORT")


class LocalExecutor:
    """Jobs as subprocesses of this machine, ``jobs`` at a time (a thread waits on each)."""

    kind = "local"

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.slots = jobs
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[Job, subprocess.Popen[bytes]]] = {}  # id(job) ->

    @property
    def jobs(self) -> int:  # the older name
        return self.slots

    def check(self, store: str | None = None, publish: str | None = None) -> None:
        """Nothing to check: this machine runs the jobs (``runbase run`` checks the rest)."""

    def run(
        self, items: Iterable[Job], on_done: OnDone | None = None, total: int | None = None
    ) -> bool:
        """Run every job; ``on_done(job, done, total)`` as each ends (on this thread, in
        the order they end). True when interrupted (Ctrl-C, SIGTERM)."""
        if total is None and isinstance(items, (list, tuple)):
            total = len(items)
        self._stop.clear()
        t = _Tally(on_done, total or 0)
        pending = iter(items)
        old = sigterm_interrupts()
        try:
            try:
                while True:
                    while t.active < self.slots and not self._stop.is_set():
                        job = next(pending, None)
                        if job is None:
                            break
                        self._start(job, t.ended)
                        t.active += 1
                    if not t.active:
                        return False
                    # every job that has ended is told before the next is pulled
                    t.collect(wait=True)
                    t.tell()
            except KeyboardInterrupt:
                self._interrupt()
                self._drain(t)
                return True
            except BaseException:  # a job that could not start, on_done, the items
                self._interrupt()
                t.on_done = None
                self._drain(t)
                raise
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job, _ in self._procs.values()]

    def cancel(self, job: Job, grace: float = 10.0) -> None:
        with self._lock:
            entry = self._procs.get(id(job))
        if entry is None:
            return
        job.cancelled = True
        proc = entry[1]
        signal_job(proc, signal.SIGTERM)
        threading.Thread(target=_kill_after, args=(proc, grace), daemon=True).start()

    def _start(self, job: Job, ended: queue.Queue[tuple[Job, BaseException | None]]) -> None:
        job.executor = local_info()
        if job.spec is not None and isinstance(job.spec.get("run_id"), str):
            job.run_id = job.spec["run_id"]
        threading.Thread(
            target=self._one, args=(job, ended), name="runbase-job", daemon=True
        ).start()

    def _one(self, job: Job, ended: queue.Queue[tuple[Job, BaseException | None]]) -> None:
        error: BaseException | None = None
        try:
            self._execute(job)
        except BaseException as e:  # told on the calling thread
            error = e
        ended.put((job, error))

    def _execute(self, job: Job) -> None:
        launch = prepare(job, job.executor or local_info())
        try:
            with tempfile.TemporaryFile() as err:
                with self._lock:  # an interrupt now starts nothing more
                    if self._stop.is_set():
                        return
                    proc = start(launch, err)
                    self._procs[id(job)] = (job, proc)
                try:
                    job.returncode = proc.wait()
                finally:
                    with self._lock:
                        self._procs.pop(id(job), None)
                if job.returncode:
                    job.stderr_tail = stderr_tail(err)
        finally:
            launch.cleanup()

    def _interrupt(self) -> None:
        """No new jobs; the running ones get SIGTERM."""
        with self._lock:
            self._stop.set()
            procs = [p for _, p in self._procs.values()]
        for p in procs:
            signal_job(p, signal.SIGTERM)

    def _drain(self, t: _Tally) -> None:
        """Wait for the running jobs to end (a second Ctrl-C kills them), telling each
        (errors now are not raised: the first one, or the interrupt, is)."""
        while True:
            try:
                with contextlib.suppress(Exception):
                    t.tell(errors=False)
                if not t.active:
                    return
                t.collect(wait=True)
            except KeyboardInterrupt:
                with self._lock:
                    procs = [p for _, p in self._procs.values()]
                for p in procs:
                    signal_job(p, signal.SIGKILL)


class _Tally:
    """The jobs running and those ended but not yet told (``on_done``)."""

    def __init__(self, on_done: OnDone | None, total: int) -> None:
        self.on_done, self.total = on_done, total
        self.ended: queue.Queue[tuple[Job, BaseException | None]] = queue.Queue()
        self.untold: collections.deque[tuple[Job, BaseException | None]] = collections.deque()
        self.active = self.done = 0

    def collect(self, wait: bool) -> None:
        """Take the ended jobs off the queue: waits for one when ``wait``."""
        if wait:
            self.untold.append(_get(self.ended))
            self.active -= 1
        with contextlib.suppress(queue.Empty):
            while True:
                self.untold.append(self.ended.get_nowait())
                self.active -= 1

    def tell(self, errors: bool = True) -> None:
        # a SIGTERM (KeyboardInterrupt here) or Ctrl-C in the middle of on_done (a
        # sweep reading a trial's end, telling its study) would leave that job untold:
        # it comes once the ended jobs are told
        with held_signals():
            self._tell(errors)

    def _tell(self, errors: bool) -> None:
        while self.untold:
            job, error = self.untold.popleft()
            if error is not None:
                if errors:
                    raise error
                continue
            if job.returncode is None:  # never started: the executor was stopped
                continue
            self.done += 1
            if self.on_done is not None:
                self.on_done(job, self.done, self.total)


def _get(q: queue.Queue[tuple[Job, BaseException | None]]) -> tuple[Job, BaseException | None]:
    """The next ended job; waits in short steps so Ctrl-C is seen at once."""
    while True:
        try:
            return q.get(timeout=0.5)
        except queue.Empty:
            continue


def _kill_after(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGKILL the job's process group when it outlives ``grace`` s after SIGTERM."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_job(proc, signal.SIGKILL)
