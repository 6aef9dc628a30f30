"""Parameter importance: which parameters move a metric, across runs.

    for row in importance(store, "acc", where='sweep == "0bq3k5x7ma2c9xzt"'):
        print(row["param"], row["rf_importance"], row["spearman"])

Two measures per parameter, over the runs that have the metric:

* ``spearman``: the Spearman rank correlation of a numeric parameter with the metric
  (monotonic influence, with its sign); ``eta``: for a categorical parameter, the
  correlation ratio of the metric's ranks over its categories (0: no influence, 1: the
  category decides the rank);
* ``rf_importance``: the impurity-based feature importance of a scikit-learn
  ``RandomForestRegressor`` (fixed ``random_state``) fitted on all parameters at once,
  categorical ones one-hot encoded and their columns summed back; the importances sum
  to 1 and also see non-monotonic effects and interactions.

Rows are ranked by ``rf_importance``. With few runs for the number of parameters
(fewer than :func:`runs_to_trust`), :attr:`Report.warning` says the ranking is mostly
noise. Parameters with one value in every run, and text
parameters with a different value in every run (an output path, a run name) are left
out and listed in :attr:`Report.dropped`. Needs numpy, scipy and scikit-learn
(``pip install 'runbase[analysis]'``), imported only here.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runbase.capture.sysmetrics import is_system_metric
from runbase.errors import RunbaseError, UsageError
from runbase.records.read import list_runs, resolve
from runbase.store import Store

MIN_RUNS = 4
TREES = 100  # the forest's size: 300 took 3x as long for rankings that agree (benchmarks)
LEGEND = (
    "rf_importance: the parameter's share of a random forest's fit of the metric (the "
    "column sums to 1; sees non-monotonic effects and interactions) | spearman: rank "
    "correlation of a numeric parameter with the metric (-1..1; the sign is the "
    "direction) | eta: how much a categorical parameter's value decides the metric's "
    "rank (0..1) | n: runs that have the parameter"
)
_AGGS = ("value", "last", "min", "max")
_MISSING = object()
INSTALL_HINT = "pip install 'runbase[analysis]'"


@dataclass
class Report:
    metric: str
    n_runs: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # param -> why
    warning: str | None = None  # too few runs for the ranking to mean much


def runs_to_trust(n_params: int) -> int:
    """Runs below which a ranking of ``n_params`` parameters is mostly noise: a rule of
    thumb (10, and 5 per parameter compared), not a significance test."""
    return max(10, 5 * n_params)


def importance(
    store: Store, metric: str, where: str | None = None, runs: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Parameters ranked by their influence on ``metric`` across the runs matching
    ``where`` (and among ``runs``, run references, when given): a list of
    ``{param, kind, spearman, eta, rf_importance, n}``, most important first."""
    return analyze(store, metric, where, runs).rows


def analyze(
    store: Store, metric: str, where: str | None = None, runs: Iterable[str] | None = None
) -> Report:
    """:func:`importance`, with the number of runs used and the parameters left out."""
    params, y = _load(store, metric, where, runs)
    report = Report(metric, len(y))
    columns: dict[str, tuple[str, list[Any]]] = {}
    for key in sorted({k for p in params for k in p}):
        values = [p.get(key, _MISSING) for p in params]
        why = _why_dropped(values)
        if why:
            report.dropped[key] = why
        else:
            columns[key] = (_kind(values), values)
    if not columns:
        raise UsageError(
            f"no parameter varies across the {len(y)} runs with metric {metric!r}: nothing to rank"
        )
    report.rows = _rank(columns, y)
    enough = runs_to_trust(len(columns))
    if len(y) < enough:
        report.warning = (
            f"only {len(y)} runs for {len(columns)} parameters: with fewer than {enough} "
            "runs this ranking is mostly noise (a sweep with more runs makes it mean something)"
        )
    return report


def _load(
    store: Store, metric: str, where: str | None, runs: Iterable[str] | None
) -> tuple[list[dict[str, Any]], list[float]]:
    """The params and metric value of each selected run that has the metric."""
    rows = list_runs(store, where, limit=None)
    if runs is not None:
        wanted = {resolve(store, r) for r in runs}
        rows = [r for r in rows if r["id"] in wanted]
    params, y = [], []
    for r in rows:
        v = _metric_value(r["metrics"], metric)
        if v is not None and math.isfinite(v):
            params.append(r["params"])
            y.append(v)
    if not y:
        raise UsageError(_unknown_metric(metric, rows, where))
    if len(y) < MIN_RUNS:
        raise UsageError(
            f"parameter importance needs at least {MIN_RUNS} runs with metric {metric!r}; "
            f"found {len(y)}"
        )
    if len(set(y)) == 1:
        raise UsageError(f"metric {metric!r} is {y[0]} in every run: nothing to explain")
    return params, y


def _metric_value(metrics: dict[str, dict[str, Any]], metric: str) -> float | None:
    """``acc`` (the summary value) or ``loss.min`` (``.last``, ``.max``, ``.value``)."""
    key, agg = metric, "value"
    if metric not in metrics and metric.rpartition(".")[2] in _AGGS:
        key, _, agg = metric.rpartition(".")
    m = metrics.get(key)
    v = m.get(agg) if m else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _unknown_metric(metric: str, rows: list[dict[str, Any]], where: str | None) -> str:
    if not rows:
        return "no runs" + (f" match {where!r}" if where else " in the store")
    known = sorted({k for r in rows for k in r["metrics"] if not is_system_metric(k)})
    shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
    return f"no run has a numeric metric {metric!r} (metrics: {shown or 'none'})"


def _why_dropped(values: list[Any]) -> str | None:
    labels = [_label(v) for v in values]
    if len(set(labels)) == 1:
        return "constant"
    if _kind(values) == "categorical" and len(set(labels)) == len(labels):
        return "a different text in every run"
    return None


def _label(v: Any) -> str:
    return "<missing>" if v is _MISSING else json.dumps(v, sort_keys=True)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and not math.isfinite(v))


def _kind(values: list[Any]) -> str:
    present = [v for v in values if v is not _MISSING]
    return "numeric" if all(_is_number(v) for v in present) else "categorical"


def _rank(columns: dict[str, tuple[str, list[Any]]], y: list[float]) -> list[dict[str, Any]]:
    np, rankdata, spearmanr, forest = _require()
    y_arr = np.asarray(y, dtype=float)
    y_ranks = rankdata(y_arr)
    blocks, owners = [], []
    rows = []
    for key, (kind, values) in columns.items():
        present = [i for i, v in enumerate(values) if v is not _MISSING]
        row: dict[str, Any] = {"param": key, "kind": kind, "spearman": None, "eta": None}
        row["n"] = len(present)
        if kind == "numeric":
            x = np.asarray([float(values[i]) for i in present])
            if len(set(x)) > 1 and len(present) >= 3:
                with warnings.catch_warnings():  # a constant subset warns; it gives nan
                    warnings.simplefilter("ignore")
                    rho = float(spearmanr(x, y_arr[present])[0])
                row["spearman"] = None if math.isnan(rho) else rho
            fill = float(np.median(x))
            blocks.append(np.asarray([[float(v) if v is not _MISSING else fill] for v in values]))
            owners.append(key)
        else:
            labels = [_label(v) for v in values]
            row["eta"] = _correlation_ratio(np, labels, y_ranks)
            for cat in sorted(set(labels)):
                blocks.append(np.asarray([[1.0 if lab == cat else 0.0] for lab in labels]))
                owners.append(key)
        rows.append(row)
    model = forest(n_estimators=TREES, random_state=0, n_jobs=1).fit(np.hstack(blocks), y_arr)
    totals: dict[str, float] = {}
    for owner, imp in zip(owners, model.feature_importances_, strict=True):
        totals[owner] = totals.get(owner, 0.0) + float(imp)
    for row in rows:
        row["rf_importance"] = totals[row["param"]]
    strength = [abs(r["spearman"] if r["spearman"] is not None else r["eta"] or 0.0) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["rf_importance"], -strength[i]))
    return [rows[i] for i in order]


def _correlation_ratio(np: Any, labels: list[str], y: Any) -> float:
    """eta = sqrt(between-category variance / total variance) of ``y``."""
    total = float(((y - y.mean()) ** 2).sum())
    between = 0.0
    for cat in set(labels):
        group = y[[i for i, lab in enumerate(labels) if lab == cat]]
        between += len(group) * float((group.mean() - y.mean()) ** 2)
    return math.sqrt(between / total) if total > 0 else 0.0


def _require() -> tuple[Any, Any, Any, Any]:
    try:
        import numpy
        from scipy.stats import rankdata, spearmanr
        from sklearn.ensemble import RandomForestRegressor
    except ImportError as e:
        raise RunbaseError(
            f"parameter importance needs numpy, scipy and scikit-learn ({e.name or e} is "
            f"missing): {INSTALL_HINT}"
        ) from e
    return numpy, rankdata, spearmanr, RandomForestRegressor
