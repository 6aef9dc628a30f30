"""One run: its record, as ``runbase show --json`` prints it, its charted metrics and
whether it is alive."""

from __future__ import annotations

import time
from typing import Any

from runbase.core.shapes import TIME
from runbase.records.lifecycle import HEARTBEAT_EVERY_S
from runbase.records.read import load_row, resolve
from runbase.records.record import build_record, iso
from runbase.records.series import series_keys
from runbase.store import Store

# A running run's heartbeat (runs.heartbeat_at) is refreshed by the process that ingests
# it (its supervisor or watcher): at each ingest that brings new spool data, and every
# HEARTBEAT_EVERY_S (10 s) without any, so a run that logs nothing for minutes is alive
# while that process is. Three missed beats: the run is stalled (supervisor killed,
# machine gone, store unreachable). Live publishing carries the heartbeat to the team
# server (the runs row of each delta). The one threshold of the UI and the server.
STALL_AFTER_S = 3 * HEARTBEAT_EVERY_S


def run_detail(store: Store, ref: str, include_patch: bool = True) -> dict[str, Any]:
    """The run record (docs/run-record.md) + ``"series": [{key, count}]`` + its
    liveness (:func:`liveness`)."""
    run_id = resolve(store, ref)
    rec = build_record(store, run_id, include_patch=include_patch)
    rec["series"] = series_keys(store, run_id)
    row = load_row(store, run_id)
    rec.update(liveness(row["status"], row["heartbeat_at"]))
    return rec


def liveness(status: str, heartbeat_at: Any, now: float | None = None) -> dict[str, Any]:
    """``heartbeat_at`` (ISO 8601), ``heartbeat_age_s`` (seconds since it, while the run
    is ``running``; else None), ``stalled`` (running, and no heartbeat for more than
    ``stall_after_s``) and ``stall_after_s``. The heartbeat is read from the store, so it
    is checked (a time, or None) before any arithmetic; a heartbeat in the future (another
    machine's clock, on the team server) counts as fresh."""
    beat = TIME.fit(heartbeat_at)
    age = None
    if status == "running" and beat is not None:
        age = max(0.0, (time.time() if now is None else now) - beat)
    return {
        "heartbeat_at": iso(beat),
        "heartbeat_age_s": age,
        "stalled": age is not None and age > STALL_AFTER_S,
        "stall_after_s": STALL_AFTER_S,
    }
