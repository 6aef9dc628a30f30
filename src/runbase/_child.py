"""Attach a Python process started by ``runbase run`` to its run (called by the bootstrap)."""

from __future__ import annotations

import os

from . import tracker as _tracker


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


def python_info() -> dict[str, object]:
    """What this interpreter reports about itself (cheap: no platform/json imports)."""
    import sys

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
    from ._imphook import when_imported

    def hook(_module: object) -> None:
        from .capture.params import install_argparse_hook
        from .overrides import apply_to_namespace

        install_argparse_hook(_record_argparse, apply_to_namespace)

    when_imported("argparse", hook)
    from .integrations import install_auto

    install_auto()


def install_file_hook(project_root: str | None, store_root: str) -> None:
    """Report the files this process reads and writes under the project root."""
    if not project_root:
        return
    from .capture.files import FILE_EVENT, install_audit_hook

    def emit(path: str, op: str, mtime_ns: int | None = None) -> None:
        t = _tracker.active()
        if t is not None:
            t.event(FILE_EVENT, path=path, op=op, mtime_ns=mtime_ns)

    install_audit_hook(emit, project_root, store_root)


def _record_argparse(values: dict[str, object]) -> None:
    if _main_is_library():
        return  # a launcher's or worker's own options (joblib/loky, torchrun, ...)
    record_parsed(values, "argparse")


def _main_is_library() -> bool:
    """Whether this process's main module is part of Python or an installed package:
    ``python -m joblib...popen_loky_posix --pipe 5`` (joblib's workers) or
    ``python -m torch.distributed.run`` parse options that are not the run's params.
    A script, a console script of the project and ``python -c`` are not."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return False
    import sysconfig

    real = os.path.realpath(path)
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(real.startswith(root + os.sep) for root in roots)


def record_parsed(values: object, source: str, flatten: bool = False) -> None:
    """Record the params a parser of the command line (argparse, click, Hydra, ...) gave
    this process; nothing when the process has no active run (after ``finish()``)."""
    if _tracker.active() is None:
        return
    from . import api

    # The command's own Python process sets the run's parsed params; a Python script
    # it starts (an evaluation step, say) only fills in keys that are not set yet.
    top = os.environ.get("RUNBASE_SUPERVISOR_PID") in (None, str(os.getppid()))
    api.record_params(values, source=source, flatten=flatten, weak=not top)
