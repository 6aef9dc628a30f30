"""The MLflow REST API of a project, a sub-app the team server mounts at
``/p/{project}/mlflow`` (docs/mlflow.md): so ``MLFLOW_TRACKING_URI`` set to that URL
and ``MLFLOW_TRACKING_TOKEN`` to a runbase token is all an MLflow script needs.

It holds the tracking routes (server.mlflow_routes), the artifact routes
(server.mlflow_artifacts) and the model registry's (server.mlflow_registry), and
answers every error in MLflow's shape, ``{"error_code": ..., "message": ...}``, with
the status the MLflow client acts on (server.mlflow_base.error_code): the client tells
"no such experiment" (404 RESOURCE_DOES_NOT_EXIST) from a failure by it.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from runbase.core.version import __version__
from runbase.errors import RunbaseError
from runbase.server import mlflow_artifacts, mlflow_registry, mlflow_routes
from runbase.server.auth import project_store, refuse_nul
from runbase.server.mlflow_base import (
    ENDPOINT_NOT_FOUND,
    INVALID_PARAMETER_VALUE,
    error_code,
    error_response,
)
from runbase.server.service import Server

PATH = "/p/{project}/mlflow"

log = logging.getLogger("runbase.server")


def _runbase_error(request: Request, exc: Exception) -> Response:
    status, code = error_code(exc)
    if status >= 500:
        log.warning("MLflow API %s: %s", request.url.path, exc)
    return error_response(status, code, str(exc))


def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    if status in (404, 405):
        what = "no such endpoint" if status == 404 else "method not allowed"
        return error_response(status, ENDPOINT_NOT_FOUND, f"{what}: {request.method} {request.url.path}")
    return error_response(status, INVALID_PARAMETER_VALUE, str(getattr(exc, "detail", exc)))


def _invalid(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    where = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:5]
    )
    return error_response(400, INVALID_PARAMETER_VALUE, f"invalid request: {where}"[:2000])


def _internal(request: Request, exc: Exception) -> Response:
    # a bug, not the caller's fault: logged here, a generic message there
    log.exception("MLflow API %s failed", request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal error; the server's log has the details")


def mlflow_app(server: Server) -> FastAPI:
    """The sub-app serving one server's projects' MLflow API (the project is the
    mount's path parameter)."""
    app = FastAPI(
        title="runbase MLflow API",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.server = server
    app.state.borrow_store = project_store
    app.add_exception_handler(RunbaseError, _runbase_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _internal)
    app.include_router(mlflow_routes.router)
    app.include_router(mlflow_artifacts.router)
    app.include_router(mlflow_registry.router)
    return app
