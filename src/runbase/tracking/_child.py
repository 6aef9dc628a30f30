"""Attach a Python process started by ``runbase run`` to its run (called by the bootstrap)."""

from __future__ import annotations

import os
import sys
import threading
import time

from runbase.capture.proc import is_alive, register
from runbase.core._imphook import when_imported
from runbase.tracking import tracker as _tracker
from runbase.tracking.autohooks import install_auto

# set by ``runbase run --publish`` for its command: the server project the run is
# published to (``https://host/p/<project>``), whose MLflow API the MLflow integration
# recognizes (runbase.integrations.mlflow)
PUBLISH_URL_ENV = "RUNBASE_PUBLISH_URL"


def attach_from_env() -> None:
    """Start this process's tracker for ``$RUNBASE_RUN_ID`` and install the hooks."""
    run_id = os.environ["RUNBASE_RUN_ID"]
    store_root = os.environ["RUNBASE_DIR"]
    if _tracker.active() is not None:
        return
    t = _tracker.Tracker(run_id, store_root)
    _tracker.activate(t)
    t.event("python", info=python_info())
    _tracker.install_term_flush()
    install_hooks()
    install_file_hook(os.environ.get("RUNBASE_PROJECT_ROOT"), store_root)
    watch_supervisor(t.spool_dir)


def watch_supervisor(spool_dir: str) -> None:
    """Record this process as one of the run's, and watch ``runbase run``: if it is
    killed (SIGKILL cannot be caught), this process goes on and keeps spooling its
    metrics, which the next runbase command ingests (lifecycle.recover_orphans).
    Its stdout/stderr, pipes to the dead supervisor, are then sent to /dev/null, so
    that printing cannot kill the training with BrokenPipeError (the supervisor
    scrubbed secrets from the output: without it, output is not recorded)."""
    try:
        register(spool_dir, os.getpid())
    except OSError:
        return  # the spool is not writable: the supervisor reports that
    sup = os.environ.get("RUNBASE_SUPERVISOR_PID", "")
    if not sup.isdigit():
        return
    sup_pid, sup_start = int(sup), os.environ.get("RUNBASE_SUPERVISOR_START") or None
    if not is_alive(sup_pid, sup_start):
        return  # started after the supervisor died (or by another): nothing to watch

    def loop() -> None:
        direct = os.getppid() == sup_pid
        while True:
            time.sleep(0.1)
            gone = os.getppid() != sup_pid if direct else not is_alive(sup_pid, sup_start)
            if gone:
                _detach_streams()
                t = _tracker.active()
                if t is not None:
                    t.event("supervisor_lost", pid=sup_pid)
                return

    threading.Thread(target=loop, name="runbase-supervisor-watch", daemon=True).start()


def _detach_streams() -> None:
    """Point fds 1 and 2 at /dev/null when they are a pipe or terminal whose reader is
    gone (the dead supervisor's), so that writes neither fail nor block."""
    # lazy: only a process that outlives its supervisor gets here
    import select
    import stat

    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            try:
                mode = os.fstat(fd).st_mode
                if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
                    continue  # a file of the user's: not the supervisor's pipe
                poller = select.poll()
                poller.register(fd, 0)  # POLLERR/POLLHUP are always reported
                if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0)):
                    os.dup2(null, fd)
            except OSError:
                continue
    finally:
        os.close(null)


def python_info() -> dict[str, object]:
    """What this interpreter reports about itself (cheap: no platform/json imports)."""
    v = sys.version_info
    base = getattr(sys, "base_prefix", sys.prefix)
    return {
        "version": f"{v.major}.{v.minor}.{v.micro}"
        + ("" if v.releaselevel == "final" else f"{v.releaselevel[0]}{v.serial}"),
        "implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(
            sys.implementation.name, sys.implementation.name
        ),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": base,
        "venv": sys.prefix != base,
        "path": [p for p in sys.path if p],
        "pid": os.getpid(),
    }


def install_hooks() -> None:
    """Record what argparse parses (and apply ``runbase run -p`` overrides to it), and
    arm the framework integrations."""

    def hook(_module: object) -> None:
        # lazy: capture.params loads json and enum, and the overrides are for argparse:
        # only once the program imports argparse (every Python process of a run attaches)
        from runbase.capture.overrides import apply_to_namespace
        from runbase.capture.params import install_argparse_hook

        install_argparse_hook(_record_argparse, apply_to_namespace)

    when_imported("argparse", hook)
    install_auto()


def install_file_hook(
    project_root: str | None,
    store_root: str,
    earlier: list[tuple[str, str, int | None]] | None = None,
) -> None:
    """Report the files this process reads and writes under the project root (and
    ``earlier`` ones, seen before the run started: runbase.tracking._early)."""
    if not project_root:
        return
    # lazy: loads the store; importing this module (the API does) must not
    from runbase.capture.files import FILE_EVENT, install_audit_hook
    from runbase.records.files import preimage

    def emit(path: str, op: str, mtime_ns: int | None = None) -> None:
        t = reported_to()
        if t is not None:
            t.event(FILE_EVENT, path=path, op=op, mtime_ns=mtime_ns)

    def before_overwrite(path: str, mtime_ns: int) -> None:
        # the bytes read are about to go: hash them now, unless the record has them
        t = reported_to()
        if t is None:
            return
        own_io.active = True  # the hash's own reads are nobody's
        try:
            found = preimage(t.store_root, t.run_id, project_root, path, mtime_ns)
        finally:
            own_io.active = False
        if found is not None:
            oid, size, stored = found
            t.event(
                FILE_EVENT, path=path, op="r", mtime_ns=mtime_ns, oid=oid, size=size, stored=stored
            )

    install_audit_hook(emit, project_root, store_root, earlier or (), reported_to, before_overwrite)


# set in a thread while runbase itself reads the project's files in this process (a job
# run finalized in-process hashes its outputs and inputs): those reads are nobody's
own_io = threading.local()


def reported_to() -> _tracker.Tracker | None:
    """The tracker this thread's file I/O is reported to."""
    return None if getattr(own_io, "active", False) else _tracker.active()


def _record_argparse(values: dict[str, object]) -> None:
    # a launcher's own parse (torchrun, loky workers) never gets here: capture.origin
    from runbase.tracking.params import record_parsed  # lazy: once argparse has parsed

    record_parsed(values, "argparse")
