"""A run's captured output: from the spool while it runs, from the object store after."""

from __future__ import annotations

import json
from collections.abc import Callable

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


def follow_log(
    store: Store,
    run_id: str,
    write: Callable[[bytes], None],
    which: str = "output",
    poll: float = 0.5,
) -> None:
    """Write the log as it grows until the run ends (``runbase logs -f``)."""
    import time

    sent = 0
    while True:
        row = store.db.query_one("SELECT status FROM runs WHERE id = ?", (run_id,))
        done = row is None or row[0] != "running"
        data = read_log(store, run_id, which)
        if len(data) > sent:
            write(data[sent:])
            sent = len(data)
        if done:
            return
        time.sleep(poll)
