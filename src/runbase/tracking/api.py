"""The Python API of a run: ``init``, ``param``, ``params``, ``summary``, ``tag``,
``log_image``, ``log_table``, ``finish``.

``init()`` attaches to the run of ``runbase run`` when there is one; otherwise it
starts a run of its own (code snapshot now, environment and ingestion in a small
watcher process, so the training process only appends to memory). Once a run has
started nothing here raises into user code: failures become one warning.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping

from runbase.capture import overrides as _overrides
from runbase.core._safe import safe_call, warn_once
from runbase.core.statuses import TERMINAL
from runbase.errors import RunbaseError, UsageError
from runbase.tracking import _early
from runbase.tracking import tracker as _tracker
from runbase.tracking.params import known_secrets, on_new_secrets, record_params
from runbase.tracking.tracker import log as log  # `runbase.log`: loaded with the API (ensure_run)

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

_lock = threading.RLock()
_run: Run | None = None
_auto_start = False  # ensure_run() is starting a run the program did not ask for
# the tag that says what a run started after its program began could not record
CAPTURE_TAG = "capture"
# the job run in progress in this process (runbase.tracking.jobs): what init() and active_run()
# return and what finish() ends while it runs
_job: Run | None = None


class Run:
    """A handle on the active run of this process.

    >>> run = runbase.init(name="baseline")   # doctest: +SKIP
    >>> run.param("lr", 0.1); run.log(loss=0.5, step=1); run.finish()   # doctest: +SKIP
    """

    def __init__(self, run_id: str, name: str | None, store_root: str, own: bool) -> None:
        self.id = run_id
        self.name = name
        self.store_root = store_root
        self.own = own  # False when attached to a `runbase run` supervisor
        self.finished = False
        self._failure: tuple[str, int | None, int | None, str | None] | None = None
        self.notebook: str | None = None  # the notebook file (absolute path), when known
        self._console: Any = None
        self._old_excepthook: Any = None
        self._cells: Any = None  # a tracking.cells.CellRecorder in IPython

    def __repr__(self) -> str:
        return f"<runbase.Run {self.id} {self.name or ''}>"

    def param(self, name: str, value: Any) -> Any:
        return param(name, value)

    def params(self, mapping: Mapping[str, Any] | Any) -> Any:
        return params(mapping)

    def log(self, step: Any = None, **metrics: Any) -> None:
        _tracker.log(step, **metrics)

    def summary(self, **metrics: Any) -> None:
        summary(**metrics)

    def log_image(self, key: str, image: Any, step: Any = None, caption: Any = None) -> None:
        log_image(key, image, step, caption)

    def log_table(self, key: str, data: Any, step: Any = None) -> None:
        log_table(key, data, step)

    def tag(self, *args: str, **tags: Any) -> None:
        tag(*args, **tags)

    def finish(self, status: str | None = None) -> None:
        finish(status)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.own:
            self._failure = _failure_of(exc_type, exc, tb)
        finish()


def init(
    name: str | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    capture_code: bool = True,
    capture_console: bool = True,
    notebook: str | os.PathLike[str] | bool | None = None,
    publish: str | None = None,
) -> Run:
    """Start (or attach to) the run of this process. Idempotent.

    >>> import runbase
    >>> run = runbase.init(name="baseline", tags={"team": "vision"})   # doctest: +SKIP

    In IPython/Jupyter the run records its notebook file (found from the kernel's
    session, or ``notebook="path.ipynb"``) and the cells executed until ``finish()``;
    ``notebook=False`` records neither.

    ``publish="team"`` streams the run to that remote (a team server) while it runs,
    from the run's watcher process, never from this one (default: ``$RUNBASE_PUBLISH``
    or the config's ``"publish"``; ``"-"``: do not). Under ``runbase run`` the
    supervisor publishes instead (``runbase run --publish``).

    Errors before the run starts (an unusable store, a ``notebook`` that is not a
    file) raise :class:`RunbaseError`.
    """
    global _run
    with _lock:
        explicit = _explicit_notebook(notebook)
        if _run is not None and not _run.finished:
            _apply_meta(name, tags, params)
            if explicit and _run.notebook is None:
                _setup_notebook(_run, explicit, "explicit")
            return _job or _run
        if os.environ.get("RUNBASE_RUN_ID") and os.environ.get("RUNBASE_DIR"):
            _run = _attach()
            _apply_meta(name, tags, params)
            path, source = _find_notebook(notebook, explicit) or (None, None)
            _setup_notebook(_run, path, source, cells=notebook is not False)
        else:
            nb = _find_notebook(notebook, explicit)
            # lazy: the HTTP client (json, urllib); only a run of its own may publish
            from runbase.remote.target import resolve_target

            target = resolve_target(publish)  # before the run: a bad remote fails loudly
            _run = _start_own(name, tags, store, capture_code, capture_console, nb, target)
            _setup_notebook(_run, None, None, cells=notebook is not False)
            if params:
                _inline_params(params)
        return _job or _run  # a job: started by a launcher hook while the run started


def _explicit_notebook(notebook: Any) -> str | None:
    if notebook is None or isinstance(notebook, bool):
        return None
    from runbase.tracking.cells import resolve_path  # lazy: json, ast; only for a notebook

    path = resolve_path(os.fsdecode(os.fspath(notebook)))
    if path is None:
        raise UsageError(f"notebook {os.fsdecode(os.fspath(notebook))!r} is not a file")
    return path


def _find_notebook(notebook: Any, explicit: str | None) -> tuple[str, str] | None:
    """``(path, how it was found)`` of the notebook to record, if any."""
    if explicit:
        return explicit, "explicit"
    if notebook is False or "IPython" not in sys.modules:
        return None
    from runbase.tracking.cells import find_notebook, shell  # lazy: only in IPython

    ip = shell()
    return find_notebook(ip) if ip is not None else None


def _setup_notebook(run: Run, path: str | None, source: str | None, cells: bool = True) -> None:
    """Record the notebook file (unless ``_start_own`` did) and, in IPython, start
    recording the cells the kernel executes."""
    t = _tracker.active()
    if path is not None and source is not None:
        run.notebook = path
        if t is not None and run.own:
            safe_call("the notebook", _record_notebook_now, run, path, source)
        elif t is not None:  # attached: the supervisor stores it
            t.event("notebook", path=path, source=source)
    if not cells or run._cells is not None or t is None or "IPython" not in sys.modules:
        return
    from runbase.tracking.cells import shell, start_cells  # lazy: only in IPython

    ip = shell()
    if ip is not None:
        run._cells = safe_call(
            "notebook cells", start_cells, ip, t.spool_dir, known_secrets(), run.notebook
        )


def _record_notebook_now(run: Run, path: str, source: str) -> None:
    # lazy: the store (sqlite3); a run attached to `runbase run` never opens it
    from runbase.records.notebook import record_notebook_file
    from runbase.store import Store

    store = Store.open(run.store_root)
    try:
        record_notebook_file(store, run.id, path, source)
    finally:
        store.close()


def _attach() -> Run:
    # lazy: the bootstrap's hooks load when a run starts, not with runbase.init/log
    from runbase.tracking._child import attach_from_env

    attach_from_env()
    t = _tracker.active()
    assert t is not None
    return Run(t.run_id, None, t.store_root, own=False)


def _apply_meta(
    name: str | None, tags: Mapping[str, Any] | None, params: Mapping[str, Any] | None
) -> None:
    t = _tracker.active()
    if t is None:
        return
    if name:
        t.event("name", name=str(name))
    for k, v in (tags or {}).items():
        t.event("tag", key=str(k), value=str(v))
    if params:
        _inline_params(params)


def _start_own(
    name: str | None,
    tags: Mapping[str, Any] | None,
    store_path: Any,
    capture_code: bool,
    capture_console: bool,
    notebook: tuple[str, str] | None = None,
    publish: str | None = None,
) -> Run:
    # lazy: store and records (sqlite3): not for runbase.init/log, nor an attached run
    from runbase.capture.secrets import redact_argv
    from runbase.records import lifecycle
    from runbase.records.notebook import record_notebook_file
    from runbase.records.read import run_name
    from runbase.store import Store
    from runbase.tracking._child import (
        _record_argparse,
        install_file_hook,
        install_hooks,
        python_info,
    )

    # what the program read, wrote and parsed before this run started (first: runbase's
    # own reads below are not the program's)
    early_files, early_parse, early_note = _early.take()
    store = Store.open(store_path, create=True)  # raises before the run starts: fail loudly
    try:
        lifecycle.recover_orphans(store)
        argv, _ = redact_argv([sys.executable, *sys.argv])
        root = lifecycle.project_root()
        run_id = lifecycle.create_run(
            store,
            command=argv,
            mode="api",
            name=name,
            project_root=str(root),
            tags={str(k): str(v) for k, v in (tags or {}).items()},
        )
    except RunbaseError:
        raise
    except Exception as e:
        raise RunbaseError(f"could not start a run in {store.root}: {e}") from e
    run = Run(run_id, run_name(store, run_id) or name, str(store.root), own=True)
    # Before the run's tracker is active: in a process that had a run before (a notebook
    # kernel), that run's audit hook would report the files read here as the run's inputs.
    if notebook is not None:  # its bytes as they are now
        run.notebook = notebook[0]
        safe_call("the notebook", record_notebook_file, store, run_id, *notebook)
    found: set[str] = set()
    if "ipykernel" not in sys.modules:  # a kernel's argv is its launcher's, not params
        # before the snapshot: a config file it redacted secrets from is left out of it
        found = safe_call(
            "argv params", lifecycle.record_argv_params, store, run_id, argv[1:], default=set()
        )
        known_secrets().update(found)  # a config file's: scrubbed from console and traceback
    if capture_code:
        keep = [notebook[0]] if notebook else None  # in the snapshot, even if large or ignored
        safe_call("the code snapshot", lifecycle.snapshot_code, store, run_id, root, keep)
    store.close()
    t = _tracker.Tracker(run_id, str(store.root))
    _tracker.activate(t)
    t.event("python", info=python_info())
    install_hooks()
    install_file_hook(str(root), str(store.root), early_files)
    if early_parse is not None:
        safe_call("argparse params", _record_argparse, early_parse)
    if early_note and (_auto_start or early_files or early_parse is not None):
        t.event("tag", key=CAPTURE_TAG, value=early_note)
    _spawn_watcher(run, publish)
    if capture_console:
        from runbase.tracking._console import capture  # lazy: capture.secrets loads re, typing

        run._console = capture(t.spool_dir, known_secrets())
    run._old_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    return run


def _spawn_watcher(run: Run, publish: str | None = None) -> None:
    import subprocess  # lazy: ~3 ms; only a run of its own starts a watcher

    from runbase.capture.proc import start_id  # lazy: as subprocess

    pid = os.getpid()
    try:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runbase.tracking._watcher",
                run.store_root,
                run.id,
                str(pid),
                start_id(pid) or "",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={
                **os.environ,
                "PYTHONPATH": _package_parent() + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **({"RUNBASE_PUBLISH_TO": publish} if publish else {}),
            },
        )
    except Exception as e:  # noqa: BLE001
        warn_once(
            "watcher", f"could not start the run's watcher ({e}); metrics are stored at finish"
        )


def _package_parent() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _failure_of(exc_type: Any, exc: Any, tb: Any) -> tuple[str, int | None, int | None, str | None]:
    import traceback  # lazy: only when a run of its own fails

    from runbase.capture.secrets import scrub  # lazy: as traceback

    text = scrub("".join(traceback.format_exception(exc_type, exc, tb))[-20000:], known_secrets())
    if issubclass(exc_type, KeyboardInterrupt):
        return "killed", None, 2, text
    return "failed", 1, None, text


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    run = _run
    if run is not None and run.own and not run.finished:
        run._failure = _failure_of(exc_type, exc, tb)
    hook = run._old_excepthook if run is not None and run._old_excepthook else sys.__excepthook__
    hook(exc_type, exc, tb)


def ensure_run() -> Run | None:
    """The active run, starting one if needed (used by ``log`` before ``init``)."""
    global _auto_start
    if _run is not None and not _run.finished:
        return _run
    try:
        _auto_start = True
        return init()
    except Exception as e:  # noqa: BLE001
        warn_once("auto-init", f"could not start a run automatically: {e}")
        return None
    finally:
        _auto_start = False


def _tell_consoles(values: set[str]) -> None:
    """New secret values reach the console captures of this process's runs (the run,
    and a job run of runbase.tracking.jobs, which capture output too)."""
    for run in (_run, _job):
        if run is not None and run._console is not None:
            run._console.add_secrets(values)


def param(name: str, value: Any) -> Any:
    """Record a parameter and return its value: ``lr = runbase.param("lr", 0.1)``.

    Under ``runbase run -p lr=0.01`` (or a sweep) the override is recorded and returned.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"a parameter name must be a non-empty string, got {name!r}")
    value = _overrides.for_param(name, value)
    record_params({name: value}, source="inline")
    return value


def params(mapping: Mapping[str, Any] | Any) -> Any:
    """Record many parameters (nested mappings flatten to ``a.b.c``); returns ``mapping``,
    with any parameter overrides (``runbase run -p``) set in it."""
    mapping = _overrides.apply_to_mapping(mapping)
    record_params(mapping, source="inline", flatten=True)
    return mapping


def _inline_params(mapping: Mapping[str, Any]) -> None:
    params(mapping)  # for init(params=...), whose argument shadows the function


def input(path: Any) -> Any:  # noqa: A001 - the public name mirrors `runbase run --input`
    """Declare that the run reads ``path`` (a file, a directory or a URL); returns it:
    ``df = pd.read_parquet(runbase.input("data/train.parquet"))``."""
    _declare(path, "r")
    return path


def output(path: Any) -> Any:
    """Declare that the run writes ``path``; it is hashed and stored when the run ends:
    ``torch.save(model, runbase.output("model.pt"))``."""
    _declare(path, "w")
    return path


def _declare(path: Any, op: str) -> None:
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise UsageError(
            f"input()/output() take a path or URL, got {type(path).__name__}"
        ) from None
    try:
        from runbase.capture.files import FILE_EVENT, is_url  # lazy: loads the store

        if ensure_run() is None:
            return
        t = _tracker.active()
        if t is not None:
            full = text if is_url(text) else os.path.abspath(text)
            t.event(FILE_EVENT, path=full, op=op, declared=True)
    except Exception as e:  # noqa: BLE001
        warn_once("declare", f"could not record {text}: {e}")


def summary(**metrics: Any) -> None:
    """Set summary values, e.g. ``runbase.summary(test_acc=0.93)`` (default: last logged)."""
    try:
        if ensure_run() is None:
            return
        values = {}
        for k, v in metrics.items():
            f = _tracker.to_float(v)
            if f is None:
                warn_once(
                    f"summary-{k}",
                    f"summary {k!r}: {type(v).__name__} value is not a number; skipped",
                )
            else:
                values[k] = f
        t = _tracker.active()
        if t is not None and values:
            t.event("summary", values=values)
    except Exception as e:  # noqa: BLE001
        warn_once("summary", f"could not record a summary: {e}")


def log_image(key: str, image: Any, step: Any = None, caption: Any = None) -> None:
    """Log an image (or a list of images) under ``key``:
    ``runbase.log_image("samples", batch[:4], step=epoch)``.

    ``image``: a numpy array (H x W, H x W x 1/3/4; uint8, or floats in [0, 1]), a PIL
    image, a torch tensor (C x H x W or H x W x C), a path to a PNG, JPEG, GIF or WebP
    file, or its bytes. Arrays and PIL images are stored as PNG (Pillow: ``pip install
    'runbase[media]'``), files and bytes as they are. ``step`` defaults to the key's
    previous step + 1; ``caption``: a text, or one per image. The caller's thread only
    copies the input: encoding and storing happen on a thread of runbase's. Bad input,
    or an image over 16 MiB or 50 megapixels, is a warning and is skipped."""
    try:
        if ensure_run() is None:
            return
        from runbase.tracking import media  # lazy: the store's objects; on first image

        media.log_image(key, image, step, caption)
    except Exception as e:  # noqa: BLE001
        warn_once("log-image", f"could not log an image: {type(e).__name__}: {e}")


def log_table(key: str, data: Any, step: Any = None) -> None:
    """Log a table under ``key``: ``runbase.log_table("predictions", df)``.

    ``data``: a pandas DataFrame (a named index becomes columns too), a list of dicts
    (one per row) or a dict of columns. Stored as JSON (``{"columns", "rows"}``); over
    100,000 rows, the first ones are kept, with a warning. ``step`` as in
    :func:`log_image`."""
    try:
        if ensure_run() is None:
            return
        from runbase.tracking import media  # lazy: as in log_image

        media.log_table(key, data, step)
    except Exception as e:  # noqa: BLE001
        warn_once("log-table", f"could not log a table: {type(e).__name__}: {e}")


def tag(*args: Any, **tags: Any) -> None:
    """Tag the run: ``tag("baseline")``, ``tag("team", "vision")`` or ``tag(team="vision")``."""
    if len(args) > 2:
        raise UsageError("tag() takes a key, or a key and a value, or keyword arguments")
    if args:
        tags[str(args[0])] = args[1] if len(args) == 2 else ""
    try:
        if ensure_run() is None:
            return
        t = _tracker.active()
        for k, v in tags.items():
            if t is not None:
                t.event("tag", key=str(k), value=str(v))
    except Exception as e:  # noqa: BLE001
        warn_once("tag", f"could not record a tag: {e}")


def finish(status: str | None = None) -> None:
    """End this process's run: flush, then (for a run of its own) finalize it.

    ``status`` may force ``"finished"``, ``"failed"`` or ``"killed"``.
    """
    if (_job is None or _job.finished) and (_run is None or _run.finished):
        return  # nothing to end (at exit, in most processes): signal is not loaded
    from runbase.core.heldsignals import held_signals  # lazy: signal loads enum

    # a SIGTERM now (a scheduler, a pruner) would lose the run's end: it comes after it
    with held_signals():
        _finish(status)


def _finish(status: str | None) -> None:
    global _run
    with _lock:
        if _job is not None and not _job.finished:
            _job.finish(status)  # inside a job (runbase.tracking.jobs), finish() ends the job
            return
        run = _run
        if run is None or run.finished:
            return
        run.finished = True
        t = _tracker.active()
        if run._cells is not None:
            from runbase.tracking.cells import stop_cells  # lazy: only in IPython

            safe_call("notebook cells", stop_cells, run._cells)
        if not run.own:
            if t is not None:
                t.settle()  # images still being stored reach the spool with the rest
                t.flush()
            return
        try:
            if run._console is not None:
                run._console.restore()
            if sys.excepthook is _excepthook:
                sys.excepthook = run._old_excepthook or sys.__excepthook__
            if t is not None:
                t.close()
            _tracker.deactivate()
            _finalize_own(run, status)
        except Exception as e:  # noqa: BLE001
            warn_once("finish", f"could not finalize run {run.id}: {e}")
        finally:
            _run = None


def _finalize_own(run: Run, status: str | None) -> None:
    # lazy: as in _start_own
    from runbase.records import lifecycle
    from runbase.store import Store

    st, code, sig, error = run._failure or ("finished", 0, None, None)
    if status is not None:
        if status not in TERMINAL:
            raise UsageError(f"status must be one of {', '.join(TERMINAL)}")
        st = status
        code = 0 if status == "finished" else (code if code is not None else 1)
    store = Store.open(run.store_root)
    try:
        lifecycle.finalize(store, run.id, st, exit_code=code, exit_signal=sig, error=error)
    finally:
        store.close()


@contextlib.contextmanager
def start_run(name: str | None = None, **kwargs: Any) -> Iterator[Run]:
    """``with runbase.start_run("exp") as run: ...`` — finished, or failed on an exception."""
    run = init(name, **kwargs)
    try:
        yield run
    except BaseException as e:
        if run.own:
            run._failure = _failure_of(type(e), e, e.__traceback__)
        raise
    finally:
        finish()


def active_run() -> Run | None:
    """The run this process reports to: the job in progress (runbase.tracking.jobs), else its run."""
    if _job is not None and not _job.finished:
        return _job
    return _run if _run is not None and not _run.finished else None


atexit.register(finish)
# what the layers below call up into, registered here so they need not import this
_tracker.on_no_run(ensure_run)  # runbase.log, a param... before init(): start a run
on_new_secrets(_tell_consoles)
