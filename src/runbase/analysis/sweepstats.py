"""What the sweep page shows: a sweep's trials by status, the best value so far, and
which parameters matter, computed from its record and its runs.

    stats = sweep_stats(store, "0bq3k5x7ma2c9xzt")            # the spec's objective
    stats = sweep_stats(store, sweep_id, metric="acc", direction="max")
    stats["counts"]["pruned"], stats["best"], stats["best_curve"][-1]["best"]

The sweep record (``records.sweeps``, written by ``runbase sweep``) gives the objective,
its direction and the swept parameters. A sweep without one (made before sweeps had
records, or a Hydra multirun group) is read from its runs alone: its spec is unknown,
the swept parameters are those that vary, and the metric is the caller's choice.
Pure functions over records: the web API (``runbase.web.routes_sweeps``) serializes them.
"""

from __future__ import annotations

import json
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from typing import Any

from runbase.analysis.importance import analyze, runs_to_trust
from runbase.analysis.metrickinds import metric_direction
from runbase.capture.overrides import INDEX_TAG
from runbase.capture.params import jsonable
from runbase.capture.sysmetrics import is_system_metric
from runbase.core.statuses import STATUSES
from runbase.errors import NotFound, RunbaseError, UsageError
from runbase.records import sweeps
from runbase.records.listing import group_counts
from runbase.records.read import list_runs, with_sweep
from runbase.records.record import iso
from runbase.store import Store

SWEEP_VERSION = 1  # of the answer of sweep_stats (docs/api.md, "Sweeps")
MAX_SWEEP_ID = 1_000  # characters of a sweep id asked for
DIRECTIONS = ("max", "min")
_AGGS = ("value", "last", "min", "max")
# the order the page shows statuses in: what is moving first, then how trials ended
STATUS_ORDER = ("running", "finished", "pruned", "failed", "killed", "crashed", "lost")
NO_RECORD = (
    "this sweep has no sweep record (made before sweeps had one, or a multirun group): "
    "its spec is unknown; shown from its runs alone"
)


def check_sweep_id(sweep_id: str) -> str:
    """``sweep_id`` as asked, or UsageError: empty, overlong or with control characters
    it cannot name a sweep."""
    if not isinstance(sweep_id, str) or not sweep_id.strip():
        raise UsageError("empty sweep id")
    if len(sweep_id) > MAX_SWEEP_ID:
        raise UsageError(f"a sweep id has at most {MAX_SWEEP_ID} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in sweep_id):
        raise UsageError(f"a sweep id has no control characters: {sweep_id[:100]!r}")
    return sweep_id


def check_direction(direction: str | None) -> None:
    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"direction must be max or min, got {direction[:20]!r}")


def sweep_stats(
    store: Store,
    sweep_id: str,
    metric: str | None = None,
    direction: str | None = None,
    importance: bool = True,
) -> dict[str, Any]:
    """The sweep page's data (docs/api.md, ``GET /api/sweeps/{id}``). ``metric`` and
    ``direction`` override the spec's objective (a grid sweep has none); without
    ``importance`` the ranking is left out (null), for a first answer at once. NotFound
    when neither a record nor a run names the sweep."""
    check_sweep_id(sweep_id)
    check_direction(direction)
    record = sweeps.get_sweep(store, sweep_id)
    rows = sweeps.trial_runs(store, sweep_id)
    if record is None and not rows:
        raise NotFound(f"no sweep {sweep_id[:100]!r}: neither a sweep record nor a run names it")
    spec = record["spec"] if record else None
    objective = choose_objective(spec, metric, direction)
    keys = swept_keys(spec, rows)
    trials = [trial_row(r, n, keys, objective) for n, r in enumerate(rows, 1)]
    ends = {r["id"]: r["ended_at"] if r["ended_at"] is not None else r["started_at"] for r in rows}
    curve = best_curve(trials, ends, objective["direction"] if objective else None)
    return jsonable(
        {
            "sweep_version": SWEEP_VERSION,
            **header(sweep_id, record),
            "note": None if record else NO_RECORD,
            "objective": objective,
            "metrics": metric_choices(rows),
            "params": keys,
            "counts": status_counts(rows),
            "total": len(rows),
            "trials": trials,
            "best": best_trial(trials, curve),
            "best_curve": curve,
            "importance": sweep_importance(store, sweep_id, objective, trials)
            if importance
            else None,
        }
    )


def header(sweep_id: str, record: dict[str, Any] | None) -> dict[str, Any]:
    """The record's own fields (all null without a record), times as ISO 8601."""
    rec = record or {}
    return {
        "id": sweep_id,
        "recorded": record is not None,
        "status": rec.get("status"),
        "created_at": iso(rec.get("created_at")),
        "updated_at": iso(rec.get("updated_at")),
        "user": rec.get("user"),
        "host": rec.get("host"),
        "spec": rec.get("spec"),
        "study": rec.get("study"),
        "best_run": rec.get("best_run"),
    }


def choose_objective(
    spec: dict[str, Any] | None, metric: str | None, direction: str | None
) -> dict[str, Any] | None:
    """``{metric, direction, source}``: the caller's metric (``source`` "query"), else
    the spec's objective ("spec"); the direction given, else the spec's (for its own
    metric), else what the metric's name says (loss: min, acc: max; "name"), else max
    ("default"). None when there is no metric to judge trials by."""
    check_direction(direction)
    spec = spec or {}
    metric = (metric or "").strip() or None
    source = "query"
    if metric is None:
        metric = spec.get("objective") if isinstance(spec.get("objective"), str) else None
        source = "spec"
    if not metric:
        return None
    how = "query"
    if direction is None:
        direction, how = _direction_of(spec, metric, source)
    return {"metric": metric, "direction": direction, "source": source, "direction_source": how}


def _direction_of(spec: dict[str, Any], metric: str, source: str) -> tuple[str, str]:
    own = spec.get("direction")
    if own in DIRECTIONS and (source == "spec" or metric == spec.get("objective")):
        return str(own), "spec"
    guess = metric_direction(metric.rpartition(".")[0] if _has_agg(metric) else metric)
    if guess is not None:
        return ("min" if guess == "lower" else "max"), "name"
    return "max", "default"


def _has_agg(metric: str) -> bool:
    return "." in metric and metric.rpartition(".")[2] in _AGGS


def objective_value(metrics: dict[str, dict[str, Any]], metric: str) -> float | None:
    """A trial's value of ``metric``: ``acc`` (its summary value), or ``loss.min``
    (``.last``, ``.max``, ``.value``), as ``runbase importance`` reads it; None when
    missing or not a finite number."""
    key, agg = metric, "value"
    if metric not in metrics and _has_agg(metric):
        key, _, agg = metric.rpartition(".")
    m = metrics.get(key)
    v = m.get(agg) if isinstance(m, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def swept_keys(spec: dict[str, Any] | None, rows: list[dict[str, Any]]) -> list[str]:
    """The parameters the sweep varies: the spec's grid and random keys, else (no spec,
    or one that names none) those whose value differs between trials, else all."""
    keys: list[str] = []
    for part in ("grid", "random"):
        space = (spec or {}).get(part)
        if isinstance(space, dict):
            keys += [str(k) for k in space if str(k) not in keys]
    if keys:
        return keys
    every = sorted({k for r in rows for k in r["params"]})
    varying = [k for k in every if len({_label(r["params"].get(k)) for r in rows}) > 1]
    return varying or every


def _label(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def trial_row(
    r: dict[str, Any], position: int, keys: list[str], objective: dict[str, Any] | None
) -> dict[str, Any]:
    """One trial: ``{index, id, name, status, params, value, started_at, ended_at,
    duration_s}``; ``index`` is the trial's ``sweep_index`` tag, else (none, or one that
    is no index: any pushed run may carry such a tag) its position."""
    index = sweeps.sweep_index(r["tags"].get(INDEX_TAG))
    if index is None:
        index = position
    value = objective_value(r["metrics"], objective["metric"]) if objective else None
    return {
        "index": index,
        "id": r["id"],
        "name": r["name"],
        "status": r["status"],
        "params": {k: r["params"][k] for k in keys if k in r["params"]},
        "value": value,
        "started_at": iso(r["started_at"]),
        "ended_at": iso(r["ended_at"]),
        "duration_s": r.get("duration"),
    }


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Trials per status, every known status present (0 when none), page order."""
    order = [*STATUS_ORDER, *(s for s in STATUSES if s not in STATUS_ORDER)]
    counts = dict.fromkeys(order, 0)
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def best_curve(
    trials: list[dict[str, Any]], ends: dict[str, float | None], direction: str | None
) -> list[dict[str, Any]]:
    """The best objective so far, one point per finished trial with a value, in the
    order they ended (``ends``: run id -> end time): ``[{n, time, id, index, value,
    best, best_id}]``, ``n`` the finished trials so far."""
    done = [t for t in trials if t["status"] == "finished" and t["value"] is not None]
    done.sort(key=lambda t: (ends.get(t["id"]) is None, ends.get(t["id"]) or 0.0, t["index"]))
    if direction is None:
        return []
    better = (lambda a, b: a > b) if direction == "max" else (lambda a, b: a < b)
    out: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for n, t in enumerate(done, 1):
        if best is None or better(t["value"], best["value"]):
            best = t
        point = {"n": n, "time": t["ended_at"], "id": t["id"], "index": t["index"]}
        out.append({**point, "value": t["value"], "best": best["value"], "best_id": best["id"]})
    return out


def best_trial(trials: list[dict[str, Any]], curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial at the end of the best-so-far curve: ``{id, index, name, value, params}``."""
    if not curve:
        return None
    best_id = curve[-1]["best_id"]
    t = next(t for t in trials if t["id"] == best_id)
    return {k: t[k] for k in ("id", "index", "name", "value", "params")}


def metric_choices(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics the trials have, system metrics left out: what a user may judge
    the sweep by when its spec names no objective."""
    return sorted({k for r in rows for k in r["metrics"] if not is_system_metric(k)})


# -- importance ---------------------------------------------------------------------------

_cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
_recent: OrderedDict[tuple[str, str, str], tuple[float, int, dict[str, Any]]] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 64  # answers kept: the page asks again every few seconds while trials run
# A large sweep's ranking is refitted at most every REFIT_AFTER_S seconds while trials
# keep ending, unless they grew by REFIT_GROWTH: a forest over 1,000 trials takes ~0.4 s,
# and every open page asks every few seconds. Its n_runs says which trials it ranked.
LARGE = 100
REFIT_AFTER_S = 15.0
REFIT_GROWTH = 0.05


def sweep_importance(
    store: Store, sweep_id: str, objective: dict[str, Any] | None, trials: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Parameter importance of the objective over the finished trials, by
    ``runbase.analysis.importance`` (what ``runbase importance`` and the runs page use):
    ``{metric, n_runs, rows, dropped, warning, error, needed}``. ``error`` says why there
    is no ranking (too few runs, no parameter varies, the analysis extra missing);
    ``warning``, why a ranking means little (fewer runs than ``needed``). None without
    an objective. The same finished trials give the same answer (kept, not refitted)."""
    if objective is None:
        return None
    metric = objective["metric"]
    done = [t for t in trials if t["status"] == "finished"]
    key = _label(
        [str(store.root), sweep_id, metric, [[t["id"], t["value"], t["params"]] for t in done]]
    )
    which = (str(store.root), sweep_id, metric)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        recent = _recent.get(which)
        if recent is not None and _still_fresh(recent[0], recent[1], len(done)):
            return recent[2]
    answer = _importance(store, sweep_id, metric)
    with _cache_lock:
        _cache[key] = answer
        _recent[which] = (time.monotonic(), len(done), answer)
        for kept in (_cache, _recent):
            while len(kept) > CACHE_SIZE:
                kept.popitem(last=False)
    return answer


def _still_fresh(fitted_at: float, fitted_on: int, finished: int) -> bool:
    """Whether a large sweep's last ranking still stands for ``finished`` trials."""
    young = time.monotonic() - fitted_at < REFIT_AFTER_S
    return fitted_on >= LARGE and young and finished < fitted_on * (1 + REFIT_GROWTH)


def _importance(store: Store, sweep_id: str, metric: str) -> dict[str, Any]:
    where = with_sweep('status == "finished"', sweep_id)
    out: dict[str, Any] = {"metric": metric, "n_runs": 0, "rows": [], "dropped": {}}
    out.update(warning=None, error=None, needed=None)
    try:
        rep = analyze(store, metric, where)
    except RunbaseError as e:  # too few runs, nothing varies, no scikit-learn: said so
        out["error"] = str(e)
        return out
    out.update(n_runs=rep.n_runs, rows=rep.rows, dropped=rep.dropped, warning=rep.warning)
    out["needed"] = runs_to_trust(len(rep.rows))
    return out


# -- the list of sweeps -------------------------------------------------------------------


def sweep_list(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Sweeps, newest first: those with a record, and those only their runs name
    (``recorded`` false, created when their first run started): ``{id, recorded,
    status, created_at, name, objective, direction, search, best_run, trials, counts}``."""
    if not 1 <= limit <= 1000:
        raise UsageError("limit must be between 1 and 1000")
    found: list[tuple[float, str, dict[str, Any] | None]] = []
    for r in sweeps.list_sweeps(store, limit):
        found.append((r["created_at"] or 0.0, r["id"], r))
    seen = {r[1] for r in found}
    for g in group_counts(store, "runs.sweep_id IS NOT NULL", [], "sweep"):
        if g["key"] not in seen:
            first = list_runs(store, with_sweep(None, g["key"]), "started_at", 1)
            found.append((first[0]["started_at"] or 0.0 if first else 0.0, g["key"], None))
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    return jsonable([_list_item(store, sid, rec, created) for created, sid, rec in found[:limit]])


def _list_item(
    store: Store, sweep_id: str, record: dict[str, Any] | None, created: float
) -> dict[str, Any]:
    counts = {
        g["key"]: g["count"] for g in group_counts(store, "runs.sweep_id = ?", [sweep_id], "status")
    }
    rec = record or {}
    spec = rec.get("spec") or {}
    return {
        "id": sweep_id,
        "recorded": record is not None,
        "status": rec.get("status"),
        "created_at": iso(created),
        "name": spec.get("name"),
        "objective": spec.get("objective"),
        "direction": spec.get("direction"),
        "search": spec.get("search"),
        "best_run": rec.get("best_run"),
        "trials": sum(counts.values()),
        "counts": counts,
    }
