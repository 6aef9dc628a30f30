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
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
    # the `runbase run --spec` fields: written to a file on the node that runs the job,
    # whose path replaces the argv token SPEC_TOKEN
    spec: dict[str, Any] | None = None
    # {"store": root, "code": code record, "cwd": path relative to the project root}: the
    # code tree materialized by hash where the job runs (spec project_root/code_record set)
    tree: dict[str, Any] | None = None
    run_id: str | None = None  # the run this job made (spec run_id; a retry's new id)
    executor: dict[str, Any] | None = None  # what ran it (the run record's `executor`)
    cancelled: bool = False  # stopped by cancel() (a pruned trial)


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
    "run_id": "string",  # pre-assigned (a sweep's trial): must not exist yet
}

SPEC_TOKEN = "{spec}"  # in a Job's argv: replaced by the path of its written spec file
EXECUTOR_ENV = "RUNBASE_EXECUTOR"  # the JSON `executor` object `runbase run` records


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


@dataclass
class Resources:
    """What one job needs (Ray task resources; the local executor runs ``slots`` jobs
    whatever they ask)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes

    def __post_init__(self) -> None:
        if not self.cpus >= 0 or not self.gpus >= 0 or self.cpus + self.gpus <= 0:
            raise UsageError(
                f"a trial needs some CPUs or GPUs, at least 0 of each (got --cpus "
                f"{self.cpus:g} --gpus {self.gpus:g})"
            )
        if self.memory is not None and self.memory <= 0:
            raise UsageError(f"--memory must be more than 0 bytes, got {self.memory}")


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(i?)(b?)\s*", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes of ``"4G"``, ``"512MiB"``, ``"1.5GB"``, ``"2000000"``: K/M/G/T are powers of
    1000, KiB/MiB/GiB/TiB (and Ki, Mi...) of 1024. UsageError on anything else."""
    m = _MEMORY.fullmatch(text)
    if m is None or (m.group(3) and not m.group(2)):
        raise UsageError(f"bad memory size {text!r}: a number with K, M, G or T (4G, 512MiB)")
    unit = m.group(2).lower()
    scale = 1024 ** "_kmgt".index(unit) if m.group(3) else _UNITS[unit]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise UsageError(f"bad memory size {text!r}: must be more than 0 bytes")
    return value


OnDone = Callable[[Job, int, int], None]


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
        from runbase.tracking.rayexec import RayExecutor

        address = None if where == "ray" else where
        return RayExecutor(address, jobs=jobs, resources=resources or Resources(), retries=retries)
    raise UsageError(f"unknown --on {on!r}: local, ray or ray://HOST:PORT")


def local_info() -> dict[str, Any]:
    return {"kind": "local", "host": socket.gethostname()}


# -- one job where it runs (this machine, or a Ray worker) --------------------------------


@dataclass
class Launch:
    """A job ready to start where it runs: its argv, directory and environment, and the
    temp directory (its spec file, its materialized tree) to remove when it ended."""

    argv: list[str]
    cwd: str | None
    env: dict[str, str]
    scratch: str | None = None

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def prepare(job: Job, executor: dict[str, Any], spec: dict[str, Any] | None = None) -> Launch:
    """Write the job's spec (``spec`` replaces ``job.spec``: a retry's new run id) and
    materialize its tree on this machine; the environment says ``executor``."""
    spec = dict(spec if spec is not None else job.spec or {})
    env = {**os.environ, **(job.env or {}), EXECUTOR_ENV: json.dumps(executor)}
    if job.spec is None and job.tree is None:
        return Launch(list(job.argv), job.cwd, env)
    scratch = tempfile.mkdtemp(prefix="runbase-job-")
    try:
        cwd = job.cwd
        if job.tree is not None:
            cwd = _materialize(job.tree, Path(scratch) / "tree", spec)
        argv = list(job.argv)
        if job.spec is not None:
            path = os.path.join(scratch, "spec.json")
            write_run_spec(path, **spec)
            argv = [path if a == SPEC_TOKEN else a for a in argv]
        return Launch(argv, cwd, env, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _materialize(tree: dict[str, Any], into: Path, spec: dict[str, Any]) -> str:
    """The code tree of ``tree["code"]`` from store ``tree["store"]`` under ``into``
    (every object verified); sets the spec's project_root and code_record; returns the
    working directory (``tree["cwd"]`` below it)."""
    from runbase.store import Store

    code = tree.get("code")
    oid = code.get("tree") if isinstance(code, dict) else None
    if not isinstance(oid, str):
        raise UsageError("a job's tree has no code record with a tree")
    store = Store.open(str(tree["store"]))
    try:
        write_tree(store, oid, into)
    finally:
        store.close()
    spec["project_root"] = str(into)
    spec["code_record"] = code
    rel = str(tree.get("cwd") or ".")
    cwd = (into / rel).resolve()
    if not cwd.is_relative_to(into.resolve()):
        raise UsageError(f"a job's working directory {rel!r} is outside its tree")
    cwd.mkdir(parents=True, exist_ok=True)  # it may hold no file of the snapshot
    return str(cwd)


def write_tree(store: Any, oid: str, into: Path) -> None:
    """Write code tree manifest ``oid`` under ``into`` (made, must be new): files
    copied out of the store and verified, symlinks that stay inside the tree re-created,
    every path checked (:class:`~runbase.core.safepath.SafeRoot`)."""
    from runbase.capture.manifest import load_manifest
    from runbase.core.safepath import SafeRoot, link_escapes

    into.mkdir(parents=True)
    root = SafeRoot(into)
    for e in load_manifest(store, oid):
        if e["type"] == "link":
            if not link_escapes(e["path"], e["target"]):
                root.symlink(e["path"], e["target"])
            continue
        with root.create(e["path"], 0o755 if e["type"] == "x" else 0o644) as fd:
            store.objects.copy_to(e["oid"], fd)


def stderr_tail(f: Any) -> str:
    f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
    return str(f.read().decode("utf-8", "replace"))


def signal_job(proc: subprocess.Popen[bytes], sig: int) -> None:
    """SIGTERM to the job's leader (``runbase run`` forwards it to its command); SIGKILL
    to its whole process group (its own session), so nothing of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)


# -- this machine ----------------------------------------------------------------------


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
        old = _sigterm_interrupts()
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
                    proc = subprocess.Popen(
                        launch.argv,
                        cwd=launch.cwd,
                        env=launch.env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        start_new_session=True,  # its own group: cancel kills all of it
                    )
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


def _sigterm_interrupts() -> Any:
    """Make SIGTERM stop the executor like Ctrl-C (the runs then end as ``killed``, and
    the caller still reports); returns the previous handler (None off the main thread)."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
