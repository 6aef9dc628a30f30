"""The model registry of a team server project (docs/models.md, docs/server.md "Model
registry"): reading and changing it through its API (``/p/{project}/api/models``),
fetching a version's bytes, and pushing the local registry (``runbase push``).

A server's answer is not trusted: each item is fitted to its documented shape (what
does not fit is dropped; an item without a valid name, version or object id is left
out), and bytes are re-hashed as they arrive, so ``model get --remote`` writes exactly
the bytes the registry names or nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runbase.capture.manifest import load_manifest
from runbase.core import shapes
from runbase.core.modelref import check_name, check_stage, normalize_version, require_ref
from runbase.errors import RemoteError, UsageError
from runbase.records import registry
from runbase.records.outbox import mark_pushed, pushed_digest
from runbase.remote.client import Client, Remote
from runbase.remote.sync import fetch_objects, push, send_objects, was_pushed
from runbase.store import Store

PUSHED_ACTIONS = ("register", "promote", "demote", "rollback")  # approvals stay on the server
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 512 << 10  # below the server's 1 MiB for such bodies

_TEXT: shapes.Shape = shapes.Str(shapes.MAX_NAME)
_MESSAGE: shapes.Shape = shapes.Str(registry.MAX_MESSAGE)
_TIME: shapes.Shape = shapes.Str(64)
VERSION = shapes.Obj(
    {
        "name": _TEXT,
        "version": _TEXT,
        "ref": _TEXT,
        "oid": shapes.Oid(),
        "kind": shapes.OneOf("file", "dir"),
        "size": shapes.COUNT,
        "run": shapes.RunId(),
        "path": _TEXT,
        "git_commit": _TEXT,
        "external": shapes.Bool(),
        "created_at": _TIME,
        "user": _TEXT,
        "message": _MESSAGE,
        "stages": shapes.ListOf(_TEXT, 1_000),
        "run_name": _TEXT,
        "run_status": _TEXT,
        "run_started_at": _TIME,
        "metrics": shapes.MapOf(shapes.AnyJSON()),
        "params": shapes.MapOf(shapes.AnyJSON()),
    },
    required=("name", "version", "oid", "kind"),
)
EVENT = shapes.Obj(
    {
        "seq": shapes.COUNT,
        "id": _TEXT,
        "time": _TIME,
        "user": _TEXT,
        "action": shapes.OneOf(*registry.ACTIONS),
        "model": _TEXT,
        "version": _TEXT,
        "stage": _TEXT,
        "from_version": _TEXT,
        "to_version": _TEXT,
        "oid": shapes.Oid(),
        "run": shapes.RunId(),
        "message": _MESSAGE,
        "data": shapes.MapOf(shapes.AnyJSON()),
        "origin": _TEXT,
        "prev_hash": _TEXT,
        "hash": _TEXT,
    },
    required=("seq", "id", "action", "model"),
)
SUMMARY = shapes.Obj(
    {
        "name": _TEXT,
        "latest": _TEXT,
        "versions": shapes.COUNT,
        "stages": shapes.MapOf(_TEXT),
        "updated_at": _TIME,
    },
    required=("name",),
)
_REQUEST_TEXT = ("id", "model", "version", "stage", "requested_by", "state", "decided_by")
REQUEST = shapes.Obj(
    {k: _TEXT for k in _REQUEST_TEXT}
    | {"requested_at": _TIME, "decided_at": _TIME, "message": _MESSAGE, "decision": _MESSAGE},
    required=("id", "model", "version", "stage", "state"),
)
VERIFY = shapes.Obj(
    {
        "ok": shapes.Bool(),
        "events": shapes.COUNT,
        "head": _TEXT,
        "problems": shapes.ListOf(_MESSAGE, 100_000),
    },
    required=("ok",),
)


# ---------------------------------------------------------------- fitting answers


def _named(value: Any) -> bool:
    """Whether an item names a model (and version) this runbase can hold."""
    try:
        check_name(value.get("name", value.get("model")))
        if value.get("version") is not None:
            normalize_version(value["version"])
    except UsageError:
        return False
    return True


def _items(answer: Any, key: str, shape: shapes.Shape, remote: Remote) -> list[dict[str, Any]]:
    items = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise RemoteError(f"{remote.url} answered no list of {key}")
    fitted = (shape.fit(item) for item in items)
    return [item for item in fitted if isinstance(item, dict) and _named(item)]


def _version(answer: Any, remote: Remote) -> dict[str, Any]:
    fitted = VERSION.fit(answer)
    if not isinstance(fitted, dict) or not _named(fitted):
        raise RemoteError(f"{remote.url} answered no model version")
    fitted["stages"] = [s for s in fitted.get("stages") or [] if isinstance(s, str)]
    fitted["external"] = fitted.get("external") is True
    return fitted


def _events(answer: Any, remote: Remote) -> dict[str, Any]:
    events = _items(answer, "events", EVENT, remote)
    for e in events:
        e.setdefault("data", {})
        e["data"] = e["data"] if isinstance(e["data"], dict) else {}
    return {"events": events}


def _model_path(remote: Remote, name: str, tail: str = "") -> str:
    return f"{remote.api}/models/{check_name(name)}{tail}"


# ---------------------------------------------------------------- reading


def remote_models(remote: Remote) -> dict[str, Any]:
    """``{"models": [summary]}`` of the remote's project (``GET /api/models``)."""
    answer = remote.client().get_json(f"{remote.api}/models")
    models = _items(answer, "models", SUMMARY, remote)
    for m in models:
        m["stages"] = m.get("stages") or {}
        m["versions"] = m.get("versions") or 0
    return {"models": models}


def remote_model(remote: Remote, name: str) -> dict[str, Any]:
    """``{"name", "versions", "stages", "requests"}`` (``GET /api/models/{name}``)."""
    answer = remote.client().get_json(_model_path(remote, name))
    if not isinstance(answer, dict) or answer.get("name") != name:
        raise RemoteError(f"{remote.url} answered no model {name!r}")
    stages = shapes.MapOf(_TEXT).fit(answer.get("stages"))
    return {
        "name": name,
        "versions": [_version(v, remote) for v in _items(answer, "versions", VERSION, remote)],
        "stages": stages if isinstance(stages, dict) else {},
        "requests": _items({"requests": answer.get("requests") or []}, "requests", REQUEST, remote),
    }


def remote_log(remote: Remote, name: str) -> dict[str, Any]:
    """``{"events": [event]}`` of one model, oldest first (``GET /api/models/{name}/log``)."""
    return _events(remote.client().get_json(_model_path(remote, name, "/log")), remote)


def remote_resolve(remote: Remote, ref: str) -> dict[str, Any]:
    """The version ``ref`` names on the server (``GET /api/models/resolve``)."""
    parsed = require_ref(ref)
    answer = remote.client().get_json(f"{remote.api}/models/resolve", {"ref": str(parsed)})
    version = _version(answer, remote)
    if version["name"] != parsed.name:
        raise RemoteError(f"{remote.url} answered a version of another model for {ref}")
    return version


def remote_verify(remote: Remote) -> dict[str, Any]:
    """The server's check of its log (``GET /api/models/verify``): ``{"ok", "events",
    "head", "problems"}``."""
    fitted = VERIFY.fit(remote.client().get_json(f"{remote.api}/models/verify"))
    if not isinstance(fitted, dict):
        raise RemoteError(f"{remote.url} answered no verification")
    problems = [p for p in fitted.get("problems") or [] if isinstance(p, str)]
    return {
        "ok": fitted.get("ok") is True and not problems,
        "events": fitted.get("events") or 0,
        "head": fitted.get("head"),
        "problems": problems,
    }


def remote_requests(remote: Remote, name: str | None = None) -> list[dict[str, Any]]:
    """The open promotion requests of one model, or of every model of the project."""
    names = [name] if name is not None else [m["name"] for m in remote_models(remote)["models"]]
    return [r for n in names for r in remote_model(remote, n)["requests"]]


# ---------------------------------------------------------------- changing


def _write(remote: Remote, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return _events(remote.client().send_json("POST", path, body), remote)


def remote_register(
    remote: Remote,
    name: str,
    oid: str | None,
    run: str | None = None,
    path: str | None = None,
    version: str | None = None,
    bump: str = "patch",
    message: str | None = None,
    external: bool = False,
    *,
    kind: str = "file",
    store: Store | None = None,
) -> dict[str, Any]:
    """Register a version on the server: ``oid`` (and/or ``path``) written by ``run``
    (a run of the project), or ``external`` bytes. With ``store``, the version's bytes
    are uploaded from it first (the project must hold them)."""
    if store is not None and oid is not None:
        send_objects(store, remote.client(), remote, version_objects(store, oid, kind))
    body = {
        "oid": oid,
        "run": run,
        "path": path,
        "version": normalize_version(version) if version is not None else None,
        "bump": bump,
        "message": message,
        "external": external,
    }
    if external:
        body["kind"] = kind
    return _write(remote, _model_path(remote, name, "/versions"), body)


def remote_promote(
    remote: Remote, name: str, version: str, stage: str, message: str | None = None
) -> dict[str, Any]:
    body = {"version": normalize_version(version), "stage": check_stage(stage), "message": message}
    return _write(remote, _model_path(remote, name, "/promote"), body)


def remote_demote(
    remote: Remote, name: str, stage: str, message: str | None = None
) -> dict[str, Any]:
    body = {"stage": check_stage(stage), "message": message}
    return _write(remote, _model_path(remote, name, "/demote"), body)


def remote_rollback(
    remote: Remote, name: str, stage: str, message: str | None = None
) -> dict[str, Any]:
    body = {"stage": check_stage(stage), "message": message}
    return _write(remote, _model_path(remote, name, "/rollback"), body)


def _decide(remote: Remote, request_id: str, decision: str, message: str | None) -> dict[str, Any]:
    if not request_id or len(request_id) > 64:
        raise UsageError(f"bad request id {request_id!r}")
    rid = urllib.parse.quote(request_id, safe="")
    return _write(remote, f"{remote.api}/models/requests/{rid}/{decision}", {"message": message})


def remote_approve(remote: Remote, request_id: str, message: str | None = None) -> dict[str, Any]:
    return _decide(remote, request_id, "approve", message)


def remote_reject(remote: Remote, request_id: str, message: str | None = None) -> dict[str, Any]:
    return _decide(remote, request_id, "reject", message)


# ---------------------------------------------------------------- bytes


def version_objects(store: Store, oid: str, kind: str) -> list[str]:
    """The objects holding a version's bytes: the file, or a directory's manifest and
    its files."""
    if kind != "dir":
        return [oid]
    return [oid, *dict.fromkeys(str(e["oid"]) for e in load_manifest(store, oid) if e.get("oid"))]


def pull_version(store: Store, remote: Remote, ref: str, jobs: int = 8) -> dict[str, Any]:
    """Bring the bytes of the version ``ref`` names on the server into ``store`` (each
    object re-hashed as it arrives; a directory's manifest first, then its files):
    ``{"version", "objects_fetched", "bytes_fetched"}``. The caller writes them out
    (``runbase model get --remote``)."""
    version = remote_resolve(remote, ref)
    client = remote.client()
    oid, kind = version["oid"], version["kind"]
    what = f"of {version['name']}@{version['version']}"
    fetched = [0, 0]
    if not store.objects.exists(oid):
        n, b = fetch_objects(store, client, remote, [oid], jobs, what)
        fetched = [fetched[0] + n, fetched[1] + b]
    if kind == "dir":
        files = [o for o in version_objects(store, oid, kind)[1:] if not store.objects.exists(o)]
        n, b = fetch_objects(store, client, remote, files, jobs, what)
        fetched = [fetched[0] + n, fetched[1] + b]
    return {"version": version, "objects_fetched": fetched[0], "bytes_fetched": fetched[1]}


# ---------------------------------------------------------------- push


@dataclass
class ModelPushReport:
    """What ``push_models`` did: the versions it brought, and each event's result."""

    versions: list[str] = field(default_factory=list)  # refs: name@version
    runs: list[str] = field(default_factory=list)  # runs pushed for them
    objects_sent: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0  # events not sent: the same as at the last complete push

    def count(self, result: str) -> int:
        return sum(1 for r in self.results if r["result"] == result)

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "runs": self.runs,
            "objects_sent": self.objects_sent,
            "results": self.results,
            "unchanged": self.unchanged,
            "applied": self.count("applied"),
            "exists": self.count("exists"),
            "refused": self.count("refused"),
        }


def push_models(
    store: Store,
    remote: Remote,
    run_ids: Iterable[str] | None = None,
    *,
    data: bool = True,
    jobs: int = 8,
    progress: Callable[[str], None] | None = None,
) -> ModelPushReport:
    """Send the local registry to ``remote``: the versions whose run is in ``run_ids``
    or was pushed there before (None: every version, its run pushed first), their
    bytes, then their events in log order (register, promote, demote, rollback). The
    server replays each as the pusher (their role, its protected stages) and skips those
    it has (by origin): each event's result is ``applied``, ``exists``, ``refused`` or
    ``settled`` (refused by an earlier push, for good: not an error again)."""
    report = ModelPushReport()
    chosen = _chosen_versions(store, remote, run_ids)
    if not chosen:
        return report
    report.versions = [v.ref for v in chosen]
    if run_ids is None:
        runs = list(dict.fromkeys(v.run_id for v in chosen if v.run_id))
        report.runs = push(store, remote, runs, data=data, jobs=jobs, progress=progress).runs
    client = Client(remote.url, remote.token)
    oids = [
        o
        for v in chosen
        if registry.bytes_present(store, v.oid, v.kind)
        for o in version_objects(store, v.oid, v.kind)
    ]
    report.objects_sent = send_objects(store, client, remote, list(dict.fromkeys(oids)), jobs)
    events = _events_of(store, {(v.name, v.version) for v in chosen})
    key = f"models-pushed:{remote.url}/p/{remote.project}"
    digest = hashlib.sha256("\n".join(e["id"] for e in events).encode()).hexdigest()
    if pushed_digest(store, key) == digest:
        report.unchanged = len(events)
        return report
    for batch in _batches(events):
        try:
            answer = client.send_json("POST", f"{remote.api}/models/events", {"events": batch})
        except RemoteError as e:
            if e.status == 404:  # a runbase from before the registry answers no such route
                raise RemoteError(
                    f"{remote.url} has no model registry (its runbase is older): the runs "
                    "were pushed, the model versions were not; upgrade the server",
                    e.status,
                    e.body,
                ) from None
            raise
        report.results += _results(answer, batch, remote)
    if not report.count("refused"):
        mark_pushed(store, key, digest)
    return report


def _chosen_versions(
    store: Store, remote: Remote, run_ids: Iterable[str] | None
) -> list[registry.Version]:
    everything = [
        v for m in registry.list_models(store) for v in registry.versions(store, m["name"])
    ]
    if run_ids is None:
        return everything
    runs = set(run_ids)
    return [
        v
        for v in everything
        if v.run_id and (v.run_id in runs or was_pushed(store, remote, v.run_id))
    ]


def _events_of(store: Store, versions: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The log's events to push with ``versions``, oldest first: their registrations,
    and each stage's changes up to the first that gives it a version not pushed with
    them (the rest wait for that version: replaying a stage's history out of order
    would leave the server's stage elsewhere than the local one)."""
    out, blocked = [], set()
    for e in registry.events(store):
        if e.action == "register":
            if e.version is not None and (e.model, e.version) in versions:
                out.append(e.to_json())
            continue
        if e.action not in PUSHED_ACTIONS or (e.model, e.stage) in blocked:
            continue
        if e.to_version is not None and (e.model, e.to_version) not in versions:
            blocked.add((e.model, e.stage))
            continue
        out.append(e.to_json())
    return out


def _batches(events: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for e in events:
        n = len(json.dumps(e, ensure_ascii=False).encode())
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + n > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(e)
        size += n
    if batch:
        yield batch


_RESULT = shapes.Obj(
    {"id": _TEXT, "result": shapes.OneOf(*registry.RESULTS), "detail": _MESSAGE},
    required=("result",),
)


def _results(answer: Any, batch: list[dict[str, Any]], remote: Remote) -> list[dict[str, Any]]:
    """Each sent event with the server's result for it (matched by position: the
    server answers one result per event, in order)."""
    items = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != len(batch):
        raise RemoteError(f"{remote.url} answered no result per pushed event")
    out = []
    for event, item in zip(batch, items, strict=True):
        fitted = _RESULT.fit(item)
        result = fitted.get("result") if isinstance(fitted, dict) else None
        detail = fitted.get("detail") if isinstance(fitted, dict) else None
        out.append(
            {
                "id": event["id"],
                "action": event["action"],
                "model": event["model"],
                # a stage event: the version the stage was given (None: emptied)
                "version": event.get("to_version") if event.get("stage") else event.get("version"),
                "stage": event.get("stage"),
                "result": result or "refused",
                "detail": detail if result else "the server's answer was malformed",
            }
        )
    return out


def version_from_json(item: dict[str, Any]) -> registry.Version:
    """A version of the JSON shape (a team server's answer, already fitted to it here)
    as the registry's :class:`Version`."""
    try:
        created = dt.datetime.fromisoformat(str(item.get("created_at"))).timestamp()
    except ValueError:
        created = 0.0

    def text(key: str) -> str | None:
        value = item.get(key)
        return value if isinstance(value, str) else None

    size = item.get("size")
    return registry.Version(
        str(item["name"]),
        str(item["version"]),
        str(item["oid"]),
        "dir" if item.get("kind") == "dir" else "file",
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        text("run"),
        text("path"),
        text("git_commit"),
        created,
        text("user"),
        text("message"),
        tuple(s for s in item.get("stages") or () if isinstance(s, str)),
    )


__all__ = [
    "version_from_json",
    "ModelPushReport",
    "pull_version",
    "push_models",
    "remote_approve",
    "remote_demote",
    "remote_log",
    "remote_model",
    "remote_models",
    "remote_promote",
    "remote_register",
    "remote_reject",
    "remote_requests",
    "remote_resolve",
    "remote_rollback",
    "remote_verify",
    "version_objects",
]
