"""One metric of one run as a chart draws it: downsampled on the server."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any

from runbase.errors import NotFound, UsageError
from runbase.records.read import resolve
from runbase.records.series import series_count, series_points
from runbase.store import Store

DEFAULT_POINTS = 1000
MAX_POINTS = 10_000


def downsample(
    steps: Iterable[int], values: Iterable[float], points: int
) -> tuple[list[int], list[float | None], list[float | None], list[float | None]]:
    """At most ``points`` buckets of consecutive points (in logging order, equal
    counts): ``(steps, values, min, max)`` with the step of each bucket's first point,
    the mean, the minimum and the maximum of its finite values (None when it has none).
    Short series come back whole (min = max = value); NaN and infinities become None.
    """
    st = steps if isinstance(steps, array) else array("q", steps)
    va = values if isinstance(values, array) else array("d", values)
    n = len(va)
    if n <= points:
        vs = [v if math.isfinite(v) else None for v in va]
        return list(st), vs, list(vs), list(vs)
    isfinite = math.isfinite
    out_s: list[int] = []
    out_v: list[float | None] = []
    out_lo: list[float | None] = []
    out_hi: list[float | None] = []
    for i in range(points):
        a, b = i * n // points, (i + 1) * n // points
        chunk = va[a:b]
        total = sum(chunk)
        if isfinite(total):  # no NaN, no infinity: the fast path
            lo, hi, mean = min(chunk), max(chunk), total / (b - a)
        else:
            fin = [x for x in chunk if isfinite(x)]
            if fin:
                lo, hi = min(fin), max(fin)
                mean = sum(fin) / len(fin)
                if not isfinite(mean):  # finite values whose sum overflows
                    mean = sum(x / len(fin) for x in fin)
            else:
                lo = hi = mean = None
        out_s.append(st[a])
        out_v.append(mean)
        out_lo.append(lo)
        out_hi.append(hi)
    return out_s, out_v, out_lo, out_hi


def metric_series(
    store: Store,
    ref: str,
    key: str,
    points: int = DEFAULT_POINTS,
    since_step: int | None = None,
) -> dict[str, Any]:
    """One metric of one run, downsampled on the server to at most ``points`` buckets:
    ``{run, key, count, returned, downsampled, since_step, last_step, steps, values,
    min, max}`` (see :func:`downsample`). ``since_step``: only the points whose step is
    greater (live polling; pass the previous answer's ``last_step``)."""
    if not 2 <= points <= MAX_POINTS:
        raise UsageError(f"points must be between 2 and {MAX_POINTS}")
    run_id = resolve(store, ref)
    count = series_count(store, run_id, key)
    if count is None:
        raise NotFound(f"run {run_id} has no metric {key!r}")
    steps, vals = series_points(store, run_id, key, since_step)
    s, v, lo, hi = downsample(steps, vals, points)
    return {
        "run": run_id,
        "key": key,
        "count": count,
        "returned": len(s),
        "downsampled": len(s) < len(vals),
        "since_step": since_step,
        "last_step": steps[-1] if len(steps) else since_step,
        "steps": s,
        "values": v,
        "min": lo,
        "max": hi,
    }
