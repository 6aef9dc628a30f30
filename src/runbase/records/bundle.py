"""Run bundles: one run's metadata as JSON, to move it between stores.

The team server's push/pull and live publishing use them (docs/store-format.md, "Run
bundles"): :func:`export_run` turns a run's rows into a JSON-serialisable dict,
:func:`import_run` writes such a dict into another store (SQLite or PostgreSQL), and
:func:`run_objects` lists the objects the run refers to, which travel separately
(``store.objects.get_bytes`` on one side, ``put_claimed`` on the other).

>>> bundle = export_run(local, run_id)          # doctest: +SKIP
>>> import_run(server, json.loads(json.dumps(bundle)))   # doctest: +SKIP

The server imports bundles sent by clients, so :func:`import_run` trusts nothing: the
whole bundle is validated before its transaction starts (version, types, run ids, object
ids, sizes), and the only column names that reach SQL are those of the schema itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runbase.capture.manifest import load_manifest
from runbase.core import executorinfo, fsname, ids
from runbase.core.ids import split_id
from runbase.core.safepath import check_recorded_file
from runbase.core.shapes import (
    COLUMNS,
    I64,
    JSON_COLUMNS,
    MAX_DEPTH,
    TIME,
    ShapeError,
    TooDeep,
    brackets,
    loads,
)
from runbase.core.statuses import STATUSES
from runbase.errors import BundleError, RunNotFound, UnsafePathError
from runbase.records.experiments import EXPERIMENT_TAG, adopt, unadopted
from runbase.records.external import HIDDEN_PREFIX, MLFLOW_SOURCE, MODEL_HISTORY_TAG
from runbase.records.maintenance import MAX_MANIFEST, references
from runbase.records.media import mime_problem
from runbase.records.sweeps import OWNER_COLUMNS, SWEEP_STATUSES, is_valid_sweep_id, merged_sweep
from runbase.store import Store
from runbase.store.schema import STORE_SCHEMA
from runbase.store.tables import Column, Table

BUNDLE_VERSION = 1
# the tables holding a run's rows besides ``runs`` (spool_offsets is local ingest state)
TABLES = ("params", "tags", "metrics", "metric_chunks", "run_files", "media")
# tables a bundle of an older runbase does not have: missing reads as [] (none)
LATER_TABLES = ("media",)
OBJECT_KINDS = ("code", "env", "logs", "data", "params", "media")
MAX_ROWS = 1_000_000  # per table
MAX_TEXT = 16 << 20  # characters of one text value
MAX_BLOB = 64 << 20  # bytes of one BLOB value (a compacted metric chunk is at most 8 MiB)
_TOP_KEYS = {"bundle_version", "data", "run", "objects", "log_chunks", "sweep", *TABLES}
LOG_STREAMS = ("output", "stderr")
MAX_LOG_CHUNKS = 10_000  # per delta
_NONFINITE = {"NaN": None, "Infinity": math.inf, "-Infinity": -math.inf}  # NaN is NULL
# the owning process of a live run is on the exporting machine: never imported
_OWNER = ("owner_pid", "owner_start")
# runs columns an older runbase (a team server not yet upgraded) refuses: left out of a
# bundle when null, which a full import reads as null again
LATER_RUN_COLUMNS = ("executor_json",)


# -- the schema, from its declarations (runbase.store.schema) -------------------------


@functools.cache
def schema() -> dict[str, Table]:
    """The tables of the current schema version, from their declarations, so the
    whitelist of column names follows every migration without being written twice."""
    return {t.name: t for t in STORE_SCHEMA.tables_at()}


def _q(name: str) -> str:
    """A column name of :func:`schema`, quoted (``offset`` is a keyword)."""
    return f'"{name}"'


# -- export ------------------------------------------------------------------------------


def run_objects(
    store: Store, run_id: str, data: bool = True, *, expand: bool = True, strict: bool = False
) -> dict[str, str]:
    """Every object run ``run_id`` refers to -> its kind (``code``, ``env``, ``logs``,
    ``data``, ``params``, ``media``: one it refers to several ways has the first of
    code, env, logs, media, data, params); ``data=False`` leaves data out. Blobs of a tree manifest are
    listed only when the manifest itself is in ``store`` (``expand=False``: never);
    ``strict``: a malformed manifest raises BundleError (maintenance.references)."""
    out: dict[str, str] = {}
    for oid, kind, _ in references(store, [run_id], expand=expand, strict=strict):
        if data or kind != "data":
            out.setdefault(oid, kind)
    return out


def export_run(store: Store, run_id: str, data: bool = True) -> dict[str, Any]:
    """Run ``run_id``'s metadata as a JSON-serialisable bundle (docs/store-format.md).
    ``data=False``: the data stays local; its files are listed (path, oid, size) as
    not stored, and its objects are left out of ``objects``."""
    tables = schema()
    run = _run_row(store, run_id)
    bundle: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "data": "stored" if data else "local",
        "run": run,
    }
    if run.get("sweep_id"):  # the sweep's record travels with each of its trials
        sweep = sweep_row(store, run["sweep_id"])
        if sweep is not None:
            bundle["sweep"] = sweep
    for name in TABLES:
        bundle[name] = _select(store, tables[name], "run_id", run_id)
        if not bundle[name] and name in LATER_TABLES:
            # an older runbase (a team server not yet upgraded) refuses a key it does not
            # know, and reads the table's absence as no rows: only a run that has some
            # needs a newer server
            del bundle[name]
    if not data:
        for row in bundle["run_files"]:
            row["stored"] = 0
    bundle["objects"] = run_objects(store, run_id, data)
    return bundle


def _run_row(store: Store, run_id: str) -> dict[str, Any]:
    """The runs row of ``run_id`` as a bundle carries it (RunNotFound without one)."""
    rows = _select(store, schema()["runs"], "id", run_id)
    if not rows:
        raise RunNotFound(f"no run {run_id}")
    for name in LATER_RUN_COLUMNS:
        if rows[0].get(name) is None:
            rows[0].pop(name, None)
    return rows[0]


def _select(store: Store, table: Table, id_column: str, run_id: str) -> list[dict[str, Any]]:
    names = list(table.columns)
    sql = (
        f"SELECT {', '.join(map(_q, names))} FROM {table.name} "
        f"WHERE {_q(id_column)} = ? ORDER BY {', '.join(map(_q, table.key))}"
    )
    return [
        {n: _to_json(table.columns[n], v) for n, v in zip(names, row, strict=True)}
        for row in store.db.query(sql, (run_id,))
    ]


def _to_json(col: Column, value: Any) -> Any:
    if value is None:
        return None
    if col.type == "BLOB":
        return base64.b64encode(bytes(value)).decode("ascii")
    if col.type == "DOUBLE PRECISION" and not math.isfinite(value):
        # strict JSON has no infinities (a server may refuse them): strings, as in the record
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# -- validation ----------------------------------------------------------------------------


@dataclass
class _Parsed:
    run_id: str
    run: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]]
    log_chunks: list[tuple[str, int, bytes]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None  # the sweeps row of the run's sweep


def _fail(where: str, message: str) -> BundleError:
    return BundleError(f"bad run bundle: {where}: {message}")


def _show(value: Any) -> str:
    """A value for an error message, cut short (the input may be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse(bundle: Any, replace: bool) -> _Parsed:
    if not isinstance(bundle, dict):
        raise _fail("bundle", f"must be a JSON object, not {type(bundle).__name__}")
    unknown = sorted(map(str, set(bundle) - _TOP_KEYS))
    if unknown:
        raise _fail("bundle", f"unknown keys {_show(unknown)}")
    version = bundle.get("bundle_version")
    if type(version) is not int or version != BUNDLE_VERSION:
        raise _fail(
            "bundle_version",
            f"{_show(version)} is not supported; this runbase reads version {BUNDLE_VERSION}",
        )
    if bundle.get("data", "stored") not in ("stored", "local"):
        raise _fail("data", f"must be 'stored' or 'local', not {_show(bundle.get('data'))}")
    _check_objects(bundle.get("objects", {}))
    run_id, run = _parse_run(bundle.get("run"), replace)
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        if replace and name not in bundle and name not in LATER_TABLES:
            raise _fail(name, "missing (a full bundle lists every table, [] when empty)")
        rows[name] = _parse_rows(schema()[name], bundle.get(name, []), run_id)
    if bundle.get("data") == "local" and any(r.get("stored") for r in rows["run_files"]):
        # the data's objects were never sent: the store must not claim to hold them
        raise _fail("run_files", "a bundle whose data stays local cannot mark files stored")
    chunks = _parse_log_chunks(bundle.get("log_chunks", []), replace)
    sweep = _parse_sweep(bundle.get("sweep"), run.get("sweep_id"))
    return _Parsed(run_id, run, rows, chunks, sweep)


def sweep_row(store: Store, sweep_id: str) -> dict[str, Any] | None:
    """Sweep ``sweep_id``'s row as a bundle carries it (its ``sweep``; the body of
    ``PUT .../sweeps/{id}``): every column but the driver's (local process facts)."""
    rows = _select(store, schema()["sweeps"], "id", sweep_id)
    if not rows:
        return None
    return {k: v for k, v in rows[0].items() if k not in OWNER_COLUMNS}


def _parse_sweep(raw: Any, sweep_id: Any) -> dict[str, Any] | None:
    """The sweeps row a bundle carries: the run's own sweep's, its JSON checked."""
    if raw is None:
        return None
    row = parse_sweep(raw)
    if row["id"] != sweep_id:
        raise _fail("sweep.id", f"{_show(row['id'])} is not the run's sweep_id {_show(sweep_id)}")
    return row


def parse_sweep(raw: Any) -> dict[str, Any]:
    """A sweeps row as sent (a bundle's ``sweep``, a pushed sweep), checked: BundleError
    when it is not one. Columns it leaves out are NULL, but the driver's stay as they are
    (never sent)."""
    if not isinstance(raw, dict):
        raise _fail("sweep", "must be an object (a sweeps row)")
    table = schema()["sweeps"]
    local = [k for k in OWNER_COLUMNS if k in raw]
    if local:
        raise _fail(f"sweep.{local[0]}", "is a local fact of the sweep's driver, never sent")
    row = _parse_row(table, raw, "sweep")
    _check_required(table, row, "sweep")
    if not is_valid_sweep_id(row["id"]):
        raise _fail("sweep.id", f"{_show(row['id'])} is not a sweep id")
    if row["status"] not in SWEEP_STATUSES:
        raise _fail("sweep.status", f"{_show(row['status'])} is not one of {SWEEP_STATUSES}")
    _json("sweep.spec_json", row["spec_json"])
    _json("sweep.study_json", row.get("study_json"))
    for name in ("created_at", "updated_at"):
        if row.get(name) is not None:
            try:
                TIME.check(row[name], f"sweep.{name}")
            except ShapeError as e:
                raise _fail(e.where, e.message) from None
    best = row.get("best_run")
    if best is not None and not ids.is_valid_id(best):
        raise _fail("sweep.best_run", f"{_show(best)} is not a run id")
    for name in table.columns:  # a full row: what is not given is NULL
        if name not in OWNER_COLUMNS:
            row.setdefault(name, None)
    return row


def _parse_log_chunks(raw: Any, replace: bool) -> list[tuple[str, int, bytes]]:
    """A delta's new log bytes: ``[{"stream", "offset", "data" (base64)}]``."""
    if not isinstance(raw, list) or len(raw) > MAX_LOG_CHUNKS:
        raise _fail("log_chunks", f"must be a list of at most {MAX_LOG_CHUNKS} chunks")
    if raw and replace:
        raise _fail("log_chunks", "only a delta (live update) carries log chunks")
    out = []
    for i, c in enumerate(raw):
        where = f"log_chunks[{i}]"
        if not isinstance(c, dict) or set(c) != {"stream", "offset", "data"}:
            raise _fail(where, "must be {stream, offset, data}")
        if c["stream"] not in LOG_STREAMS:
            raise _fail(where, f"stream must be one of {', '.join(LOG_STREAMS)}")
        if type(c["offset"]) is not int or not 0 <= c["offset"] < 1 << 62:
            raise _fail(where, "offset must be a byte offset")
        out.append((c["stream"], c["offset"], _blob(c["data"], where)))
    return out


def _check_objects(objects: Any) -> None:
    if not isinstance(objects, dict) or len(objects) > MAX_ROWS:
        raise _fail("objects", f"must be an object of at most {MAX_ROWS} object ids")
    for oid, kind in objects.items():
        _check_oid("objects", oid)
        if kind not in OBJECT_KINDS:
            raise _fail(f"objects[{oid}]", f"unknown kind {_show(kind)}")


def _check_oid(where: str, oid: Any) -> None:
    try:
        split_id(oid)
    except (TypeError, ValueError):
        raise _fail(where, f"{_show(oid)} is not an object id") from None


def _parse_run(raw: Any, replace: bool) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise _fail("run", "missing, or not an object")
    run_id = raw.get("id")
    if not isinstance(run_id, str) or not ids.is_valid_id(run_id):
        raise _fail("run.id", f"{_show(run_id)} is not a run id")
    row = _parse_row(schema()["runs"], raw, "run")
    for name in _OWNER:
        row.pop(name, None)
    if replace:
        _check_required(schema()["runs"], row, "run")
    _check_row(schema()["runs"], row, "run")
    if replace:
        for name in schema()["runs"].columns:  # a full row: what is not given is NULL
            if name not in _OWNER:
                row.setdefault(name, None)
    return run_id, row


def _parse_rows(table: Table, raw: Any, run_id: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _fail(table.name, f"must be a list of rows, not {type(raw).__name__}")
    if len(raw) > MAX_ROWS:
        raise _fail(table.name, f"{len(raw)} rows, more than {MAX_ROWS}")
    out = []
    for i, item in enumerate(raw):
        where = f"{table.name}[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "a row must be an object")
        if item.get("run_id", run_id) != run_id:
            raise _fail(where, f"run_id {_show(item['run_id'])} is not the bundle's run {run_id}")
        row = _parse_row(table, {**item, "run_id": run_id}, where)
        _check_required(table, row, where)
        _check_row(table, row, where)
        out.append(row)
    return out


def _parse_row(table: Table, raw: dict[Any, Any], where: str) -> dict[str, Any]:
    row = {}
    for name, value in raw.items():
        col = table.columns.get(name) if isinstance(name, str) else None
        if col is None:
            raise _fail(where, f"unknown column {_show(name)} of table {table.name}")
        row[name] = _value(col, value, f"{where}.{name}")
        _check_shape(table.name, name, value, row[name], f"{where}.{name}")
    return row


def _check_shape(table: str, name: str, raw: Any, value: Any, where: str) -> None:
    """The column's documented range and size (runbase.core.shapes.COLUMNS): a time must be a
    finite time, a count not negative, a name not a megabyte."""
    shape = COLUMNS.get(table, {}).get(name)
    if shape is None:
        return
    if isinstance(raw, str) and raw in _NONFINITE:  # "NaN" became NULL: check what was sent
        value = float(raw.replace("Infinity", "inf"))
    try:
        shape.check(value, where)
    except ShapeError as e:
        raise _fail(e.where, e.message) from None


def _check_row(table: Table, row: dict[str, Any], where: str) -> None:
    check = _ROW_CHECKS.get(table.name)
    if check:
        check(row, where)


def _check_required(table: Table, row: dict[str, Any], where: str) -> None:
    missing = [c.name for c in table.columns.values() if c.required and c.name not in row]
    if missing:
        raise _fail(where, f"missing columns {', '.join(missing)}")


def _value(col: Column, v: Any, where: str) -> Any:
    """``v`` (JSON) as the database value of ``col``; PostgreSQL needs exact types."""
    out: Any
    if v is None:
        out = None
    elif col.type == "TEXT":
        out = _text(v, where)
    elif col.type == "INTEGER":
        if type(v) is not int or not -I64 <= v < I64:
            raise _fail(where, f"must be a 64-bit integer, not {_show(v)}")
        out = v
    elif col.type == "BLOB":
        out = _blob(v, where)
    else:
        out = _double(v, where)  # "NaN" becomes NULL, as SQLite stores NaN
    if out is None and col.not_null:
        raise _fail(where, "must not be null")
    return out


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise _fail(where, f"must be a string of at most {MAX_TEXT} characters")
    problem = fsname.text_problem(v)
    if problem is not None:
        raise _fail(where, problem)
    return v


def _double(v: Any, where: str) -> float | None:
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    if type(v) not in (int, float):
        raise _fail(where, f"must be a number, not {_show(v)}")
    try:
        f = float(v)
    except OverflowError:
        raise _fail(where, f"{_show(v)} is out of range") from None
    return None if math.isnan(f) else f


def _blob(v: Any, where: str) -> bytes:
    if not isinstance(v, str) or len(v) > (MAX_BLOB // 3 + 1) * 4:
        raise _fail(where, f"must be base64 text of at most {MAX_BLOB} bytes")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(where, "is not valid base64") from None


# -- what the readers of a store rely on (show, fsck, gc would fail on bad values) ---------


def _json(where: str, text: str | None, kind: type | None = dict) -> Any:
    if text is None:
        return None
    try:
        value = loads(text)  # nesting bounded (shapes.MAX_DEPTH): never a RecursionError
    except ValueError as e:
        raise _fail(where, f"is not valid JSON ({e})") from None
    if kind is not None and not isinstance(value, kind):
        raise _fail(where, f"must be JSON {kind.__name__}")
    return value


def _check_run(row: dict[str, Any], where: str) -> None:
    if "status" in row and row["status"] not in STATUSES:
        raise _fail(f"{where}.status", f"{_show(row['status'])} is not one of {STATUSES}")
    if row.get("executor_json") is not None:  # what show and the web pages read
        problem = executorinfo.problem(_json(f"{where}.executor_json", row["executor_json"]))
        if problem is not None:
            raise _fail(f"{where}.executor_json", problem)
    if "command" in row:
        _json(f"{where}.command", row["command"], list)
    # every JSON column has the shape docs/run-record.md gives it (runbase.core.shapes): the
    # object ids gc and fsck follow, and the types show, diff and the web pages read
    for name, shape in JSON_COLUMNS.items():
        value = _json(f"{where}.{name}", row.get(name), None)
        try:
            shape.check(value, f"{where}.{name}")
        except ShapeError as e:
            raise _fail(e.where, e.message) from None


def _check_param(row: dict[str, Any], where: str) -> None:
    # a large value is {"$object": oid, ...}: gc and fsck follow the id
    value = row.get("value")
    if value is not None and value[:1] in ("[", "{") and brackets(value) > MAX_DEPTH:
        try:  # readers parse it (as JSON when it is): its depth is bounded
            loads(value)
        except TooDeep as e:
            raise _fail(f"{where}.value", str(e)) from None
        except ValueError:
            pass  # not JSON: an ordinary text value
    if value is not None and value.startswith('{"$object"'):
        try:
            parsed = json.loads(value)
        except ValueError:
            return  # not JSON: an ordinary text value that merely looks like one
        if isinstance(parsed, dict) and "$object" in parsed:
            _check_oid(f"{where}.value.$object", parsed["$object"])


def _check_chunk(row: dict[str, Any], where: str) -> None:
    n = row["n"]
    if n < 0 or any(len(row.get(k, b"")) != 8 * n for k in ("steps", "times", "vals")):
        raise _fail(where, f"steps, times and vals must each hold n = {n} 8-byte values")


def _check_file(row: dict[str, Any], where: str) -> None:
    if "role" in row and row["role"] not in ("input", "output"):
        raise _fail(f"{where}.role", f"{_show(row['role'])} is not input or output")
    if row.get("kind") not in (None, "file", "dir"):
        raise _fail(f"{where}.kind", f"{_show(row['kind'])} is not file or dir")
    if row.get("oid") is not None:
        _check_oid(f"{where}.oid", row["oid"])
    if "path" in row:  # a path checkout writes under its target: never outside it
        try:
            check_recorded_file(row["path"], row.get("url"))
        except UnsafePathError as e:
            raise UnsafePathError(e.path, f"{e.why} ({where}.path)") from None


def _check_media(row: dict[str, Any], where: str) -> None:
    # each column was checked against its shape (_check_shape): what is left is the media
    # type, the one the object route serves the bytes with, and which depends on the kind
    problem = mime_problem(row)
    if problem is not None:
        column, _, message = problem.partition(": ")
        raise _fail(f"{where}.{column}", message)


_ROW_CHECKS = {
    "runs": _check_run,
    "params": _check_param,
    "metric_chunks": _check_chunk,
    "run_files": _check_file,
    "media": _check_media,
}


# -- import --------------------------------------------------------------------------------


def validate(bundle: Any, replace: bool = True) -> _Parsed:
    """Check ``bundle`` as :func:`import_run` does, writing nothing: the parsed bundle
    (``run_id``, ``rows``), which :func:`import_run` takes as it is, or
    :class:`BundleError` naming the first field that does not have its documented shape
    (a pull checks a server's answer before fetching the objects it names)."""
    return _parse(bundle, replace)


# Rows a team server's MLflow API writes into a run (docs/mlflow.md): artifacts logged
# with ``mlflow.log_artifact`` (outputs of source "mlflow") and what MLflow keeps in tags
# (records.external: everything under HIDDEN_PREFIX, soft delete included, and MLflow's
# logged-model history). When the run is also published from a tracked process (the
# MLflow run adopted by ``runbase run --publish``), its publisher never sees them, so the
# final push, a whole run, must not delete them. substr, not LIKE: LIKE ignores case in
# SQLite and not in PostgreSQL. The constants are plain ASCII without quotes, so they
# are spliced into the SQL as literals (asserted below).
def _literal(text: str) -> str:
    if not text.isascii() or "'" in text:
        raise ValueError(f"not a plain SQL literal: {text!r}")
    return f"'{text}'"


SERVER_ROWS = {
    "run_files": f"source = {_literal(MLFLOW_SOURCE)}",
    "tags": (
        f"(substr(key, 1, {len(HIDDEN_PREFIX)}) = {_literal(HIDDEN_PREFIX)} "
        f"OR key = {_literal(MODEL_HISTORY_TAG)})"
    ),
}


def import_run(
    store: Store,
    bundle: dict[str, Any] | _Parsed,
    *,
    replace: bool = True,
    verify: Callable[[str], None] | None = None,
    before: Callable[[str], None] | None = None,
    manifests: bool = True,
    keep_server_rows: bool = False,
    run_lock: bool = False,
) -> str:
    """Write a bundle into ``store`` in one transaction; returns the run id.

    ``replace=True``: the run becomes exactly the bundle's (its runs row upserted, its
    rows of the other tables deleted and inserted), so importing a bundle twice is the
    same as once. ``replace=False`` (a delta, for live publishing): only the rows given
    are upserted, nothing is deleted; ``run`` may then hold only ``id`` and the columns
    that changed. The run's owner process is never imported (it runs elsewhere), so
    orphan recovery leaves an imported running run alone. Raises :class:`BundleError`
    on anything malformed, before anything is written. ``verify(run_id)`` is called
    after the rows are written, before they commit (the server checks there that the
    project holds every object the run refers to). ``before(run_id)`` is called first
    inside the transaction, under the write lock (the server's ownership checks).
    ``manifests``: the tree manifests the run names (code, data directories) that
    ``store`` holds are read and their paths checked (UnsafePathError) before anything
    is written; a server passes False and checks in ``verify`` only those the project
    holds. ``bundle`` may be what :func:`validate` returned (with the same ``replace``):
    it is not parsed again. ``keep_server_rows`` (a team server): replacing spares the
    rows its MLflow API wrote (:data:`SERVER_ROWS`) that the bundle does not give.
    ``run_lock`` (a live delta): when it writes only its run's rows (the run exists, no
    ``verify``, no sweep row, no experiment to create), the transaction is keyed by the
    run (``Database.transaction(key)``): on PostgreSQL the deltas of different runs of
    one project are written at once, two of one run still one after the other."""
    parsed = bundle if isinstance(bundle, _Parsed) else _parse(bundle, replace)
    if manifests:
        _check_manifests(store, parsed)
    keyed = (
        run_lock
        and store.db.keyed_writes
        and not replace
        and verify is None
        and parsed.sweep is None
    )
    if keyed:
        try:
            _import(store, parsed, replace, None, before, keep_server_rows, keyed=True)
            return parsed.run_id
        except _NotOwnRows:
            pass  # it creates the run or an experiment: under the project's lock
    _import(store, parsed, replace, verify, before, keep_server_rows, keyed=False)
    return parsed.run_id


class _NotOwnRows(Exception):
    """A keyed import found it must write more than its run's rows (nothing written)."""


def _import(
    store: Store,
    parsed: _Parsed,
    replace: bool,
    verify: Callable[[str], None] | None,
    before: Callable[[str], None] | None,
    keep_server_rows: bool,
    keyed: bool,
) -> None:
    with store.db.transaction(parsed.run_id if keyed else None) as cur:
        if before is not None:  # under the write lock: checks of what is there now
            before(parsed.run_id)
        if keyed and (
            cur.execute("SELECT 1 FROM runs WHERE id = ?", (parsed.run_id,)).fetchone() is None
            or unadopted(cur, _experiment_names(parsed.rows["tags"]))
        ):
            raise _NotOwnRows
        _write_run(cur, parsed)
        if replace:
            for name in TABLES:
                spare = SERVER_ROWS.get(name) if keep_server_rows else None
                where = f" AND NOT {spare}" if spare else ""
                cur.execute(f"DELETE FROM {name} WHERE run_id = ?{where}", (parsed.run_id,))
        for name in TABLES:
            _upsert(cur, schema()[name], parsed.rows[name])
        adopt(cur, _experiment_names(parsed.rows["tags"]))
        _write_log_chunks(cur, parsed, replace)
        if parsed.sweep is not None:
            _write_sweep(cur, parsed.sweep)
        if verify is not None:
            # inside the transaction: the run as written is visible to this connection
            # only, and whatever ``verify`` raises rolls the whole import back
            verify(parsed.run_id)


def _check_manifests(store: Store, parsed: _Parsed) -> None:
    """Read (strictly) every tree manifest the run names that ``store`` holds: a path
    that could write outside a checkout refuses the import (a pull fetches objects
    first, so a pulled run's manifests are all checked here)."""
    code = _json("run.code_json", parsed.run.get("code_json")) or {}
    trees = [code.get("tree")] + [
        r.get("oid") for r in parsed.rows["run_files"] if r.get("kind") == "dir"
    ]
    for oid in dict.fromkeys(t for t in trees if isinstance(t, str)):
        if not store.objects.exists(oid):
            continue  # not here (hash-only data, a pull without --data): nothing to write
        try:
            load_manifest(store, oid, MAX_MANIFEST)
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
            raise _fail(oid, f"not a readable tree manifest: {e}") from None


def _write_log_chunks(cur: Any, parsed: _Parsed, replace: bool) -> None:
    if replace:  # the finished run's log objects supersede what arrived live
        cur.execute("DELETE FROM live_logs WHERE run_id = ?", (parsed.run_id,))
        return
    cur.executemany(
        'INSERT INTO live_logs (run_id, stream, "offset", size, data) VALUES (?, ?, ?, ?, ?) '
        # a chunk re-sent longer (its first answer was lost) replaces the shorter one
        'ON CONFLICT (run_id, stream, "offset") DO UPDATE SET size = excluded.size, '
        "data = excluded.data WHERE excluded.size > live_logs.size",
        [(parsed.run_id, s, off, len(data), data) for s, off, data in parsed.log_chunks],
    )


def _write_run(cur: Any, parsed: _Parsed) -> None:
    """Insert the runs row, or update the columns given (an INSERT ... ON CONFLICT would
    check NOT NULL on a delta's partial row before seeing the conflict)."""
    run = schema()["runs"]
    exists = cur.execute("SELECT 1 FROM runs WHERE id = ?", (parsed.run_id,)).fetchone()
    if exists is None:  # a delta's partial row can only update a run already there
        _check_required(run, parsed.run, "run")
        _upsert(cur, run, [parsed.run])
        return
    names = [n for n in parsed.run if n not in run.key]
    assert all(n in run.columns for n in names)  # validated: only schema names get here
    if names:
        cur.execute(
            f"UPDATE runs SET {', '.join(f'{_q(n)} = ?' for n in names)} WHERE id = ?",
            (*(parsed.run[n] for n in names), parsed.run_id),
        )


def import_sweep(
    store: Store, raw: Any, before: Callable[[str | None], None] | None = None
) -> dict[str, Any]:
    """Upsert a sweeps row sent on its own (``PUT .../sweeps/{id}``, checked as a
    bundle's ``sweep``): the newer ``updated_at`` wins. ``before(user_name)`` is called
    inside the transaction with the user the stored row names (None: no row yet): the
    server refuses another user's sweep there. Returns the row as parsed."""
    row = parse_sweep(raw)
    with store.db.transaction() as cur:
        if before is not None:
            found = cur.execute(
                "SELECT user_name FROM sweeps WHERE id = ?", (row["id"],)
            ).fetchone()
            before(None if found is None else found[0])
        _write_sweep(cur, row)
    return row


def _write_sweep(cur: Any, sweep: dict[str, Any]) -> None:
    """Upsert the sweep's row: the newer ``updated_at`` wins (each trial of a sweep
    carries the row as it was when it was sent, in any order), but never with a worse
    best run (records.sweeps.merged_sweep: several drivers send one sweep's row). A row
    recorded by another user is never replaced: a sweep id names one user's sweep."""
    row = cur.execute(
        "SELECT updated_at, user_name FROM sweeps WHERE id = ?", (sweep["id"],)
    ).fetchone()
    if row is None:
        _upsert(cur, schema()["sweeps"], [sweep])
        return
    owner = row[1]
    if owner is not None and owner != sweep.get("user_name"):
        return
    merged = merged_sweep(cur, sweep)
    if merged is not None:
        _upsert(cur, schema()["sweeps"], [merged])


def _experiment_names(tags: list[dict[str, Any]]) -> list[str]:
    """The experiment a run's tag rows name (records.experiments adopts it, so the
    MLflow API has an id for it before anything reads it)."""
    return [
        r["value"]
        for r in tags
        if r.get("key") == EXPERIMENT_TAG and isinstance(r.get("value"), str)
    ]


def _upsert(cur: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``; a row whose key exists updates the columns it gives."""
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row in rows:  # rows of a delta may give different columns: one statement each
        names = tuple(row)
        groups.setdefault(names, []).append(tuple(row.values()))
    for names, values in groups.items():
        cur.executemany(_upsert_sql(table.name, names), values)


@functools.lru_cache(maxsize=256)
def _upsert_sql(table_name: str, names: tuple[str, ...]) -> str:
    table = schema()[table_name]
    assert all(n in table.columns for n in names)  # validated: only schema names get here
    update = [f"{_q(n)} = excluded.{_q(n)}" for n in names if n not in table.key]
    action = f"DO UPDATE SET {', '.join(update)}" if update else "DO NOTHING"
    return (
        f"INSERT INTO {table.name} ({', '.join(map(_q, names))}) "
        f"VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT ({', '.join(map(_q, table.key))}) {action}"
    )


def export_delta(store: Store, run_id: str, sent: dict[str, int]) -> dict[str, Any]:
    """What a live publisher sends: the runs row, params, tags and metric summaries (all
    small), and only the metric chunks above ``sent`` (key -> highest seq already sent;
    chunks are appended with growing seq while a run is live). Updates ``sent`` only
    through the caller, once the server has the delta. Import with ``replace=False``."""
    tables = schema()
    delta: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "data": "stored",
        "run": _run_row(store, run_id),
    }
    for name in ("params", "tags", "metrics"):
        delta[name] = _select(store, tables[name], "run_id", run_id)
    chunks = tables["metric_chunks"]
    names = list(chunks.columns)
    delta["metric_chunks"] = [
        {n: _to_json(chunks.columns[n], v) for n, v in zip(names, row, strict=True)}
        for key, top in _chunk_tops(store, run_id)
        if top > sent.get(key, -1)
        for row in store.db.query(
            f"SELECT {', '.join(map(_q, names))} FROM metric_chunks "
            "WHERE run_id = ? AND key = ? AND seq > ? ORDER BY seq",
            (run_id, key, sent.get(key, -1)),
        )
    ]
    delta["objects"] = {}
    return delta


def status_delta(store: Store, run_id: str) -> dict[str, Any]:
    """The run's rows (its status, params, tags, summaries) as a live delta without
    metric points: what tells a server a run's new status without a whole push."""
    return export_delta(store, run_id, dict(_chunk_tops(store, run_id)))


def _chunk_tops(store: Store, run_id: str) -> list[tuple[str, int]]:
    return [
        (k, int(s))
        for k, s in store.db.query(
            "SELECT key, max(seq) FROM metric_chunks WHERE run_id = ? GROUP BY key", (run_id,)
        )
    ]
