"""A run's captured output: from the spool while it runs, from the object store after."""

from __future__ import annotations

import time
from collections.abc import Callable

from runbase.core.runfiles import LOG_FILES
from runbase.core.shapes import LOGS, load_column
from runbase.errors import CorruptObject, StoreError, UsageError
from runbase.store import Store


def read_log(store: Store, run_id: str, which: str = "output") -> bytes:
    """``which`` is ``"output"`` (stdout and stderr interleaved) or ``"stderr"``."""
    if which not in LOG_FILES:
        raise UsageError(f"unknown log {which!r}; use one of {', '.join(LOG_FILES)}")
    row = store.db.query_one("SELECT logs_json FROM runs WHERE id = ?", (run_id,))
    logs = load_column(row[0], LOGS) if row else None  # malformed: read as no log object
    if logs is not None:
        entry = logs.get(which)
        if not entry:
            return b""
        try:
            return store.objects.get_bytes(entry["oid"])
        except FileNotFoundError:
            raise StoreError(
                f"the {which} log of run {run_id} ({entry['oid']}) is not in this store: "
                f"`runbase pull {run_id}` fetches it from a remote that has it; "
                "`runbase fsck` lists what else is missing"
            ) from None
        except CorruptObject as e:
            raise e.for_run(run_id) from None
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
