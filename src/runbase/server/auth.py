"""Who is asking, and may they: the FastAPI dependencies every server route uses
(credential -> :class:`User`, project roles, the page login redirect), and the path
parameter types they check.

Every route but ``/healthz``, ``/readyz``, ``/login`` and static files needs a
credential: an API token (``Authorization: Bearer``) or the UI's session cookie, whose
unsafe requests also need the session's CSRF token (``X-CSRF-Token``). Project routes
need a role in that project: reader to read, writer to push, admin to manage members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from runbase.errors import AuthError, Forbidden, LoginRequired, RunbaseError
from runbase.server import control
from runbase.server.control import User
from runbase.server.service import Server
from runbase.store import Store
from runbase.web import pages

SESSION_COOKIE = pages.SESSION_COOKIE
CSRF_COOKIE = pages.CSRF_COOKIE
PROJECT_PATH = control.PROJECT_NAME_RE.pattern
USER_PATH = control.NAME_RE.pattern
OID_PATH = r"^blake3:[0-9a-f]{64}$"
RUN_ID_PATH = r"^[0-9a-hjkmnp-tv-z]{16}$"

ProjectName = Annotated[str, Path(pattern=PROJECT_PATH, max_length=59, description="Project name")]
Oid = Annotated[str, Path(pattern=OID_PATH, description="Object id, `blake3:<64 hex>`")]
RunId = Annotated[str, Path(pattern=RUN_ID_PATH, description="Run id (16 characters)")]
RunRef = Annotated[str, Path(max_length=1000, description="Run id, prefix, name or `latest`")]


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def current_user(request: Request) -> User:
    server = server_of(request)
    user = server.authenticate(
        request.headers.get("authorization"),
        request.cookies.get(SESSION_COOKIE),
        request.method,
        request.headers.get("x-csrf-token"),
    )
    request.state.user = user.name
    return user


UserDep = Annotated[User, Depends(current_user)]
ServerDep = Annotated[Server, Depends(server_of)]


def role_dependency(needed: str) -> Callable[..., Any]:
    def check(request: Request, project: ProjectName, user: UserDep) -> None:
        request.state.project = project
        request.state.role = server_of(request).require(user, project, needed)

    check.__name__ = f"require_{needed}"
    return check


Writer = Annotated[None, Depends(role_dependency("writer"))]
Reader = Annotated[None, Depends(role_dependency("reader"))]


def page_reader(request: Request, project: ProjectName) -> None:
    """Pages: like ``reader``, but a visitor without a session is sent to log in."""
    try:
        user = current_user(request)
    except AuthError:
        raise LoginRequired() from None
    request.state.project = project
    request.state.role = server_of(request).require(user, project, "reader")
    request.state.page_base = f"/p/{project}"


def require_server_admin(user: UserDep) -> User:
    if not user.is_admin:
        raise Forbidden("server admin role needed")
    return user


@contextmanager
def project_store(request: Request) -> Iterator[Store]:
    with server_of(request).store(request.path_params["project"]) as store:
        yield store


def refuse_nul(request: Request) -> None:
    """Every route: a NUL in the path or query is refused (400) on both backends alike,
    as PostgreSQL text cannot hold one (it would be a database error, a 500)."""
    query = request.query_params.multi_items()
    if "\x00" in request.scope["path"] or any("\x00" in k + v for k, v in query):
        raise RunbaseError("the request's path or query contains a NUL character")
