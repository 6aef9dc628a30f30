"""The server's own pages: log in, log out, the projects page and team search. Their
HTML comes from Jinja2 templates (``server/templates/``, autoescaped), which extend the
UI's ``base.html`` (``web/templates/``: one head, header and account links); a project's
pages are ``runbase ui``'s (:mod:`runbase.web.pages`) under ``/p/{project}``."""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from runbase.errors import AuthError, RunbaseError
from runbase.server import control
from runbase.server.auth import CSRF_COOKIE, SESSION_COOKIE, ServerDep, current_user, server_of
from runbase.web import pages

ui = APIRouter(include_in_schema=False)

_templates = pages.template_environment("runbase.server")
_SEARCH_COLUMNS = ("project", "run", "status", "user", "started", "data")


def _page(
    template: str,
    title: str,
    account_user: str | None = None,
    csrf: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    context.setdefault("user", account_user)  # the header's account links (none: logged out)
    body = _templates.get_template(template).render(
        title=title, root="", base="", csrf=csrf, **context
    )
    return Response(
        body,
        status_code=status_code,
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def _login_form(error: str = "", next_url: str = "/", status_code: int = 200) -> Response:
    return _page("login.html", "Log in", error=error, next_url=next_url, status_code=status_code)


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
        return _login_form("That token is not valid.", next_url, status_code=401)
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
    projects = control.readable_projects(server.control, user)
    return _page(
        "projects.html",
        "Projects",
        user.name,
        request.cookies.get(CSRF_COOKIE),
        user=user.name,
        projects=projects,
    )


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
    found: dict[str, Any] | None = None
    error: str | None = None
    if where.strip() or data.strip():
        try:
            found = server.search(user, where.strip() or None, data.strip() or None, 200)
        except RunbaseError as e:
            error = str(e)
    return _page(
        "search.html",
        "Search",
        user.name,
        request.cookies.get(CSRF_COOKIE),
        where=where,
        data=data,
        found=found,
        error=error,
        columns=_SEARCH_COLUMNS,
    )
