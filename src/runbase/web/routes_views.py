"""Saved views of the runs page under ``/api/views`` (docs/api.md, docs/views.md): thin
handlers over :mod:`runbase.render.views.saved`. ``router`` reads (a team server's
readers), ``write_router`` saves and deletes (its writers; a session cookie also needs
its CSRF token there). Who saves: the team server's account, else the OS user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from runbase.errors import UsageError
from runbase.render.views import saved
from runbase.web.api import ErrorBody, StoreDep, json_response

router = APIRouter()
# the routes that change saved views: the team server gives them the writer role
write_router = APIRouter()

ViewName = Annotated[
    str,
    Path(
        max_length=1000,  # a longer one is refused by the name check, with its reason
        description="The view's name: 1 to 100 printable characters, no `/`",
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad name or spec (the message names it)"},
    404: {"model": ErrorBody, "description": "No view of that name"},
}


class ViewBody(BaseModel):
    """``PUT /api/views/{name}``: the spec (docs/views.md, checked by the handler: a
    bad one is a 400 naming the key) and, optionally, whether it is the default view;
    or ``default`` alone, which changes only that (the saved spec stays)."""

    model_config = ConfigDict(extra="forbid")

    spec: Any = Field(
        default=None,
        description="The view spec, a JSON object with `version: 1` (docs/views.md); "
        "absent: only `default` changes, on a view that exists",
        json_schema_extra={"type": "object"},
    )
    default: StrictBool | None = Field(
        default=None,
        description="true: the project's default view; false: not (unset if it was); "
        "absent: as it was",
    )


@router.get("/views", tags=["views"], summary="The saved views of the project")
def list_views(store: StoreDep) -> Response:
    return json_response(saved.saved_views(store))


@router.get(
    "/views/{name:path}", tags=["views"], summary="One saved view and its spec", responses=_ERRORS
)
def get_view(store: StoreDep, name: ViewName) -> Response:
    return json_response(saved.saved_view(store, name))


@write_router.put(
    "/views/{name:path}",
    tags=["views"],
    summary="Save a view (201: created, 200: replaced)",
    responses={201: {"description": "Created"}, **_ERRORS},
)
def put_view(store: StoreDep, name: ViewName, body: ViewBody, request: Request) -> Response:
    if "spec" not in body.model_fields_set:
        if body.default is None:
            raise UsageError("the body needs a spec, a default, or both")
        return json_response(saved.mark_default(store, name, body.default))
    user = getattr(request.state, "user", None)  # the team server's account, if any
    view, created = saved.save_view(store, name, body.spec, body.default, user)
    return json_response(view, status_code=201 if created else 200)


@write_router.delete(
    "/views/{name:path}",
    tags=["views"],
    summary="Delete a saved view",
    status_code=204,
    responses=_ERRORS,
)
def delete_view(store: StoreDep, name: ViewName) -> Response:
    saved.delete_view(store, name)
    return Response(status_code=204)
