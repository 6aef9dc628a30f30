"""MLflow's experiments and logged models in the store (the ``experiments``,
``experiment_tags``, ``logged_models`` and ``logged_model_files`` tables, schema 8).

A run's experiment is its ``experiment`` tag, by name (docs/mlflow.md): these rows give
each name MLflow's numeric id, a lifecycle stage (``active``/``deleted``), an artifact
location and tags. A run without the tag belongs to MLflow's ``Default`` experiment (id
"0"). Reads never take the write transaction (a server's readers do not wait on its
writers): until a write creates it, Default is read as a virtual row. A name that runs
carry but that no experiment was created for (``runbase run --tag experiment=...``) gets
its row from the write that tags the run (:func:`adopt`: records.external,
records.bundle, records.ingest); a read that still finds such a name (runs stored
before schema 8, or tagged by a path that does not adopt) adopts it then, once, unless
the store is read-only (:func:`adopt_tagged` does all at once).

Logged models (MLflow 3's ``LoggedModel``) belong to an experiment, not to a run: run
bundles do not carry them. Their files are objects of the object store
(``logged_model_files``), kept by ``gc`` and checked by ``fsck`` (records.maintenance).

Every function validates what it is given (ids, names, keys, sizes) and raises
runbase.errors: NotFound (404), Conflict (409), UsageError (400).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runbase.core.ids import split_id
from runbase.core.safepath import check_relpath
from runbase.core.text import text_problem
from runbase.errors import Conflict, NotFound, RunNotFound, UnsafePathError, UsageError
from runbase.store import Store

DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
STAGES = ("active", "deleted")
VIEWS = ("active", "deleted", "all")
EXPERIMENT_TAG = "experiment"  # the run tag that names a run's experiment

MAX_NAME = 500  # characters of an experiment's or a logged model's name
MAX_KEY = 250  # characters of a tag key
MAX_VALUE = 64 * 1024  # characters of a tag value
MAX_INFO = 1 << 20  # bytes of a logged model's info (JSON)
# a logged model's status, as MLflow's API writes it (LoggedModelStatus)
MODEL_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
MAX_LOCATION = 4096


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str
    lifecycle_stage: str  # "active" | "deleted"
    artifact_location: str | None
    created_at: float
    updated_at: float
    tags: dict[str, str]


# -- validation -------------------------------------------------------------------------


def check_text(what: str, value: Any, limit: int, empty: bool = False) -> str:
    """``value`` if it is a string of at most ``limit`` characters without NUL (and not
    empty unless ``empty``), else UsageError naming ``what``."""
    problem = text_problem(value, limit)
    if problem is None and not value and not empty:
        problem = "must not be empty"
    if problem is not None:
        raise UsageError(f"{what} {problem}")
    return str(value)


def check_name(name: Any) -> str:
    return check_text("experiment name", name, MAX_NAME)


def check_key(key: Any, what: str = "tag key") -> str:
    return check_text(what, key, MAX_KEY)


def check_value(value: Any, what: str = "tag value") -> str:
    return check_text(what, value, MAX_VALUE, empty=True)


# The one rule of each id (server.mlflow_base checks the API's fields with these).
# ASCII digits only (str.isdigit() also takes "²"); 18 keep every id below 2**63.
EXPERIMENT_ID_RE = re.compile(r"[0-9]{1,18}")
MODEL_ID_RE = re.compile(r"m-[0-9a-f]{32}")  # a logged model's id, as MLflow makes them


def _check_id(experiment_id: Any) -> str:
    """An experiment id is a decimal number as text; anything else names no experiment."""
    return _id_of(experiment_id, EXPERIMENT_ID_RE, "experiment")


def _id_of(value: Any, pattern: re.Pattern[str], what: str) -> str:
    """``value`` if it is text of an id ``pattern`` matches; else NotFound naming ``what``
    (an id of another shape names none)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise NotFound(f"no {what} with id {str(value)[:40]!r}")
    return value


def _is_id(text: Any) -> bool:
    return isinstance(text, str) and EXPERIMENT_ID_RE.fullmatch(text) is not None


def _ok_name(name: Any) -> bool:
    """Whether a run's ``experiment`` tag (stored unchecked) can name an experiment."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and "\x00" not in name


# -- experiments --------------------------------------------------------------------------


# A read: ``store.db.query`` outside a transaction, or a cursor's within one (_q).
Query = Callable[[str, Sequence[Any]], list[Any]]


def _q(cur: Any) -> Query:
    return lambda sql, params: list(cur.execute(sql, params).fetchall())


def _one(query: Query, sql: str, params: Sequence[Any]) -> Any:
    rows = query(sql, params)
    return rows[0] if rows else None


def _row_to(cur: Any, row: Any) -> Experiment:
    return _experiment(_q(cur), row)


def _experiment(query: Query, row: Any) -> Experiment:
    tags = query(
        "SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key", (row[0],)
    )
    return Experiment(
        id=str(row[0]),
        name=str(row[1]),
        lifecycle_stage=str(row[2]),
        artifact_location=row[3],
        created_at=float(row[4]),
        updated_at=float(row[5]),
        tags={str(k): str(v) for k, v in tags},
    )


_COLUMNS = "id, name, lifecycle_stage, artifact_location, created_at, updated_at"


def _ensure_default(cur: Any) -> None:
    if cur.execute("SELECT 1 FROM experiments WHERE id = ?", (DEFAULT_ID,)).fetchone():
        return
    now = time.time()
    # a runbase user may have named an experiment "Default" by tag first: the default
    # then takes that name's row only if none exists (names are unique)
    name = DEFAULT_NAME
    if cur.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
        name = f"{DEFAULT_NAME} ({DEFAULT_ID})"
    cur.execute(
        f"INSERT INTO experiments ({_COLUMNS}) VALUES (?, ?, 'active', NULL, ?, ?)",
        (DEFAULT_ID, name, now, now),
    )


def _next_id(cur: Any) -> str:
    ids = [int(r[0]) for r in cur.execute("SELECT id FROM experiments").fetchall() if _is_id(r[0])]
    return str(max(ids, default=0) + 1)


def _insert(cur: Any, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
    if cur.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
        raise Conflict(f"an experiment named {name!r} already exists")
    exp_id = _next_id(cur)
    now = time.time()
    cur.execute(
        f"INSERT INTO experiments ({_COLUMNS}) VALUES (?, ?, 'active', ?, ?, ?)",
        (exp_id, name, artifact_location, now, now),
    )
    for k, v in tags.items():
        cur.execute(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)",
            (exp_id, k, v),
        )
    return exp_id


def check_tags(tags: Any) -> dict[str, str]:
    """Tags given as a mapping (None: none), each key and value checked."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise UsageError("tags must be a mapping of strings to strings")
    return {check_key(k): check_value(v) for k, v in tags.items()}


def create(
    store: Store,
    name: str,
    artifact_location: str | None = None,
    tags: dict[str, str] | None = None,
) -> Experiment:
    """A new active experiment, id one more than the largest (Default, "0", exists
    first); Conflict if an experiment (active or deleted, as MLflow) has the name."""
    name = check_name(name)
    if artifact_location is not None:
        check_text("artifact location", artifact_location, MAX_LOCATION)
    checked = check_tags(tags)
    with store.db.transaction() as cur:
        _ensure_default(cur)
        exp_id = _insert(cur, name, artifact_location, checked)
        return _row_to(cur, _fetch(cur, exp_id))


def _fetch(cur: Any, experiment_id: str) -> Any:
    return _fetch_row(cur, "experiments", _COLUMNS, experiment_id, "experiment")


def _fetch_row(cur: Any, table: str, columns: str, row_id: str, what: str) -> Any:
    """The row of ``table`` with id ``row_id`` read in a transaction; NotFound naming
    ``what`` when there is none."""
    row = cur.execute(f"SELECT {columns} FROM {table} WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        raise NotFound(f"no {what} with id {row_id!r}")
    return row


def _read(store: Store, experiment_id: str) -> Experiment | None:
    row = store.db.query_one(f"SELECT {_COLUMNS} FROM experiments WHERE id = ?", (experiment_id,))
    return None if row is None else _experiment(store.db.query, row)


def get(store: Store, experiment_id: str) -> Experiment:
    """The experiment of that id (NotFound if none; "0" is always there). A read."""
    experiment_id = _check_id(experiment_id)
    if experiment_id == DEFAULT_ID:
        return default(store)
    found = _read(store, experiment_id)
    if found is None:
        raise NotFound(f"no experiment with id {experiment_id!r}")
    return found


def default(store: Store) -> Experiment:
    """MLflow's ``Default`` experiment (id "0"): its row, or until a write creates it,
    the row it will be (named as :func:`_ensure_default` would name it). A read."""
    found = _read(store, DEFAULT_ID)
    if found is not None:
        return found
    taken = store.db.query_one("SELECT 1 FROM experiments WHERE name = ?", (DEFAULT_NAME,))
    first = store.db.query_one("SELECT min(started_at) FROM runs")
    when = first[0] if first and isinstance(first[0], (int, float)) else 0.0
    return Experiment(
        id=DEFAULT_ID,
        name=f"{DEFAULT_NAME} ({DEFAULT_ID})" if taken else DEFAULT_NAME,
        lifecycle_stage="active",
        artifact_location=None,
        created_at=float(when),
        updated_at=float(when),
        tags={},
    )


def by_name(store: Store, name: str) -> Experiment | None:
    """The experiment of that name, or None (Default's row included, virtual or not). A
    read, but for a name runs carry that has no row yet (see the module's doc)."""
    name = check_name(name)
    row = store.db.query_one(f"SELECT {_COLUMNS} FROM experiments WHERE name = ?", (name,))
    if row is not None:
        return _experiment(store.db.query, row)
    if name == default(store).name and _read(store, DEFAULT_ID) is None:
        return default(store)
    if _pending(store, [name]):
        _adopt_late(store, [name])
        row = store.db.query_one(f"SELECT {_COLUMNS} FROM experiments WHERE name = ?", (name,))
        return None if row is None else _experiment(store.db.query, row)
    return None


def _pending(store: Store, names: list[str]) -> list[str]:
    """Those of ``names`` that runs carry and that have no experiment row."""
    out = []
    for name in names:
        if store.db.query_one(
            "SELECT 1 FROM tags WHERE key = ? AND value = ? LIMIT 1", (EXPERIMENT_TAG, name)
        ) and not store.db.query_one("SELECT 1 FROM experiments WHERE name = ?", (name,)):
            out.append(name)
    return out


def _adopt_late(store: Store, names: list[str]) -> None:
    """A read found names runs carry without a row (runs stored before schema 8, or by a
    path that does not adopt): they get their rows now, once. Not in a read-only store,
    which is read as it is."""
    if store.read_only or not names:
        return
    with store.db.transaction() as cur:
        adopt(cur, names)


def of_run(store: Store, run_id: str) -> Experiment:
    """The experiment of a run: the one its ``experiment`` tag names, else Default.
    RunNotFound if no such run. A read (see the module's doc for a name without a row;
    in a read-only store such a run reads as Default's)."""
    if not isinstance(run_id, str) or len(run_id) > 64:
        raise RunNotFound("no such run")
    if not store.db.query_one("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
        raise RunNotFound(f"no run with id {run_id!r}")
    row = store.db.query_one(
        "SELECT value FROM tags WHERE run_id = ? AND key = ?", (run_id, EXPERIMENT_TAG)
    )
    name = None if row is None else row[0]
    if not _ok_name(name):
        return default(store)
    found = by_name(store, str(name))
    return default(store) if found is None else found


def unadopted(cur: Any, names: Iterable[str]) -> list[str]:
    """Which of ``names`` :func:`adopt` would add an experiment row for (sorted)."""
    return [
        name
        for name in sorted({n for n in names if _ok_name(n)})
        if not cur.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone()
    ]


def adopt(cur: Any, names: Iterable[str]) -> None:
    """In the caller's write transaction ``cur``: an experiment row for each of
    ``names`` (a run's ``experiment`` tag being written) that has none, so every name a
    run carries has an id before anything reads it. Names that cannot be an experiment's
    (empty, too long, NUL) are left alone: such a run reads as Default's."""
    missing = unadopted(cur, names)
    if missing:
        _ensure_default(cur)  # first: a run tagged "Default" is Default's (id "0")
    for name in missing:
        if not cur.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
            _insert(cur, name, None, {})


def _adopt_tagged(cur: Any) -> None:
    """Rows for all the experiment names runs carry that no experiment has yet."""
    rows = cur.execute(
        "SELECT DISTINCT value FROM tags WHERE key = ? AND value NOT IN "
        "(SELECT name FROM experiments)",
        (EXPERIMENT_TAG,),
    ).fetchall()
    adopt(cur, (str(r[0]) for r in rows))


def adopt_tagged(store: Store) -> None:
    """Rows for all the experiment names runs carry that have none (a store whose runs
    were written before schema 8: ``runbase server migrate`` may call it once)."""
    with store.db.transaction() as cur:
        _adopt_tagged(cur)


def search(store: Store, view: str = "active") -> list[Experiment]:
    """The experiments of ``view`` (active, deleted or all), by id; Default (id "0")
    always. A read (see the module's doc for names without a row)."""
    if view not in VIEWS:
        raise UsageError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    pending = store.db.query(
        "SELECT DISTINCT value FROM tags WHERE key = ? AND value NOT IN "
        "(SELECT name FROM experiments)",
        (EXPERIMENT_TAG,),
    )
    _adopt_late(store, [str(r[0]) for r in pending if _ok_name(r[0])])
    rows = store.db.query(f"SELECT {_COLUMNS} FROM experiments")
    out = [_experiment(store.db.query, r) for r in rows]
    if not any(e.id == DEFAULT_ID for e in out):
        out.append(default(store))
    out = [e for e in out if view == "all" or e.lifecycle_stage == view]
    return sorted(out, key=lambda e: int(e.id) if _is_id(e.id) else -1)


def rename(store: Store, experiment_id: str, new_name: str) -> Experiment:
    """Rename an experiment, and the ``experiment`` tag of its runs with it (one
    transaction). Conflict if another experiment has the name."""
    experiment_id = _check_id(experiment_id)
    new_name = check_name(new_name)
    with store.db.transaction() as cur:
        _ensure_default(cur)
        old = str(_fetch(cur, experiment_id)[1])
        if old == new_name:
            return _row_to(cur, _fetch(cur, experiment_id))
        if cur.execute("SELECT 1 FROM experiments WHERE name = ?", (new_name,)).fetchone():
            raise Conflict(f"an experiment named {new_name!r} already exists")
        cur.execute(
            "UPDATE experiments SET name = ?, updated_at = ? WHERE id = ?",
            (new_name, time.time(), experiment_id),
        )
        cur.execute(
            "UPDATE tags SET value = ? WHERE key = ? AND value = ?",
            (new_name, EXPERIMENT_TAG, old),
        )
        return _row_to(cur, _fetch(cur, experiment_id))


def set_stage(store: Store, experiment_id: str, stage: str) -> None:
    """Delete (``deleted``) or restore (``active``) an experiment; its runs are left as
    they are. The Default experiment cannot be deleted (as MLflow)."""
    experiment_id = _check_id(experiment_id)
    if stage not in STAGES:
        raise UsageError(f"lifecycle stage must be one of {', '.join(STAGES)}, not {stage!r}")
    if experiment_id == DEFAULT_ID and stage == "deleted":
        raise UsageError("the Default experiment (id 0) cannot be deleted")
    with store.db.transaction() as cur:
        _ensure_default(cur)
        _fetch(cur, experiment_id)
        cur.execute(
            "UPDATE experiments SET lifecycle_stage = ?, updated_at = ? WHERE id = ?",
            (stage, time.time(), experiment_id),
        )


def set_tag(store: Store, experiment_id: str, key: str, value: str) -> None:
    experiment_id = _check_id(experiment_id)
    key, value = check_key(key), check_value(value)
    with store.db.transaction() as cur:
        _ensure_default(cur)
        _fetch(cur, experiment_id)
        cur.execute(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            (experiment_id, key, value),
        )
        cur.execute(
            "UPDATE experiments SET updated_at = ? WHERE id = ?", (time.time(), experiment_id)
        )


def delete_tag(store: Store, experiment_id: str, key: str) -> None:
    """Remove a tag of an experiment; NotFound if it has no such tag."""
    experiment_id = _check_id(experiment_id)
    key = check_key(key)
    with store.db.transaction() as cur:
        _ensure_default(cur)
        _fetch(cur, experiment_id)
        if not cur.execute(
            "SELECT 1 FROM experiment_tags WHERE experiment_id = ? AND key = ?",
            (experiment_id, key),
        ).fetchone():
            raise NotFound(f"experiment {experiment_id} has no tag {key!r}")
        cur.execute(
            "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?", (experiment_id, key)
        )


def run_ids(store: Store, experiment_ids: list[str]) -> list[str]:
    """The ids of the runs of these experiments (Default's: the runs without an
    ``experiment`` tag too), newest first. Ids that name no experiment add nothing."""
    if not isinstance(experiment_ids, list) or len(experiment_ids) > 1000:
        raise UsageError("experiment ids must be a list of at most 1000 ids")
    names: list[str] = []
    with_default = False
    for exp_id in experiment_ids:  # a read: Default's row may be virtual
        if not _is_id(exp_id):
            continue
        exp = default(store) if exp_id == DEFAULT_ID else _read(store, exp_id)
        if exp is not None:
            names.append(exp.name)
        with_default = with_default or exp_id == DEFAULT_ID
    found: set[str] = set()
    for lo in range(0, len(names), 500):
        chunk = names[lo : lo + 500]
        rows = store.db.query(
            f"SELECT run_id FROM tags WHERE key = ? AND value IN ({','.join('?' * len(chunk))})",
            [EXPERIMENT_TAG, *chunk],
        )
        found.update(str(r[0]) for r in rows)
    if with_default:
        rows = store.db.query(
            "SELECT id FROM runs WHERE id NOT IN (SELECT run_id FROM tags WHERE key = ?)",
            (EXPERIMENT_TAG,),
        )
        found.update(str(r[0]) for r in rows)
        # a tag that cannot name an experiment (`--tag experiment=`, a push): the run is
        # Default's, as of_run reads it, not in no experiment at all
        rows = store.db.query(
            "SELECT run_id, value FROM tags WHERE key = ? AND (value = '' OR length(value) > ?)",
            (EXPERIMENT_TAG, MAX_NAME),
        )
        found.update(str(r[0]) for r in rows if not _ok_name(str(r[1])))
    order: dict[str, tuple[float, str]] = {}
    ids = sorted(found)
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        q = f"SELECT id, started_at FROM runs WHERE id IN ({','.join('?' * len(chunk))})"
        for run_id, started in store.db.query(q, chunk):
            t = started if isinstance(started, (int, float)) else 0.0
            order[str(run_id)] = (float(t), str(run_id))
    return sorted(order, key=lambda i: order[i], reverse=True)


# -- logged models --------------------------------------------------------------------------

_MODEL_COLUMNS = "id, experiment_id, run_id, name, status, created_at, updated_at, info"


def _check_model_id(model_id: Any) -> str:
    return _id_of(model_id, MODEL_ID_RE, "logged model")


def _check_info(info: Any) -> str:
    if not isinstance(info, dict):
        raise UsageError("a logged model's info must be a JSON object")
    try:
        text = json.dumps(info, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise UsageError(f"a logged model's info is not JSON: {e}") from None
    if len(text.encode()) > MAX_INFO:
        raise UsageError(f"a logged model's info is over {MAX_INFO} bytes")
    return text


def _check_status(status: Any) -> str:
    if status not in MODEL_STATUSES:
        raise UsageError(f"a logged model's status is one of {', '.join(MODEL_STATUSES)}")
    return str(status)


def _model_dict(row: Any) -> dict[str, Any]:
    try:
        info = json.loads(row[7])
    except ValueError:
        info = {}
    return {
        "id": str(row[0]),
        "experiment_id": str(row[1]),
        "run_id": row[2],
        "name": str(row[3]),
        "status": str(row[4]),
        "created_at": float(row[5]),
        "updated_at": float(row[6]),
        "info": info if isinstance(info, dict) else {},
    }


def _fetch_model(cur: Any, model_id: str) -> Any:
    return _fetch_row(cur, "logged_models", _MODEL_COLUMNS, model_id, "logged model")


def create_model(
    store: Store,
    experiment_id: str,
    name: str,
    run_id: str | None,
    info: dict[str, Any],
    status: str = "LOGGED_MODEL_PENDING",
) -> dict[str, Any]:
    """A new logged model of an experiment (NotFound if there is no such experiment or
    run), id ``m-<32 hex>``; returned as :func:`get_model` gives it."""
    experiment_id = _check_id(experiment_id)
    name = check_text("model name", name, MAX_NAME)
    status = _check_status(status)
    text = _check_info(info)
    model_id = "m-" + os.urandom(16).hex()
    now = time.time()
    with store.db.transaction() as cur:
        _ensure_default(cur)
        _fetch(cur, experiment_id)
        if (
            run_id is not None
            and not cur.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        ):
            raise NotFound(f"no run with id {str(run_id)[:40]!r}")
        cur.execute(
            f"INSERT INTO logged_models ({_MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (model_id, experiment_id, run_id, name, status, now, now, text),
        )
        return _model_dict(_fetch_model(cur, model_id))


def get_model(store: Store, model_id: str) -> dict[str, Any]:
    """``{id, experiment_id, run_id, name, status, created_at, updated_at, info}``."""
    model_id = _check_model_id(model_id)
    row = store.db.query_one(
        f"SELECT {_MODEL_COLUMNS} FROM logged_models WHERE id = ?", (model_id,)
    )
    if row is None:
        raise NotFound(f"no logged model with id {model_id!r}")
    return _model_dict(row)


def update_model(
    store: Store, model_id: str, *, status: str | None = None, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Set a logged model's status and/or replace its info; returns it."""
    model_id = _check_model_id(model_id)
    if status is not None:
        status = _check_status(status)
    text = None if info is None else _check_info(info)
    with store.db.transaction() as cur:
        _fetch_model(cur, model_id)
        cur.execute(
            "UPDATE logged_models SET status = COALESCE(?, status), info = COALESCE(?, info), "
            "updated_at = ? WHERE id = ?",
            (status, text, time.time(), model_id),
        )
        return _model_dict(_fetch_model(cur, model_id))


def search_models(store: Store, experiment_ids: list[str]) -> list[dict[str, Any]]:
    """The logged models of these experiments, newest first."""
    if not isinstance(experiment_ids, list) or len(experiment_ids) > 1000:
        raise UsageError("experiment ids must be a list of at most 1000 ids")
    wanted = [e for e in experiment_ids if _is_id(e)]
    if not wanted:
        return []
    rows = store.db.query(
        f"SELECT {_MODEL_COLUMNS} FROM logged_models "
        f"WHERE experiment_id IN ({','.join('?' * len(wanted))}) ORDER BY created_at DESC, id",
        wanted,
    )
    return [_model_dict(r) for r in rows]


def delete_model(store: Store, model_id: str) -> None:
    """Remove a logged model and its file list (its objects go at the next ``gc``)."""
    model_id = _check_model_id(model_id)
    with store.db.transaction() as cur:
        _fetch_model(cur, model_id)
        cur.execute("DELETE FROM logged_model_files WHERE model_id = ?", (model_id,))
        cur.execute("DELETE FROM logged_models WHERE id = ?", (model_id,))


def check_stored_file(store: Store, path: str, oid: str, size: int) -> None:
    """A file a record points at (a logged model's, a run's MLflow artifact): a safe
    relative POSIX path of at most 4096 characters, an object id, a size, and its object
    already in the store."""
    try:
        check_relpath(path)
    except UnsafePathError as e:
        raise UsageError(str(e)) from None
    if len(path) > 4096:
        raise UsageError("a file path is over 4096 characters")
    try:
        split_id(oid)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 1 << 62:
        raise UsageError(f"bad file size {size!r}")
    if not store.objects.exists(oid):
        raise NotFound(f"object {oid} is not in the store")


def put_model_file(store: Store, model_id: str, path: str, oid: str, size: int) -> None:
    """Record (or replace) one file of a logged model: ``path`` relative (POSIX, checked
    by core.safepath), ``oid`` an object already in the store."""
    model_id = _check_model_id(model_id)
    check_stored_file(store, path, oid, size)
    with store.db.transaction() as cur:
        _fetch_model(cur, model_id)
        cur.execute(
            "INSERT INTO logged_model_files (model_id, path, oid, size) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (model_id, path) DO UPDATE SET oid = excluded.oid, size = excluded.size",
            (model_id, path, oid, size),
        )
        cur.execute("UPDATE logged_models SET updated_at = ? WHERE id = ?", (time.time(), model_id))


def model_files(store: Store, model_id: str, prefix: str = "") -> list[tuple[str, str, int]]:
    """``(path, oid, size)`` of a logged model's files, by path; ``prefix``: only that
    file or those under that directory."""
    model_id = _check_model_id(model_id)
    prefix = check_text("path prefix", prefix, 4096, empty=True).strip("/")
    get_model(store, model_id)  # NotFound; a read, as every read here
    rows = store.db.query(
        "SELECT path, oid, size FROM logged_model_files WHERE model_id = ? ORDER BY path",
        (model_id,),
    )
    out = [(str(p), str(o), int(s)) for p, o, s in rows]
    if prefix:
        out = [r for r in out if r[0] == prefix or r[0].startswith(prefix + "/")]
    return out
