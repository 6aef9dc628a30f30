"""Attach a Python process started by ``runbase run`` to its run (called by the bootstrap)."""

from __future__ import annotations

import os

from . import tracker as _tracker
from .capture import params as _params


def attach_from_env() -> None:
    """Start this process's tracker for ``$RUNBASE_RUN_ID`` and install the hooks."""
    run_id = os.environ["RUNBASE_RUN_ID"]
    store_root = os.environ["RUNBASE_DIR"]
    if _tracker.active() is not None:
        return
    t = _tracker.Tracker(run_id, store_root)
    _tracker.activate(t)
    from .capture.env import python_info

    t.event("python", info=python_info())
    _tracker.install_term_flush()
    install_hooks()


def install_hooks() -> None:
    from ._imphook import when_imported

    when_imported("argparse", lambda _m: _params.install_argparse_hook(_record_argparse))


def _record_argparse(values: dict[str, object]) -> None:
    from . import api

    api.record_params(values, source="argparse")
