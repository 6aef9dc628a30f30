"""The chart panel of the runs page: every metric of the runs in the table's filter and
order, one downsampled series per run and metric, and, grouped, each group's mean with
a band (docs/api.md, ``GET /api/panel``).

numpy (the ``ui`` extra) does the arithmetic: a panel of 100 runs x 5 metrics x 10,000
points is 5,000,000 points to reduce per request. The points of one metric of all runs
are read by one query (:func:`runbase.records.series.series_many`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from runbase.capture.params import jsonable
from runbase.capture.sysmetrics import is_system_metric
from runbase.errors import RunbaseError, UsageError
from runbase.records.record import run_row
from runbase.records.series import MAX_QUERY_POINTS, RunPoints, series_counts, series_many
from runbase.render.views.code import UI_INSTALL_HINT
from runbase.render.views.runs import list_page
from runbase.store import Store

DEFAULT_PANEL_RUNS = 100
MAX_PANEL_RUNS = 500
DEFAULT_PANEL_POINTS = 200
MIN_PANEL_POINTS = 10
MAX_PANEL_POINTS = 2000
DEFAULT_PANEL_METRICS = 24  # metrics charted when none are asked for
MAX_PANEL_METRICS = 100  # metrics that may be asked for
# buckets in one answer (500 runs x 25 metrics x 200 points; ~100 MB of JSON): 500 runs x
# 24 metrics x 2,000 points would be 1 GB, which no page can draw and no server should
# build
MAX_PANEL_BUCKETS = 2_500_000
X_MODES = ("step", "time", "relative")
BANDS = ("minmax", "sd")
GROUP_FIELDS = ("status", "user", "sweep")  # + params.KEY, tags.KEY
NO_GROUP = "(none)"
# a run's series is kept for its group's chart as at most this many points per bucket of
# the answer (bucket means beyond that): a group of 500 runs of 1,000,000 points each
# must not hold 8 GB
GROUP_DETAIL = 4


def chart_panel(
    store: Store,
    where: str | None = None,
    sort: str | None = None,
    runs: int = DEFAULT_PANEL_RUNS,
    offset: int = 0,
    sweep: str | None = None,
    hybrids: bool = True,
    exclude: Iterable[str] | str | None = (),
    metrics: Iterable[str] | str | None = None,
    points: int = DEFAULT_PANEL_POINTS,
    x: str = "step",
    group_by: str | None = None,
    band: str = "minmax",
    bounds: bool = True,
) -> dict[str, Any]:
    """The chart panel of the first ``runs`` runs (1..500) from ``offset`` of the runs
    table filtered by ``where`` (+ ``sweep``, ``hybrids`` as :func:`runs_page`) in
    ``sort`` order, less the ids in ``exclude``.

    ``{"x", "total", "runs": [row + "group"], "metrics": [{"key", "series": [{"run",
    "x", "y", "min", "max", "count", "downsampled"}], "groups": [{"group", "runs", "x",
    "mean", "lo", "hi"}]}], "missing", "notes"}`` (docs/api.md). ``metrics``: the keys to
    chart (default: every non-``sys/*`` key a shown run logged points of, sorted, at most
    24); one no shown run has is listed in ``missing``. ``points`` (10..2000): buckets per
    series. ``x``: ``step``, ``time`` (epoch seconds) or ``relative`` (seconds since the
    run started). ``group_by``: ``params.KEY``, ``tags.KEY``, ``status``, ``user`` or
    ``sweep``; ``band``: ``minmax`` or ``sd``. ``bounds=False`` leaves each series'
    ``min`` and ``max`` out (a line chart draws the means alone: half the answer).
    ``exclude`` and ``metrics`` may be given as
    comma-separated strings. An answer of over :data:`MAX_PANEL_BUCKETS` buckets in all
    is refused (:class:`UsageError`)."""
    _check_range("runs", runs, 1, MAX_PANEL_RUNS)
    _check_range("offset", offset, 0, None)
    _check_range("points", points, MIN_PANEL_POINTS, MAX_PANEL_POINTS)
    if x not in X_MODES:
        raise UsageError(f"unknown x {x!r}: use {', '.join(X_MODES)}")
    if band not in BANDS:
        raise UsageError(f"unknown band {band!r}: use {' or '.join(BANDS)}")
    group_key = _group_key(group_by)
    hidden = set(_names("exclude", exclude or ()))
    asked = _asked(metrics)
    np = _numpy()

    page = list_page(store, where, sort, runs, offset, sweep, hybrids)
    rows = [r for r in page.rows if r["id"] not in hidden]
    groups = {r["id"]: _group_of(r, group_key) for r in rows} if group_key else {}
    counts = series_counts(store, [r["id"] for r in rows], asked)
    if asked is None:
        keys = sorted(k for k in counts if not is_system_metric(k))[:DEFAULT_PANEL_METRICS]
        missing = []
    else:
        keys = [k for k in asked if k in counts]
        missing = [k for k in asked if k not in counts]
    # in table order, as the series come back
    by_key = {k: {r["id"]: counts[k][r["id"]] for r in rows if r["id"] in counts[k]} for k in keys}
    _check_size(by_key, points)
    origins = {r["id"]: _number(r.get("started_at")) for r in rows}
    charts = [_metric(np, store, k, by_key[k], x, points, origins, groups, band) for k in keys]
    if not bounds:
        for chart in charts:
            for series in chart["series"]:
                del series["min"], series["max"]
    out_rows = jsonable([run_row(r) for r in rows])
    for row in out_rows:
        row["group"] = groups.get(row["id"]) if group_key else None
    return {
        "x": x,
        "total": page.total,
        "runs": out_rows,
        "metrics": charts,
        "missing": missing,
        "notes": page.notes or [],
    }


# -- arguments -----------------------------------------------------------------------------


def _check_range(name: str, value: Any, lo: int, hi: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{name} must be an integer (got {value!r})")
    if value < lo or (hi is not None and value > hi):
        raise UsageError(
            f"{name} must be between {lo} and {hi} (got {value})"
            if hi is not None
            else f"{name} must be {lo} or more (got {value})"
        )


def _check_size(by_key: dict[str, dict[str, int]], points: int) -> None:
    buckets = sum(min(n, points) for counts in by_key.values() for n in counts.values())
    if buckets > MAX_PANEL_BUCKETS:
        raise UsageError(
            f"this panel would be {buckets:,} buckets (at most {MAX_PANEL_BUCKETS:,}): "
            "ask for fewer runs, metrics or points"
        )


def _names(what: str, values: Iterable[str] | str) -> list[str]:
    """Names given as a list or a comma-separated string, blanks dropped."""
    if isinstance(values, str):
        values = values.split(",")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise UsageError(f"{what} must be strings (got {v!r})")
        if v.strip():
            out.append(v.strip())
    return out


def _asked(metrics: Iterable[str] | str | None) -> list[str] | None:
    """The metric keys asked for, once each, in order (None: the default)."""
    if metrics is None:
        return None
    asked = list(dict.fromkeys(_names("metrics", metrics)))
    if len(asked) > MAX_PANEL_METRICS:
        raise UsageError(f"at most {MAX_PANEL_METRICS} metrics (got {len(asked)})")
    return asked


def _group_key(group_by: str | None) -> tuple[str, str] | None:
    """``(field, key)``: ``("params", "lr")``, ``("status", "")``; None: no grouping."""
    if group_by is None or not group_by.strip():
        return None
    gb = group_by.strip()
    if gb in GROUP_FIELDS:
        return gb, ""
    scope, dot, key = gb.partition(".")
    if scope in ("params", "tags") and dot and key:
        return scope, key
    raise UsageError(
        f"cannot group by {group_by!r}: use params.KEY, tags.KEY, status, user or sweep"
    )


def _numpy() -> Any:
    try:
        import numpy  # lazy: optional (the ui extra), and heavy for the views' importers
    except ImportError as e:
        raise RunbaseError(f"the chart panel needs numpy: {UI_INSTALL_HINT}") from e
    return numpy


# -- runs and groups -----------------------------------------------------------------------


def _group_of(r: dict[str, Any], group_key: tuple[str, str]) -> str:
    """The run's group: its value as a string (a parameter's as JSON writes it: ``0.1``,
    ``true``), or ``(none)`` when it has none."""
    field, key = group_key
    if field in ("params", "tags"):
        values = r.get(field) or {}
        value = values.get(key) if isinstance(values, dict) else None
    else:
        value = r.get({"user": "user_name", "sweep": "sweep_id"}.get(field, field))
    if value is None:
        return NO_GROUP
    v = jsonable(value)
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _group_order(name: str) -> tuple[int, float, str]:
    """Groups sorted as their values: numbers by value, then text, then ``(none)``."""
    if name == NO_GROUP:
        return (2, 0.0, name)
    try:
        num = float(name)
    except ValueError:
        return (1, 0.0, name)
    return (0, num, name) if math.isfinite(num) else (1, 0.0, name)


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


# -- one metric ----------------------------------------------------------------------------


def _metric(
    np: Any,
    store: Store,
    key: str,
    counts: dict[str, int],
    x: str,
    points: int,
    origins: dict[str, float | None],
    groups: dict[str, str],
    band: str,
) -> dict[str, Any]:
    series: list[dict[str, Any]] = []
    kept: dict[str, list[tuple[str, Any, Any, Any]]] = {}  # group -> [(run, x, y, weight)]
    batch: list[RunPoints] = []
    size = 0

    def flush() -> None:
        nonlocal size
        detail = GROUP_DETAIL * points if groups else 0
        for out, d in _downsample_many(np, batch, x, points, origins, detail):
            series.append(out)
            if d is not None:
                kept.setdefault(groups[out["run"]], []).append((out["run"], *d))
        batch.clear()
        size = 0

    for pts in series_many(store, key, counts, "steps" if x == "step" else "times"):
        batch.append(pts)
        size += len(pts.vals) // 8
        if size >= MAX_QUERY_POINTS:  # memory: as the reader, a few runs at a time
            flush()
    flush()
    out: dict[str, Any] = {"key": key, "series": series}
    if groups:
        out["groups"] = [
            _group(np, name, kept[name], points, band) for name in sorted(kept, key=_group_order)
        ]
    return out


def _nullable(np: Any, a: Any) -> list[Any]:
    """A list for JSON: NaN and infinities as None."""
    if a.dtype.kind in "iu":
        return list(a.tolist())
    finite = np.isfinite(a)
    if finite.all():
        return list(a.tolist())
    out = a.astype(object)
    out[~finite] = None
    return list(out.tolist())


def _downsample_many(
    np: Any,
    runs: list[RunPoints],
    x: str,
    points: int,
    origins: dict[str, float | None],
    detail: int = 0,
) -> list[tuple[dict[str, Any], tuple[Any, Any, Any] | None]]:
    """Each run's series in at most ``points`` buckets of consecutive points (equal
    counts, as :func:`runbase.render.views.metrics.downsample`): each bucket's first x,
    and the mean, minimum and maximum of its finite values (None without any); a run of
    ``points`` points or fewer comes whole. With ``detail``, also each run's points for
    its group (:func:`_detail`), else None.

    The runs are reduced together (their points end to end, one ``reduceat`` for all)
    and listed together: per-run numpy calls on arrays of 200 would cost more than the
    arithmetic."""
    runs = [r for r in runs if r.vals]  # a run whose chunks were all unreadable
    if not runs:
        return []
    ys = np.frombuffer(b"".join(r.vals for r in runs), dtype="<f8")
    ns = np.array([len(r.vals) // 8 for r in runs], dtype=np.int64)
    starts, b_ends = _buckets(np, ns, points)
    xs, bucket_x, origin = _x_values(np, runs, ns, starts, b_ends, x, origins, detail > 0)
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.add.reduceat(ys, starts)
        mean = total / np.diff(starts, append=len(ys))
        lo = np.minimum.reduceat(ys, starts)
        hi = np.maximum.reduceat(ys, starts)
        # a NaN or an infinity in the bucket (or a sum that overflows): its finite
        # values alone, one bucket at a time (rare)
        for i in np.flatnonzero(~np.isfinite(total)):
            chunk = ys[starts[i] : starts[i + 1] if i + 1 < len(starts) else len(ys)]
            chunk = chunk[np.isfinite(chunk)]
            if len(chunk):
                mean[i] = np.sum(chunk / len(chunk))
                lo[i], hi[i] = chunk.min(), chunk.max()
            else:
                mean[i] = lo[i] = hi[i] = np.nan
    bx, by = _nullable(np, bucket_x), _nullable(np, mean)
    blo, bhi = _nullable(np, lo), _nullable(np, hi)
    details = _detail(np, xs, ys, ns, detail, origin) if detail else [None] * len(runs)
    out = []
    a = 0
    for k, r in enumerate(runs):
        b = int(b_ends[k])
        n = int(ns[k])
        whole = n <= points
        y = by[a:b]
        series = {
            "run": r.run_id,
            "x": bx[a:b],
            "y": y,
            "min": y if whole else blo[a:b],
            "max": y if whole else bhi[a:b],
            "count": n,
            "downsampled": not whole,
        }
        out.append((series, details[k]))
        a = b
    return out


def _x_values(
    np: Any,
    runs: list[RunPoints],
    ns: Any,
    starts: Any,
    b_ends: Any,
    x: str,
    origins: dict[str, float | None],
    every: bool,
) -> tuple[Any, Any, Any]:
    """``(xs, bucket_x, origin)``: the x of every point as stored (only when ``every``,
    else None), the x of each bucket's first point (``relative``: minus its run's
    :func:`_origin`), and each run's origin (None unless ``relative``). Without ``every``
    the x column is not copied whole: only its buckets' values are taken."""
    dtype = "<i8" if x == "step" else "<f8"
    bs = np.diff(b_ends, prepend=0)
    xs = None
    if every:
        xs = np.frombuffer(b"".join(r.xs for r in runs), dtype=dtype)
        bucket_x = xs[starts]
    else:
        first = np.repeat(np.cumsum(ns) - ns, bs)  # each bucket's run's first point
        at = starts - first
        bounds = [0, *b_ends.tolist()]
        bucket_x = np.concatenate(
            [
                np.frombuffer(r.xs, dtype=dtype)[at[bounds[k] : bounds[k + 1]]]
                for k, r in enumerate(runs)
            ]
        )
    origin = None
    if x == "relative":
        origin = np.array([_origin(np, r, origins.get(r.run_id)) for r in runs])
        bucket_x = bucket_x - np.repeat(origin, bs)
    return xs, bucket_x, origin


def _buckets(np: Any, ns: Any, limit: int) -> tuple[Any, Any]:
    """Runs of ``ns`` points each (> 0), end to end, in buckets of consecutive points:
    ``min(n, limit)`` equal ones per run. ``(starts, ends)``: where each bucket starts in
    the whole, and where each run's buckets end in the list of buckets."""
    bs = np.minimum(ns, limit)
    b_ends = np.cumsum(bs)
    j = np.arange(int(b_ends[-1]), dtype=np.int64) - np.repeat(b_ends - bs, bs)
    starts = np.repeat(np.cumsum(ns) - ns, bs) + j * np.repeat(ns, bs) // np.repeat(bs, bs)
    return starts, b_ends


def _origin(np: Any, r: RunPoints, started: float | None) -> float:
    """Where a run's relative time starts: its start, else its first point's time."""
    if started is not None:
        return started
    t = np.frombuffer(r.xs, dtype="<f8")
    finite = t[np.isfinite(t)]
    return float(finite[0]) if len(finite) else 0.0


def _detail(
    np: Any, xs: Any, ys: Any, ns: Any, limit: int, origin: Any
) -> list[tuple[Any, Any, Any]]:
    """Each run's points (``ns`` of them each, end to end) for its group's chart:
    ``(x, y, weight)`` of its points with a finite x and y (x minus its run's ``origin``
    when given); beyond ``limit`` points, the means of ``limit`` buckets of consecutive
    points, each weighing as many points as it averages (a bin's weighted mean of them
    is the mean of those points)."""
    starts, b_ends = _buckets(np, ns, limit)
    f8 = np.float64
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ok = np.isfinite(ys) & (np.isfinite(xs) if xs.dtype.kind == "f" else True)
        if ok.all():  # the usual: no NaN anywhere, no mask to apply
            w = np.diff(starts, append=len(ys)).astype(f8)
            mx = np.add.reduceat(xs, starts, dtype=f8) / w
            my = np.add.reduceat(ys, starts) / w
        else:
            w = np.add.reduceat(ok, starts, dtype=f8)
            mx = np.add.reduceat(np.where(ok, xs, 0), starts, dtype=f8) / w
            my = np.add.reduceat(np.where(ok, ys, 0.0), starts) / w
        if origin is not None:
            mx -= np.repeat(origin, np.diff(b_ends, prepend=0))
    keep = (w > 0) & np.isfinite(mx) & np.isfinite(my)
    out = []
    a = 0
    for b in b_ends.tolist():
        k = keep[a:b]
        out.append((mx[a:b][k], my[a:b][k], w[a:b][k]))
        a = b
    return out


def _group(
    np: Any, name: str, members: list[tuple[str, Any, Any, Any]], points: int, band: str
) -> dict[str, Any]:
    """The group's runs binned onto one grid of ``points`` equal bins over their x range
    (each run's mean in each bin), then across the runs of each bin: the mean, and the
    runs' min and max (``minmax``) or the mean -+ their standard deviation (``sd``). A
    bin no run has a point in is left out; a bin's x is the mean x of its points."""
    out: dict[str, Any] = {"group": name, "runs": [m[0] for m in members]}
    sizes = [len(m[1]) for m in members]
    if not sum(sizes):
        return {**out, "x": [], "mean": [], "lo": [], "hi": []}
    mx, my, w = (np.concatenate([m[i] for m in members]) for i in (1, 2, 3))
    lo_x = float(mx.min())
    span = float(mx.max()) - lo_x
    rel = mx - lo_x  # sums of offsets: epoch seconds lose less precision
    if span > 0 and math.isfinite(span):
        idx = np.minimum((rel * (points / span)).astype(np.int64), points - 1)
    else:
        idx = np.zeros(len(rel), dtype=np.int64)
    cells = np.repeat(np.arange(len(members), dtype=np.int64) * points, sizes) + idx
    size = len(members) * points
    weight = np.bincount(cells, weights=w, minlength=size).reshape(len(members), points)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        means = np.bincount(cells, weights=my * w, minlength=size).reshape(weight.shape) / weight
        means[~np.isfinite(means)] = np.nan  # no point there, or a sum that overflowed
        used = ~np.isnan(means).all(axis=0)
        m = means[:, used]
        mean = np.nanmean(m, axis=0)
        if band == "sd":
            sd = np.nanstd(m, axis=0)
            lo, hi = mean - sd, mean + sd
        else:
            lo, hi = np.nanmin(m, axis=0), np.nanmax(m, axis=0)
        x_mean = (
            np.bincount(idx, weights=rel * w, minlength=points)[used] / weight.sum(axis=0)[used]
        )
    return {
        **out,
        "x": _nullable(np, x_mean + lo_x),
        "mean": _nullable(np, mean),
        "lo": _nullable(np, lo),
        "hi": _nullable(np, hi),
    }
