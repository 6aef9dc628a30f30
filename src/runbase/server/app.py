"""The team server's ASGI app (docs/server.md): the web UI and JSON API of
``runbase ui`` for each project under ``/p/{project}``, plus accounts, push/pull and
team search. Handlers map HTTP onto :class:`runbase.server.service.Server`.

Every route but ``/healthz``, ``/readyz``, ``/login`` and static files needs a
credential: an API token (``Authorization: Bearer``) or the UI's session cookie, whose
unsafe requests also need the session's CSRF token (``X-CSRF-Token``). Project routes
need a role in that project: reader to read, writer to push, admin to manage members.
"""

from __future__ import annotations

from runbase.web import require_ui

require_ui("fastapi")

import contextlib  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import urllib.parse  # noqa: E402
from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402
from contextlib import asynccontextmanager, contextmanager  # noqa: E402
from typing import Annotated, Any  # noqa: E402

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request  # noqa: E402
from fastapi.encoders import jsonable_encoder  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import RedirectResponse, Response, StreamingResponse  # noqa: E402
from pydantic import AfterValidator, BaseModel, Field  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from runbase import __version__  # noqa: E402
from runbase.core.shapes import loads  # noqa: E402
from runbase.errors import (  # noqa: E402
    AuthError,
    BundleError,
    Conflict,
    CorruptObject,
    Forbidden,
    LoginRequired,
    ObjectIdMismatch,
    RunbaseError,
    TooLarge,
)
from runbase.server import control  # noqa: E402
from runbase.server.control import User  # noqa: E402
from runbase.server.logs import AccessLog  # noqa: E402
from runbase.server.service import MAX_OBJECT_BYTES, MissingObjects, Server, ServerConfig  # noqa: E402
from runbase.store import Store  # noqa: E402
from runbase.web import pages  # noqa: E402
from runbase.web.api import json_response  # noqa: E402
from runbase.web.api import router as api_router  # noqa: E402
from runbase.web.app import PLOTLY_PATH, error_handlers, plotly_js  # noqa: E402

SESSION_COOKIE = pages.SESSION_COOKIE
CSRF_COOKIE = pages.CSRF_COOKIE
PROJECT_PATH = control.PROJECT_NAME_RE.pattern
USER_PATH = control.NAME_RE.pattern
OID_PATH = r"^blake3:[0-9a-f]{64}$"
RUN_ID_PATH = r"^[0-9a-hjkmnp-tv-z]{16}$"
MAX_BUNDLE = 512 << 20  # a run bundle's JSON (metrics of a huge run stay well below)

ProjectName = Annotated[str, Path(pattern=PROJECT_PATH, max_length=59, description="Project name")]
Oid = Annotated[str, Path(pattern=OID_PATH, description="Object id, `blake3:<64 hex>`")]
RunId = Annotated[str, Path(pattern=RUN_ID_PATH, description="Run id (16 characters)")]
RunRef = Annotated[str, Path(max_length=1000, description="Run id, prefix, name or `latest`")]


# -- dependencies -------------------------------------------------------------------------


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


# -- request bodies -----------------------------------------------------------------------


def _db_text(value: str) -> str:
    """Text a database can store: no NUL (PostgreSQL), no lone surrogate (UTF-8)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (lone surrogate)") from None
    return value


DbText = Annotated[str, AfterValidator(_db_text)]


class OidList(BaseModel):
    oids: list[Annotated[str, Field(pattern=OID_PATH)]] = Field(max_length=100_000)


class NewUser(BaseModel):
    name: str = Field(pattern=USER_PATH)
    role: str = Field(default="user", pattern="^(user|admin)$")
    # as `runbase server users add`: a writer of the default project unless told otherwise
    projects: list[Annotated[str, Field(pattern=PROJECT_PATH)]] = Field(
        default=[control.DEFAULT_PROJECT], max_length=100
    )
    project_role: str = Field(default="writer", pattern="^(reader|writer|admin)$")


class NewProject(BaseModel):
    name: str = Field(pattern=PROJECT_PATH)


class MemberRole(BaseModel):
    role: str = Field(pattern="^(reader|writer|admin)$")


class NewToken(BaseModel):
    label: DbText = Field(default="", max_length=200)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class NoteBody(BaseModel):
    text: DbText = Field(min_length=1, max_length=20_000)


# -- the server's own API -----------------------------------------------------------------

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


# -- a project's push/pull API (beside the read API of runbase ui) ------------------------

project_api = APIRouter(prefix="/p/{project}/api")
Writer = Annotated[None, Depends(role_dependency("writer"))]
Reader = Annotated[None, Depends(role_dependency("reader"))]


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
    try:
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
                if writer.size > MAX_OBJECT_BYTES:
                    raise TooLarge(f"an object is at most {MAX_OBJECT_BYTES} bytes")
    except BaseException as e:
        await run_in_threadpool(writer.__exit__, type(e), e, None)
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)  # ObjectIdMismatch: 422
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


# -- login, logout and the projects page --------------------------------------------------

ui = APIRouter(include_in_schema=False)


def _page(title: str, body: str, user: str | None = None, csrf: str | None = None) -> Response:
    account = pages.account_html("", user, csrf)
    return Response(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - runbase</title><link rel="stylesheet" href="/static/app.css">
<link rel="icon" href="data:,"></head><body>
<header class="top"><a class="brand" href="/">runbase</a>
<span class="page-title">{html.escape(title)}</span>{account}</header>
<main id="main">{body}</main></body></html>""",
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def _login_form(error: str = "", next_url: str = "/") -> Response:
    err = f'<div class="error">{html.escape(error)}</div>' if error else ""
    return _page(
        "Log in",
        f"""{err}<form method="post" action="/login" class="login">
<p>Paste an API token (from <code>runbase server users add</code> or an admin).</p>
<input type="hidden" name="next" value="{html.escape(next_url)}">
<input type="password" name="token" id="token" autocomplete="off" placeholder="rbt_…" required>
<button type="submit" id="login">Log in</button></form>""",
    )


def _safe_next(url: str) -> str:
    """Only a local path: never an open redirect to another site (browsers drop tabs
    and newlines: ``/<TAB>/evil.example`` would be ``//evil.example``)."""
    local = url.startswith("/") and not url.startswith("//") and "\\" not in url
    return url if local and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url) else "/"


@ui.get("/login")
def login_page(next: str = "/") -> Response:
    return _login_form(next_url=_safe_next(next))


@ui.post("/login")
async def login(request: Request) -> Response:
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    next_url = _safe_next((form.get("next") or ["/"])[0])
    server = server_of(request)
    try:
        user, token_id = await run_in_threadpool(control.token_login, server.control, token)
    except AuthError:
        return Response(
            _login_form("That token is not valid.", next_url).body,
            status_code=401,
            media_type="text/html",
        )
    secret, csrf = await run_in_threadpool(
        control.create_session, server.control, user, server.config.session_ttl, token_id
    )
    request.state.user = user.name
    resp = RedirectResponse(next_url, status_code=303)
    secure = server.config.secure_cookies
    resp.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(server.config.session_ttl),
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    # readable by the page's script, which echoes it in X-CSRF-Token (double submit,
    # checked against the copy kept with the session)
    resp.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=int(server.config.session_ttl),
        samesite="strict",
        secure=secure,
    )
    return resp


@ui.post("/logout")
async def logout(request: Request) -> Response:
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    csrf = request.headers.get("x-csrf-token") or (form.get("csrf") or [""])[0]
    cookie = request.cookies.get(SESSION_COOKIE)
    server = server_of(request)
    if cookie:  # a forged cross-site logout is refused like any unsafe request
        with contextlib.suppress(AuthError):
            await run_in_threadpool(server.authenticate, None, cookie, "POST", csrf)
            await run_in_threadpool(control.end_session, server.control, cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    resp.delete_cookie(CSRF_COOKIE)
    return resp


@ui.get("/")
def projects_page(request: Request, server: ServerDep) -> Response:
    try:
        user = current_user(request)
    except AuthError:
        return RedirectResponse("/login", status_code=303)
    items = "".join(
        f'<li><a href="/p/{html.escape(p["name"])}/">{html.escape(p["name"])}</a> '
        f'<span class="muted">{html.escape(p["role"])}</span></li>'
        for p in control.readable_projects(server.control, user)
    )
    return _page(
        "Projects",
        f"""<p>Signed in as <b id="user">{html.escape(user.name)}</b>.</p>
<ul id="projects">{items or "<li>No projects yet: ask an admin to add you.</li>"}</ul>
{_search_form("", "")}""",
        user.name,
        request.cookies.get(CSRF_COOKIE),
    )


def _search_form(where: str, data: str) -> str:
    return f"""<form method="get" action="/search" class="filter search" id="search-form">
<input name="where" id="search-where" type="search" value="{html.escape(where)}"
  placeholder="params.lr &lt; 0.1 and user == 'alice'" spellcheck="false">
<input name="data" id="search-data" type="search" value="{html.escape(data)}"
  placeholder="data hash: blake3:…" spellcheck="false">
<button type="submit">Search all projects</button></form>"""


_SEARCH_COLUMNS = ("project", "run", "status", "user", "started", "data")


@ui.get("/search")
def search_page(
    request: Request,
    server: ServerDep,
    where: Annotated[str, Query(max_length=10_000)] = "",
    data: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Team search, as a page: runs of every project the user can read, by filter
    and/or exact data hash (``GET /api/v1/search`` as HTML)."""
    try:
        user = current_user(request)
    except AuthError:
        return RedirectResponse("/login?next=/search", status_code=303)
    body = _search_form(where, data)
    if where.strip() or data.strip():
        try:
            found = server.search(user, where.strip() or None, data.strip() or None, 200)
            body += _search_table(found)
        except RunbaseError as e:
            body += f'<div class="error" id="search-error">{html.escape(str(e))}</div>'
    return _page("Search", body, user.name, request.cookies.get(CSRF_COOKIE))


def _search_table(found: dict[str, Any]) -> str:
    rows = []
    for r in found["runs"]:
        p, rid = html.escape(r["project"]), html.escape(r["id"])
        cells = [
            p,
            f'<a href="/p/{p}/runs/{rid}">{html.escape(r.get("name") or rid)}</a>',
            html.escape(str(r.get("status") or "")),
            html.escape(str(r.get("user") or "")),
            html.escape(str(r.get("started_at") or "")[:19]),
            html.escape(str(r.get("data_role") or "")),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{c}</th>" for c in _SEARCH_COLUMNS)
    return (
        f'<p class="muted" id="search-count">{found["total"]} run(s)</p>'
        f'<div class="table-wrap"><table class="runs" id="search-results"><thead><tr>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


# -- health -------------------------------------------------------------------------------

meta = APIRouter(tags=["meta"])


@meta.get("/healthz", summary="Liveness")
def healthz() -> Response:
    return json_response({"ok": True, "version": __version__})


@meta.get("/readyz", summary="Readiness: the database and the object store answer")
def readyz(server: ServerDep) -> Response:
    try:
        return json_response(server.ready())
    except Exception as e:  # any backend failure means "not ready", never a 500
        return json_response({"ok": False, "detail": type(e).__name__}, status_code=503)


# -- the app ------------------------------------------------------------------------------


def create_server_app(config: ServerConfig, server: Server | None = None) -> FastAPI:
    """The team server over ``config`` (fails now, with a clear message, on a database
    that is unreachable or not migrated)."""
    srv = server or Server(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        srv.close()

    app = FastAPI(
        title="runbase server",
        version=__version__,
        description="The runbase team server (docs/server.md).",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.server = srv
    app.state.borrow_store = project_store
    error_handlers(app)
    _server_errors(app, srv)
    app.include_router(meta)
    app.include_router(v1)
    app.include_router(project_api)
    app.include_router(
        api_router, prefix="/p/{project}/api", dependencies=[Depends(role_dependency("reader"))]
    )
    app.include_router(ui)
    app.include_router(pages.router, prefix="/p/{project}", dependencies=[Depends(page_reader)])
    app.add_api_route(PLOTLY_PATH, plotly_js, methods=["GET"], include_in_schema=False)
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    from starlette.middleware.gzip import GZipMiddleware

    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.add_middleware(BodyLimit)
    app.add_middleware(AccessLog)
    return app


MAX_SMALL_BODY = 1 << 20  # any other JSON body (notes, members, object id lists)
MAX_ANONYMOUS_BODY = 64 << 10  # a request without a credential (the login form)


def _body_limit(method: str, path: str, headers: dict[bytes, bytes]) -> int:
    if b"authorization" not in headers and SESSION_COOKIE.encode() not in headers.get(
        b"cookie", b""
    ):
        return MAX_ANONYMOUS_BODY  # refused anyway: read no more than a login form
    if method == "PUT" and "/objects/" in path:
        return MAX_OBJECT_BYTES
    if path.endswith(("/bundle", "/live")):
        return MAX_BUNDLE
    return MAX_SMALL_BODY


class BodyLimit:
    """Refuse request bodies over their limit before they are read whole (_body_limit:
    objects, streamed to the store, up to MAX_OBJECT_BYTES; run bundles MAX_BUNDLE;
    anything else 1 MiB; without a credential 64 KiB)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = _body_limit(scope.get("method", ""), scope.get("path", ""), headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await json_response({"detail": f"request body over {limit} bytes"}, 413)(
                scope, receive, send
            )
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, counted, send)


def _server_errors(app: FastAPI, server: Server) -> None:
    def detail(status: int, headers: dict[str, str] | None = None) -> Any:
        def handle(request: Request, exc: Exception) -> Response:
            return json_response({"detail": str(exc)}, status_code=status, headers=headers)

        return handle

    def missing(request: Request, exc: Exception) -> Response:
        oids = exc.oids if isinstance(exc, MissingObjects) else []
        return json_response({"detail": str(exc), "missing": oids}, status_code=409)

    def login(request: Request, exc: Exception) -> Response:
        return RedirectResponse(
            "/login?" + urllib.parse.urlencode({"next": request.url.path}), status_code=303
        )

    def unavailable(request: Request, exc: Exception) -> Response:
        # the database went away (restart, failover): clients retry; a new connection
        # is made on the next request
        logging.getLogger("runbase.server").warning("database error: %s", type(exc).__name__)
        return json_response(
            {"detail": "the database is unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    def invalid(request: Request, exc: Exception) -> Response:
        # FastAPI's own handler echoes the input as UTF-8 and fails (a 500) on a lone
        # surrogate (JSON "\\ud800"): ASCII-escaped JSON holds any input
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        body = json.dumps({"detail": jsonable_encoder(errors)}, default=str)
        return Response(body, status_code=422, media_type="application/json")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(AuthError, detail(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(Forbidden, detail(403))
    app.add_exception_handler(Conflict, detail(409))
    app.add_exception_handler(control.NotFoundError, detail(404))
    app.add_exception_handler(TooLarge, detail(413))
    app.add_exception_handler(MissingObjects, missing)
    app.add_exception_handler(BundleError, detail(422))
    app.add_exception_handler(ObjectIdMismatch, detail(422))
    # the server's own copy is damaged: its fault, said plainly (and not retried)
    app.add_exception_handler(CorruptObject, detail(500))
    app.add_exception_handler(LoginRequired, login)
    for exc_type in _connection_errors(server):
        app.add_exception_handler(exc_type, unavailable)


def _connection_errors(server: Server) -> list[type[Exception]]:
    """The driver's "database went away" errors (not constraint or syntax errors)."""
    if server.control.dialect == "postgresql":
        import psycopg

        return [psycopg.OperationalError, psycopg.InterfaceError]
    import sqlite3

    return [sqlite3.OperationalError]


def app_from_env() -> FastAPI:
    """uvicorn factory for ``runbase server --workers N`` (config in the environment)."""
    return create_server_app(ServerConfig.from_env())


__all__ = ["create_server_app", "app_from_env", "ServerConfig"]
