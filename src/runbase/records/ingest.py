"""Move spooled entries into the metadata store.

Ingestion is idempotent and safe to run from several processes at once: the read
offset of every spool file is stored in the ``spool_offsets`` table and advanced in
the same transaction that inserts the data, so a crash mid-way or two concurrent
ingesters (the run's watcher and ``runbase`` recovering an orphan) never lose or
duplicate a point.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.capture.params import (
    INTEGRATION_SOURCES,
    MAX_INLINE_VALUE,
    PARSERS,
    SOURCE_RANK,
    numeric,
)
from runbase.core._safe import warn_once
from runbase.core.shapes import I64, MAX_TIME
from runbase.core.spool import KIND_KEY, STEP_KEY, TIME_KEY, read_frames
from runbase.records.experiments import EXPERIMENT_TAG, adopt
from runbase.records.media import apply_event as apply_media
from runbase.store import Store

_BATCH_ENTRIES = 100_000  # per transaction, so memory stays bounded on huge spools
_SWAP = sys.byteorder == "big"  # chunks are little endian on disk (docs/store-format.md)


@dataclass
class IngestResult:
    entries: int = 0
    points: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # python info, finish, ...


@dataclass
class _Series:
    steps: list[int | None] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)


def ingest(store: Store, run_id: str) -> IngestResult:
    """Ingest every complete frame not yet ingested from the run's spool files."""
    result = IngestResult()
    spool = store.spool_dir(run_id)
    try:
        files = sorted(p for p in spool.iterdir() if p.suffix == ".spool")
    except FileNotFoundError:
        return result
    for path in files:
        while _ingest_some(store, run_id, path, result):
            pass
    return result


def _ingest_some(store: Store, run_id: str, path: Path, result: IngestResult) -> bool:
    """One transaction's worth of one file; True if more remains."""
    with store.db.transaction() as cur:
        row = cur.execute(
            'SELECT "offset" FROM spool_offsets WHERE run_id = ? AND file = ?', (run_id, path.name)
        ).fetchone()
        offset = row[0] if row else 0
        series: dict[str, _Series] = {}
        events: list[dict[str, Any]] = []
        n = 0
        new_offset = offset
        more = False
        try:
            for end, entries in read_frames(path, offset):
                _split(entries, series, events)
                n += len(entries)
                new_offset = end
                if n >= _BATCH_ENTRIES:
                    more = True
                    break
        except FileNotFoundError:
            return False
        if new_offset == offset:
            return False
        _apply_series(cur, store, run_id, series, result)
        _apply_events(cur, store, run_id, events, result)
        cur.execute(
            'INSERT INTO spool_offsets (run_id, file, "offset") VALUES (?, ?, ?) '
            'ON CONFLICT (run_id, file) DO UPDATE SET "offset" = excluded."offset"',
            (run_id, path.name, new_offset),
        )
        cur.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time(), run_id))
        result.entries += n
        return more


def _split(entries: list[Any], series: dict[str, _Series], events: list[dict[str, Any]]) -> None:
    # the ingester's hot loop (~1 M points/s): bound appends, no attribute lookups
    appenders = {k: (a.steps.append, a.times.append, a.vals.append) for k, a in series.items()}
    get = appenders.get
    for e in entries:
        if not isinstance(e, dict):
            continue
        if KIND_KEY in e:
            events.append(e)
            continue
        t = e.pop(TIME_KEY, None)
        # a point's time is a time (shapes.TIME): NaN, inf or 1e300 (a framework's odd
        # wall time) would make the run's last_time one no server accepts
        if t.__class__ is not float or not 0.0 <= t <= MAX_TIME:
            t = float(t) if t.__class__ is int and 0 <= t <= MAX_TIME else time.time()
        s = e.pop(STEP_KEY, None)
        if s is not None and (s.__class__ is not int or not -I64 <= s < I64):
            s = None
        for k, v in e.items():
            if v.__class__ is not float:
                v = _number(k, v)
                if v is None:
                    continue
            a = get(k)
            if a is None:
                acc = series[k] = _Series()
                a = appenders[k] = (acc.steps.append, acc.times.append, acc.vals.append)
            a[0](s)
            a[1](t)
            a[2](v)


def _number(key: Any, v: Any) -> float | None:
    if isinstance(v, (int, float)) and isinstance(key, str):
        try:
            return float(v)
        except OverflowError:
            pass
    warn_once(
        f"metric-type-{key}", f"metric {key!r}: {type(v).__name__} value is not a number; skipped"
    )
    return None


def _apply_series(
    cur: Any, store: Store, run_id: str, series: dict[str, _Series], result: IngestResult
) -> None:
    for key, acc in series.items():
        append_points(cur, run_id, key, acc.steps, acc.times, acc.vals)
        result.points += len(acc.vals)


def append_points(
    cur: Any,
    run_id: str,
    key: str,
    steps: list[int | None],
    times: list[float],
    vals: list[float],
) -> None:
    """Append points (as many steps, times and values, at least one) to metric ``key``
    of the run as one new chunk, and bring its summary row (count, last, min, max,
    last step and time) up to date, in the caller's transaction ``cur``. A step of None
    is the previous step + 1. The one writer of metric points: the spool's ingester and
    the runs written from outside (records.external: the MLflow API, the importers)."""
    row = cur.execute(
        "SELECT count, last, min, max, last_step FROM metrics WHERE run_id = ? AND key = ?",
        (run_id, key),
    ).fetchone()
    count, last, vmin, vmax, last_step = row if row else (0, None, None, None, None)
    seq_row = cur.execute(
        "SELECT max(seq) FROM metric_chunks WHERE run_id = ? AND key = ?", (run_id, key)
    ).fetchone()
    seq = (seq_row[0] + 1) if seq_row and seq_row[0] is not None else 0
    prev = -1 if last_step is None else last_step
    if None in steps:  # auto steps: previous step + 1
        step_arr = array("q")
        for s in steps:
            prev = prev + 1 if s is None else s
            step_arr.append(prev)
    else:
        step_arr = array("q", steps)  # type: ignore[arg-type]  # no None here
        prev = steps[-1]
    # sum() is NaN iff a value is NaN (or +inf meets -inf): then filter, else min/max in C
    finite = vals if not math.isnan(sum(vals)) else [v for v in vals if not math.isnan(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        vmin = lo if vmin is None else min(vmin, lo)
        vmax = hi if vmax is None else max(vmax, hi)
    last_v = vals[-1]
    time_arr, val_arr = array("d", times), array("d", vals)
    if _SWAP:
        step_arr.byteswap()
        time_arr.byteswap()
        val_arr.byteswap()
    cur.execute(
        "INSERT INTO metric_chunks (run_id, key, seq, n, steps, times, vals) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (run_id, key, seq, len(vals), step_arr.tobytes(), time_arr.tobytes(), val_arr.tobytes()),
    )
    count += len(vals)
    # NaN is stored as NULL (SQLite cannot hold NaN); count > 0 with last NULL means NaN
    last_db = None if math.isnan(last_v) else last_v
    cur.execute(
        "INSERT INTO metrics (run_id, key, count, last, min, max, last_step, last_time, summary, has_summary, value) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET count = excluded.count, last = excluded.last, "
        "min = excluded.min, max = excluded.max, last_step = excluded.last_step, "
        "last_time = excluded.last_time, "
        "value = CASE WHEN metrics.has_summary = 1 THEN metrics.summary ELSE excluded.last END",
        (run_id, key, count, last_db, vmin, vmax, prev, times[-1], last_db),
    )


def _apply_events(
    cur: Any, store: Store, run_id: str, events: list[dict[str, Any]], result: IngestResult
) -> None:
    for e in events:
        kind = e.get(KIND_KEY)
        if kind == "param":
            _apply_param(cur, store, run_id, e)
        elif kind == "summary":
            apply_summary(cur, run_id, e.get("values") or {})
        elif kind == "tag":
            key, value = str(e.get("key")), str(e.get("value", ""))
            cur.execute(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                (run_id, key, value),
            )
            if key == EXPERIMENT_TAG:  # the experiment gets its MLflow id now
                adopt(cur, [value])
        elif kind == "name":
            cur.execute("UPDATE runs SET name = ? WHERE id = ?", (str(e.get("name"))[:500], run_id))
        elif kind == "media":  # an image or table, its object stored by the tracked process
            apply_media(cur, run_id, e)
        else:
            result.events.append(e)


def _apply_param(cur: Any, store: Store, run_id: str, e: dict[str, Any]) -> None:
    key, value, source = str(e.get("key")), e.get("value"), e.get("source", "inline")
    if not isinstance(value, str):
        value = json.dumps(str(value))
    if source not in SOURCE_RANK:
        source = "inline"
    row = cur.execute(
        "SELECT source, value FROM params WHERE run_id = ? AND key = ?", (run_id, key)
    ).fetchone()
    if row is not None and row[0] != source:
        key, row = _keep_both(cur, run_id, key, value, source, (str(row[0]), str(row[1])))
    have = SOURCE_RANK.get(row[0], SOURCE_RANK["inline"]) if row else -1
    if have > SOURCE_RANK[source]:
        return  # inline beats a parser (argparse, click, ...), which beats an argv guess
    if e.get("weak") and have >= SOURCE_RANK[source]:
        return  # a nested script's parsed value never replaces the command's own
    if len(value) > MAX_INLINE_VALUE:
        oid = store.objects.put_bytes(value.encode())
        value = json.dumps({"$object": oid, "size": len(value), "preview": value[:200]})
    cur.execute(
        "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, num = excluded.num, "
        "source = excluded.source",
        (run_id, key, value, numeric(value), source),
    )
    if source in PARSERS:
        cur.execute("DELETE FROM params WHERE run_id = ? AND source = 'argv'", (run_id,))


def _keep_both(
    cur: Any, run_id: str, key: str, value: str, source: str, have: tuple[str, str]
) -> tuple[str, Any]:
    """Where a framework and another source disagree on one name, the framework's value
    goes under ``<framework>.<name>`` and the bare name stays with the other
    (capture.params.INTEGRATION_SOURCES): neither value is lost, and a diff does not
    show a change that depends on which of them reported last. Returns the key to
    write and the row already under it."""
    old_source, old_value = have
    if source in INTEGRATION_SOURCES:
        aside = f"{source}.{key}"
        prior = cur.execute(
            "SELECT source, value FROM params WHERE run_id = ? AND key = ?", (run_id, aside)
        ).fetchone()
        if prior is not None or not _same_value(old_value, value):
            return aside, prior  # (a later report of the framework updates its own key)
        return key, have
    if old_source in INTEGRATION_SOURCES and not _same_value(old_value, value):
        # the framework reported first: its value moves aside, the name is this source's
        cur.execute(
            "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, key) DO NOTHING",
            (run_id, f"{old_source}.{key}", old_value, numeric(old_value), old_source),
        )
        cur.execute("DELETE FROM params WHERE run_id = ? AND key = ?", (run_id, key))
        return key, None
    return key, have


def _same_value(a: str, b: str) -> bool:
    """Equal JSON texts, or equal numbers (``100`` and ``100.0``)."""
    if a == b:
        return True
    x, y = numeric(a), numeric(b)
    return x is not None and y is not None and x == y


def apply_summary(cur: Any, run_id: str, values: dict[str, Any]) -> None:
    """Set summary values (``runbase.summary``) of the run in the caller's transaction;
    what is not a number is skipped. Shared with records.external (the importers)."""
    for key, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        v = float(v)
        db_v = None if math.isnan(v) else v
        cur.execute(
            "INSERT INTO metrics (run_id, key, count, last, min, max, summary, has_summary, value) "
            "VALUES (?, ?, 0, ?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (run_id, key) DO UPDATE SET summary = excluded.summary, has_summary = 1, "
            "value = excluded.summary, "
            # a summary-only key's last/min/max are its (latest) summary (docs/run-record.md)
            "last = CASE WHEN metrics.count = 0 THEN excluded.last ELSE metrics.last END, "
            "min = CASE WHEN metrics.count = 0 THEN excluded.min ELSE metrics.min END, "
            "max = CASE WHEN metrics.count = 0 THEN excluded.max ELSE metrics.max END",
            (run_id, str(key), db_v, db_v, db_v, db_v, db_v),
        )


def remove_spool(store: Store, run_id: str) -> None:
    """Delete a finalized run's spool directory and its offsets."""
    shutil.rmtree(store.spool_dir(run_id), ignore_errors=True)
    store.db.execute("DELETE FROM spool_offsets WHERE run_id = ?", (run_id,))


def spool_mtime(store: Store, run_id: str) -> float | None:
    try:
        return max((p.stat().st_mtime for p in store.spool_dir(run_id).iterdir()), default=None)
    except OSError:
        return None


_SMALL_CHUNK = 1 << 16  # points; chunks below this are merged at finalization
_CHUNK_POINTS = 1 << 20


def compact(store: Store, run_id: str) -> None:
    """Merge runs of small chunks (one per key per ingest, e.g. one point a second for
    hours) into chunks of up to 1 Mi points, so reading a long run's series is a few
    rows, not thousands. Streams: memory stays bounded by one output chunk."""
    keys = store.db.query(
        "SELECT key FROM metric_chunks WHERE run_id = ? AND n < ? GROUP BY key HAVING count(*) > 1",
        (run_id, _SMALL_CHUNK),
    )
    for (key,) in keys:
        with store.db.transaction() as cur:
            _compact_key(cur, run_id, key)


def _compact_key(cur: Any, run_id: str, key: str) -> None:
    top = cur.execute(
        "SELECT max(seq) FROM metric_chunks WHERE run_id = ? AND key = ?", (run_id, key)
    ).fetchone()[0]
    base = top + 1  # new chunks are written above the old ones, then renumbered
    out_seq = base
    buf: list[tuple[int, bytes, bytes, bytes]] = []
    buffered = 0

    def emit() -> None:
        nonlocal out_seq, buf, buffered
        if buf:
            cur.execute(
                "INSERT INTO metric_chunks (run_id, key, seq, n, steps, times, vals) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    key,
                    out_seq,
                    buffered,
                    b"".join(b[1] for b in buf),
                    b"".join(b[2] for b in buf),
                    b"".join(b[3] for b in buf),
                ),
            )
            out_seq += 1
            buf, buffered = [], 0

    for seq in range(base):
        row = cur.execute(
            "SELECT n, steps, times, vals FROM metric_chunks WHERE run_id = ? AND key = ? AND seq = ?",
            (run_id, key, seq),
        ).fetchone()
        if row is None:
            continue
        if buffered and buffered + row[0] > _CHUNK_POINTS:
            emit()
        buf.append(row)
        buffered += row[0]
    emit()
    cur.execute(
        "DELETE FROM metric_chunks WHERE run_id = ? AND key = ? AND seq < ?", (run_id, key, base)
    )
    cur.execute(
        "UPDATE metric_chunks SET seq = seq - ? WHERE run_id = ? AND key = ?", (base, run_id, key)
    )
