"""A run's captured output: from the spool while it runs, from the object store after."""

from __future__ import annotations

import json

from .errors import UsageError
from .lifecycle_files import LOG_FILES
from .store import Store


def read_log(store: Store, run_id: str, which: str = "output") -> bytes:
    """``which`` is ``"output"`` (stdout and stderr interleaved) or ``"stderr"``."""
    if which not in LOG_FILES:
        raise UsageError(f"unknown log {which!r}; use one of {', '.join(LOG_FILES)}")
    row = store.db.query_one("SELECT logs_json FROM runs WHERE id = ?", (run_id,))
    if row and row[0]:
        entry = json.loads(row[0]).get(which)
        return store.objects.get_bytes(entry["oid"]) if entry else b""
    try:
        return (store.spool_dir(run_id) / LOG_FILES[which]).read_bytes()
    except OSError:
        return b""
