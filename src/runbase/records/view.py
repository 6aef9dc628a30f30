"""The read side's public handles: ``runbase.get_run(ref)`` and ``runbase.runs(where=...)``.

Above read.py (the queries), record.py (the run record) and notebook.py (the cells),
which it puts together for user code.
"""

from __future__ import annotations

from typing import Any

from runbase.records.notebook import load_cells
from runbase.records.read import (
    MetricSeries,
    flatten_row,
    list_runs,
    load_metrics,
    load_params,
    load_row,
    load_tags,
    resolve,
    series,
    with_sweep,
)
from runbase.records.record import build_record
from runbase.store import Store


class RunView:
    """A recorded run, read from the store: ``.params``, ``.metrics``, ``.series(key)``."""

    def __init__(self, store: Store, run_id: str) -> None:
        self._store = store
        self._row = load_row(store, run_id)
        self.id: str = self._row["id"]
        self.name: str = self._row["name"]
        self.status: str = self._row["status"]
        self.exit_code: int | None = self._row["exit_code"]
        p = load_params(store, [run_id])[run_id]
        self.params: dict[str, Any] = {k: v for k, (v, _s) in p.items()}
        self.param_sources: dict[str, str] = {k: s for k, (_v, s) in p.items()}
        self.metrics: dict[str, dict[str, Any]] = load_metrics(store, [run_id])[run_id]
        self.tags: dict[str, str] = load_tags(store, [run_id])[run_id]

    def __repr__(self) -> str:
        return f"<RunView {self.id} {self.name} {self.status}>"

    def series(self, key: str) -> MetricSeries:
        return series(self._store, self.id, key)

    def cells(self) -> list[dict[str, Any]]:
        """The notebook cells the run executed, in order: ``{index, execution_count,
        cell_id, source, started_at, duration_s, success, error}`` (docs/run-record.md);
        empty for a run that did not run in IPython/Jupyter."""
        return load_cells(self._store, self.id)

    def record(self, include_patch: bool = True) -> dict[str, Any]:
        """The run record (what ``runbase show --json`` prints; docs/run-record.md)."""
        return build_record(self._store, self.id, include_patch=include_patch)


def get_run(ref: str | None = None, store: str | None = None) -> RunView:
    """Load a run by id, unique id prefix, name, or ``None`` for the latest."""
    s = Store.open(store)
    return RunView(s, resolve(s, ref))


def runs(
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    store: str | None = None,
    sweep: str | None = None,
) -> Any:
    """All runs matching ``where`` (and of ``sweep``, a sweep id, when given) as a
    pandas DataFrame (one row per run, columns ``params.*``, ``metrics.*``, ``tags.*``),
    or a list of dicts without pandas."""
    s = Store.open(store)
    rows = list_runs(s, with_sweep(where, sweep), sort, limit)
    flat = [flatten_row(r) for r in rows]
    try:
        import pandas as pd  # lazy: optional and heavy; only for a DataFrame
    except ImportError:
        return flat
    return pd.DataFrame(flat)
