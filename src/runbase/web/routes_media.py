"""The images and tables a run logged, under ``/api/runs/{ref}/media`` (docs/api.md):
thin handlers over :mod:`runbase.render.views.media`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from runbase.core.shapes import I64, MAX_NAME
from runbase.render import views
from runbase.web.api import ErrorBody, RunRef, StoreDep, json_response

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}}, "description": "JSON (see docs/api.md)"},
    404: {"model": ErrorBody, "description": "No such run, key, step or object"},
}
# an object's bytes: only as the media type recorded for them, never sniffed, never a
# page of its own (an SVG or HTML posing as an image runs no script), kept by the browser
# (an object id names those bytes for ever)
OBJECT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "private, max-age=31536000, immutable",
}
Key = Annotated[str, Query(min_length=1, max_length=MAX_NAME, description="The media key")]


@router.get(
    "/runs/{ref}/media",
    tags=["media"],
    summary="The images and tables a run logged: keys and steps, one key's items",
    responses=_ERRORS,
)
def get_media(
    store: StoreDep,
    ref: RunRef,
    kind: Annotated[
        Literal["image", "table"] | None, Query(description="Only images, or only tables")
    ] = None,
    key: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME, description="List this key's items too"),
    ] = None,
) -> Response:
    return json_response(views.run_media(store, ref, kind, key))


@router.get(
    "/runs/{ref}/media/object/{oid}",
    tags=["media"],
    summary="The bytes of an image or table the run logged",
    responses={
        200: {"content": {"image/png": {}, "application/json": {}}, "description": "The bytes"},
        404: _ERRORS[404],
    },
)
def get_media_object(
    store: StoreDep,
    ref: RunRef,
    oid: Annotated[str, Path(max_length=200, description="The object id (`blake3:...`)")],
) -> Response:
    data, mime = views.media_object(store, ref, oid)
    return Response(data, media_type=mime, headers={**OBJECT_HEADERS, "ETag": f'"{oid}"'})


@router.get(
    "/runs/{ref}/media/table",
    tags=["media"],
    summary="A table the run logged, at one step (at most 10,000 rows)",
    responses=_ERRORS,
)
def get_media_table(
    store: StoreDep,
    ref: RunRef,
    key: Key,
    step: Annotated[
        int | None, Query(ge=-I64, le=I64 - 1, description="Its step (default: the last)")
    ] = None,
) -> Response:
    return json_response(views.media_table(store, ref, key, step))
