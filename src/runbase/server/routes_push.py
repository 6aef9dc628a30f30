"""A project's push/pull API under ``/p/{project}/api`` (beside the read API of
``runbase ui``): objects, run bundles, live updates and notes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from runbase.core.shapes import loads
from runbase.errors import BundleError
from runbase.server.auth import Oid, ProjectName, Reader, RunId, RunRef, ServerDep, UserDep, Writer
from runbase.server.models import NoteBody, OidList
from runbase.server.uploads import receive_object
from runbase.web.api import json_response

project_api = APIRouter(prefix="/p/{project}/api")


@project_api.post("/objects/missing", tags=["push"], summary="Which of these objects you lack")
def objects_missing(project: ProjectName, body: OidList, server: ServerDep, _: Writer) -> Response:
    return json_response({"missing": server.missing(project, body.oids)})


@project_api.put(
    "/objects/{oid}", tags=["push"], summary="Upload an object (re-hashed)", status_code=201
)
async def put_object(
    project: ProjectName, oid: Oid, request: Request, server: ServerDep, _: Writer
) -> Response:
    size_hint = int(request.headers.get("content-length") or 0)
    writer = await run_in_threadpool(server.begin_object, oid, size_hint)
    await receive_object(request, writer)  # ObjectIdMismatch: 422
    await run_in_threadpool(server.accept_object, project, oid, writer.size)
    return json_response({"oid": oid, "size": writer.size}, status_code=201)


@project_api.get("/objects/{oid}", tags=["pull"], summary="Download an object")
def get_object(project: ProjectName, oid: Oid, server: ServerDep, _: Reader) -> Response:
    chunks = server.object_chunks(project, oid)
    return StreamingResponse(chunks, media_type="application/octet-stream")


# The body of a push is read in the handler, after the role dependency: FastAPI reads
# declared bodies before dependencies run, which would let anyone make it parse 512 MiB.
BUNDLE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'A run bundle (docs/store-format.md, "Run bundles")',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def _bundle_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        # 5,000 nested brackets are a client error, not a RecursionError (a 500); the
        # bundle's every level is then checked by type (runbase.records.bundle)
        body = loads(raw, max_depth=None)
    except ValueError as e:
        raise BundleError(f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise BundleError("a bundle is a JSON object")
    return body


def _bundle_endpoint(live: bool) -> Callable[..., Any]:
    """The handler of a push (``live=False``: a whole run) or a live update (a delta)."""

    async def endpoint(
        project: ProjectName,
        run_id: RunId,
        request: Request,
        server: ServerDep,
        user: UserDep,
        _: Writer,
    ) -> Response:
        bundle = await _bundle_body(request)
        out = await run_in_threadpool(server.receive_bundle, project, run_id, bundle, user, live)
        return json_response(out)

    return endpoint


for _path, _method, _live, _summary in (
    ("bundle", "PUT", False, "Push a run's record"),
    ("live", "POST", True, "Live update of a running run"),
):
    project_api.add_api_route(
        f"/runs/{{run_id}}/{_path}",
        _bundle_endpoint(live=_live),
        methods=[_method],
        name=f"{_method.lower()}_{_path}",
        tags=["push"],
        summary=_summary,
        openapi_extra=BUNDLE_OPENAPI,
    )


SweepId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9._-]{1,200}$", description="Sweep id (records.sweeps)"),
]


@project_api.put("/sweeps/{sweep_id}", tags=["push"], summary="Push a sweep's record")
async def put_sweep(
    project: ProjectName,
    sweep_id: SweepId,
    request: Request,
    server: ServerDep,
    user: UserDep,
    _: Writer,
) -> Response:
    """The sweeps row as a bundle's ``sweep`` carries it: the driver sends it as the sweep
    goes (status, best run), which its trials' bundles, sent as each ends, cannot."""
    row = await _bundle_body(request)
    out = await run_in_threadpool(server.receive_sweep, project, sweep_id, row, user)
    return json_response(out)


@project_api.get("/runs/{ref}/bundle", tags=["pull"], summary="A run's record, to pull")
def get_bundle(
    project: ProjectName,
    ref: RunRef,
    server: ServerDep,
    _: Reader,
    data: Annotated[bool, Query(description="Include data objects in `objects`")] = True,
) -> Response:
    return json_response(server.bundle_of(project, ref, data))


@project_api.get("/runs/{ref}/notes", tags=["notes"], summary="Notes on a run")
def get_notes(project: ProjectName, ref: RunRef, server: ServerDep, _: Reader) -> Response:
    return json_response({"notes": server.notes(project, ref)})


@project_api.post("/runs/{ref}/notes", tags=["notes"], summary="Add a note", status_code=201)
def post_note(
    project: ProjectName, ref: RunRef, body: NoteBody, server: ServerDep, user: UserDep, _: Writer
) -> Response:
    return json_response(server.add_note(project, ref, user, body.text), status_code=201)
