"""The run record: the documented JSON form of a run (docs/run-record.md).

``RECORD_VERSION`` changes only deliberately, with the document.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from runbase.capture.params import jsonable
from runbase.core import executorinfo
from runbase.core.shapes import CODE, COMMAND, ENV, LOGS, PACKAGES, TIME, load_column, loads
from runbase.records.files import list_files
from runbase.records.notebook import notebook_section
from runbase.records.read import duration, load_metrics, load_params, load_row, load_tags
from runbase.records.types import RunHeader
from runbase.store import Store

RECORD_VERSION = 1


def iso(ts: float | None) -> str | None:
    """ISO 8601 (UTC) of a stored timestamp; None when absent or not a time
    (NaN, an infinity, 1e300: what a store may hold, runbase.core.shapes.TIME)."""
    ts = TIME.fit(ts)
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def run_header(r: dict[str, Any]) -> RunHeader:
    """The fields a run's record and its `ls --json` line share, from a runs row."""
    return {
        "id": r["id"],
        "name": r["name"],
        "status": r["status"],
        "exit_code": r["exit_code"],
        "exit_signal": r["exit_signal"],
        "started_at": iso(r["started_at"]),
        "ended_at": iso(r["ended_at"]),
        "duration_s": duration(r),
        "user": r["user_name"],
    }


def ls_entry(r: dict[str, Any]) -> dict[str, Any]:
    """One run of ``runbase ls --json``: the header, params, metric summaries, tags."""
    return {
        **run_header(r),
        "sweep_id": r["sweep_id"],
        "params": r["params"],
        "metrics": r["metrics"],
        "tags": r["tags"],
    }


def run_row(r: dict[str, Any]) -> dict[str, Any]:
    """One run of the web API's runs table (docs/api.md): its ``ls --json`` line
    without ``exit_signal``, with ``host`` and each metric's summary value only."""
    row = ls_entry(r)
    del row["exit_signal"]
    row["host"] = r["host"]
    row["metrics"] = {k: m["value"] for k, m in r["metrics"].items()}
    return row


def build_record(store: Store, run_id: str, include_patch: bool = True) -> dict[str, Any]:
    """The run record of docs/run-record.md (what ``runbase show RUN --json`` prints;
    its keys typed as :class:`runbase.records.types.RunRecord`, tests/test_db_contract
    holds the two together)."""
    r = load_row(store, run_id)
    params = load_params(store, [run_id])[run_id]
    # JSON columns are read defensively: what does not have its documented shape
    # (an older version's value, a hostile writer's) reads as null, never a crash
    code = load_column(r["code_json"], CODE)
    env = load_column(r["env_json"], ENV)
    if code is not None:
        code = _code_section(store, code, include_patch)
    if env is not None:
        env["packages"] = _packages(store, r["packages_id"])
    rec: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        **run_header(r),
        "command": load_column(r["command"], COMMAND) or [],
        "cwd": r["cwd"],
        "host": r["host"],
        "mode": r["mode"],
        "project_root": r["project_root"],
        "parent_id": r["parent_id"],
        "sweep_id": r["sweep_id"],
        "reproduces": r["reproduces"],
        "executor": run_executor(store, run_id),
        "params": {k: v for k, (v, _s) in params.items()},
        "param_sources": {k: s for k, (_v, s) in params.items()},
        "metrics": load_metrics(store, [run_id])[run_id],
        "tags": load_tags(store, [run_id])[run_id],
        "code": code,
        "env": env,
        "notebook": notebook_section(store, run_id),
        **list_files(store, run_id),
        "logs": load_column(r["logs_json"], LOGS),
        "error": r["error"],
    }
    return jsonable(rec)  # NaN/inf -> "NaN"/"Infinity": strict JSON


def run_executor(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's executor object (core.executorinfo); null when none was recorded (an
    older run, one made in-process) or what is stored is not one."""
    row = store.db.query_one("SELECT executor_json FROM runs WHERE id = ?", (run_id,))
    if row is None or not isinstance(row[0], str):
        return None
    return executorinfo.parse(row[0])


def _code_section(store: Store, code: dict[str, Any], include_patch: bool) -> dict[str, Any]:
    patch_id = code.get("patch")
    code["patch_id"] = patch_id
    code["patch"] = None
    if patch_id and include_patch:
        try:
            code["patch"] = store.objects.get_bytes(patch_id).decode("utf-8", "replace")
        except OSError:
            code["patch"] = None
    return code


def _packages(store: Store, oid: str | None) -> list[dict[str, Any]]:
    if not oid:
        return []
    try:
        return list(PACKAGES.fit(loads(store.objects.get_bytes(oid))) or [])
    except (OSError, ValueError):
        return []
