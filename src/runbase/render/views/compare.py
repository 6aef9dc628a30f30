"""Several runs: side by side, their diff, and which parameters explain a metric."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runbase.analysis.diff import canonical_json, diff_head, diff_runs
from runbase.analysis.importance import analyze
from runbase.capture.params import jsonable
from runbase.capture.sysmetrics import is_system_metric
from runbase.errors import UsageError
from runbase.records.read import resolve, with_sweep
from runbase.records.series import series_keys
from runbase.render.views.common import user_sql, where_sql
from runbase.render.views.runs import run_items
from runbase.store import Store

MAX_COMPARE = 100  # runs in one comparison


def compare(store: Store, refs: Iterable[str]) -> dict[str, Any]:
    """Runs side by side: ``{runs: [rows as in runs_page], params, params_differ,
    metrics, metrics_differ, series}``. ``params``/``metrics`` list every key, those
    whose values differ (or that some runs lack) first, each group sorted;
    ``*_differ`` are the differing ones; ``series`` the metrics with logged points in
    every run."""
    refs = [r.strip() for r in refs if r and r.strip()]
    if not refs:
        raise UsageError("give the runs to compare, e.g. runs=ID1,ID2")
    if len(refs) > MAX_COMPARE:
        raise UsageError(f"at most {MAX_COMPARE} runs can be compared at once")
    ids = list(dict.fromkeys(resolve(store, r) for r in refs))
    items = run_items(store, ids)

    def split(section: str) -> tuple[list[str], list[str]]:
        # system metrics (sys/*) differ in every pair of runs: charts, not this list
        keys = sorted(
            {
                k
                for it in items
                for k in it[section]
                if section != "metrics" or not is_system_metric(k)
            }
        )
        differ = [
            k
            for k in keys
            if any(k not in it[section] for it in items)
            or len({canonical_json(it[section][k]) for it in items}) > 1
        ]
        differing = set(differ)
        same = [k for k in keys if k not in differing]
        return differ + same, differ

    params, params_differ = split("params")
    metrics, metrics_differ = split("metrics")
    common: set[str] | None = None
    for rid in ids:
        keys = {s["key"] for s in series_keys(store, rid)}
        common = keys if common is None else common & keys
    return {
        "runs": items,
        "params": params,
        "params_differ": params_differ,
        "metrics": metrics,
        "metrics_differ": metrics_differ,
        "series": sorted(common or ()),
    }


def diff(
    store: Store, a: str, b: str | None = None, sections: Iterable[str] | None = None
) -> dict[str, Any]:
    """``runbase diff A B --json`` (docs/diff-format.md); without ``b``, ``runbase diff
    A --json`` (the run's code against its commit)."""
    if b is None:
        return jsonable(diff_head(store, a))
    return jsonable(diff_runs(store, a, b, sections))


def importance(
    store: Store,
    metric: str,
    where: str | None = None,
    runs: Iterable[str] | None = None,
    sweep: str | None = None,
) -> dict[str, Any]:
    """Parameter importance (``runbase importance``): ``{metric, n_runs, rows: [{param,
    kind, spearman, eta, rf_importance, n}], dropped: {param: why}}``. Raises
    ``UsageError`` with too few runs and ``RunbaseError`` without ``runbase[analysis]``."""
    if not metric or not metric.strip():
        raise UsageError("give the metric to explain, e.g. metric=acc")
    where = with_sweep(where, sweep)
    where_sql(where)  # malformed: a QueryError before any work
    with user_sql():
        rep = analyze(store, metric.strip(), where, list(runs) if runs is not None else None)
    return jsonable(
        {
            "metric": rep.metric,
            "n_runs": rep.n_runs,
            "rows": rep.rows,
            "dropped": rep.dropped,
            "warning": rep.warning,
        }
    )
