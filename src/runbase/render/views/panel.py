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
from runbase.records.series import RunPoints, series_counts, series_many
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
    exclude: Iterable[str] | str = (),
    metrics: Iterable[str] | str | None = None,
    points: int = DEFAULT_PANEL_POINTS,
    x: str = "step",
    group_by: str | None = None,
    band: str = "minmax",
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
    ``sweep``; ``band``: ``minmax`` or ``sd``. ``exclude`` and ``metrics`` may be given as
    comma-separated strings."""
    _check_range("runs", runs, 1, MAX_PANEL_RUNS)
    _check_range("offset", offset, 0, None)
    _check_range("points", points, MIN_PANEL_POINTS, MAX_PANEL_POINTS)
    if x not in X_MODES:
        raise UsageError(f"unknown x {x!r}: use {', '.join(X_MODES)}")
    if band not in BANDS:
        raise UsageError(f"unknown band {band!r}: use {' or '.join(BANDS)}")
    group_key = _group_key(group_by)
    hidden = set(_names("exclude", exclude))
    asked = None if metrics is None else list(dict.fromkeys(_names("metrics", metrics)))
    if asked is not None and len(asked) > MAX_PANEL_METRICS:
        raise UsageError(f"at most {MAX_PANEL_METRICS} metrics (got {len(asked)})")
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
    origins = {r["id"]: _number(r.get("started_at")) for r in rows}
    charts = []
    for key in keys:
        # in table order, as the series come back
        by_run = {r["id"]: counts[key][r["id"]] for r in rows if r["id"] in counts[key]}
        charts.append(_metric(np, store, key, by_run, x, points, origins, groups, band))
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
    series = []
    kept: dict[str, list[tuple[str, Any, Any, Any]]] = {}  # group -> [(run, x, y, weight)]
    for pts in series_many(store, key, counts, times=x != "step"):
        xs, ys = _xy(np, pts, x, origins.get(pts.run_id))
        series.append({"run": pts.run_id, **_downsample(np, xs, ys, points)})
        if groups:
            kept.setdefault(groups[pts.run_id], []).append(
                (pts.run_id, *_detail(np, xs, ys, GROUP_DETAIL * points))
            )
    out: dict[str, Any] = {"key": key, "series": series}
    if groups:
        out["groups"] = [
            _group(np, name, kept[name], points, band) for name in sorted(kept, key=_group_order)
        ]
    return out


def _xy(np: Any, pts: RunPoints, x: str, origin: float | None) -> tuple[Any, Any]:
    """The run's x values (steps, epoch seconds, or seconds since its start: since its
    first point when its start is not known) and y values, as stored (little-endian)."""
    ys = np.frombuffer(pts.vals, dtype="<f8")
    if x == "step" or pts.times is None:
        return np.frombuffer(pts.steps, dtype="<i8"), ys
    t = np.frombuffer(pts.times, dtype="<f8")
    if x == "time":
        return t, ys
    if origin is None:
        finite = t[np.isfinite(t)]
        origin = float(finite[0]) if len(finite) else 0.0
    return t - origin, ys


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


def _downsample(np: Any, xs: Any, ys: Any, points: int) -> dict[str, Any]:
    """At most ``points`` buckets of consecutive points (equal counts, as
    :func:`runbase.render.views.metrics.downsample`): each bucket's first x, and the
    mean, minimum and maximum of its finite values (None without any)."""
    n = len(ys)
    if n <= points:
        y = _nullable(np, ys)
        return {"x": _nullable(np, xs), "y": y, "min": y, "max": y, "count": n,
                "downsampled": False}  # fmt: skip
    starts = np.arange(points, dtype=np.int64) * n // points
    finite = np.isfinite(ys)
    count = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.add.reduceat(np.where(finite, ys, 0.0), starts) / count
        lo = np.minimum.reduceat(np.where(finite, ys, np.inf), starts)
        hi = np.maximum.reduceat(np.where(finite, ys, -np.inf), starts)
        overflow = ~np.isfinite(mean) & (count > 0)
        for i in np.flatnonzero(overflow):  # finite values whose sum overflows: rare
            b = starts[i + 1] if i + 1 < points else n
            chunk = ys[starts[i] : b]
            chunk = chunk[np.isfinite(chunk)]
            mean[i] = np.sum(chunk / len(chunk))
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return {
        "x": _nullable(np, xs[starts]),
        "y": _nullable(np, mean),
        "min": _nullable(np, lo),
        "max": _nullable(np, hi),
        "count": n,
        "downsampled": True,
    }


def _detail(np: Any, xs: Any, ys: Any, limit: int) -> tuple[Any, Any, Any]:
    """The run's points with a finite x and y, as ``(x, y, weight)``; beyond ``limit``
    points, the means of ``limit`` buckets of consecutive points, each weighing as many
    points as it averages (so a bin's mean of them is the mean of those points)."""
    xs = xs.astype(np.float64)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if len(ys) <= limit:
        return xs[ok], ys[ok], np.ones(int(ok.sum()))
    starts = np.arange(limit, dtype=np.int64) * len(ys) // limit
    w = np.add.reduceat(ok.astype(np.float64), starts)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mx = np.add.reduceat(np.where(ok, xs, 0.0), starts) / w
        my = np.add.reduceat(np.where(ok, ys, 0.0), starts) / w
    keep = (w > 0) & np.isfinite(mx) & np.isfinite(my)
    return mx[keep], my[keep], w[keep]


def _group(
    np: Any, name: str, members: list[tuple[str, Any, Any, Any]], points: int, band: str
) -> dict[str, Any]:
    """The group's runs binned onto one grid of ``points`` equal bins over their x range
    (each run's mean in each bin), then across the runs of each bin: the mean, and the
    runs' min and max (``minmax``) or the mean -+ their standard deviation (``sd``). A
    bin no run has a point in is left out; a bin's x is the mean x of its points."""
    out: dict[str, Any] = {"group": name, "runs": [m[0] for m in members]}
    xs = [m[1] for m in members]
    lo_x = min((float(a.min()) for a in xs if len(a)), default=None)
    hi_x = max((float(a.max()) for a in xs if len(a)), default=None)
    if lo_x is None or hi_x is None:
        return {**out, "x": [], "mean": [], "lo": [], "hi": []}
    span = hi_x - lo_x
    means = np.full((len(members), points), np.nan)
    x_sum = np.zeros(points)
    x_weight = np.zeros(points)
    for i, (_run, mx, my, w) in enumerate(members):
        rel = mx - lo_x  # sums of offsets: epoch seconds lose less precision
        idx = (
            np.zeros(len(rel), dtype=np.int64)
            if span <= 0 or not math.isfinite(span)
            else np.minimum((rel / span * points).astype(np.int64), points - 1)
        )
        weight = np.bincount(idx, weights=w, minlength=points)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            means[i] = np.bincount(idx, weights=my * w, minlength=points) / weight
        x_sum += np.bincount(idx, weights=rel * w, minlength=points)
        x_weight += weight
    means[~np.isfinite(means)] = np.nan  # a sum that overflowed: no mean
    used = ~np.isnan(means).all(axis=0)
    m = means[:, used]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.nanmean(m, axis=0)
        if band == "sd":
            sd = np.nanstd(m, axis=0)
            lo, hi = mean - sd, mean + sd
        else:
            lo, hi = np.nanmin(m, axis=0), np.nanmax(m, axis=0)
    return {
        **out,
        "x": _nullable(np, x_sum[used] / x_weight[used] + lo_x),
        "mean": _nullable(np, mean),
        "lo": _nullable(np, lo),
        "hi": _nullable(np, hi),
    }
