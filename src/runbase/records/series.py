"""A run's logged metric points (the ``metrics`` and ``metric_chunks`` tables), read for
charts: which keys have points, the points of one key after a step, and the points of
one key of many runs at once (the chart panel)."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator
from typing import Any, NamedTuple

from runbase.core.shapes import fit_row
from runbase.store import Store


def series_keys(store: Store, run_id: str) -> list[dict[str, Any]]:
    """``[{key, count}]``: the metrics of a run that have logged points."""
    rows = store.db.query(
        "SELECT key, count FROM metrics WHERE run_id = ? AND count > 0 ORDER BY key", (run_id,)
    )
    return [{"key": k, "count": n} for k, n in rows]


def series_count(store: Store, run_id: str, key: str) -> int | None:
    """How many points metric ``key`` of the run has (None: the run has no such metric)."""
    row = store.db.query_one(
        "SELECT count FROM metrics WHERE run_id = ? AND key = ?", (run_id, key)
    )
    if row is None:
        return None
    count: int | None = fit_row("metrics", {"count": row[0]})["count"]  # whatever is stored
    return count or 0


def series_points(
    store: Store, run_id: str, key: str, since_step: int | None = None
) -> tuple[array[int], array[float]]:
    """The steps and values of metric ``key`` in logging order (only the points whose
    step is greater than ``since_step``, when given): no times, no per-point objects,
    as a chart of millions of points reads them."""
    steps: array[int] = array("q")
    vals: array[float] = array("d")
    rows = store.db.query(
        "SELECT steps, vals FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq",
        (run_id, key),
    )
    swap = sys.byteorder == "big"
    for b_steps, b_vals in rows:
        s: array[int] = array("q")
        v: array[float] = array("d")
        s.frombytes(b_steps)
        v.frombytes(b_vals)
        if swap:
            s.byteswap()
            v.byteswap()
        if since_step is not None and len(s):
            if max(s) <= since_step:
                continue
            if min(s) <= since_step:  # a chunk straddling since_step: keep the later points
                keep = [i for i, st in enumerate(s) if st > since_step]
                s = array("q", [s[i] for i in keep])
                v = array("d", [v[i] for i in keep])
        steps.extend(s)
        vals.extend(v)
    return steps, vals


# -- many runs of one key at once (the chart panel) -----------------------------------------

MAX_IDS = 500  # run ids per `IN (...)`: well under SQLite's variable limit (999 before 3.32)
# points read by one query: 100 runs x 10,000 points is one query; a few runs of millions
# of points each are read a few runs at a time, so one request never holds them all
MAX_QUERY_POINTS = 4_000_000


class RunPoints(NamedTuple):
    """One run's points of one metric, in logging order, as the stored bytes: ``xs`` the
    steps (int64) or the times (float64, epoch seconds), as asked, and ``vals``
    (float64), both little-endian, as many 8-byte values in each."""

    run_id: str
    xs: bytes
    vals: bytes


X_COLUMNS = ("steps", "times")


def series_counts(
    store: Store, run_ids: list[str], keys: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """``{key: {run_id: count}}``: the metrics with logged points among ``run_ids``
    (only ``keys``, when given), as the ``metrics`` table counts them."""
    out: dict[str, dict[str, int]] = {}
    key_sql = f" AND key IN ({','.join('?' * len(keys))})" if keys else ""
    if keys is not None and not keys:
        return out
    for lo in range(0, len(run_ids), MAX_IDS):
        chunk = run_ids[lo : lo + MAX_IDS]
        q = (
            f"SELECT run_id, key, count FROM metrics WHERE run_id IN ({','.join('?' * len(chunk))})"
            f"{key_sql} AND count > 0"
        )
        for run_id, key, count in store.db.query(q, [*chunk, *(keys or [])]):
            if isinstance(key, str) and isinstance(count, int):  # what a store holds: checked
                out.setdefault(key, {})[run_id] = count
    return out


def series_many(
    store: Store, key: str, counts: dict[str, int], x: str = "steps"
) -> Iterator[RunPoints]:
    """The points of metric ``key`` of each run of ``counts`` (``{run_id: count}``, as
    :func:`series_counts` gives; the runs come back in that order, a run without points
    left out), with their ``x``: ``steps`` or ``times``. One query for all of them
    (``run_id IN (...)``), or one per :data:`MAX_QUERY_POINTS` points; only the columns
    asked for are read. A chunk whose blobs disagree (not whole 8-byte values, not as
    many in each) is skipped: a store is not trusted."""
    if x not in X_COLUMNS:
        raise ValueError(f"x must be one of {X_COLUMNS}, not {x!r}")
    batch: list[str] = []
    size = 0
    for run_id, count in counts.items():
        if batch and (len(batch) >= MAX_IDS or size + count > MAX_QUERY_POINTS):
            yield from _read_batch(store, key, batch, x)
            batch, size = [], 0
        batch.append(run_id)
        size += max(count, 0)
    if batch:
        yield from _read_batch(store, key, batch, x)


def _read_batch(store: Store, key: str, run_ids: list[str], x: str) -> Iterator[RunPoints]:
    q = (
        f"SELECT run_id, {x}, vals FROM metric_chunks WHERE key = ? "
        f"AND run_id IN ({','.join('?' * len(run_ids))}) ORDER BY run_id, seq"
    )
    parts: dict[str, tuple[list[bytes], list[bytes]]] = {}
    for run_id, b_xs, b_vals in store.db.query(q, [key, *run_ids]):
        if not (isinstance(b_xs, bytes) and isinstance(b_vals, bytes)):
            continue
        if len(b_vals) % 8 or len(b_xs) != len(b_vals):
            continue
        xs, vals = parts.setdefault(run_id, ([], []))
        xs.append(b_xs)
        vals.append(b_vals)
    for run_id in run_ids:
        if run_id in parts:
            xs, vals = parts.pop(run_id)
            # one chunk (a finished run's usual): join returns that very object, no copy
            yield RunPoints(run_id, b"".join(xs), b"".join(vals))
