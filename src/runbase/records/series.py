"""A run's logged metric points (the ``metrics`` and ``metric_chunks`` tables), read for
charts: which keys have points, and the points of one key after a step."""

from __future__ import annotations

import sys
from array import array
from typing import Any

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
