"""One process, several configurations: one run per job.

Hydra's multirun (``python app.py -m lr=0.1,0.01``), a search loop, a script that trains
several models one after another: when one process runs several configurations of a
program, each of them becomes a *job run*, a run of its own holding exactly that
configuration's params, what is logged while it runs (metrics, params, summaries,
tags), the files it reads and writes, what it prints (through ``sys.stdout`` and
``sys.stderr``) and how it ended. Job runs are linked to the run of the process
(``parent_id``) and grouped like the runs of ``runbase sweep`` (``sweep_id``:
``runbase ls --sweep GROUP``); the process's run is tagged ``multirun=GROUP`` and keeps
only what the process did outside its jobs. A launcher reports its jobs like this:

    from runbase import jobs

    group = jobs.Group()
    for i, cfg in enumerate(configs):
        with group.job(index=i, params=cfg):   # an exception: the job failed, and goes on up
            train(cfg)      # runbase.log/param/summary/output and file I/O: the job's run

A job ends at the end of the ``with`` block (or ``job.end()``, or ``runbase.finish()``
inside it); one still running when the process exits ends with the process's status.
Jobs of a process run one at a time; a launcher that runs jobs in parallel runs each
in a process of its own (attached to the same run), where the same API applies, with
the group's id passed along (``jobs.Group(id)``). Hydra's launchers report their jobs
through it with no code change (integrations/configs.py).
"""

from __future__ import annotations

import atexit
import json
import os
import stat
import sys
import time

from runbase.capture.files import FILE_EVENT
from runbase.capture.overrides import INDEX_TAG
from runbase.capture.secrets import redact_argv
from runbase.core._safe import warn_once
from runbase.core.ids import new_run_id
from runbase.core.statuses import TERMINAL
from runbase.errors import UsageError
from runbase.records import lifecycle
from runbase.records.jobruns import (
    drop_argv_params,
    inherit_parent_env,
    parent_row,
    share_parent_setup,
)
from runbase.records.read import run_name
from runbase.store import Store
from runbase.tracking import api as _api
from runbase.tracking import tracker as _tracker
from runbase.tracking._child import own_io
from runbase.tracking._console import capture
from runbase.tracking.params import known_secrets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PARENT_TAG = "multirun"  # on the process's run: the id of the group of its jobs
_exit_hooked = False
_last_end = 0.0  # when this process's last job run ended (time.time())


class Group:
    """The jobs of one multirun: its ``id`` is their ``sweep_id``.

    ``drop_argv_params``: the process's command line is the launcher's (Hydra's
    overrides), not params: the guesses ``runbase run`` made from it are dropped from
    the process's run when the first job starts.
    """

    def __init__(self, id: str | None = None, *, drop_argv_params: bool = False) -> None:  # noqa: A002
        if id is not None and (not isinstance(id, str) or not id.strip()):
            raise UsageError(f"a job group id must be a non-empty string, got {id!r}")
        self.id = id or new_run_id()
        self.drop_argv_params = drop_argv_params
        self.started = 0  # jobs started in this process

    def __repr__(self) -> str:
        return f"<runbase.tracking.jobs.Group {self.id}>"

    def job(
        self,
        index: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        argv: list[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        source: str = "inline",
    ) -> Job:
        """Start a job run and make it the one ``runbase.log`` and friends report to.

        ``index``: its number in the group (default: how many jobs this process started
        in it before), recorded as the tag ``sweep_index``; ``params``: its
        configuration (nested mappings flatten to ``a.b.c``), recorded with ``source``;
        ``name``: default ``PARENT-INDEX``; ``argv``: the program's arguments that run
        this job alone, in place of the process's own (``sys.argv[1:]``): its recorded
        command, what ``runbase reproduce`` re-runs (default: the process's command).
        """
        if index is None:
            index = self.started
        if not isinstance(index, int) or isinstance(index, bool):
            raise UsageError(f"a job index must be an integer, got {index!r}")
        running = current()
        if running is not None:
            raise UsageError(
                f"job {running} is still running: end it before starting another "
                "(jobs of one process run one at a time)"
            )
        self.started += 1
        return _start(self, index, params, name, argv, tags, source)


class Job(_api.Run):
    """A job run in progress: the handle ``runbase.active_run()`` returns during it."""

    def __init__(
        self, run_id: str, name: str | None, store_root: str, group: Group, index: int
    ) -> None:
        super().__init__(run_id, name, store_root, own=False)
        self.group = group
        self.index = index
        self._parent: _tracker.Tracker | None = None
        self._tracker: _tracker.Tracker | None = None
        self._console: Any = None
        self._handlers: list[tuple[Any, Any]] = []  # (logging handler, its own stream)

    def __repr__(self) -> str:
        return f"<runbase.tracking.jobs.Job {self.id} {self.name or ''} #{self.index}>"

    def __str__(self) -> str:
        return f"{self.id} (#{self.index})"

    def __enter__(self) -> Job:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end(exc=exc if exc_type is not None else None)

    def finish(self, status: str | None = None) -> None:
        self.end(status)

    def end(self, status: str | None = None, exc: BaseException | None = None) -> None:
        """End the job: ``finished`` unless ``status`` says otherwise (``failed``,
        ``killed``) or ``exc`` is the exception that ended it (its traceback is kept).
        The process's run becomes the active one again. Idempotent."""
        if status is not None and status not in TERMINAL:
            raise UsageError(f"status must be one of {', '.join(TERMINAL)}")
        if self.finished:
            return
        from runbase.core.heldsignals import held_signals  # lazy: signal loads enum

        with held_signals():  # a signal now would lose the job's end: it comes after
            self._end(status, exc)

    def _end(self, status: str | None, exc: BaseException | None) -> None:
        self.finished = True
        code: int | None = 0
        sig: int | None = None
        error: str | None = None
        if isinstance(exc, SystemExit):  # sys.exit() inside the job: its exit status
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            status = status or ("finished" if code == 0 else "failed")
        elif exc is not None:
            st, code, sig, error = _api._failure_of(type(exc), exc, exc.__traceback__)
            status = status or st
        status = status or "finished"
        if status != "finished" and code == 0:
            code = 1 if status == "failed" else None
        self._detach()
        try:
            _finalize(self.store_root, self.id, status, code, sig, error)
        except Exception as e:  # noqa: BLE001 - tracking never breaks the launcher
            warn_once("job-end", f"could not finalize job run {self.id}: {e}")
        _ended_now()

    def _detach(self) -> None:
        """Stop reporting to the job: its output, then its tracker; the process's run
        becomes the active one again."""
        if _api._job is self:
            _api._job = None
        for handler, stream in self._handlers:
            if getattr(handler, "stream", None) in (self._console.out, self._console.err):
                handler.setStream(stream)
        self._handlers = []
        if self._console is not None:
            self._console.restore()
            self._console = None
        if self._tracker is not None:
            self._tracker.close()
            if _tracker.active() is self._tracker and self._parent is not None:
                _tracker.activate(self._parent)


def current() -> Job | None:
    """The job run in progress in this process, if any."""
    job = _api._job
    return job if isinstance(job, Job) and not job.finished else None


def _start(
    group: Group,
    index: int,
    params: Mapping[str, Any] | None,
    name: str | None,
    argv: list[str] | None,
    tags: Mapping[str, Any] | None,
    source: str,
) -> Job:
    _after_last_job()
    parent = _tracker.active()
    if parent is None or (_api._run is None and os.environ.get("RUNBASE_RUN_ID")):
        # no run yet: the process's run starts first, as log() would; under `runbase
        # run`, the handle on it (init() attaches), which active_run() returns after
        _api.ensure_run()
        parent = _tracker.active()
    if parent is None:
        return _inert(group, index)
    try:
        job_id, job_name = _create(parent, group, index, name, argv, tags)
    except Exception as e:  # noqa: BLE001 - the job's data then goes to the process's run
        warn_once(
            "job-start", f"could not start a job run (its data goes to run {parent.run_id}): {e}"
        )
        return _inert(group, index)
    job = Job(job_id, job_name, parent.store_root, group, index)
    job._parent = parent
    if group.started == 1:
        parent.event("tag", key=PARENT_TAG, value=group.id)
    t = _tracker.Tracker(job_id, parent.store_root)
    job._tracker = t
    _tracker.activate(t)
    _api._job = job
    _hook_exit()
    job._console = capture(t.spool_dir, known_secrets())
    if job._console is not None:
        job._handlers = _route_log_handlers(job._console.out._inner, job._console.out)
        job._handlers += _route_log_handlers(job._console.err._inner, job._console.err)
    if params:
        _api.record_params(params, source=source, flatten=True)
    return job


def _route_log_handlers(stream: Any, tee: Any) -> list[tuple[Any, Any]]:
    """Point the ``logging`` handlers that write to ``stream`` (sys.stdout/stderr, as
    Hydra's job logging does, set up before the job starts) at the job's capture of it,
    so that the job's logs hold its log lines. Returns what to restore."""
    logging = sys.modules.get("logging")
    if logging is None:
        return []
    loggers = [logging.root, *logging.root.manager.loggerDict.values()]
    moved = []
    for logger in loggers:
        for h in getattr(logger, "handlers", ()):
            if isinstance(h, logging.StreamHandler) and h.stream is stream:
                h.setStream(tee)
                moved.append((h, stream))
    return moved


def _ended_now() -> None:
    global _last_end
    _last_end = time.time()


def _after_last_job() -> None:
    """Start a job no sooner than the end-of-run scan's clock slack (50 ms, capture.files)
    after the last one ended: the files the last job wrote just before its end are
    then older than this job's start, and not found by its scan."""
    wait = _last_end + _SCAN_SLACK - time.time()
    if wait > 0:
        time.sleep(wait)


_SCAN_SLACK = 0.06


def _inert(group: Group, index: int) -> Job:
    """A job that could not be recorded: ending it does nothing."""
    job = Job("", None, "", group, index)
    job.finished = True
    return job


def _create(
    parent: _tracker.Tracker,
    group: Group,
    index: int,
    name: str | None,
    argv: list[str] | None,
    tags: Mapping[str, Any] | None,
) -> tuple[str, str]:
    """Insert the job's run: the process's code, environment and data policy, its own
    command, name and tags."""
    store = Store.open(parent.store_root)
    try:
        row = parent_row(store, parent.run_id)
        if row is None:
            raise UsageError(f"the process's run {parent.run_id} is not in the store")
        command = _job_command(json.loads(row["command"] or "[]"), argv)
        all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        all_tags[INDEX_TAG] = str(index)
        job_id = lifecycle.create_run(
            store,
            command=command,
            mode="job",
            name=name or f"{row['name']}-{index}",
            cwd=row["cwd"],  # where its command runs (Hydra may chdir into the job's directory)
            project_root=row["project_root"],
            tags=all_tags,
            parent_id=parent.run_id,
            sweep_id=group.id,
        )
        share_parent_setup(store, job_id, row)
        if group.drop_argv_params and group.started == 1:
            drop_argv_params(store, parent.run_id)
        return job_id, run_name(store, job_id) or name or ""
    finally:
        store.close()


def _job_command(process: list[str], argv: list[str] | None) -> list[str]:
    """The process's recorded command with its arguments replaced by ``argv``. The
    recorded command ends with this process's arguments (``python app.py ARGS``,
    ``python -m pkg ARGS``, a console script): when it does not (a Python started by a
    shell script), it is kept whole."""
    if argv is None:
        return process
    own = redact_argv(sys.argv[1:])[0]
    cut = len(process) - len(own)
    if cut < 1 or process[cut:] != own:
        return process
    return process[:cut] + redact_argv([str(a) for a in argv])[0]


def _finalize(
    store_root: str,
    run_id: str,
    status: str,
    code: int | None,
    sig: int | None,
    error: str | None,
) -> None:
    own_io.active = True  # hashing the job's files is no read of the process's run
    try:
        store = Store.open(store_root)
        try:
            inherit_parent_env(store, run_id)
            lifecycle.finalize(store, run_id, status, exit_code=code, exit_signal=sig, error=error)
        finally:
            store.close()
    finally:
        own_io.active = False


def _hook_exit() -> None:
    global _exit_hooked
    if not _exit_hooked:
        _exit_hooked = True
        # registered after api's and tracker's: runs before them
        atexit.register(_at_exit)


def _at_exit() -> None:
    """A job still running when the process exits. In a run of its own, the process
    knows how it ends (an uncaught exception, or not): the job ends so. Under
    ``runbase run`` only the supervisor knows the exit status: the job is left running
    (its data flushed), and ending the process's run ends it with that status."""
    job = current()
    if job is None:
        return
    run = _api._run
    if run is not None and run.own:
        status, code, sig, error = run._failure or ("finished", 0, None, None)
        if error:
            error = "the process ended during the job:\n" + error
        job.finished = True
        job._detach()
        try:
            _finalize(job.store_root, job.id, status, code, sig, error)
        except Exception as e:  # noqa: BLE001
            warn_once("job-end", f"could not finalize job run {job.id}: {e}")
    else:
        job._detach()


def files_since(directory: str, since: float) -> list[str]:
    """Regular files under ``directory`` modified at or after ``since`` (a job's output
    directory: what the job, or its launcher for it, wrote there)."""
    found = []
    since_ns = int(since * 1e9) - 50_000_000  # filesystem timestamps lag the clock slightly
    for dirpath, _dirs, files in os.walk(directory):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_mtime_ns >= since_ns and stat.S_ISREG(st.st_mode):
                found.append(p)
    return found


def claim_outputs(paths: list[str]) -> None:
    """Record ``paths`` as outputs of the job in progress (files its launcher wrote for it
    before it started, which the process's run saw being written)."""
    job = current()
    if job is None or job._tracker is None:
        return
    for p in paths:
        job._tracker.event(FILE_EVENT, path=os.path.abspath(p), op="w")
