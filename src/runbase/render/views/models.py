"""The model registry's JSON views (docs/models.md): what ``runbase model ... --json``
prints and ``/api/models`` answers, from one place so the two never differ."""

from __future__ import annotations

from typing import Any

from runbase.records import registry
from runbase.records.read import load_metrics, load_params, load_runs
from runbase.records.record import iso
from runbase.store import Store

MAX_METRICS = 12  # per version in a model's view: the producing run's key metrics


def model_list(store: Store) -> dict[str, Any]:
    """``{"models": [summary]}``."""
    return {"models": registry.list_models(store)}


def model_detail(store: Store, name: str) -> dict[str, Any]:
    """``{"name", "versions": [version + run_name, run_status, metrics, params], "stages",
    "requests"}``: the versions side by side with what their runs measured."""
    versions = registry.versions(store, name)
    run_ids = sorted({v.run_id for v in versions if v.run_id})
    runs = _runs(store, run_ids)
    metrics = load_metrics(store, run_ids)
    params = load_params(store, run_ids)
    out = []
    for v in versions:
        item = v.to_json()
        run = runs.get(v.run_id or "")
        name_, status, started = run or (None, None, None)
        item.update(run_name=name_, run_status=status, run_started_at=iso(started))
        item["metrics"] = _last_values(metrics.get(v.run_id or "", {}))
        item["params"] = {k: p[0] for k, p in sorted(params.get(v.run_id or "", {}).items())}
        out.append(item)
    return {
        "name": name,
        "versions": out,
        "stages": registry.stages(store, name),
        "requests": registry.requests(store, name),
    }


def model_log(store: Store, name: str | None = None) -> dict[str, Any]:
    """``{"events": [event]}``, oldest first (one model's, or every model's)."""
    if name is not None:
        registry.versions(store, name)  # NotFound for an unknown model, not an empty log
    return {"events": [e.to_json() for e in registry.events(store, name)]}


def _runs(store: Store, run_ids: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """``{run id: (name, status, started_at)}`` of the runs still in the store."""
    return {r["id"]: (r["name"], r["status"], r["started_at"]) for r in load_runs(store, run_ids)}


def _last_values(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = sorted(k for k in metrics if not k.startswith("sys/"))[:MAX_METRICS]
    return {k: metrics[k]["value"] for k in keys}
