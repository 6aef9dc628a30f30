"""Part of a run's log, for tailing it in the browser: byte offsets, never half a
UTF-8 character (the reading itself: :mod:`runbase.records.logs`)."""

from __future__ import annotations

from typing import Any

from runbase.core.runfiles import LOG_FILES
from runbase.errors import NotFound, UsageError
from runbase.records.logs import live_window, log_state, object_window, spool_window
from runbase.records.read import resolve
from runbase.store import Store

DEFAULT_LOG_CHUNK = 256 * 1024
MAX_LOG_CHUNK = 4 * 1024 * 1024


def _utf8_complete(chunk: bytes) -> int:
    """Length of ``chunk`` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(chunk)) + 1):
        b = chunk[-back]
        if b < 0x80:
            return len(chunk)
        if b >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(chunk) if back >= need else len(chunk) - back
    return len(chunk)


def _whole_chars(raw: bytes, limit: int, more: bool) -> bytes:
    """At most ``limit`` bytes of ``raw`` without cutting a UTF-8 character when more
    bytes follow (or may); a first character longer than ``limit`` comes whole."""
    chunk = raw[:limit]
    if not more:
        return chunk
    n = _utf8_complete(chunk)
    if n == 0 and chunk:
        b = chunk[0]
        need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 1
        return raw[:need] if len(raw) >= need else b""
    return chunk[:n]


def _stored_window(store: Store, oid: str, offset: int, n: int) -> tuple[bytes, int]:
    try:
        return object_window(store, oid, offset, n)
    except (OSError, ValueError) as e:
        raise NotFound(f"the log ({oid}) is missing from the store ({e}); see `runbase fsck`")


def log_chunk(
    store: Store,
    ref: str,
    stream: str = "output",
    offset: int = 0,
    limit: int = DEFAULT_LOG_CHUNK,
) -> dict[str, Any]:
    """Part of a run's log for tailing: ``{run, stream, status, offset, next_offset,
    size, text, done}``. ``stream`` is ``output`` (stdout and stderr interleaved) or
    ``stderr``; offsets are in bytes; at most ``limit`` bytes come back, never half a
    UTF-8 character (one longer than ``limit`` comes whole). ``done``: the run has
    ended and ``next_offset`` is the end of the log (poll again from ``next_offset``
    while not done)."""
    if stream not in LOG_FILES:
        raise UsageError(f"unknown log stream {stream!r}; use one of {', '.join(LOG_FILES)}")
    if not 1 <= limit <= MAX_LOG_CHUNK:
        raise UsageError(f"limit must be between 1 and {MAX_LOG_CHUNK}")
    if offset < 0:
        raise UsageError("offset must be 0 or more")
    run_id = resolve(store, ref)
    raw, size, status = b"", 0, "running"  # raw: up to 3 bytes past limit
    for _attempt in range(2):  # the run may be finalized between two reads
        status, logs = log_state(store, run_id)
        if logs is not None:  # finalized: an object
            entry = logs.get(stream)
            raw, size = (
                _stored_window(store, entry["oid"], offset, limit + 3) if entry else (b"", 0)
            )
            break
        try:  # live: the spool file, read from the offset on
            raw, size = spool_window(store, run_id, stream, offset, limit + 3)
            break
        except FileNotFoundError:
            raw, size = live_window(store, run_id, stream, offset, limit + 3)
            if size:  # published live from another machine (a team server)
                break
    chunk = _whole_chars(raw, limit, more=len(raw) > limit or status == "running")
    next_offset = offset + len(chunk)
    return {
        "run": run_id,
        "stream": stream,
        "status": status,
        "offset": offset,
        "next_offset": next_offset,
        "size": size,
        "text": chunk.decode("utf-8", "replace"),
        "done": status != "running" and next_offset >= size,
    }
