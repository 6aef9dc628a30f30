"""The MLflow artifact API (``/api/2.0/mlflow-artifacts/...``) and logged models
(``/api/2.0/mlflow/logged-models...``) of a project's MLflow endpoint, mounted by
:mod:`runbase.server.mlflow_app` at ``/p/{project}/mlflow`` (docs/mlflow.md).

Uploads are streamed and re-hashed into the server's object store (the same bytes are
one object however often they are sent), downloads are served as ``runbase pull``'s
are (:meth:`Server.object_chunks`: verified). What a path means is
:mod:`runbase.server.mlflow_art_store`'s business.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from runbase.errors import RunbaseError, TooLarge
from runbase.server import mlflow_art_store as art
from runbase.server.mlflow_base import Caller, ReaderCaller, WriterCaller, decimal, json_body
from runbase.server.service import MAX_OBJECT_BYTES
from runbase.server.uploads import receive_object
from runbase.web.api import json_response

router = APIRouter()

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
LOGGED = "/api/2.0/mlflow/logged-models"
# what the client reads to decide whether to upload in parts: it must not (runbase
# stores each artifact as one object, streamed through this server)
SERVER_INFO = {"multipart_uploads_enabled": False, "multipart_downloads_enabled": False}
UNSUPPORTED_MULTIPART = "Multipart upload is not supported for the current artifact repository"

ArtPath = Annotated[str, Path(max_length=art.MAX_PATH + 100, description="Artifact path")]
ModelId = Annotated[
    str, Path(pattern=f"^{art.MODEL_ID_RE.pattern}$", description="Logged model id")
]


def _in_store(caller: Caller, fn: Any, *args: Any) -> Any:
    with caller.server.store(caller.project) as store:
        return fn(store, *args)


async def in_store(caller: Caller, fn: Any, *args: Any) -> Any:
    """``fn(store, *args)`` on the caller's project's store, off the event loop."""
    return await run_in_threadpool(_in_store, caller, fn, *args)


# ---------------------------------------------------------------- artifacts


@router.get("/api/3.0/mlflow/server-info", tags=["mlflow"], summary="Artifact capabilities")
def server_info(_: ReaderCaller) -> Response:
    return json_response(SERVER_INFO)


@router.get(ARTIFACTS, tags=["mlflow"], summary="List artifacts")
async def list_artifacts(
    c: ReaderCaller,
    path: Annotated[str, Query(max_length=art.MAX_PATH + 100)] = "",
) -> Response:
    target = art.parse_target(path, allow_root=True)
    files = await in_store(c, art.listing, target)
    return json_response({"files": files})


@router.get(ARTIFACTS + "/{rest:path}", tags=["mlflow"], summary="Download an artifact")
async def download_artifact(rest: ArtPath, c: ReaderCaller) -> Response:
    target = art.parse_target(rest, allow_root=False)
    oid, _size = await in_store(c, art.find_file, target)
    chunks = await run_in_threadpool(c.server.object_chunks, c.project, oid)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.put(ARTIFACTS + "/{rest:path}", tags=["mlflow"], summary="Upload an artifact")
async def upload_artifact(rest: ArtPath, request: Request, c: WriterCaller) -> Response:
    target = art.parse_target(rest, allow_root=False)
    # the one write check of the MLflow API: the run's author (or the logged model's
    # owner) or an admin, the run not deleted; before a byte is read
    await in_store(c, art.check_writable, c, target)
    size_hint = decimal(request.headers.get("content-length") or 0, "Content-Length", low=0)
    if size_hint > MAX_OBJECT_BYTES:
        raise TooLarge(f"an artifact is at most {MAX_OBJECT_BYTES} bytes")
    writer = await run_in_threadpool(c.server.objects.writer, size_hint)
    await receive_object(request, writer)
    await run_in_threadpool(c.server.accept_object, c.project, writer.oid, writer.size)
    await in_store(c, art.record_file, target, writer.oid, writer.size)
    return json_response({})


@router.delete(ARTIFACTS + "/{rest:path}", tags=["mlflow"], summary="Delete artifacts")
def delete_artifacts(rest: ArtPath, _: WriterCaller) -> Response:
    del rest
    raise RunbaseError(
        "runbase keeps a run's outputs as its record: artifacts cannot be deleted "
        "through the MLflow API (docs/mlflow.md)"
    )


@router.post("/api/2.0/mlflow-artifacts/mpu/{action}/{rest:path}", include_in_schema=False)
def multipart(action: str, rest: str, _: WriterCaller) -> Response:
    """The client falls back to a plain upload on exactly this answer."""
    del action, rest
    body = {"error_code": "NOT_IMPLEMENTED", "message": UNSUPPORTED_MULTIPART}
    return json_response(body, status_code=501)


@router.get("/api/2.0/mlflow-artifacts/presigned/{rest:path}", include_in_schema=False)
def presigned(rest: str, _: ReaderCaller) -> Response:
    del rest
    body = {"error_code": "NOT_IMPLEMENTED", "message": "presigned downloads are not supported"}
    return json_response(body, status_code=501)


# ---------------------------------------------------------------- logged models


def _model(row: dict[str, Any]) -> Response:
    return json_response({"model": art.model_json(row)})


@router.post(LOGGED, tags=["mlflow"], summary="Create a logged model")
async def create_logged_model(request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    return _model(await in_store(c, art.create_model, body, c))


@router.post(LOGGED + "/search", tags=["mlflow"], summary="Search logged models")
async def search_logged_models(request: Request, c: ReaderCaller) -> Response:
    body = await json_body(request)
    return json_response(await in_store(c, art.search_models, body))


@router.get(LOGGED + "/{model_id}", tags=["mlflow"], summary="Get a logged model")
async def get_logged_model(model_id: ModelId, c: ReaderCaller) -> Response:
    return _model(await in_store(c, art.get_model, model_id))


@router.patch(LOGGED + "/{model_id}", tags=["mlflow"], summary="Finalize a logged model")
async def finalize_logged_model(model_id: ModelId, request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    return _model(await in_store(c, art.finalize, c, model_id, body.get("status")))


@router.delete(LOGGED + "/{model_id}", tags=["mlflow"], summary="Delete a logged model")
async def delete_logged_model(model_id: ModelId, c: WriterCaller) -> Response:
    await in_store(c, art.delete_model, c, model_id)
    return json_response({})


@router.patch(LOGGED + "/{model_id}/tags", tags=["mlflow"], summary="Set logged model tags")
async def set_logged_model_tags(model_id: ModelId, request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    await in_store(c, art.change_tags, c, model_id, body.get("tags"))
    return json_response({})


@router.delete(
    LOGGED + "/{model_id}/tags/{key:path}", tags=["mlflow"], summary="Delete a logged model tag"
)
async def delete_logged_model_tag(
    model_id: ModelId,
    key: Annotated[str, Path(max_length=art.MAX_KEY)],
    c: WriterCaller,
) -> Response:
    await in_store(c, art.change_tags, c, model_id, None, key)
    return json_response({})


@router.post(LOGGED + "/{model_id}/params", tags=["mlflow"], summary="Log logged model params")
async def log_logged_model_params(model_id: ModelId, request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    await in_store(c, art.add_params, c, model_id, body.get("params"))
    return json_response({})
