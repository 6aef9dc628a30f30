"""A sweep's record (the ``sweeps`` table, schema 9) and its trials' sweep statuses.

``runbase sweep`` (tracking.sweep) creates the row before its first trial and updates
it as the sweep goes (status, the study of an Optuna search, the best run so far). The
trials are runs carrying the sweep's id (``runs.sweep_id``) and their index (the tag
``sweep_index``). A trial the pruner stopped is ``pruned``; one whose node died (the
executor retried it as a new run) is ``lost`` (:func:`set_run_status`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any

from runbase.capture import env as envcap
from runbase.capture.proc import is_alive
from runbase.core import executorinfo
from runbase.core.shapes import loads
from runbase.errors import StoreError, TooDeep, UsageError
from runbase.records.read import list_runs, metric_summary, with_sweep
from runbase.store import Store

SWEEP_STATUSES = ("running", "finished", "interrupted", "failed")
# the statuses only a sweep gives a run, after (or instead of) the run's own end
SWEEP_RUN_STATUSES = ("pruned", "lost")
INDEX_TAG = "sweep_index"  # capture.overrides.INDEX_TAG
_COLUMNS = (
    "id, created_at, updated_at, status, spec_json, user_name, host, study_json, best_run, "
    "owner_pid, owner_host, heartbeat_at"
)
# the driver process of a sweep (where it runs, not what it is): local facts a bundle
# never carries (records.bundle)
OWNER_COLUMNS = ("owner_pid", "owner_host", "heartbeat_at")
# a driver beats about every BEAT_EVERY s; one silent for STALE_AFTER s is taken for dead
# (another host's driver: its pid says nothing here)
BEAT_EVERY = 10.0
STALE_AFTER = 120.0
_INDEX = re.compile(r"-?[0-9]{1,18}")
# a sweep id becomes a path component (the study's db, sweeps/<id>/ after a pull): new ids
# are run ids (tracking.sweep), a pushed one need only be a safe name
_SWEEP_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def is_valid_sweep_id(value: Any) -> bool:
    return isinstance(value, str) and value not in (".", "..") and bool(_SWEEP_ID.fullmatch(value))


def sweep_index(value: Any) -> int | None:
    """A trial's index from its ``sweep_index`` tag (or an int); None when it is none.
    Strict: ASCII digits only ("²" and "--5" are not indexes), at most 18 of them, so
    whatever a pushed run carries never raises where trials are ordered."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INDEX.fullmatch(value):
        return int(value)
    return None


def create_sweep(
    store: Store,
    sweep_id: str,
    spec: dict[str, Any],
    study: dict[str, Any] | None = None,
    created_at: float | None = None,
    origin: tuple[Any, Any] | None = None,
) -> None:
    """Record a new ``running`` sweep driven by this process (see :func:`claim`);
    UsageError when ``sweep_id`` is taken. ``created_at`` and ``origin`` (user, host):
    when and by whom the sweep was started (a joining driver's copy keeps its first
    driver's, so that its pushes do not rename the sweep's author; default now, here)."""
    _check_object("spec", spec)
    if study is not None:
        _check_object("study", study)
    user, here = envcap.user_and_host()
    host = here
    if origin is not None:
        user = origin[0] if isinstance(origin[0], str) else user
        host = origin[1] if isinstance(origin[1], str) else host
    now = time.time()
    with store.db.transaction() as cur:
        cur.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,))
        if cur.fetchone() is not None:
            raise UsageError(f"a sweep {sweep_id} exists already")
        cur.execute(
            f"INSERT INTO sweeps ({_COLUMNS}) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, NULL, ?, ?, ?)",
            # its creator drives it (claim: a resumed sweep's new driver)
            (sweep_id, created_at or now, now, json.dumps(spec), user, host, _dumps(study))
            + (os.getpid(), here, now),
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


def sweep_user(store: Store, sweep_id: str) -> str | None:
    """Whose sweep ``sweep_id`` is (None: no record, or no user), read alone: the team
    server checks it on every pushed run of a sweep."""
    row = store.db.query_one("SELECT user_name FROM sweeps WHERE id = ?", (sweep_id,))
    return None if row is None or row[0] is None else str(row[0])


def list_sweeps(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` sweeps, newest first (a damaged row raises StoreError)."""
    rows = store.db.query(
        f"SELECT {_COLUMNS} FROM sweeps ORDER BY created_at DESC, id DESC LIMIT ?",
        (max(int(limit), 0),),
    )
    return [_parse(tuple(r)) for r in rows]


def claim(store: Store, sweep_id: str) -> None:
    """Make this process the driver of sweep ``sweep_id`` (its pid, host, a heartbeat
    now). UsageError when another driver is alive: two drivers of one sweep would fail
    each other's trials and reuse trial indexes."""
    _, host = envcap.user_and_host()
    now = time.time()
    with store.db.transaction() as cur:
        cur.execute(
            "SELECT owner_pid, owner_host, heartbeat_at FROM sweeps WHERE id = ?", (sweep_id,)
        )
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no sweep {sweep_id}")
        owner = _owner(tuple(row))
        if owner is not None and owner["pid"] != os.getpid() and _alive(owner, now):
            beat = owner["heartbeat_at"]
            ago = "no heartbeat" if beat is None else f"heartbeat {max(now - beat, 0):.0f}s ago"
            raise UsageError(
                f"sweep {sweep_id} is being driven by pid {owner['pid']} on {owner['host']} "
                f"({ago}); stop it first, or wait for it to end"
            )
        cur.execute(
            "UPDATE sweeps SET owner_pid = ?, owner_host = ?, heartbeat_at = ? WHERE id = ?",
            (os.getpid(), host, now, sweep_id),
        )


def release(store: Store, sweep_id: str) -> None:
    """This process no longer drives sweep ``sweep_id``, which goes on elsewhere (other
    drivers of its study): its row reads as recorded (``running``), not ``interrupted``
    as a dead driver's would. Only this process's own claim is released."""
    store.db.execute(
        "UPDATE sweeps SET owner_pid = NULL, owner_host = NULL, heartbeat_at = NULL "
        "WHERE id = ? AND owner_pid = ? AND owner_host = ?",
        (sweep_id, os.getpid(), envcap.user_and_host()[1]),
    )


def beat(store: Store, sweep_id: str) -> None:
    """The driver of sweep ``sweep_id`` is alive (call about every BEAT_EVERY s)."""
    store.db.execute("UPDATE sweeps SET heartbeat_at = ? WHERE id = ?", (time.time(), sweep_id))


def trial_runs(store: Store, sweep_id: str) -> list[dict[str, Any]]:
    """The runs of sweep ``sweep_id`` (``read.list_runs`` rows) by trial index (the tag
    ``sweep_index``), whatever order they started in; runs without one last."""
    rows = list_runs(store, with_sweep(None, sweep_id), sort="started_at", limit=None)

    def index(row: dict[str, Any]) -> tuple[int, int]:
        found = sweep_index((row.get("tags") or {}).get(INDEX_TAG))
        return (1, 0) if found is None else (0, found)

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


def end_if_running(store: Store, run_id: str, status: str = "killed") -> bool:
    """End run ``run_id`` ``status`` if it still reads ``running`` although its ``runbase
    run`` is gone (SIGKILLed: it never finalized); a pruned or lost mark, or any end
    recorded, stays. Whether it changed."""
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE runs SET status = ?, ended_at = coalesce(ended_at, ?) "
            "WHERE id = ? AND status = 'running'",
            (status, time.time(), run_id),
        )
        return bool(cur.rowcount == 1)


def unprune_if_ended_before(store: Store, run_id: str, pruned_at: float, note: str) -> bool:
    """Give back ``finished`` to a run marked pruned at ``pruned_at`` whose command had
    already run to its end: its supervisor recorded it (exit status 0, no signal, its
    logs stored) as ending before the mark (the pruner read its last points while the
    supervisor was finishing it; the mark, then the signal, came too late to stop
    anything). ``note``: the pruner's, taken off ``error``. Whether it changed. Compares
    the two times: call it only where both come from one clock (this machine)."""
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE runs SET status = 'finished', "
            "error = CASE WHEN error = ? THEN NULL ELSE error END "
            "WHERE id = ? AND status = 'pruned' AND exit_code = 0 AND exit_signal IS NULL "
            "AND logs_json IS NOT NULL AND ended_at < ?",
            (note, run_id, pruned_at),
        )
        return bool(cur.rowcount == 1)


def merged_sweep(cur: Any, sent: dict[str, Any]) -> dict[str, Any] | None:
    """The row to write when one of a sweep's drivers sends its row (``PUT
    .../sweeps/{id}``, or the one a trial's bundle carries; ``sent`` as
    records.bundle.parse_sweep gives it) over the one stored (the same user's: the
    caller checks). The newer ``updated_at``'s columns, but the best run the better of
    the two by the sweep's objective and direction, read from the runs' metrics here:
    a driver whose view is older, or whose clock is behind, never replaces a better run
    another driver found (several machines may drive one sweep: ``runbase sweep
    --join``). ``sent`` as it is when nothing is stored; None when the stored row
    stays as it is. ``cur``: the writing transaction's cursor."""
    names = [c.strip() for c in _COLUMNS.split(",") if c.strip() not in OWNER_COLUMNS]
    row = cur.execute(
        f"SELECT {', '.join(names)} FROM sweeps WHERE id = ?", (sent["id"],)
    ).fetchone()
    if row is None:
        return sent
    stored = dict(zip(names, tuple(row), strict=True))
    newer = (sent.get("updated_at") or 0.0) > (stored.get("updated_at") or 0.0)
    merged = {**stored, **sent} if newer else dict(stored)
    spec = _spec_of(merged.get("spec_json"))
    best = _better_run(cur, spec, stored.get("best_run"), sent.get("best_run"))
    if best is not None:
        merged["best_run"] = best
    return merged if merged != stored else None


def _spec_of(text: Any) -> dict[str, Any]:
    try:
        value = loads(text) if isinstance(text, (str, bytes)) else None
    except (ValueError, TooDeep):
        value = None
    return value if isinstance(value, dict) else {}


def _better_run(cur: Any, spec: dict[str, Any], a: Any, b: Any) -> str | None:
    """Of runs ``a`` and ``b``, the one with the better value of the spec's objective
    (its direction); the one with a value when only one has; None when neither (or no
    objective): the caller keeps the newer row's."""
    objective, direction = spec.get("objective"), spec.get("direction")
    if not isinstance(objective, str) or direction not in ("max", "min"):
        return None
    scored = []
    for run_id in dict.fromkeys(r for r in (a, b) if isinstance(r, str)):
        value = _objective_value(cur, run_id, objective)
        if value is not None:
            scored.append((value if direction == "max" else -value, run_id))
    return max(scored)[1] if scored else None


def _objective_value(cur: Any, run_id: str, objective: str) -> float | None:
    """Run ``run_id``'s value of ``objective`` here (its summary, else its last value;
    None without a finite one), as a sweep's driver reads it (read.load_metrics)."""
    row = cur.execute(
        "SELECT count, last, min, max, last_step, summary, has_summary FROM metrics "
        "WHERE run_id = ? AND key = ?",
        (run_id, objective),
    ).fetchone()
    if row is None:
        return None
    value = metric_summary(*tuple(row))["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def set_run_executor(store: Store, run_id: str, executor: dict[str, Any]) -> None:
    """Record what runs ``run_id`` now (a trial restarted on another node): its
    ``executor`` (docs/run-record.md), checked by core.executorinfo.problem."""
    problem = executorinfo.problem(executor)
    if problem is not None:
        raise UsageError(f"a run's executor {problem}")
    store.db.execute(
        "UPDATE runs SET executor_json = ? WHERE id = ?", (json.dumps(executor), run_id)
    )


def _check_object(what: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"a sweep's {what} must be a JSON object")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"a sweep's {what} is not JSON: {e}") from None


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _owner(row: tuple[Any, ...]) -> dict[str, Any] | None:
    pid, host, heartbeat = row
    if pid is None:  # not driven here (a pushed or pulled copy of the sweep)
        return None
    return {"pid": pid, "host": host, "heartbeat_at": heartbeat}


def _alive(owner: dict[str, Any], now: float) -> bool:
    """Whether a sweep's driver still runs: on this host its process (as lifecycle
    checks a run's supervisor), on another its heartbeat."""
    if owner["host"] == envcap.user_and_host()[1]:
        return isinstance(owner["pid"], int) and is_alive(owner["pid"], None)
    beat = owner["heartbeat_at"]
    return isinstance(beat, (int, float)) and now - beat < STALE_AFTER


def _parse(row: tuple[Any, ...]) -> dict[str, Any]:
    sweep_id, created, updated, status, spec, user, host, study, best = row[:9]
    owner = _owner(row[9:])
    if status == "running" and owner is not None and not _alive(owner, time.time()):
        status = "interrupted"  # its driver died without saying so (SIGKILL, a lost node)
    return {
        "id": sweep_id,
        "created_at": created,
        "updated_at": updated,
        "status": status,
        "owner": owner,
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
