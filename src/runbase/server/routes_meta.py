"""Liveness and readiness, for load balancers and orchestrators (no credential)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from runbase.core.version import __version__
from runbase.server.auth import ServerDep
from runbase.web.api import json_response

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
