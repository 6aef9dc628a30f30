"""The model registry (docs/models.md): versions, stages and their audit log.

A version is a file or directory a run wrote, by content hash (or, registered
``--external``, bytes with no recorded provenance). A stage (``production``,
``staging``) holds one version at a time. Every change — register, promote, demote,
rollback, and on a team server the approval requests of protected stages — is one
transaction that changes the state tables *and* appends its event to ``model_events``,
so an event is recorded exactly when its change is. Each event carries the hash of the
one before it (runbase.core.auditchain) and meta's ``model_log_head`` names the last:
:func:`verify` recomputes the chain and replays it against the state tables, so an edit
or deletion anywhere in history — or in the state it produced — is reported.

Who may do what comes from an :class:`Actor`: on the local store its user is admin of
everything; the team server builds one per request (project role, protected stages,
the webhooks to notify).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbase.capture.env import user_and_host
from runbase.capture.files import rel, snapshot_path
from runbase.capture.manifest import load_manifest
from runbase.core import auditchain
from runbase.core.ids import new_run_id
from runbase.core.modelref import (
    ModelRef,
    check_name,
    check_stage,
    next_version,
    normalize_version,
    parse_version,
    require_ref,
)
from runbase.errors import BytesMissing, Conflict, Forbidden, NotFound, RunNotFound, UsageError
from runbase.records.lineage import makers
from runbase.records.modelrefs import VERSION_COLUMNS, version_row
from runbase.records.read import project_root_of, resolve
from runbase.records.record import iso
from runbase.store import Store

ROLES = ("reader", "writer", "approver", "admin")  # each includes the ones before it
ACTIONS = ("register", "promote", "demote", "rollback", "request", "approve", "reject")
HEAD_KEY = "model_log_head"
MAX_MESSAGE = 10_000
EVENT_COLUMNS = (
    "seq, id, time, user_name, action, model, version, stage, from_version, to_version, "
    "oid, run_id, message, data, origin, prev_hash, hash"
)


@dataclass(frozen=True)
class Actor:
    """Who changes the registry and what they may do."""

    user: str | None
    role: str = "admin"
    protected: Mapping[str, int] = field(default_factory=dict)  # stage -> approvals (1|2)
    on_events: Callable[[list[Event]], None] | None = None  # after commit (webhooks)

    def at_least(self, role: str) -> bool:
        return self.role in ROLES and ROLES.index(self.role) >= ROLES.index(role)


def local_actor() -> Actor:
    """The local store's actor: the OS user, who owns the store."""
    return Actor(user_and_host()[0])


@dataclass(frozen=True)
class Source:
    """The bytes a version points at and the run that produced them."""

    oid: str
    kind: str  # file | dir
    size: int | None
    run_id: str | None  # None: external
    path: str | None
    git_commit: str | None = None


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    oid: str
    kind: str
    size: int | None
    run_id: str | None
    path: str | None
    git_commit: str | None
    created_at: float
    user: str | None
    message: str | None
    stages: tuple[str, ...] = ()

    @property
    def external(self) -> bool:
        return self.run_id is None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "oid": self.oid,
            "kind": self.kind,
            "size": self.size,
            "run": self.run_id,
            "path": self.path,
            "git_commit": self.git_commit,
            "external": self.external,
            "created_at": iso(self.created_at),
            "user": self.user,
            "message": self.message,
            "stages": list(self.stages),
        }


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    time: float
    user: str | None
    action: str
    model: str
    version: str | None
    stage: str | None
    from_version: str | None
    to_version: str | None
    oid: str | None
    run_id: str | None
    message: str | None
    data: dict[str, Any]
    origin: str | None
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "time": iso(self.time),
            "user": self.user,
            "action": self.action,
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "oid": self.oid,
            "run": self.run_id,
            "message": self.message,
            "data": self.data,
            "origin": self.origin,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass
class VerifyReport:
    events: int = 0
    head: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "head": self.head, "problems": self.problems}


# ---------------------------------------------------------------- sources


def source_of_run_path(store: Store, run_ref: str, path: str) -> Source:
    """``RUN:PATH``: an output (file or directory) the run wrote, by the hash it recorded.
    Bytes the run kept only the hash of are stored from PATH if it still holds them."""
    return run_output(store, run_ref, path=path, from_disk=True)


def run_output(
    store: Store,
    run_ref: str,
    *,
    path: str | None = None,
    oid: str | None = None,
    from_disk: bool = False,
) -> Source:
    """The output of run ``run_ref`` at ``path`` and/or with the bytes ``oid``, as the run
    recorded it: a version's provenance is never taken on anyone's word. ``from_disk``
    (the local CLI, never a server): store bytes the run did not keep from the file."""
    run_id = resolve(store, run_ref)
    root = project_root_of(store, run_id)
    key = rel(root, os.path.abspath(os.path.join(root, path))) if path is not None else None
    sql = "SELECT path, oid, size, kind, stored FROM run_files WHERE run_id = ? AND role = 'output' AND oid IS NOT NULL"
    args: list[Any] = [run_id]
    for column, value in (("path", key), ("oid", oid)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    row = store.db.query_one(sql + " ORDER BY path LIMIT 1", args)
    if row is None:
        shown = [r[0] for r in store.db.query(
            "SELECT path FROM run_files WHERE run_id = ? AND role = 'output' AND oid IS NOT NULL "
            "ORDER BY path LIMIT 6", (run_id,),
        )]  # fmt: skip
        listed = ", ".join(shown[:5]) + (" ..." if len(shown) > 5 else "") if shown else "none"
        what = " at ".join(x for x in (oid, repr(path) if path else None) if x)
        raise NotFound(f"run {run_id} wrote no output {what} (its outputs: {listed})")
    found, oid, size, kind = str(row[0]), str(row[1]), row[2], row[3] or "file"
    if from_disk and not row[4] and not bytes_present(store, oid, kind):
        _store_from_disk(store, os.path.join(root, found), oid, f"{run_id}:{found}")
    size = size if isinstance(size, int) else None
    return Source(
        oid, "dir" if kind == "dir" else "file", size, run_id, found, _commit_of(store, run_id)
    )


def output_with(store: Store, run_ref: str, oid: str, path: object = None) -> Source:
    """The run's output that is ``oid``: at ``path`` if the run wrote those bytes there
    (the same bytes may be several outputs), else at any path; NotFound if none."""
    if isinstance(path, str):
        try:
            return run_output(store, run_ref, oid=oid, path=path)
        except RunNotFound:
            raise
        except NotFound:
            pass
    return run_output(store, run_ref, oid=oid)


def source_of_file(store: Store, path: str, external: bool = False) -> Source:
    """A file or directory on disk: the newest run that wrote exactly these bytes (as
    ``runbase trace`` finds it). Bytes no run produced are refused unless ``external``.
    The bytes are stored if the store lacks them, so ``model get`` can deliver them."""
    if not os.path.exists(path):
        raise UsageError(f"no such file or directory: {path}")
    kind = "dir" if os.path.isdir(path) else "file"
    snap = snapshot_path(store, path, policy="hash-only")
    if snap is None:
        raise UsageError(f"cannot read {path}")
    oid, size = snap
    made = makers(store, oid)
    if not made and not external:
        raise UsageError(
            f"no recorded run produced the bytes of {path} ({oid[:19]}); register them with "
            "--external to accept a version without provenance, or register RUN:PATH"
        )
    if not bytes_present(store, oid, kind):
        _store_from_disk(store, path, oid, path)
    if not made:
        return Source(oid, kind, size, None, None)
    run_id = str(made[0]["run"])
    return Source(oid, kind, size, run_id, str(made[0]["path"]), _commit_of(store, run_id))


def _store_from_disk(store: Store, path: str, oid: str, label: str) -> None:
    snap = snapshot_path(store, path, policy="store") if os.path.exists(path) else None
    if snap is None or snap[0] != oid:
        raise Conflict(
            f"the bytes of {label} are not in the store and cannot be stored from {path}: "
            "it no longer holds them, or it holds files that may contain secrets, which "
            "runbase never stores (docs/capture.md)"
        )


def _commit_of(store: Store, run_id: str) -> str | None:
    row = store.db.query_one("SELECT code_commit FROM runs WHERE id = ?", (run_id,))
    return row[0] if row and isinstance(row[0], str) else None


def bytes_present(store: Store, oid: str, kind: str) -> bool:
    """Whether the store holds the version's bytes: the object, and for a directory
    every file its manifest lists."""
    if not store.objects.exists(oid):
        return False
    if kind != "dir":
        return True
    try:
        entries = load_manifest(store, oid)
    except Exception:  # noqa: BLE001 - a damaged manifest holds no usable bytes
        return False
    return all(store.objects.exists(e["oid"]) for e in entries if e.get("oid"))


# ---------------------------------------------------------------- reading


def _version(row: tuple[Any, ...], stages: tuple[str, ...] = ()) -> Version:
    name, version, oid, kind, size, run_id, path, commit, created, user, message = row
    return Version(
        str(name),
        str(version),
        str(oid),
        str(kind),
        size if isinstance(size, int) else None,
        run_id if isinstance(run_id, str) else None,
        path if isinstance(path, str) else None,
        commit if isinstance(commit, str) else None,
        float(created) if isinstance(created, (int, float)) else 0.0,
        user if isinstance(user, str) else None,
        message if isinstance(message, str) else None,
        stages,
    )


def stages(store: Store, name: str) -> dict[str, str]:
    """``{stage: version}`` of a model now, by stage."""
    rows = store.db.query(
        "SELECT stage, version FROM model_stages WHERE name = ? ORDER BY stage", (name,)
    )
    return {str(s): str(v) for s, v in rows}


def _held_by(held: dict[str, str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for stage, version in held.items():
        out.setdefault(version, []).append(stage)
    return {v: tuple(s) for v, s in out.items()}


def versions(store: Store, name: str) -> list[Version]:
    """A model's versions, highest first (NotFound for an unknown model)."""
    rows = store.db.query(
        f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? "
        "ORDER BY major DESC, minor DESC, patch DESC",
        (name,),
    )
    if not rows:
        raise NotFound(f"no model {name!r} (see `runbase model ls`)")
    held = _held_by(stages(store, name))
    return [_version(r, held.get(str(r[1]), ())) for r in rows]


def get_version(store: Store, name: str, version: str) -> Version:
    return resolve_ref(store, ModelRef(check_name(name), "version", normalize_version(version)))


def resolve_ref(store: Store, ref: str | ModelRef) -> Version:
    """The version a reference names (NotFound saying why not)."""
    parsed = require_ref(ref) if isinstance(ref, str) else ref
    row = version_row(store, parsed)
    held = _held_by(stages(store, parsed.name))
    return _version(row, held.get(str(row[1]), ()))


def lookup(store: Store, ref: str) -> Version | None:
    """The version ``ref`` names; None when it is no reference or no model has its name."""
    try:
        parsed = require_ref(ref)
    except UsageError:
        return None
    try:
        return resolve_ref(store, parsed)
    except NotFound:
        if store.db.query_one("SELECT 1 FROM model_versions WHERE name = ?", (parsed.name,)):
            raise
        return None


def list_models(store: Store) -> list[dict[str, Any]]:
    """``[{name, latest, versions, stages, updated_at}]`` by name."""
    rows = store.db.query(
        "SELECT name, version, major, minor, patch, created_at FROM model_versions ORDER BY name"
    )
    held = store.db.query(
        "SELECT name, stage, version, since FROM model_stages ORDER BY name, stage"
    )
    out: dict[str, dict[str, Any]] = {}
    for name, version, major, minor, patch, created in rows:
        m = out.setdefault(
            name,
            {"name": name, "latest": None, "versions": 0, "stages": {}, "_top": None, "_t": 0.0},
        )
        m["versions"] += 1
        if m["_top"] is None or (major, minor, patch) > m["_top"]:
            m["_top"], m["latest"] = (major, minor, patch), version
        m["_t"] = max(m["_t"], float(created or 0))
    for name, stage, version, since in held:
        if name in out:
            out[name]["stages"][stage] = version
            out[name]["_t"] = max(out[name]["_t"], float(since or 0))
    for m in out.values():
        m["updated_at"] = iso(m.pop("_t"))
        m.pop("_top")
    return list(out.values())


def _event(row: tuple[Any, ...]) -> Event:
    seq, id_, t, user, action, model, version, stage, frm, to, oid, run_id, message = row[:13]
    data_text, origin, prev_hash, hash_ = row[13:]
    try:
        data = json.loads(data_text) if isinstance(data_text, str) else {}
    except ValueError:
        data = {}
    return Event(
        int(seq),
        str(id_),
        float(t),
        user,
        str(action),
        str(model),
        version,
        stage,
        frm,
        to,
        oid,
        run_id,
        message,
        data if isinstance(data, dict) else {},
        origin,
        str(prev_hash),
        str(hash_),
    )


def events(
    store: Store, name: str | None = None, after: int = 0, limit: int | None = None
) -> list[Event]:
    """The log in order (one model's events, or every model's), after ``after``."""
    sql = f"SELECT {EVENT_COLUMNS} FROM model_events WHERE seq > ?"
    args: list[Any] = [after]
    if name is not None:
        sql += " AND model = ?"
        args.append(name)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [_event(r) for r in store.db.query(sql, args)]


def last_seq(store: Store, before: float | None = None) -> int:
    """The seq of the log's last event (0: none), or of the last made before ``before``."""
    if before is None:
        row = store.db.query_one("SELECT max(seq) FROM model_events")
    else:
        row = store.db.query_one("SELECT max(seq) FROM model_events WHERE time < ?", (before,))
    return int(row[0]) if row and row[0] is not None else 0


def requests(
    store: Store, name: str | None = None, state: str | None = "open"
) -> list[dict[str, Any]]:
    """Promotion requests waiting for (or given) a second person's approval."""
    sql = (
        "SELECT id, model, version, stage, requested_by, requested_at, message, state, "
        "decided_by, decided_at, decision FROM model_requests WHERE 1 = 1"
    )
    args: list[Any] = []
    if name is not None:
        sql += " AND model = ?"
        args.append(name)
    if state is not None:
        sql += " AND state = ?"
        args.append(state)
    keys = (
        "id",
        "model",
        "version",
        "stage",
        "requested_by",
        "requested_at",
        "message",
        "state",
        "decided_by",
        "decided_at",
        "decision",
    )
    out = []
    for row in store.db.query(sql + " ORDER BY requested_at", args):
        item = dict(zip(keys, row, strict=True))
        item["requested_at"], item["decided_at"] = (
            iso(item["requested_at"]),
            iso(item["decided_at"]),
        )
        out.append(item)
    return out


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class Pushed:
    """Where a pushed event came from: its id in the pusher's log, who made it there and
    when (kept in the event here, under ``data.pushed``: the log says who pushed it, and
    who decided it)."""

    id: str
    user: str | None = None
    time: float | None = None


class _Seen(Exception):
    """A pushed event this store has answered already."""


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  # no compare-and-set: the change applies whatever the stage holds


class _Txn:
    """One registry change: its state writes and its events, in one transaction."""

    def __init__(
        self, cur: Any, actor: Actor, origin: str | Pushed | None, expect: Any = ANY
    ) -> None:
        self.cur, self.actor, self.expect = cur, actor, expect
        self.pushed = origin if isinstance(origin, Pushed) else None
        self.origin = origin.id if isinstance(origin, Pushed) else origin
        self.events: list[Event] = []
        self.now = time.time()
        # writers of a store already take turns (store.db.transaction: BEGIN IMMEDIATE on
        # SQLite, the store's advisory lock on PostgreSQL), so the last event read here
        # stays the last until this commits; the head row must exist for append's UPDATE
        cur.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (HEAD_KEY, f"0 {auditchain.GENESIS}"),
        )
        # a pushed event is applied once: checked inside that turn, so two pushes of it
        # at once (or two server processes) cannot both apply it
        if self.origin is not None and self.one(
            "SELECT 1 FROM model_origins WHERE origin = ?", (self.origin,)
        ):
            raise _Seen(self.origin)

    def one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row = self.cur.execute(sql, args).fetchone()
        return tuple(row) if row is not None else None

    def append(self, action: str, model: str, **fields: Any) -> Event:
        last = self.one("SELECT seq, hash FROM model_events ORDER BY seq DESC LIMIT 1", ())
        seq = int(last[0]) + 1 if last else 1
        prev = str(last[1]) if last else auditchain.GENESIS
        message = fields.get("message")
        data = dict(fields.get("data") or {})
        if self.pushed is not None:
            data["pushed"] = {"user": self.pushed.user, "time": self.pushed.time}
        row = {
            "seq": seq,
            "id": new_run_id(self.now),
            "time": self.now,
            "user": self.actor.user,
            "action": action,
            "model": model,
            "version": fields.get("version"),
            "stage": fields.get("stage"),
            "from_version": fields.get("from_version"),
            "to_version": fields.get("to_version"),
            "oid": fields.get("oid"),
            "run_id": fields.get("run_id"),
            "message": message,
            "data": json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            "origin": self.origin,
        }
        hash_ = auditchain.event_hash(prev, row)
        self.cur.execute(
            f"INSERT INTO model_events ({EVENT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row.values(), prev, hash_),
        )
        self.cur.execute("UPDATE meta SET value = ? WHERE key = ?", (f"{seq} {hash_}", HEAD_KEY))
        event = _event((*row.values(), prev, hash_))
        self.events.append(event)
        return event


def _change(
    store: Store,
    actor: Actor,
    origin: str | Pushed | None,
    body: Callable[[_Txn], None],
    expect: Any = ANY,
) -> list[Event]:
    with store.db.transaction() as cur:
        txn = _Txn(cur, actor, origin, expect)
        body(txn)
        if txn.origin is not None:
            seq = txn.events[0].seq if txn.events else None
            _note_origin(cur, txn.origin, "applied", seq, txn.now)
    if actor.on_events is not None and txn.events:
        actor.on_events(list(txn.events))
    return txn.events


def _note_origin(
    cur: Any, origin: str, result: str, seq: int | None, now: float, detail: str | None = None
) -> None:
    cur.execute(
        "INSERT INTO model_origins (origin, result, detail, event_seq, time) VALUES (?, ?, ?, ?, ?)",
        (origin, result, detail, seq, now),
    )


def _message(message: str | None) -> str | None:
    if message is None:
        return None
    if not isinstance(message, str):
        raise UsageError("a message is text")
    if len(message) > MAX_MESSAGE:
        raise UsageError(f"the message is {len(message)} characters; at most {MAX_MESSAGE}")
    return message.strip() or None


def _need(actor: Actor, role: str, what: str) -> None:
    if not actor.at_least(role):
        raise Forbidden(f"{what} needs the {role} role in this project (you are {actor.role})")


def register(
    store: Store,
    name: str,
    source: Source,
    *,
    version: str | None = None,
    bump: str = "patch",
    message: str | None = None,
    actor: Actor,
    origin: str | Pushed | None = None,
) -> list[Event]:
    """A new version of ``name`` (the model is created by its first version)."""
    check_name(name)
    _need(actor, "writer", "registering a version")
    message = _message(message)
    if source.kind not in ("file", "dir"):
        raise UsageError(f"a version is a file or a directory, not {source.kind!r}")
    if not bytes_present(store, source.oid, source.kind):
        raise BytesMissing(f"the bytes {source.oid[:19]} are not in the store: nothing to register")
    wanted = normalize_version(version) if version is not None else None

    def body(t: _Txn) -> None:
        existing = [
            r[0]
            for r in t.cur.execute(
                "SELECT version FROM model_versions WHERE name = ?", (name,)
            ).fetchall()
        ]
        number = wanted or next_version(existing, bump)
        if number in existing:
            raise Conflict(
                f"{name}@{number} exists; versions are never overwritten (use a new number)"
            )
        same = t.one(
            "SELECT version FROM model_versions WHERE name = ? AND oid = ?", (name, source.oid)
        )
        if same is not None:
            raise Conflict(f"these bytes are already {name}@{same[0]}")
        major, minor, patch = parse_version(number)
        ev = t.append(
            "register",
            name,
            version=number,
            oid=source.oid,
            run_id=source.run_id,
            message=message,
            data={
                "kind": source.kind,
                "size": source.size,
                "path": source.path,
                "git_commit": source.git_commit,
                "external": source.run_id is None,
            },
        )
        t.cur.execute(
            "INSERT INTO model_versions (name, version, major, minor, patch, oid, kind, size, run_id, "
            "path, git_commit, created_at, user_name, message, event_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                number,
                major,
                minor,
                patch,
                source.oid,
                source.kind,
                source.size,
                source.run_id,
                source.path,
                source.git_commit,
                t.now,
                actor.user,
                message,
                ev.seq,
            ),
        )

    return _change(store, actor, origin, body)


def _require_version(t: _Txn, store: Store, name: str, version: str) -> tuple[str, str]:
    row = t.one(
        "SELECT oid, kind FROM model_versions WHERE name = ? AND version = ?", (name, version)
    )
    if row is None:
        if t.one("SELECT 1 FROM model_versions WHERE name = ?", (name,)) is None:
            raise NotFound(f"no model {name!r} (see `runbase model ls`)")
        raise NotFound(f"no version {version} of model {name} (see `runbase model show {name}`)")
    oid, kind = str(row[0]), str(row[1])
    if not bytes_present(store, oid, kind):
        raise BytesMissing(
            f"the bytes of {name}@{version} ({oid[:19]}) are gone from this store: a stage "
            "must hold bytes that can be delivered (push or pull them back first)"
        )
    return oid, kind


def _holder(t: _Txn, name: str, stage: str) -> str | None:
    row = t.one("SELECT version FROM model_stages WHERE name = ? AND stage = ?", (name, stage))
    return str(row[0]) if row else None


def _guard_stage(actor: Actor, stage: str, what: str) -> int:
    """The approvals the stage needs (0: not protected); Forbidden when ``actor`` may not
    change it. A two-person stage lets a writer ask (a request) but not change it."""
    approvals = int(actor.protected.get(stage, 0))
    _need(actor, "writer", what)
    if approvals == 1 and not actor.at_least("approver"):
        raise Forbidden(
            f"stage {stage!r} is protected: {what} needs the approver or admin role "
            "(ask a project approver)"
        )
    return approvals


def _guard_removal(actor: Actor, stage: str, what: str) -> None:
    """Taking a version out of a protected stage needs an approver (no second person:
    a rollback is what one does when production breaks)."""
    _need(actor, "approver" if actor.protected.get(stage) else "writer", what)


def _check_expect(t: _Txn, name: str, stage: str, to: str | None) -> str | None:
    """The stage's holder now; Conflict when a compare-and-set change (a pushed one)
    started from another holder than this store's."""
    current = _holder(t, name, stage)
    if t.expect is not ANY and current != t.expect:
        raise Conflict(
            f"{name}@{stage} moved on here: it holds {current or 'nothing'}, and this change "
            f"was {t.expect or 'empty'} -> {to or 'empty'}; change it here instead "
            "(runbase model ... --remote)"
        )
    return current


def _assign(
    t: _Txn,
    name: str,
    stage: str,
    to: str | None,
    action: str,
    message: str | None,
    data: dict[str, Any] | None = None,
) -> Event:
    current = _check_expect(t, name, stage, to)
    oid = run_id = None
    if to is not None:
        row = t.one(
            "SELECT oid, run_id FROM model_versions WHERE name = ? AND version = ?", (name, to)
        )
        oid, run_id = (row[0], row[1]) if row else (None, None)
    ev = t.append(
        action,
        name,
        version=to or current,
        stage=stage,
        from_version=current,
        to_version=to,
        oid=oid,
        run_id=run_id,
        message=message,
        data=data,
    )
    if to is None:
        t.cur.execute("DELETE FROM model_stages WHERE name = ? AND stage = ?", (name, stage))
    else:
        t.cur.execute(
            "INSERT INTO model_stages (name, stage, version, since, user_name, event_seq) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, stage) DO UPDATE SET "
            "version = excluded.version, since = excluded.since, user_name = excluded.user_name, "
            "event_seq = excluded.event_seq",
            (name, stage, to, t.now, t.actor.user, ev.seq),
        )
    return ev


def promote(
    store: Store,
    name: str,
    version: str,
    stage: str,
    *,
    message: str | None,
    actor: Actor,
    origin: str | Pushed | None = None,
    expect: Any = ANY,
) -> list[Event]:
    """Put ``version`` in ``stage``; on a two-person stage, a request for it instead.
    ``expect``: compare-and-set, refused unless the stage holds that now (a pushed change)."""
    check_name(name)
    check_stage(stage)
    version = normalize_version(version)
    message = _message(message)
    approvals = _guard_stage(actor, stage, f"promoting to {stage}")

    def body(t: _Txn) -> None:
        oid, _ = _require_version(t, store, name, version)
        if _holder(t, name, stage) == version:
            raise Conflict(f"{name}@{stage} already is {version}")
        if approvals >= 2:
            _check_expect(t, name, stage, version)
            _open_request(t, name, version, stage, message, oid)
            return
        _assign(t, name, stage, version, "promote", message)

    return _change(store, actor, origin, body, expect)


def _open_request(
    t: _Txn, name: str, version: str, stage: str, message: str | None, oid: str
) -> None:
    dup = t.one(
        "SELECT id FROM model_requests WHERE model = ? AND version = ? AND stage = ? AND state = 'open'",
        (name, version, stage),
    )
    if dup is not None:
        raise Conflict(f"request {dup[0]} to promote {name}@{version} to {stage} is already open")
    request_id = new_run_id(t.now)
    t.append(
        "request",
        name,
        version=version,
        stage=stage,
        to_version=version,
        oid=oid,
        message=message,
        data={"request": request_id},
    )
    t.cur.execute(
        "INSERT INTO model_requests (id, model, version, stage, requested_by, requested_at, message, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
        (request_id, name, version, stage, t.actor.user, t.now, message),
    )


def demote(
    store: Store,
    name: str,
    stage: str,
    *,
    message: str | None,
    actor: Actor,
    origin: str | Pushed | None = None,
    expect: Any = ANY,
) -> list[Event]:
    """Take the version out of ``stage`` (the stage then holds nothing)."""
    check_name(name)
    check_stage(stage)
    message = _message(message)
    _guard_removal(actor, stage, f"demoting from {stage}")

    def body(t: _Txn) -> None:
        _require_model(t, name)
        if _holder(t, name, stage) is None:
            raise NotFound(f"no version of {name} is in stage {stage!r}")
        _assign(t, name, stage, None, "demote", message)

    return _change(store, actor, origin, body, expect)


def _require_model(t: _Txn, name: str) -> None:
    if t.one("SELECT 1 FROM model_versions WHERE name = ?", (name,)) is None:
        raise NotFound(f"no model {name!r} (see `runbase model ls`)")


def stage_history(store_or_txn: Any, name: str, stage: str) -> list[str | None]:
    """The stage's holders as a stack (replaying promote: push; demote: push nothing;
    rollback: pop): its top is the holder now, the one below what a rollback restores."""
    sql = (
        "SELECT action, to_version FROM model_events WHERE model = ? AND stage = ? "
        "AND action IN ('promote', 'demote', 'rollback') ORDER BY seq"
    )
    rows = (
        store_or_txn.cur.execute(sql, (name, stage)).fetchall()
        if isinstance(store_or_txn, _Txn)
        else store_or_txn.db.query(sql, (name, stage))
    )
    stack: list[str | None] = []
    for action, to in rows:
        if action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != to:  # a rollback pushed from elsewhere: trust its target
                stack.append(to)
        else:
            stack.append(to if action == "promote" else None)
    return stack


def rollback(
    store: Store,
    name: str,
    stage: str,
    *,
    message: str | None,
    actor: Actor,
    origin: str | Pushed | None = None,
    expect: Any = ANY,
    restore: Any = ANY,
) -> list[Event]:
    """Give ``stage`` back the version it held before its current one (``restore``: a
    pushed rollback's target, refused if this store's history gives another)."""
    check_name(name)
    check_stage(stage)
    message = _message(message)
    _guard_removal(actor, stage, f"rolling back {stage}")

    def body(t: _Txn) -> None:
        _require_model(t, name)
        stack = stage_history(t, name, stage)
        if not stack:
            raise NotFound(f"no version of {name} has ever been in stage {stage!r}")
        if len(stack) < 2:
            raise Conflict(f"{name}@{stage} has no earlier version to roll back to")
        previous = stack[-2]
        if restore is not ANY and previous != restore:
            raise Conflict(
                f"{name}@{stage} would roll back to {previous or 'nothing'} here, not to "
                f"{restore or 'nothing'}: its history here differs"
            )
        if previous is not None:
            _require_version(t, store, name, previous)
        _assign(t, name, stage, previous, "rollback", message)

    return _change(store, actor, origin, body, expect)


def _open(t: _Txn, request_id: str) -> tuple[Any, ...]:
    row = t.one(
        "SELECT model, version, stage, requested_by, state FROM model_requests WHERE id = ?",
        (request_id,),
    )
    if row is None:
        raise NotFound(f"no promotion request {request_id!r} (see `runbase model requests`)")
    if row[4] != "open":
        raise Conflict(f"request {request_id} is {row[4]} already")
    return row


def approve(store: Store, request_id: str, *, message: str | None, actor: Actor) -> list[Event]:
    """Accept a promotion request: a second person, with the approver role."""
    message = _message(message)
    _need(actor, "approver", "approving a promotion")

    def body(t: _Txn) -> None:
        name, version, stage, requester, _ = _open(t, request_id)
        if requester is not None and requester == actor.user:
            raise Forbidden(f"request {request_id} is yours: another approver must accept it")
        _require_version(t, store, name, version)
        if _holder(t, name, stage) == version:
            raise Conflict(
                f"{name}@{stage} already is {version}: reject request {request_id} instead"
            )
        t.append(
            "approve",
            name,
            version=version,
            stage=stage,
            to_version=version,
            message=message,
            data={"request": request_id, "requested_by": requester},
        )
        _assign(
            t,
            name,
            stage,
            version,
            "promote",
            message,
            data={"request": request_id, "approved_by": actor.user},
        )
        _decide(t, request_id, "approved", message)

    return _change(store, actor, None, body)


def reject(store: Store, request_id: str, *, message: str | None, actor: Actor) -> list[Event]:
    """Turn a promotion request down (an approver, or its requester withdrawing it)."""
    message = _message(message)

    def body(t: _Txn) -> None:
        name, version, stage, requester, _ = _open(t, request_id)
        if not (actor.at_least("approver") or (requester is not None and requester == actor.user)):
            raise Forbidden("rejecting a promotion request needs the approver role")
        t.append(
            "reject",
            name,
            version=version,
            stage=stage,
            message=message,
            data={"request": request_id, "requested_by": requester},
        )
        _decide(t, request_id, "rejected", message)

    return _change(store, actor, None, body)


def _decide(t: _Txn, request_id: str, state: str, message: str | None) -> None:
    t.cur.execute(
        "UPDATE model_requests SET state = ?, decided_by = ?, decided_at = ?, decision = ? WHERE id = ?",
        (state, t.actor.user, t.now, message, request_id),
    )


# ---------------------------------------------------------------- verify


_FIELD_NAMES = (
    "seq", "id", "time", "user", "action", "model", "version", "stage", "from_version",
    "to_version", "oid", "run_id", "message", "data", "origin",
)  # fmt: skip


def verify(store: Store) -> VerifyReport:
    """Check the log's chain and head, and that replaying it gives every row of the
    state tables (versions with their provenance, stages, requests), field by field.
    Read without a lock; only a log that reads broken is read again in a transaction
    registry writers wait for (a change committed between two reads is not tampering),
    so a reader asking often cannot hold the writers up."""
    report = _verify(lambda sql: [tuple(r) for r in store.db.query(sql)])
    if report.ok or store.read_only:
        return report
    with store.db.transaction() as cur:
        return _verify(lambda sql: [tuple(r) for r in cur.execute(sql).fetchall()])


def _verify(query: Callable[[str], list[tuple[Any, ...]]]) -> VerifyReport:
    rows = query(f"SELECT {EVENT_COLUMNS} FROM model_events ORDER BY seq")
    report = VerifyReport(events=len(rows))
    chain = [
        (int(r[0]), str(r[15]), str(r[16]), dict(zip(_FIELD_NAMES, r[:15], strict=True)))
        for r in rows
    ]
    report.problems += [p for _, p in auditchain.broken_links(chain)]
    last = (chain[-1][0], chain[-1][2]) if chain else None
    report.head = last[1] if last else None
    head = query(f"SELECT value FROM meta WHERE key = '{HEAD_KEY}'")
    stored = str(head[0][0]) if head else f"0 {auditchain.GENESIS}"
    expected = f"{last[0]} {last[1]}" if last else f"0 {auditchain.GENESIS}"
    if stored != expected:
        report.problems.append(
            f"the log's head is {stored} but its last event is {expected}: events at the "
            "end were removed or added outside runbase"
        )
    report.problems += _replay_problems([_event(r) for r in rows], query)
    return report


def _replay(evs: list[Event]) -> tuple[dict[Any, tuple[Any, ...]], ...]:
    """What the log says the state tables hold: versions (every column a register
    event carries), stages (version, event) and requests (who asked, state, who decided)."""
    versions_: dict[Any, tuple[Any, ...]] = {}
    held: dict[Any, tuple[Any, ...]] = {}
    reqs: dict[Any, tuple[Any, ...]] = {}
    for ev in evs:
        d = ev.data
        if ev.action == "register":
            versions_[(ev.model, ev.version)] = (
                ev.oid, d.get("kind"), d.get("size"), ev.run_id, d.get("path"),
                d.get("git_commit"), ev.seq, ev.user, ev.message, ev.time,
            )  # fmt: skip
        elif ev.action in ("promote", "demote", "rollback") and ev.stage:
            held[(ev.model, ev.stage)] = (ev.to_version, ev.seq, ev.user, ev.time)
            if ev.to_version is None:
                del held[(ev.model, ev.stage)]
        elif ev.action == "request":
            reqs[d.get("request")] = (
                ev.model, ev.version, ev.stage, ev.user, ev.message, ev.time,
                "open", None, None, None,
            )  # fmt: skip
        elif ev.action in ("approve", "reject") and d.get("request") in reqs:
            state = "approved" if ev.action == "approve" else "rejected"
            asked = reqs[d.get("request")][:6]
            reqs[d.get("request")] = (*asked, state, ev.user, ev.message, ev.time)
    return versions_, held, reqs


_STATE_SQL = (
    ("version", "SELECT name, version, oid, kind, size, run_id, path, git_commit, event_seq, "
                "user_name, message, created_at FROM model_versions"),
    ("stage", "SELECT name, stage, version, event_seq, user_name, since FROM model_stages"),
    ("request", "SELECT id, model, version, stage, requested_by, message, requested_at, state, "
                "decided_by, decision, decided_at FROM model_requests"),
)  # fmt: skip
_STATE_FIELDS = {
    "version": ("oid", "kind", "size", "run", "path", "git_commit", "event", "user",
                "message", "created_at"),
    "stage": ("version", "event", "user", "since"),
    "request": ("model", "version", "stage", "requested_by", "message", "requested_at",
                "state", "decided_by", "decision", "decided_at"),
}  # fmt: skip


def _replay_problems(evs: list[Event], query: Callable[[str], list[tuple[Any, ...]]]) -> list[str]:
    """Where the state tables differ from what the log says happened, field by field."""
    problems: list[str] = []
    for (what, sql), logged in zip(_STATE_SQL, _replay(evs), strict=True):
        width = len(_STATE_FIELDS[what])
        table = {r[:-width] if len(r) - width > 1 else r[0]: r[-width:] for r in query(sql)}
        for key in sorted(set(table) | set(logged), key=str):
            problems += _row_problems(what, key, table.get(key), logged.get(key))
    return problems


def _row_problems(
    what: str, key: Any, row: tuple[Any, ...] | None, logged: tuple[Any, ...] | None
) -> list[str]:
    name = "@".join(key) if isinstance(key, tuple) else str(key)
    if what == "stage" and (row is None or logged is None or row[0] != logged[0]):
        have, want = (row or (None,))[0] or "empty", (logged or (None,))[0] or "empty"
        return [f"stage {name} is {have} in the registry but {want} by the log"]
    if row is None:
        return [f"{what} {name} is in the log but gone from the registry"]
    if logged is None:
        return [f"{what} {name} is in the registry but the log never made it"]
    return [
        f"{what} {name}: {field} is {have!r} in the registry but {want!r} by the log"
        for field, have, want in zip(_STATE_FIELDS[what], row, logged, strict=True)
        if have != want
    ]


# ---------------------------------------------------------------- pushed events


RESULTS = ("applied", "exists", "refused", "settled")


def prior_answer(store: Store, event_id: str) -> tuple[str, str] | None:
    """How this store answered a pushed event before (or that it made the event), as
    :func:`import_event` answers it again; None: not seen. Cheap: a caller asks this
    before checking an event's bytes or run again."""
    seen = store.db.query_one(
        "SELECT result, detail FROM model_origins WHERE origin = ?", (event_id,)
    )
    if seen is not None:
        if seen[0] == "refused":  # decided: a later push does not apply it after all
            return "settled", f"refused before: {seen[1]}"
        return "exists", f"pushed before ({seen[0]})"
    if store.db.query_one("SELECT 1 FROM model_events WHERE id = ?", (event_id,)):
        return "exists", "made here"
    return None


def import_event(store: Store, event: Mapping[str, Any], *, actor: Actor) -> tuple[str, str]:
    """Replay an event pushed from another store: ``(result, detail)``, the result one of
    :data:`RESULTS`. The pusher is the actor: their role and this store's protected
    stages apply, and a stage change is a compare-and-set (refused when the stage here
    moved on from where the pusher's change started). Each event is decided once: its id
    is kept (``model_origins``) with what it became, so pushing it again changes nothing,
    whatever happened here since: ``exists`` when it was applied (or this store had its
    change), ``settled`` when it was refused for good (a stage that moved on, a role
    that may not). A refusal that a later push can cure (the version's run or bytes not
    here yet, a malformed event) is not kept."""
    eid = event.get("id")
    if not isinstance(eid, str) or not eid or len(eid) > 64:
        return "refused", "an event needs its id"
    before = prior_answer(store, eid)
    if before is not None:
        return before
    try:
        return _replay_event(store, event, eid, actor)
    except _Seen:
        return prior_answer(store, eid) or ("exists", "pushed before")
    except BytesMissing as e:  # the bytes may come with a later push
        return "refused", str(e)
    except (Conflict, Forbidden) as e:
        return _decided(store, eid, "refused", str(e))
    except (NotFound, UsageError, RunNotFound) as e:
        return "refused", str(e)


def _text(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    return value if isinstance(value, str) else None


def _version_or_none(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    return None if value is None else normalize_version(value)


def _decided(store: Store, eid: str, result: str, detail: str) -> tuple[str, str]:
    """Keep what a pushed event came to when no change recorded it (``exists``: this
    store had its change; ``refused`` for good): a later push gets the same answer."""
    try:
        with store.db.transaction() as cur:
            if cur.execute("SELECT 1 FROM model_origins WHERE origin = ?", (eid,)).fetchone():
                raise _Seen(eid)
            _note_origin(cur, eid, result, None, time.time(), detail)
    except _Seen:
        return prior_answer(store, eid) or (result, detail)
    return result, detail


def _pushed(event: Mapping[str, Any], eid: str) -> Pushed:
    """The pushed event's id, its author and time there (kept in the event made here)."""
    when = event.get("time")
    stamp = None
    if isinstance(when, str):
        try:
            stamp = datetime.fromisoformat(when).timestamp()
        except ValueError:
            stamp = None
    user = _text(event, "user")
    return Pushed(eid, user[:200] if user else None, stamp)


def _replay_event(
    store: Store, event: Mapping[str, Any], eid: str, actor: Actor
) -> tuple[str, str]:
    action, name = _text(event, "action"), check_name(event.get("model"))
    if action == "register":
        return _replay_register(store, event, name, eid, actor)
    stage = check_stage(event.get("stage"))
    if action not in ("promote", "demote", "rollback"):
        return "refused", f"a {action!r} event is not pushed (approvals happen on the server)"
    to, frm = _version_or_none(event, "to_version"), _version_or_none(event, "from_version")
    if action == "promote" and to is None:
        return "refused", "a promote event needs the version it promoted"
    if action == "demote" and to is not None:
        return "refused", "a demote event leaves its stage empty"
    if stages(store, name).get(stage) == to:
        return _decided(store, eid, "exists", f"{name}@{stage} is {to or 'empty'} already")
    return _replay_stage(store, event, name, stage, (frm, to), eid, actor)


def _replay_stage(
    store: Store,
    event: Mapping[str, Any],
    name: str,
    stage: str,
    change: tuple[str | None, str | None],
    eid: str,
    actor: Actor,
) -> tuple[str, str]:
    """A pushed stage change, from ``frm`` to ``to``, applied only if the stage here still
    holds ``frm``. A rollback is one only if ``to`` is the stage's previous holder here
    (checked again inside its transaction); otherwise it is the promotion (or demotion)
    it amounts to, with that one's checks: a rollback cannot carry an unapproved version
    into a two-person stage."""
    frm, to = change
    message, action, origin = _text(event, "message"), _text(event, "action"), _pushed(event, eid)
    history = stage_history(store, name, stage)
    if action == "rollback" and len(history) >= 2 and history[-2] == to:
        rollback(
            store, name, stage, message=message, actor=actor, origin=origin, expect=frm, restore=to
        )
    elif to is None:
        demote(store, name, stage, message=message, actor=actor, origin=origin, expect=frm)
    else:
        done = promote(
            store, name, to, stage, message=message, actor=actor, origin=origin, expect=frm
        )
        if done and done[0].action == "request":
            return "applied", f"a request to promote {name}@{to} to {stage} is open"
    return "applied", f"{name}@{stage} -> {to or 'empty'}"


def _replay_register(
    store: Store, event: Mapping[str, Any], name: str, eid: str, actor: Actor
) -> tuple[str, str]:
    """A pushed registration: its provenance checked here (the run must be here and have
    written those bytes: the path, kind and size are this store's record of the run's
    output), an external version's size measured from its bytes; only the version
    number, message and kind of an external version come from the pusher."""
    version = normalize_version(event.get("version"))
    oid, run_id, data = _text(event, "oid"), _text(event, "run"), event.get("data")
    data = data if isinstance(data, dict) else {}
    if oid is None:
        return "refused", "a register event needs its oid"
    have = store.db.query_one(
        "SELECT oid, run_id FROM model_versions WHERE name = ? AND version = ?", (name, version)
    )
    if have is not None:
        if have[0] != oid:
            return _decided(
                store, eid, "refused",
                f"{name}@{version} exists here with other bytes ({str(have[0])[:19]})",
            )  # fmt: skip
        if have[1] != run_id:
            return _decided(
                store, eid, "refused",
                f"{name}@{version} exists here with the same bytes but another run "
                f"({have[1] or 'none'}, not {run_id or 'none'})",
            )  # fmt: skip
        return _decided(store, eid, "exists", f"{name}@{version} is registered already")
    if run_id is not None and not store.db.query_one("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
        return "refused", f"its run {run_id} is not here: push the run first"
    if run_id is not None:  # NotFound: the run wrote no such bytes
        source = output_with(store, run_id, oid, data.get("path"))
    else:
        kind = "dir" if data.get("kind") == "dir" else "file"
        source = Source(oid, kind, _size_of(store, oid, kind), None, None)
    message = _text(event, "message")
    origin = _pushed(event, eid)
    register(store, name, source, version=version, message=message, actor=actor, origin=origin)
    return "applied", f"{name}@{version}"


def _size_of(store: Store, oid: str, kind: str) -> int | None:
    """The size of bytes the store holds: a file's, or a directory's files together."""
    try:
        if kind != "dir":
            return store.objects.size(oid)
        return sum(int(e.get("size") or 0) for e in load_manifest(store, oid))
    except Exception:  # noqa: BLE001 - absent or damaged: register refuses it with its reason
        return None
