"""The server's answers beyond the one error mapping (:mod:`runbase.web.errors`):
objects a push lacks, the login redirect of pages, a database that went away, and
request validation errors that echo any input safely."""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.parse

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response

from runbase.errors import LoginRequired, MissingObjects
from runbase.server.service import Server
from runbase.web.api import json_response
from runbase.web.errors import error_handlers


def _missing(request: Request, exc: Exception) -> Response:
    oids = exc.oids if isinstance(exc, MissingObjects) else []
    return json_response({"detail": str(exc), "missing": oids}, status_code=409)


def _login(request: Request, exc: Exception) -> Response:
    return RedirectResponse(
        "/login?" + urllib.parse.urlencode({"next": request.url.path}), status_code=303
    )


def _unavailable(request: Request, exc: Exception) -> Response:
    # the database went away (restart, failover): clients retry; a new connection
    # is made on the next request
    logging.getLogger("runbase.server").warning("database error: %s", type(exc).__name__)
    return json_response(
        {"detail": "the database is unavailable; retry"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _invalid(request: Request, exc: Exception) -> Response:
    # FastAPI's own handler echoes the input as UTF-8 and fails (a 500) on a lone
    # surrogate (JSON "\\ud800"): ASCII-escaped JSON holds any input
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body = json.dumps({"detail": jsonable_encoder(errors)}, default=str)
    return Response(body, status_code=422, media_type="application/json")


def server_error_handlers(app: FastAPI, server: Server) -> None:
    error_handlers(app)  # every runbase error: its class's status
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(MissingObjects, _missing)
    app.add_exception_handler(LoginRequired, _login)
    for exc_type in _connection_errors(server):
        app.add_exception_handler(exc_type, _unavailable)


def _connection_errors(server: Server) -> list[type[Exception]]:
    """The driver's "database went away" errors (not constraint or syntax errors)."""
    if server.control.dialect == "postgresql":
        import psycopg  # lazy: optional (the server's PostgreSQL extra), only with a PG database

        return [psycopg.OperationalError, psycopg.InterfaceError]
    return [sqlite3.OperationalError]
