"""The ASGI app of ``runbase ui``: the JSON API under ``/api`` (docs/api.md), the HTML
pages (``runbase.web.pages``, when present) and their static files.

    from runbase.web.app import create_app
    app = create_app(".runbase")                         # a FastAPI app
    app = create_app(".runbase", auth=check_token)       # a dependency on every route

The store is reached only through ``store.db`` and ``store.objects``: a team server
passes ``open_store`` to serve a store that is not local files.
"""

from __future__ import annotations

from runbase.web import INSTALL_HINT, require_ui

require_ui("fastapi")

import gzip  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import ipaddress  # noqa: E402
import threading  # noqa: E402
from collections.abc import AsyncIterator, Callable, Iterable  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from importlib.resources import files  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from starlette.middleware.gzip import (  # noqa: E402
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    GZipMiddleware,
)

from runbase.core.version import __version__  # noqa: E402
from runbase.store import Store, locate  # noqa: E402
from runbase.store.pool import StorePool  # noqa: E402
from runbase.web.api import get_store, json_response  # noqa: E402
from runbase.web.api import router as api_router  # noqa: E402
from runbase.web.errors import error_handlers  # noqa: E402
from runbase.web.limits import BodyLimit  # noqa: E402
from runbase.web.origin import SameOriginWrites  # noqa: E402
from runbase.web.routes import read_routers, write_routers  # noqa: E402

__all__ = ["create_app", "error_handlers", "get_store", "json_response"]

PLOTLY_PATH = "/static/vendor/plotly.min.js"


def create_app(
    store_root: str | None = None,
    *,
    auth: Callable[..., Any] | None = None,
    open_store: Callable[[], Store] | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """The app over the store at ``store_root`` (found like the CLI finds it when None).

    ``auth``: a FastAPI dependency run before every ``/api`` route and page (raise
    ``HTTPException(401)`` to refuse). ``open_store``: how to open a store (default:
    ``Store.open(store_root)``); called once per concurrent request, each store lent to
    one request at a time. The store is opened once here, so a missing store fails now
    (``StoreError``), not on the first request. ``allowed_hosts``: check the ``Host``
    header of every request (:class:`HostCheck`, against DNS rebinding): IP addresses,
    ``localhost`` and these names are served, any other name gets 403; None: no check
    (behind an authenticating server, or in tests). Every write (POST, PUT, PATCH,
    DELETE) must come from the app's own origin with a JSON body
    (:class:`runbase.web.origin.SameOriginWrites`, against cross-site requests).
    """
    if open_store is None:
        root = locate(store_root)

        def open_store() -> Store:
            return Store.open(root)

    pool = StorePool(open_store)
    with pool.borrow():
        pass

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="runbase",
        version=__version__,
        description="Runs, metrics, code and data lineage of a runbase store (docs/api.md).",
        lifespan=lifespan,
    )
    app.state.store_pool = pool
    error_handlers(app)
    deps = [Depends(auth)] if auth is not None else []
    app.include_router(api_router, prefix="/api", dependencies=deps)
    for router in (*read_routers(), *write_routers()):  # local: one user, no roles
        app.include_router(router, prefix="/api", dependencies=deps)
    app.add_api_route(PLOTLY_PATH, plotly_js, methods=["GET"], include_in_schema=False)
    _include_pages(app, deps)
    add_gzip(app)
    app.add_middleware(BodyLimit)  # its only bodies are saved views: refused past their size
    # no login: a write another site's page makes the browser send is refused, before
    # its body is read (the one check for every write route, present and future)
    app.add_middleware(SameOriginWrites)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)  # outermost: before anything
    return app


class HostCheck:
    """Serve only requests whose ``Host`` header names this machine, as Jupyter does.

    ``runbase ui`` has no login: it trusts whoever can reach its port. A web page on
    any site could otherwise reach it through DNS rebinding (the page's own name made
    to resolve to 127.0.0.1), and read runs, code and logs as a same-origin page. Such a
    request always carries the attacker's *name* in ``Host``; so an IP address (any:
    127.0.0.1, [::1], the machine's address), ``localhost`` and the names in
    ``allowed`` (``runbase ui --allowed-host``; ``*``: any) are served, others get 403.
    """

    def __init__(self, app: Any, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {_host_name(h) for h in allowed} | {"localhost"}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = dict(scope.get("headers") or []).get(b"host")
            host = raw.decode("latin-1") if raw is not None else None
            if host is not None and not self.allows(host):
                response = json_response(
                    {
                        "detail": f"runbase ui does not serve the host name {host!r} "
                        "(a protection against DNS rebinding); open it as 127.0.0.1 or "
                        "localhost, or start it with --allowed-host NAME"
                    },
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allows(self, host_header: str) -> bool:
        name = _host_name(host_header)
        if "*" in self.allowed or name in self.allowed:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


# Object bytes (application/octet-stream: stored files, MLflow artifacts, pulls) are sent
# as they are: data is often compressed already, and gzip at level 6 made a 32 MiB
# object 10x slower to fetch (0.1 s plain, 1.6-2.3 s gzipped; benchmarks/README.md)
GZIP_EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream")


def add_gzip(app: FastAPI) -> None:
    """gzip for JSON, HTML and text answers of the UI and the team server."""
    app.add_middleware(
        GZipMiddleware, minimum_size=1024, compresslevel=6, exclude_content_types=GZIP_EXCLUDED
    )


def _host_name(host: str) -> str:
    """``Host`` header -> its name or address, without the port, ``[]``, trailing dot
    or case: ``[::1]:8765`` -> ``::1``, ``LocalHost.:80`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal, maybe with a port
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _include_pages(app: FastAPI, deps: list[Any]) -> None:
    """The HTML pages and their static files, when this install has them."""
    if importlib.util.find_spec("runbase.web.pages") is None:
        return
    from runbase.web import pages  # lazy: optional in an install (find_spec above)

    app.include_router(pages.router, dependencies=deps)
    static = getattr(pages, "STATIC_DIR", None)
    if static is not None and Path(static).is_dir():
        from fastapi.staticfiles import StaticFiles  # lazy: only with the pages' files

        app.mount("/static", StaticFiles(directory=static), name="static")


_plotly: dict[str, Any] = {}
_plotly_lock = threading.Lock()


def _plotly_bytes() -> dict[str, Any] | None:
    """plotly.min.js of the installed plotly package: raw, gzipped, its ETag."""
    with _plotly_lock:
        if not _plotly:
            try:
                raw = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
            except (ImportError, OSError):
                return None
            _plotly["raw"] = raw
            _plotly["gz"] = gzip.compress(raw, compresslevel=6)
            _plotly["etag"] = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        return _plotly


def plotly_js(request: Request) -> Response:
    """GET /static/vendor/plotly.min.js: the browser bundle shipped with plotly."""
    js = _plotly_bytes()
    if js is None:
        return json_response(
            {"detail": f"plotly is not installed: {INSTALL_HINT}"}, status_code=404
        )
    headers = {
        "ETag": js["etag"],
        "Cache-Control": "public, max-age=86400",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == js["etag"]:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(js["gz"], media_type="application/javascript", headers=headers)
    return Response(js["raw"], media_type="application/javascript", headers=headers)
