"""The model registry under ``/api/models`` (docs/api.md, docs/models.md): thin handlers
over :mod:`runbase.records.registry` and its JSON views (:mod:`runbase.render.views.models`).

``router`` reads (a team server's readers), ``write_router`` changes the registry (its
writers; the registry itself checks the approver role and protected stages through the
:class:`~runbase.records.registry.Actor`). Who acts: the app's ``model_actor(request)``
on the team server (the account, its project role, protected stages, webhooks), else
the local store's user (``runbase ui``: one user, who owns the store).

Nothing a client sends is trusted: names and versions go through
:mod:`runbase.core.modelref`, text must be storable as it is, and a version's bytes must
be ones the project holds — on the team server the objects it was sent
(``project_objects``), never merely bytes another project put in the shared bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from runbase.capture.manifest import load_manifest
from runbase.core import fsname, shapes
from runbase.core.modelref import check_name, check_stage, normalize_version
from runbase.errors import (
    BundleError,
    Conflict,
    CorruptObject,
    Forbidden,
    NotFound,
    RunNotFound,
    ShapeError,
    UsageError,
)
from runbase.records import registry
from runbase.render.views import models as model_views
from runbase.store import Store
from runbase.web.api import ErrorBody, StoreDep, json_response

router = APIRouter()
write_router = APIRouter()  # the team server gives these the writer role

MAX_EVENTS = 1_000  # per push request (the client sends batches)
MAX_PATH = 4_096
MAX_REF = 300

ModelName = Annotated[
    str,
    Path(
        max_length=200,  # a longer one is refused by the name check, with its reason
        description="The model's name: lower-case letters, digits, `-` and `_` (at most 100)",
    ),
]
RequestId = Annotated[str, Path(max_length=64, description="A promotion request's id")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad name, version, stage or reference"},
    404: {"model": ErrorBody, "description": "No such model, version, stage or run"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    403: {"model": ErrorBody, "description": "A protected stage, or not your role"},
    409: {"model": ErrorBody, "description": "Clashes with the registry, or bytes not held"},
}


def actor_of(request: Request) -> registry.Actor:
    """Who changes the registry: the team server's account in its project, else the OS
    user of ``runbase ui``, who owns the store."""
    make = getattr(request.app.state, "model_actor", None)
    return make(request) if make is not None else registry.local_actor()


def lacking(request: Request, store: Store, oids: list[str]) -> list[str]:
    """Those of ``oids`` the project does not hold. On the team server the project's
    objects are the ones it was sent (the shared bucket holds every project's bytes);
    locally, the store's objects."""
    server = getattr(request.app.state, "server", None)
    project = request.path_params.get("project")
    if server is not None and isinstance(project, str):
        return list(server.missing(project, oids))
    return [o for o in oids if not store.objects.exists(o)]


def require_bytes(request: Request, store: Store, oid: str, kind: str) -> None:
    """Conflict unless the project holds the version's bytes: the object, and for a
    directory every file of its manifest (read only once the project is known to hold
    it: no one learns what another project's manifest lists)."""
    if lacking(request, store, [oid]):
        raise Conflict(f"the project does not hold the object {oid}: push its bytes first")
    if kind != "dir":
        return
    try:
        entries = load_manifest(store, oid)
    except (ValueError, BundleError) as e:  # UnsafePathError is a BundleError
        raise UsageError(f"{oid} is not a directory's manifest: {e}") from None
    wanted = [str(e["oid"]) for e in entries if e.get("oid")]
    missing = lacking(request, store, wanted)
    if missing:
        raise Conflict(
            f"the project lacks {len(missing)} file(s) of the directory {oid} "
            f"(e.g. {missing[0]}): push its bytes first"
        )


def _text(value: str | None, what: str, limit: int) -> str | None:
    """Text a store holds as it is (no NUL, no lone surrogate), at most ``limit``."""
    if value is None:
        return None
    if len(value) > limit:
        raise UsageError(f"{what} is {len(value)} characters; at most {limit}")
    problem = fsname.text_problem(value)
    if problem is not None:
        raise UsageError(f"{what} {problem}")
    return value


def _events(events: list[registry.Event], status: int = 200) -> Response:
    return json_response({"events": [e.to_json() for e in events]}, status_code=status)


# ---------------------------------------------------------------- reads


@router.get("/models", tags=["models"], summary="Every model: its latest version and stages")
def list_models(store: StoreDep) -> Response:
    return json_response(model_views.model_list(store))


@router.get(
    "/models/resolve",
    tags=["models"],
    summary="The version a reference names (NAME@vX.Y.Z, NAME@latest, NAME@STAGE)",
    responses=_ERRORS,
)
def resolve_ref(
    store: StoreDep,
    ref: Annotated[str, Query(max_length=MAX_REF, description="`churn@production`")],
) -> Response:
    return json_response(registry.resolve_ref(store, ref).to_json())


@router.get(
    "/models/verify",
    tags=["models"],
    summary="Check the registry's hash-chained log and that it matches the registry",
)
def verify(store: StoreDep) -> Response:
    return json_response(registry.verify(store).to_json())


@router.get(
    "/models/{name}",
    tags=["models"],
    summary="A model: its versions with their runs' metrics, stages, open requests",
    responses=_ERRORS,
)
def get_model(store: StoreDep, name: ModelName) -> Response:
    return json_response(model_views.model_detail(store, check_name(name)))


@router.get(
    "/models/{name}/log",
    tags=["models"],
    summary="A model's audit log, oldest event first",
    responses=_ERRORS,
)
def model_log(store: StoreDep, name: ModelName) -> Response:
    return json_response(model_views.model_log(store, check_name(name)))


# ---------------------------------------------------------------- writes


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: StrictStr | None = Field(
        default=None, max_length=registry.MAX_MESSAGE, description="Why (the audit log keeps it)"
    )


class RegisterBody(_Body):
    """``POST /api/models/{name}/versions``: the bytes (``oid``) and the run that wrote
    them (``run``, optionally ``path``: the output's path); or ``external`` bytes the
    project holds, with no provenance."""

    oid: StrictStr | None = Field(default=None, max_length=100, description="`blake3:<hex>`")
    run: StrictStr | None = Field(
        default=None, max_length=1_000, description="The run that wrote it (id, prefix, name)"
    )
    path: StrictStr | None = Field(
        default=None, max_length=MAX_PATH, description="The output's path in the run"
    )
    version: StrictStr | None = Field(
        default=None, max_length=40, description="`v1.2.0` (default: the next, by `bump`)"
    )
    bump: Literal["major", "minor", "patch"] = "patch"
    external: StrictBool = Field(default=False, description="Bytes no recorded run produced")
    kind: Literal["file", "dir"] = Field(
        default="file", description="An external version's kind (a run's output knows its own)"
    )


class PromoteBody(_Body):
    version: StrictStr = Field(max_length=40, description="`v1.2.0`")
    stage: StrictStr = Field(max_length=200, description="`production`")


class StageBody(_Body):
    stage: StrictStr = Field(max_length=200, description="`production`")


class DecisionBody(_Body):
    pass


class EventsBody(BaseModel):
    """``POST /api/models/events``: events of another store's log (``runbase push``),
    each as ``GET /api/models/{name}/log`` answers it; checked one by one."""

    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(max_length=MAX_EVENTS)


@write_router.post(
    "/models/{name}/versions",
    tags=["models"],
    summary="Register a version: an output of a run, or external bytes (201)",
    status_code=201,
    responses=_WRITE_ERRORS,
)
def register(store: StoreDep, name: ModelName, body: RegisterBody, request: Request) -> Response:
    check_name(name)
    message = _text(body.message, "the message", registry.MAX_MESSAGE)
    path = _text(body.path, "the path", MAX_PATH)
    oid = shapes.Oid().conform(body.oid, "oid", True) if body.oid is not None else None
    version = normalize_version(body.version) if body.version is not None else None
    if body.run is not None:
        if body.external:
            raise UsageError("a version is either a run's output (run) or external, not both")
        if oid is None and path is None:
            raise UsageError("name the run's output: its oid, its path, or both")
        source = registry.run_output(
            store, _text(body.run, "the run", 1_000) or "", oid=oid, path=path
        )
    elif body.external:
        if oid is None:
            raise UsageError("an external version needs the oid of bytes the project holds")
        source = registry.Source(oid, body.kind, None, None, path)
    else:
        raise UsageError(
            "give the run that wrote the bytes (run, with oid and/or path), or external: true "
            "for bytes without provenance"
        )
    require_bytes(request, store, source.oid, source.kind)
    events = registry.register(
        store,
        name,
        source,
        version=version,
        bump=body.bump,
        message=message,
        actor=actor_of(request),
    )
    return _events(events, 201)


@write_router.post(
    "/models/{name}/promote",
    tags=["models"],
    summary="Put a version in a stage (a request, on a two-person stage)",
    responses=_WRITE_ERRORS,
)
def promote(store: StoreDep, name: ModelName, body: PromoteBody, request: Request) -> Response:
    events = registry.promote(
        store,
        check_name(name),
        normalize_version(body.version),
        check_stage(body.stage),
        message=_text(body.message, "the message", registry.MAX_MESSAGE),
        actor=actor_of(request),
    )
    return _events(events)


@write_router.post(
    "/models/{name}/demote",
    tags=["models"],
    summary="Take the version out of a stage",
    responses=_WRITE_ERRORS,
)
def demote(store: StoreDep, name: ModelName, body: StageBody, request: Request) -> Response:
    events = registry.demote(
        store,
        check_name(name),
        check_stage(body.stage),
        message=_text(body.message, "the message", registry.MAX_MESSAGE),
        actor=actor_of(request),
    )
    return _events(events)


@write_router.post(
    "/models/{name}/rollback",
    tags=["models"],
    summary="Give a stage back the version it held before",
    responses=_WRITE_ERRORS,
)
def rollback(store: StoreDep, name: ModelName, body: StageBody, request: Request) -> Response:
    events = registry.rollback(
        store,
        check_name(name),
        check_stage(body.stage),
        message=_text(body.message, "the message", registry.MAX_MESSAGE),
        actor=actor_of(request),
    )
    return _events(events)


@write_router.post(
    "/models/requests/{request_id}/approve",
    tags=["models"],
    summary="Approve a promotion request (another approver than who asked): the stage is set",
    responses=_WRITE_ERRORS,
)
def approve(
    store: StoreDep, request_id: RequestId, body: DecisionBody, request: Request
) -> Response:
    return _decide(registry.approve, store, request_id, body, request)


@write_router.post(
    "/models/requests/{request_id}/reject",
    tags=["models"],
    summary="Reject a promotion request (an approver, or who asked, withdrawing it)",
    responses=_WRITE_ERRORS,
)
def reject(
    store: StoreDep, request_id: RequestId, body: DecisionBody, request: Request
) -> Response:
    return _decide(registry.reject, store, request_id, body, request)


def _decide(
    act: Any, store: Store, request_id: str, body: DecisionBody, request: Request
) -> Response:
    message = _text(body.message, "the message", registry.MAX_MESSAGE)
    _text(request_id, "the request id", 64)
    return _events(act(store, request_id, message=message, actor=actor_of(request)))


@write_router.post(
    "/models/events",
    tags=["models"],
    summary="Replay events pushed from another store's log (runbase push)",
)
def push_events(store: StoreDep, body: EventsBody, request: Request) -> Response:
    actor = actor_of(request)
    results = []
    for event in body.events:
        eid = event.get("id") if isinstance(event.get("id"), str) else None
        before = registry.prior_answer(store, eid) if eid and len(eid) <= 64 else None
        if before is not None:  # decided before: its bytes and run are not checked again
            results.append({"id": eid, "result": before[0], "detail": before[1]})
            continue
        try:
            checked = _pushed_event(request, store, event)
            result, detail = registry.import_event(store, checked, actor=actor)
        except _REFUSALS as e:  # this event is refused; the others are still replayed
            result, detail = "refused", str(e)
        results.append({"id": eid, "result": result, "detail": detail})
    return json_response({"results": results})


_REFUSALS = (UsageError, ShapeError, NotFound, Conflict, Forbidden, BundleError, CorruptObject)
_NAME = shapes.Text(200)
_VERSION = shapes.Text(40)
EVENT = shapes.Obj(
    {
        "id": shapes.Text(64, 1),
        "action": shapes.OneOf(*registry.ACTIONS),
        "model": _NAME,
        "version": _VERSION,
        "stage": _NAME,
        "from_version": _VERSION,
        "to_version": _VERSION,
        "oid": shapes.Oid(),
        "run": shapes.RunId(),
        "message": shapes.Text(registry.MAX_MESSAGE),
        "user": shapes.Text(200),
        "data": shapes.Obj(
            {
                "kind": shapes.OneOf("file", "dir"),
                "size": shapes.Int(0),
                "path": shapes.Text(MAX_PATH),
                "git_commit": shapes.Text(200),
                "external": shapes.Bool(),
            },
            others=shapes.AnyJSON(),
        ),
    },
    required=("id", "action", "model"),
)


def _pushed_event(request: Request, store: Store, event: Mapping[str, Any]) -> dict[str, Any]:
    """The event, checked strictly (ShapeError naming the field); a register's bytes
    must be held by the project and, with a run, be an output that run recorded."""
    EVENT.check(event, "event")
    out = dict(event)
    if out["action"] != "register":
        return out
    oid = out.get("oid")
    if not isinstance(oid, str):
        raise UsageError("a register event needs its oid")
    raw = out.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    run = out.get("run")
    if isinstance(run, str):
        try:
            source = registry.output_with(store, run, oid, data.get("path"))
        except RunNotFound:
            raise UsageError(f"its run {run} is not in this project: push the run first") from None
        out["data"] = {**data, "kind": source.kind, "size": source.size, "path": source.path}
    else:
        source = registry.Source(
            oid, "dir" if data.get("kind") == "dir" else "file", None, None, None
        )
    require_bytes(request, store, source.oid, source.kind)
    return out
