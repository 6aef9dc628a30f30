"""A sweep's record (the ``sweeps`` table, schema 9) and its trials' sweep statuses.

``runbase sweep`` (tracking.sweep) creates the row before its first trial and updates
it as the sweep goes (status, the study of an Optuna search, the best run so far). The
trials are runs carrying the sweep's id (``runs.sweep_id``) and their index (the tag
``sweep_index``). A trial the pruner stopped is ``pruned``; one whose node died (the
executor retried it as a new run) is ``lost`` (:func:`set_run_status`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from runbase.capture import env as envcap
from runbase.core.shapes import loads
from runbase.errors import StoreError, TooDeep, UsageError
from runbase.records.read import list_runs, with_sweep
from runbase.store import Store

SWEEP_STATUSES = ("running", "finished", "interrupted", "failed")
# the statuses only a sweep gives a run, after (or instead of) the run's own end
SWEEP_RUN_STATUSES = ("pruned", "lost")
INDEX_TAG = "sweep_index"  # capture.overrides.INDEX_TAG
_COLUMNS = "id, created_at, updated_at, status, spec_json, user_name, host, study_json, best_run"


def create_sweep(
    store: Store, sweep_id: str, spec: dict[str, Any], study: dict[str, Any] | None = None
) -> None:
    """Record a new ``running`` sweep; UsageError when ``sweep_id`` is taken."""
    _check_object("spec", spec)
    if study is not None:
        _check_object("study", study)
    user, host = envcap.user_and_host()
    now = time.time()
    with store.db.transaction() as cur:
        cur.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,))
        if cur.fetchone() is not None:
            raise UsageError(f"a sweep {sweep_id} exists already")
        cur.execute(
            f"INSERT INTO sweeps ({_COLUMNS}) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, NULL)",
            (sweep_id, now, now, json.dumps(spec), user, host, _dumps(study)),
        )


def get_sweep(store: Store, sweep_id: str) -> dict[str, Any] | None:
    """The sweep ``sweep_id`` (None without one): ``id, created_at, updated_at, status,
    spec, user, host, study, best_run``. A damaged row raises StoreError."""
    row = store.db.query_one(f"SELECT {_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
    return None if row is None else _parse(tuple(row))


def update_sweep(
    store: Store,
    sweep_id: str,
    *,
    status: str | None = None,
    study: dict[str, Any] | None = None,
    best_run: str | None = None,
) -> None:
    """Change what is given of sweep ``sweep_id`` (and its ``updated_at``)."""
    if status is not None and status not in SWEEP_STATUSES:
        raise UsageError(f"a sweep's status is one of {', '.join(SWEEP_STATUSES)}, not {status!r}")
    if study is not None:
        _check_object("study", study)
    sets: list[str] = ["updated_at = ?"]
    args: list[Any] = [time.time()]
    for column, value in (
        ("status", status),
        ("study_json", _dumps(study)),
        ("best_run", best_run),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(value)
    with store.db.transaction() as cur:
        cur.execute(f"UPDATE sweeps SET {', '.join(sets)} WHERE id = ?", (*args, sweep_id))
        if cur.rowcount == 0:
            raise UsageError(f"no sweep {sweep_id}")


def list_sweeps(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` sweeps, newest first (a damaged row raises StoreError)."""
    rows = store.db.query(
        f"SELECT {_COLUMNS} FROM sweeps ORDER BY created_at DESC, id DESC LIMIT ?",
        (max(int(limit), 0),),
    )
    return [_parse(tuple(r)) for r in rows]


def trial_runs(store: Store, sweep_id: str) -> list[dict[str, Any]]:
    """The runs of sweep ``sweep_id`` (``read.list_runs`` rows) by trial index (the tag
    ``sweep_index``), whatever order they started in; runs without one last."""
    rows = list_runs(store, with_sweep(None, sweep_id), sort="started_at", limit=None)

    def index(row: dict[str, Any]) -> tuple[int, int]:
        text = str((row.get("tags") or {}).get(INDEX_TAG, ""))
        return (0, int(text)) if text.lstrip("-").isdigit() else (1, 0)

    return sorted(rows, key=index)  # stable: start order among equals


def set_run_status(store: Store, run_id: str, status: str, note: str | None = None) -> bool:
    """Mark run ``run_id`` ``pruned`` or ``lost``; whether it changed. Only a run that is
    ``running`` or ended ``killed``/``crashed`` (how a pruned or lost run ends on its
    own) changes: ``finished`` and ``failed`` say what the command did and stay. A run
    still running keeps its supervisor's finalize (the logs, the exit status), which
    leaves the status as it is (lifecycle.finalize). ``note`` goes in ``error``."""
    if status not in SWEEP_RUN_STATUSES:
        raise UsageError(f"a sweep marks a run {' or '.join(SWEEP_RUN_STATUSES)}, not {status!r}")
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE runs SET status = ?, ended_at = coalesce(ended_at, ?), "
            "error = coalesce(?, error) "
            "WHERE id = ? AND status IN ('running', 'killed', 'crashed')",
            (status, time.time(), note, run_id),
        )
        return bool(cur.rowcount == 1)


def _check_object(what: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"a sweep's {what} must be a JSON object")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"a sweep's {what} is not JSON: {e}") from None


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _parse(row: tuple[Any, ...]) -> dict[str, Any]:
    sweep_id, created, updated, status, spec, user, host, study, best = row
    return {
        "id": sweep_id,
        "created_at": created,
        "updated_at": updated,
        "status": status,
        "spec": _object(sweep_id, "spec_json", spec),
        "user": user,
        "host": host,
        "study": None if study is None else _object(sweep_id, "study_json", study),
        "best_run": best,
    }


def _object(sweep_id: str, column: str, text: Any) -> dict[str, Any]:
    """The JSON object a sweep row's ``column`` holds; StoreError when it holds none."""
    try:
        value = loads(text) if isinstance(text, (str, bytes)) else None
    except (ValueError, TooDeep):
        value = None
    if not isinstance(value, dict):
        raise StoreError(f"the sweep {sweep_id} is damaged: its {column} is not a JSON object")
    return value
