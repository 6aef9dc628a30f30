"""Runbase errors as HTTP answers: one handler for the local UI (``runbase ui``) and
the team server alike, the status taken from the error's class
(:func:`runbase.errors.http_status`), the message as ``{"detail": ...}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from runbase.errors import AuthError, RunbaseError, http_status
from runbase.web.api import json_response

# a 401 names the scheme that would be accepted (RFC 9110); the local UI raises none
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def error_response(request: Request, exc: Exception) -> Response:
    """``{"detail": message}`` with the status of ``exc``'s class."""
    headers = _CHALLENGE if isinstance(exc, AuthError) else None
    return json_response({"detail": str(exc)}, status_code=http_status(exc), headers=headers)


def error_handlers(app: FastAPI) -> None:
    """Answer every runbase error by :func:`error_response` (a more specific handler an
    app adds for a subclass wins: Starlette looks along the exception's MRO)."""
    app.add_exception_handler(RunbaseError, error_response)
