"""One run: its record, as ``runbase show --json`` prints it, and its charted metrics."""

from __future__ import annotations

from typing import Any

from runbase.records.read import resolve
from runbase.records.record import build_record
from runbase.records.series import series_keys
from runbase.store import Store


def run_detail(store: Store, ref: str, include_patch: bool = True) -> dict[str, Any]:
    """The run record (docs/run-record.md) + ``"series": [{key, count}]``."""
    run_id = resolve(store, ref)
    rec = build_record(store, run_id, include_patch=include_patch)
    rec["series"] = series_keys(store, run_id)
    return rec
