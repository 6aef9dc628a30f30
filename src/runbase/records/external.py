"""Runs written from outside a tracked process: the MLflow API of the team server
(runbase.server) and the importers (runbase.interop) create runs and add params, tags,
metric points and output files to them here (docs/mlflow.md).

Such a run has no owner process (``owner_pid`` NULL), so orphan recovery never marks
it crashed (records.lifecycle.recover_orphans); its ``mode`` says where it came from
(``mlflow``, ``import``). Metric points go through the same writer as the spool's
ingester (records.ingest.append_points), so the summary rows stay right.

Parameter values are stored as runbase stores them, JSON text (docs/run-record.md):
an MLflow value (always a string) that is the JSON text of a finite number or a
boolean (``"0.01"``, ``"3"``, ``"true"``) is stored as that number, so runbase filters
and sorts by it; any other string as a JSON string (capture.params.mlflow_param_value,
the rule every MLflow path shares). :func:`param_text` gives the original string back.
Secrets are redacted as from any other source (capture.secrets).

It is also the one home of MLflow's shapes that every path shares (the server's API,
the importer, the export, the mirror of a script's MLflow calls): the hidden tags under
:data:`HIDDEN_PREFIX`, the status map, the millisecond conversion and the dataset
inputs' codec. Every function validates its input and raises runbase.errors.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from array import array
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from runbase.capture.params import MAX_INLINE_VALUE, mlflow_param_value, numeric
from runbase.capture.secrets import redact_value
from runbase.core import mlflowtags
from runbase.core.ids import is_valid_id, new_run_id, new_run_name, split_id
from runbase.core.shapes import I64, MAX_TIME
from runbase.core.statuses import STATUSES, is_terminal
from runbase.errors import Conflict, NotFound, RunNotFound, UsageError
from runbase.records.experiments import (
    EXPERIMENT_TAG,
    MAX_VALUE,
    adopt,
    check_key,
    check_stored_file,
    check_tags,
    check_text,
)
from runbase.records.ingest import append_points, apply_summary
from runbase.store import Store
from runbase.store.hashing import hash_bytes

MAX_PARAM_VALUE = 1 << 20  # characters (MLflow's own limit is 6000)
MAX_NAME = 500
MAX_MODE = 64
MAX_POINTS = 1_000_000  # per call

# The MLflow tags every path shares live in core.mlflowtags (stdlib only: the mirror in
# a training process reads them without loading the store); the same names here.
HIDDEN_PREFIX = mlflowtags.HIDDEN_PREFIX
DELETED_TAG = mlflowtags.DELETED_TAG
DATASET_PREFIX = mlflowtags.DATASET_PREFIX
MODEL_INPUT_PREFIX = mlflowtags.MODEL_INPUT_PREFIX
MODEL_OUTPUT_PREFIX = mlflowtags.MODEL_OUTPUT_PREFIX
MLFLOW_SOURCE = mlflowtags.MLFLOW_SOURCE
MODEL_HISTORY_TAG = mlflowtags.MODEL_HISTORY_TAG
DATASET_CONTEXT_TAG = mlflowtags.DATASET_CONTEXT_TAG

# The one map between runbase's statuses (core.statuses) and MLflow's RunStatus.
STATUS_TO_MLFLOW = {
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",  # MLflow has no "the process vanished"
    "pruned": "KILLED",  # a sweep's pruner stopped it
    "lost": "FAILED",  # its node died (the sweep retried it as another run)
}
STATUS_FROM_MLFLOW = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "killed",
}
# run ids are Crockford base32 (runbase.core.ids): the derived ids' random half too
_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def derived_id(system: str, original_id: str, started_at: float) -> str:
    """The runbase id of a run imported from ``system`` (its id there ``original_id``):
    the time prefix of a new id at ``started_at`` (ids sort by start), then 40 bits of
    the BLAKE3 of ``"system:original_id"``, so importing it again finds it."""
    check_text("system", system, 64)
    check_text("original run id", original_id, 1024)
    if not isinstance(started_at, (int, float)) or not 0 <= started_at <= MAX_TIME:
        raise UsageError(f"bad start time {started_at!r}")
    digest = int(hash_bytes(f"{system}:{original_id}".encode()).split(":", 1)[1][:10], 16)
    tail = "".join(_B32[(digest >> (5 * i)) & 31] for i in reversed(range(8)))
    return new_run_id(float(started_at))[:8] + tail


# -- MLflow's shapes ------------------------------------------------------------------------


def ms(seconds: float | None) -> int | None:
    """Epoch seconds (runbase) as epoch milliseconds (MLflow), rounded: the one
    conversion, so every path gives the same millisecond."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise UsageError(f"a time must be a number of seconds, not {type(seconds).__name__}")
    if not math.isfinite(seconds):
        raise UsageError(f"time {seconds!r} is not a time")
    return int(round(seconds * 1000))


def seconds(ms: int | float | None) -> float | None:
    """Epoch milliseconds (MLflow) as epoch seconds; 0 stays 0 (only None is absent).
    The range is checked where the time is written (create_run, log_points)."""
    if ms is None:
        return None
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        raise UsageError(f"a time must be a number of milliseconds, not {type(ms).__name__}")
    if not math.isfinite(ms):
        raise UsageError(f"time {ms!r} is not a time")
    return ms / 1000.0


# A dataset input (MLflow's DatasetInput as its REST API writes it) is kept as one tag
# ``DATASET_PREFIX + hash`` whose value is the JSON of
# ``{"dataset": {"name", "digest", "source_type"?, "source"?, "schema"?, "profile"?},
#    "tags": [{"key", "value"}, ...]}``: the same dataset in the same context is one
# input, as in MLflow. The server's API, the importer and the export all go through
# dataset_tags() and datasets(), so a run reads the same whichever way it came.
DATASET_FIELDS = {  # MLflow's own limits (characters)
    "name": 500,
    "digest": 36,
    "source_type": 500,
    "source": 65_535,
    "schema": 32_768,
    "profile": 16_384,
}
DATASET_REQUIRED = ("name", "digest")
MAX_DATASET_TAGS = 100
MAX_DATASET_TAG_KEY = 255
MAX_DATASET_TAG_VALUE = 500


def _dataset_entry(item: Any) -> tuple[dict[str, Any] | None, str]:
    """``item`` in the stored shape (tags a list of pairs, empty fields left out), or
    None and why not. Input tags may also be a mapping."""
    if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
        return None, "a dataset input is an object with a 'dataset' object"
    ds = item["dataset"]
    dataset: dict[str, str] = {}
    for field, most in DATASET_FIELDS.items():
        value = ds.get(field)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > most or "\x00" in value:
            return None, f"dataset field {field!r} must be text of at most {most} characters"
        dataset[field] = value
    missing = [f for f in DATASET_REQUIRED if f not in dataset]
    if missing:
        return None, f"a dataset needs a {' and a '.join(missing)}"
    raw = item.get("tags")
    if raw is None:
        raw = []
    elif isinstance(raw, dict):
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list) or len(raw) > MAX_DATASET_TAGS:
        return None, f"a dataset input's tags are a list of at most {MAX_DATASET_TAGS} pairs"
    tags = []
    for pair in raw:
        key = pair.get("key") if isinstance(pair, dict) else None
        value = pair.get("value", "") if isinstance(pair, dict) else None
        if not isinstance(key, str) or not 0 < len(key) <= MAX_DATASET_TAG_KEY:
            return None, "a dataset input's tag needs a key (text, at most 255 characters)"
        if not isinstance(value, str) or len(value) > MAX_DATASET_TAG_VALUE:
            return None, f"dataset input tag {key[:100]!r}: value is not text of at most 500"
        tags.append({"key": key, "value": value})
    return {"dataset": dataset, "tags": tags}, ""


def dataset_tags(entries: list[dict[str, Any]]) -> tuple[dict[str, str], int]:
    """The tags that keep dataset inputs ``entries`` (each ``{"dataset": {...}, "tags":
    [{"key", "value"}...]}``; tags may also be a mapping), and how many entries were
    too large for one tag value (experiments.MAX_VALUE) and are not kept: the caller
    refuses or reports them. A malformed entry is a UsageError saying why."""
    if not isinstance(entries, list):
        raise UsageError("dataset inputs must be a list")
    out: dict[str, str] = {}
    too_large = 0
    for item in entries:
        entry, why = _dataset_entry(item)
        if entry is None:
            raise UsageError(why)
        text = json.dumps(entry, sort_keys=True)
        if len(text) > MAX_VALUE:
            too_large += 1
            continue
        ds = entry["dataset"]
        context = json.dumps(sorted((t["key"], t["value"]) for t in entry["tags"]))
        digest = hashlib.sha256(
            "\x00".join((ds["name"], ds["digest"], context)).encode("utf-8", "surrogatepass")
        )
        out[DATASET_PREFIX + digest.hexdigest()[:16]] = text
    return out, too_large


def datasets(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The dataset inputs kept in a run's ``tags`` (in the shape dataset_tags takes,
    ordered by tag key). Tags reach a store unchecked (a push, ``runbase tag``), so each
    is validated here: a malformed one is skipped, never raises."""
    out = []
    for key in sorted(k for k in tags if isinstance(k, str) and k.startswith(DATASET_PREFIX)):
        text = tags[key]
        try:
            item = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            continue
        entry, _ = _dataset_entry(item)
        if entry is not None and isinstance(item.get("tags", []), list):
            out.append(entry)
    return out


def dataset_context(entry: dict[str, Any]) -> str | None:
    """The context of a dataset input (its ``mlflow.data.context`` tag), if any."""
    return next(
        (t["value"] for t in entry.get("tags", []) if t.get("key") == DATASET_CONTEXT_TAG),
        None,
    )


# -- checks -------------------------------------------------------------------------------


def _run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not is_valid_id(run_id):
        raise RunNotFound(f"no run with id {str(run_id)[:40]!r}")
    return run_id


def _require(cur: Any, run_id: str) -> None:
    if not cur.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
        raise RunNotFound(f"no run with id {run_id!r}")


def _beat(cur: Any, run_id: str) -> None:
    """A write is a sign of life: a running run's heartbeat (what the run page shows as
    its liveness, render.views.run) moves on, as the ingester moves a tracked run's."""
    cur.execute(
        "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'",
        (time.time(), run_id),
    )


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value <= MAX_TIME:  # NaN fails this too
        raise UsageError(f"{what} {value!r} is not a time")
    return float(value)


def exists(store: Store, run_id: str) -> bool:
    if not isinstance(run_id, str) or not is_valid_id(run_id):
        return False
    return store.db.query_one("SELECT 1 FROM runs WHERE id = ?", (run_id,)) is not None


# -- runs ---------------------------------------------------------------------------------


def create_run(
    store: Store,
    *,
    run_id: str | None = None,
    name: str | None,
    started_at: float,
    user: str | None,
    mode: str,
    command: list[str] | None = None,
    host: str | None = None,
    parent_id: str | None = None,
    status: str = "running",
    ended_at: float | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Insert a run with no owner process and return its id (a new one unless
    ``run_id`` is given; Conflict if a run has it)."""
    if run_id is None:
        run_id = new_run_id()
    elif not isinstance(run_id, str) or not is_valid_id(run_id):
        raise UsageError(f"not a run id: {str(run_id)[:40]!r} (16 characters of 0-9a-z)")
    name = new_run_name() if name is None or name == "" else check_text("run name", name, MAX_NAME)
    started = _time(started_at, "start time")
    ended = None if ended_at is None else _time(ended_at, "end time")
    check_text("run mode", mode, MAX_MODE)
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if is_terminal(status) and ended is None:
        ended = started
    argv = [] if command is None else command
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise UsageError("command must be a list of strings")
    for what, text in (("user", user), ("host", host)):
        if text is not None:
            check_text(what, text, 256)
    if parent_id is not None:
        _run_id(parent_id)
    checked = check_tags(tags)
    with store.db.transaction() as cur:
        if cur.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise Conflict(f"a run with id {run_id} already exists")
        cur.execute(
            "INSERT INTO runs (id, name, status, started_at, ended_at, heartbeat_at, command, "
            "user_name, host, mode, owner_pid, parent_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                run_id,
                name,
                status,
                started,
                ended,
                started,
                json.dumps(argv),
                user,
                host,
                mode,
                parent_id,
            ),
        )
        for k, v in checked.items():
            cur.execute("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)", (run_id, k, v))
        _adopt(cur, checked)
    return run_id


def _adopt(cur: Any, tags: dict[str, str]) -> None:
    """A run's experiment tag written: the experiment gets its MLflow id now."""
    if EXPERIMENT_TAG in tags:
        adopt(cur, [tags[EXPERIMENT_TAG]])


def set_status(store: Store, run_id: str, status: str, ended_at: float | None) -> None:
    """Set a run's status (core.statuses); a terminal one without ``ended_at`` ends now,
    ``running`` clears the end time."""
    run_id = _run_id(run_id)
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    ended = None if ended_at is None else _time(ended_at, "end time")
    if not is_terminal(status):
        ended = None
    elif ended is None:
        ended = time.time()
    with store.db.transaction() as cur:
        _require(cur, run_id)
        cur.execute(
            "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, ended, run_id)
        )


def set_name(store: Store, run_id: str, name: str) -> None:
    run_id = _run_id(run_id)
    name = check_text("run name", name, MAX_NAME)
    with store.db.transaction() as cur:
        _require(cur, run_id)
        cur.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))


# -- params -------------------------------------------------------------------------------


def _encode(key: str, text: str) -> tuple[str, bytes | None]:
    """The stored JSON text of an MLflow value, and the bytes of the object it refers
    to when the value is too long to keep inline (as records.ingest stores them)."""
    value = json.dumps(
        redact_value(key, mlflow_param_value(text)), ensure_ascii=False, allow_nan=False
    )
    if len(value) <= MAX_INLINE_VALUE:
        return value, None
    data = value.encode()
    ref = {"$object": hash_bytes(data), "size": len(value), "preview": value[:200]}
    return json.dumps(ref), data


def _num(value_json: str) -> float | None:
    """The number runbase filters and sorts a param by: its stored value's, or the one
    a stored string spells (``"1e-3"`` is kept as that string, yet ``lr < 0.01`` finds
    it). Read from what is stored, so a redacted value gives none."""
    n = numeric(value_json)
    if n is not None:
        return n
    v = json.loads(value_json)
    return _number(v) if isinstance(v, str) else None


def param_text(store: Store, value_json: str) -> str:
    """An MLflow param value (a string) from a stored one (``params.value``): a JSON
    string's text, any other value's JSON text (``0.01``, ``true``, ``[1, 2]``), a
    value kept as an object read back from the store."""
    try:
        v = json.loads(value_json)
    except ValueError:
        return value_json
    if isinstance(v, dict) and isinstance(v.get("$object"), str) and len(v) <= 3:
        try:
            split_id(v["$object"])
            inner = store.objects.get_bytes(v["$object"], max_size=MAX_PARAM_VALUE * 4 + 64)
            return param_text(store, inner.decode("utf-8", "replace"))
        except (OSError, ValueError):
            return str(v.get("preview", ""))
    return v if isinstance(v, str) else value_json


def set_params(
    store: Store,
    run_id: str,
    params: dict[str, str],
    source: str,
    *,
    hold: Callable[[str, int], None] | None = None,
) -> None:
    """Add params (``source``: "mlflow", or the import system's name). A key the run
    already has keeps its value: the same value is a no-op, another one is a Conflict
    naming the key and both values (MLflow's params never change). A value too long to
    keep inline is kept as an object of the store; ``hold(oid, size)`` is called for
    each such object before the params are written (a team server: the project holds
    it, as an uploaded object, so a pull and gc see it)."""
    run_id = _run_id(run_id)
    check_text("param source", source, 64)
    if not isinstance(params, dict):
        raise UsageError("params must be a mapping of strings to strings")
    encoded: list[tuple[str, str, str, bytes | None]] = []
    for key, text in params.items():
        check_key(key, "param key")
        check_text(f"value of param {key!r}", text, MAX_PARAM_VALUE, empty=True)
        encoded.append((key, text, *_encode(key, text)))
    for _key, _text, _value, data in encoded:
        if data is not None:
            oid = store.objects.put_bytes(data)
            if hold is not None:
                hold(oid, len(data))
    with store.db.transaction() as cur:
        _require(cur, run_id)
        for key, text, value, _data in encoded:
            row = cur.execute(
                "SELECT value FROM params WHERE run_id = ? AND key = ?", (run_id, key)
            ).fetchone()
            if row is not None:
                old = str(row[0])
                if old == value or _same(store, old, text):
                    continue
                raise Conflict(
                    f"param {key!r} of run {run_id} is already {param_text(store, old)[:200]!r}; "
                    f"a param's value cannot change (new value {text[:200]!r})"
                )
            cur.execute(
                "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?)",
                (run_id, key, value, _num(value), source),
            )
        _beat(cur, run_id)


def _same(store: Store, old_json: str, text: str) -> bool:
    """A value stored by another source (``100.0`` parsed from a command line) that is
    the one MLflow sends (``"100.0"``), as text or as a number."""
    if param_text(store, old_json) == text:
        return True
    a, b = numeric(old_json), _number(text)
    return a is not None and b is not None and a == b


def _number(text: str) -> float | None:
    """The finite number a string spells (``"1e-3"``, ``"0.10"``), else None."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# -- tags ---------------------------------------------------------------------------------


def set_tags(store: Store, run_id: str, tags: dict[str, str]) -> None:
    """Set (or replace) tags of a run."""
    run_id = _run_id(run_id)
    checked = check_tags(tags)
    with store.db.transaction() as cur:
        _require(cur, run_id)
        for k, v in checked.items():
            cur.execute(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                (run_id, k, v),
            )
        _adopt(cur, checked)
        _beat(cur, run_id)


def delete_tag(store: Store, run_id: str, key: str) -> None:
    """Remove a tag of a run; NotFound if it has none of that key."""
    run_id = _run_id(run_id)
    key = check_key(key)
    with store.db.transaction() as cur:
        _require(cur, run_id)
        if not cur.execute(
            "SELECT 1 FROM tags WHERE run_id = ? AND key = ?", (run_id, key)
        ).fetchone():
            raise NotFound(f"run {run_id} has no tag {key!r}")
        cur.execute("DELETE FROM tags WHERE run_id = ? AND key = ?", (run_id, key))


def soft_delete(store: Store, run_id: str, deleted: bool) -> None:
    """MLflow's delete_run (``deleted``) and restore_run: the ``deleted`` tag holds the
    time of deletion; runbase's own listings do not hide such a run."""
    run_id = _run_id(run_id)
    with store.db.transaction() as cur:
        _require(cur, run_id)
        if deleted:
            now = datetime.now(timezone.utc).isoformat()
            cur.execute(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, key) DO NOTHING",
                (run_id, DELETED_TAG, now),
            )
        else:
            cur.execute("DELETE FROM tags WHERE run_id = ? AND key = ?", (run_id, DELETED_TAG))


# -- metrics ------------------------------------------------------------------------------


def _point(p: Any) -> tuple[str, int, float, float]:
    if not isinstance(p, (tuple, list)) or len(p) != 4:
        raise UsageError("a metric point is (key, step, time in seconds, value)")
    key, step, t, value = p
    check_key(key, "metric key")
    if isinstance(step, bool) or not isinstance(step, int) or not -I64 <= step < I64:
        raise UsageError(f"step of metric {key!r} must be a 64-bit integer, not {step!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"value of metric {key!r} must be a number, not {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:
        raise UsageError(f"value of metric {key!r} is too large") from None
    return key, step, _time(t, f"time of metric {key!r}"), v


def log_points(store: Store, run_id: str, points: list[tuple[str, int, float, float]]) -> None:
    """Append metric points ``(key, step, time in seconds, value)``, each key's in the
    order given (NaN and the infinities are values too), in one transaction."""
    run_id = _run_id(run_id)
    if not isinstance(points, list) or len(points) > MAX_POINTS:
        raise UsageError(f"points must be a list of at most {MAX_POINTS}")
    series: dict[str, tuple[list[int | None], list[float], list[float]]] = {}
    for p in points:
        key, step, t, v = _point(p)
        steps, times, vals = series.setdefault(key, ([], [], []))
        steps.append(step)
        times.append(t)
        vals.append(v)
    if not series:
        return
    with store.db.transaction() as cur:
        _require(cur, run_id)
        for key, (steps, times, vals) in series.items():
            append_points(cur, run_id, key, steps, times, vals)
        _beat(cur, run_id)


def _checked_series(store: Store, run_id: str, key: str) -> tuple[str, str]:
    run_id = _run_id(run_id)
    key = check_key(key, "metric key")
    if not exists(store, run_id):
        raise RunNotFound(f"no run with id {run_id!r}")
    return run_id, key


def _decode(b_steps: Any, b_times: Any, b_vals: Any) -> list[tuple[int, float, float]] | None:
    """The points of one stored chunk; None for a damaged one (a store is not trusted)."""
    if not all(isinstance(b, bytes) for b in (b_steps, b_times, b_vals)):
        return None
    if len(b_steps) % 8 or not len(b_steps) == len(b_times) == len(b_vals):
        return None
    s: array[int] = array("q")
    t: array[float] = array("d")
    v: array[float] = array("d")
    s.frombytes(b_steps)
    t.frombytes(b_times)
    v.frombytes(b_vals)
    if sys.byteorder == "big":
        s.byteswap()
        t.byteswap()
        v.byteswap()
    return list(zip(s, t, v, strict=True))


def metric_history(store: Store, run_id: str, key: str) -> list[tuple[int, float, float]]:
    """``(step, time, value)`` of every point of metric ``key``, in the order stored;
    empty if the run has no such metric (RunNotFound if there is no such run)."""
    run_id, key = _checked_series(store, run_id, key)
    rows = store.db.query(
        "SELECT steps, times, vals FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq",
        (run_id, key),
    )
    out: list[tuple[int, float, float]] = []
    for b_steps, b_times, b_vals in rows:
        out.extend(_decode(b_steps, b_times, b_vals) or [])
    return out


def metric_page(
    store: Store, run_id: str, key: str, start: int, limit: int
) -> tuple[list[tuple[int, float, float]], int | None]:
    """Points ``[start, start + limit)`` of metric ``key`` in the order stored, and the
    start of the next page (None at the end). Only the chunks that hold the page are
    read (each chunk's count ``n`` places it), so paging a long series costs its pages,
    not the series each time. A position is a stored point: a damaged chunk keeps its
    places and gives none, so pages never shift."""
    run_id, key = _checked_series(store, run_id, key)
    for what, n in (("start", start), ("limit", limit)):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < I64:
            raise UsageError(f"{what} must be an integer from 0, not {n!r}")
    if limit == 0:
        raise UsageError("limit must be at least 1")
    counts = store.db.query(
        "SELECT seq, n FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq",
        (run_id, key),
    )
    end = start + limit
    wanted: list[tuple[int, tuple[int, int]]] = []  # (seq, (its first position, n))
    pos = 0
    for seq, n in counts:
        size = n if isinstance(n, int) and n > 0 else 0
        if pos < end and pos + size > start:
            wanted.append((int(seq), (pos, size)))
        pos += size
    total = pos
    out: list[tuple[int, float, float]] = []
    if wanted:  # consecutive chunks: one range of seq
        firsts = dict(wanted)
        rows = store.db.query(
            "SELECT seq, steps, times, vals FROM metric_chunks WHERE run_id = ? AND key = ? "
            "AND seq >= ? AND seq <= ? ORDER BY seq",
            (run_id, key, wanted[0][0], wanted[-1][0]),
        )
        for seq, b_steps, b_times, b_vals in rows:
            first, size = firsts.get(seq, (0, -1))
            points = _decode(b_steps, b_times, b_vals) if size >= 0 else None
            if points is not None and len(points) == size:
                out.extend(points[max(start - first, 0) : end - first])
    return out, (end if end < total else None)


def set_summary(store: Store, run_id: str, values: dict[str, float]) -> None:
    """Set summary values of the run (what ``runbase.summary`` sets: a metric's value
    for tables and filters, whatever its points; NaN and the infinities allowed), in one
    transaction."""
    run_id = _run_id(run_id)
    if not isinstance(values, dict):
        raise UsageError("summary values must be a mapping of metric keys to numbers")
    checked: dict[str, float] = {}
    for key, v in values.items():
        check_key(key, "metric key")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"summary of metric {key!r} must be a number, not {type(v).__name__}")
        try:
            checked[key] = float(v)
        except OverflowError:
            raise UsageError(f"summary of metric {key!r} is too large") from None
    with store.db.transaction() as cur:
        _require(cur, run_id)
        apply_summary(cur, run_id, checked)
        _beat(cur, run_id)


def latest_metrics(
    store: Store, run_ids: list[str]
) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``{run_id: {key: (value, time, step)}}``: the last logged point of each metric
    with points of these runs, from the summary rows (no chunk is read); a run without
    any is left out. The last logged, which is MLflow's latest unless a client logged an
    earlier step later."""
    if not isinstance(run_ids, list):
        raise UsageError("run ids must be a list")
    ids = [r for r in run_ids if isinstance(r, str) and is_valid_id(r)]
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        rows = store.db.query(
            "SELECT run_id, key, last, last_time, last_step FROM metrics "
            f"WHERE count > 0 AND run_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        for run_id, key, last, t, step in rows:
            value = math.nan if last is None else float(last)  # NULL: a NaN (docs/store-format.md)
            when = float(t) if isinstance(t, (int, float)) else 0.0
            out.setdefault(str(run_id), {})[str(key)] = (value, when, int(step or 0))
    return out


# -- outputs ------------------------------------------------------------------------------


def add_output(
    store: Store, run_id: str, path: str, oid: str, size: int, source: str, kind: str = "file"
) -> None:
    """Record an output of the run (an MLflow artifact): ``path`` relative, POSIX
    (core.safepath), its bytes already the object ``oid`` of the store; ``kind`` "dir":
    a directory, ``oid`` its tree manifest (capture.manifest), whose files ``gc`` keeps."""
    run_id = _run_id(run_id)
    check_text("file source", source, 64)
    if kind not in ("file", "dir"):
        raise UsageError(f"kind must be file or dir, not {kind!r}")
    check_stored_file(store, path, oid, size)
    with store.db.transaction() as cur:
        _require(cur, run_id)
        cur.execute(
            "INSERT INTO run_files (run_id, role, path, oid, size, stored, source, kind) "
            "VALUES (?, 'output', ?, ?, ?, 1, ?, ?) "
            "ON CONFLICT (run_id, role, path) DO UPDATE SET oid = excluded.oid, "
            "size = excluded.size, stored = 1, source = excluded.source, kind = excluded.kind",
            (run_id, path, oid, size, source, kind),
        )
