"""The server's own API under ``/api/v1``: who am I, projects and members, users,
API tokens and team search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from runbase.server import control
from runbase.server.auth import (
    OID_PATH,
    USER_PATH,
    ProjectName,
    ServerDep,
    UserDep,
    require_server_admin,
    role_dependency,
)
from runbase.server.control import User
from runbase.server.models import MemberRole, NewProject, NewToken, NewUser
from runbase.web.api import json_response

v1 = APIRouter(prefix="/api/v1")


@v1.get("/me", tags=["accounts"], summary="Who am I, and my projects")
def me(user: UserDep, server: ServerDep) -> Response:
    projects = control.readable_projects(server.control, user)
    return json_response({"user": user.name, "role": user.role, "projects": projects})


@v1.get("/projects", tags=["projects"], summary="Projects I can read")
def list_projects(user: UserDep, server: ServerDep) -> Response:
    return json_response({"projects": control.readable_projects(server.control, user)})


@v1.post("/projects", tags=["projects"], summary="Create a project (server admin)", status_code=201)
def create_project(
    body: NewProject, server: ServerDep, admin: Annotated[User, Depends(require_server_admin)]
) -> Response:
    control.add_project(server.control, body.name, by=admin.name)
    return json_response({"name": body.name}, status_code=201)


@v1.get("/projects/{project}/members", tags=["projects"], summary="Members and roles")
def get_members(
    project: ProjectName, server: ServerDep, _: Annotated[None, Depends(role_dependency("reader"))]
) -> Response:
    return json_response({"members": control.members(server.control, project)})


@v1.put("/projects/{project}/members/{user_name}", tags=["projects"], summary="Set a role")
def put_member(
    project: ProjectName,
    user_name: Annotated[str, Path(pattern=USER_PATH)],
    body: MemberRole,
    server: ServerDep,
    _: Annotated[None, Depends(role_dependency("admin"))],
) -> Response:
    control.set_member(server.control, project, user_name, body.role)
    return json_response({"project": project, "user": user_name, "role": body.role})


@v1.delete("/projects/{project}/members/{user_name}", tags=["projects"], summary="Remove")
def delete_member(
    project: ProjectName,
    user_name: Annotated[str, Path(pattern=USER_PATH)],
    server: ServerDep,
    _: Annotated[None, Depends(role_dependency("admin"))],
) -> Response:
    control.set_member(server.control, project, user_name, None)
    return json_response({"project": project, "user": user_name, "role": None})


@v1.post("/users", tags=["accounts"], summary="Create a user (server admin)", status_code=201)
def create_user(
    body: NewUser, server: ServerDep, _: Annotated[User, Depends(require_server_admin)]
) -> Response:
    token = control.add_user_with_token(
        server.control, body.name, body.role, body.projects, body.project_role
    )
    return json_response({"user": body.name, "role": body.role, "token": token.secret}, 201)


@v1.get("/tokens", tags=["accounts"], summary="My API tokens (never their secrets)")
def list_tokens(user: UserDep, server: ServerDep) -> Response:
    return json_response({"tokens": control.list_tokens(server.control, user.name)})


@v1.post("/tokens", tags=["accounts"], summary="A new API token, shown once", status_code=201)
def create_token(body: NewToken, user: UserDep, server: ServerDep) -> Response:
    ttl = body.ttl_days * 86400 if body.ttl_days is not None else None
    t = control.create_token(server.control, user.name, body.label, ttl)
    return json_response({"id": t.id, "token": t.secret, "expires_at": t.expires_at}, 201)


@v1.delete("/tokens/{token_id}", tags=["accounts"], summary="Revoke a token")
def revoke_token(
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")], user: UserDep, server: ServerDep
) -> Response:
    control.revoke_token(server.control, token_id, user)
    return json_response({"id": token_id, "revoked": True})


@v1.get("/search", tags=["search"], summary="Runs across my projects, by filter or data hash")
def search(
    user: UserDep,
    server: ServerDep,
    where: Annotated[str | None, Query(max_length=10_000)] = None,
    data: Annotated[str | None, Query(pattern=OID_PATH, description="Exact data hash")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    return json_response(server.search(user, where, data, limit))
