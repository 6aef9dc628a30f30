"""A run's captured output: from the spool while it runs here, from ``live_logs`` while it
runs on another machine (a team server), from the object store once it is finalized.
Whole (``runbase logs``, ``-f``) or as a window of ``n`` bytes from an offset (the web
UI's tail), as a log of a long run runs to GBs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from runbase.core.runfiles import LOG_FILES
from runbase.core.shapes import LOGS, load_column
from runbase.errors import CorruptObject, ObjectTooLarge, StoreError, UsageError
from runbase.store import Store

_cache: OrderedDict[str, bytes] = OrderedDict()  # oid -> bytes (objects never change)
_cache_lock = threading.Lock()
_CACHE_ITEMS = 4
_CACHE_MAX = 16 * 1024 * 1024  # bigger logs are re-read per request


def log_state(store: Store, run_id: str) -> tuple[str, dict[str, Any] | None]:
    """The run's status and its ``logs`` column (None while it runs: no log object
    yet, or malformed); a run gone meanwhile reads as ``crashed``."""
    row = store.db.query_one("SELECT status, logs_json FROM runs WHERE id = ?", (run_id,))
    if row is None:
        return "crashed", None
    return row[0], load_column(row[1], LOGS)


def read_log(store: Store, run_id: str, which: str = "output") -> bytes:
    """``which`` is ``"output"`` (stdout and stderr interleaved) or ``"stderr"``."""
    if which not in LOG_FILES:
        raise UsageError(f"unknown log {which!r}; use one of {', '.join(LOG_FILES)}")
    logs = log_state(store, run_id)[1]  # malformed: read as no log object
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
        done = log_state(store, run_id)[0] != "running"
        data = read_log(store, run_id, which)
        if len(data) > sent:
            write(data[sent:])
            sent = len(data)
        if done:
            return
        time.sleep(poll)


def object_window(store: Store, oid: str, offset: int, n: int) -> tuple[bytes, int]:
    """``n`` bytes of a stored log from ``offset``, and its size: a small log read whole
    once (and kept: objects never change), a large one by a ranged read. A missing or
    unreadable object raises ``OSError``/``ValueError``."""
    data = _small_object(store, oid)
    if data is not None:
        return data[offset : offset + n], len(data)
    size = store.objects.size(oid)
    return store.objects.read_range(oid, offset, n) if offset < size else b"", size


def _small_object(store: Store, oid: str) -> bytes | None:
    """The whole log when it is at most _CACHE_MAX bytes (one read, then cached);
    None for a larger one."""
    with _cache_lock:  # content-addressed: the same id is the same bytes anywhere
        data = _cache.get(oid)
        if data is not None:
            _cache.move_to_end(oid)
            return data
    try:
        data = store.objects.get_bytes(oid, max_size=_CACHE_MAX)
    except ObjectTooLarge:
        return None
    with _cache_lock:
        _cache[oid] = data
        while len(_cache) > _CACHE_ITEMS:
            _cache.popitem(last=False)
    return data


def spool_window(store: Store, run_id: str, stream: str, offset: int, n: int) -> tuple[bytes, int]:
    """Up to ``n`` bytes from ``offset`` of the log a run is writing to its spool here,
    and its size now (``FileNotFoundError``: no spool file on this machine)."""
    with open(store.spool_dir(run_id) / LOG_FILES[stream], "rb") as f:
        size = f.seek(0, 2)
        f.seek(min(offset, size))
        return f.read(n), size


def live_window(store: Store, run_id: str, stream: str, offset: int, n: int) -> tuple[bytes, int]:
    """Up to ``n`` bytes from ``offset`` of a log published live (``live_logs``), and
    the size received so far (contiguous from 0)."""
    rows = store.db.query(
        'SELECT "offset", size, data FROM live_logs WHERE run_id = ? AND stream = ? '
        'ORDER BY "offset"',
        (run_id, stream),
    )
    size = 0
    out = bytearray()
    for start, length, data in rows:
        if start > size:
            break  # a gap (a delta lost): what follows waits for the finished run's log
        end = start + length
        if end <= size:
            continue
        new = data[size - start :]  # the bytes from the contiguous end on
        if end > offset and len(out) < n:
            lo = max(offset, size) - size
            out += new[lo : lo + n - len(out)]
        size = end
    return bytes(out), size
