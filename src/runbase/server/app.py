"""The team server's ASGI app (docs/server.md): the web UI and JSON API of
``runbase ui`` for each project under ``/p/{project}``, plus accounts, push/pull and
team search. Handlers map HTTP onto :class:`runbase.server.service.Server`; they live
by resource: :mod:`~runbase.server.auth` (credentials and roles),
:mod:`~runbase.server.models` (request bodies), :mod:`~runbase.server.routes_accounts`
(``/api/v1``), :mod:`~runbase.server.routes_push` (push/pull),
:mod:`~runbase.server.routes_pages` (login and search pages, from Jinja2 templates),
:mod:`~runbase.server.routes_meta` (health), :mod:`~runbase.server.middleware` (body
limits) and :mod:`~runbase.server.errors` (error answers).
"""

from __future__ import annotations

from runbase.web import require_ui

require_ui("fastapi", "jinja2")

from collections.abc import AsyncIterator  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

from runbase.core.version import __version__  # noqa: E402
from runbase.errors import Forbidden  # noqa: E402
from runbase.records.registry import Actor  # noqa: E402
from runbase.server.auth import (  # noqa: E402
    CSRF_COOKIE,
    SESSION_COOKIE,
    page_reader,
    project_store,
    refuse_nul,
    role_dependency,
)
from runbase.server.errors import server_error_handlers  # noqa: E402
from runbase.server.logs import AccessLog  # noqa: E402
from runbase.server.middleware import body_limit  # noqa: E402
from runbase.server.mlflow_app import mlflow_app  # noqa: E402
from runbase.server.routes_accounts import v1  # noqa: E402
from runbase.server.routes_meta import meta  # noqa: E402
from runbase.server.routes_pages import ui  # noqa: E402
from runbase.server.routes_push import project_api  # noqa: E402
from runbase.server.service import Server, ServerConfig  # noqa: E402
from runbase.web import pages  # noqa: E402
from runbase.web.api import router as api_router  # noqa: E402
from runbase.web.app import PLOTLY_PATH, add_gzip, plotly_js  # noqa: E402
from runbase.web.limits import BodyLimit  # noqa: E402
from runbase.web.routes import read_routers, write_routers  # noqa: E402


def create_server_app(config: ServerConfig, server: Server | None = None) -> FastAPI:
    """The team server over ``config`` (fails now, with a clear message, on a database
    that is unreachable or not migrated)."""
    srv = server or Server(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        srv.deliverer.start()  # this process's webhook delivery thread (server.hooks)
        yield
        srv.close()  # stops it first

    app = FastAPI(
        title="runbase server",
        version=__version__,
        description="The runbase team server (docs/server.md).",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.server = srv
    app.state.borrow_store = project_store
    app.state.model_actor = model_actor
    server_error_handlers(app, srv)
    app.include_router(meta)
    app.include_router(v1)
    app.include_router(project_api)
    app.mount("/p/{project}/mlflow", mlflow_app(srv))  # MLflow's REST API (docs/mlflow.md)
    reader = [Depends(role_dependency("reader"))]
    app.include_router(api_router, prefix="/p/{project}/api", dependencies=reader)
    for router in read_routers():
        app.include_router(router, prefix="/p/{project}/api", dependencies=reader)
    writer = [Depends(role_dependency("writer"))]  # a session cookie also needs its CSRF token
    for router in write_routers():
        app.include_router(router, prefix="/p/{project}/api", dependencies=writer)
    app.include_router(ui)
    app.include_router(pages.router, prefix="/p/{project}", dependencies=[Depends(page_reader)])
    app.add_api_route(PLOTLY_PATH, plotly_js, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    add_gzip(app)
    app.add_middleware(BodyLimit, limit_of=body_limit)
    app.add_middleware(AccessLog)
    return app


def model_actor(request: Request) -> Actor:
    """The registry's actor for a project request (the model API's writes): the caller,
    their role in the project and its protected stages and webhooks, from what the
    route's role dependency found (server.auth)."""
    server: Server = request.app.state.server
    user = getattr(request.state, "user", None)
    project = getattr(request.state, "project", None)
    role = getattr(request.state, "role", None)
    if not isinstance(user, str) or not isinstance(project, str) or not isinstance(role, str):
        raise Forbidden("this route does not say who is calling in which project")
    return server.model_actor(user, project, role)


def app_from_env() -> FastAPI:
    """uvicorn factory for ``runbase server --workers N`` (config in the environment)."""
    return create_server_app(ServerConfig.from_env())


__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "ServerConfig",
    "app_from_env",
    "create_server_app",
    "ui",
]
