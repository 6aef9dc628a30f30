"""What every route of the MLflow REST API (``/p/{project}/mlflow``, docs/mlflow.md)
shares: errors in MLflow's shape (``{"error_code", "message"}`` with the status the
MLflow client expects), the caller and their role in the project (an
``Authorization: Bearer`` runbase token, as ``MLFLOW_TRACKING_TOKEN`` sends it; reads
need reader, writes writer), and request bodies: MLflow's JSON for POSTs, query
parameters for GETs.

The tracking routes (server.mlflow_routes) and the artifact and registry routes
(server.mlflow_artifacts, server.mlflow_registry) import from here; server.mlflow_app
mounts them all under one sub-app with the error handlers below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from runbase.core.shapes import I64, loads
from runbase.errors import (
    AuthError,
    Conflict,
    Forbidden,
    NotFound,
    RunbaseError,
    TooLarge,
    http_status,
)
from runbase.server import control
from runbase.server.auth import current_user, server_of
from runbase.server.control import User
from runbase.server.service import Server
from runbase.web.api import json_response

MAX_JSON_DEPTH = 32  # MLflow's requests nest 4 levels at most

# MLflow's error codes (databricks.proto's ErrorCode names) and their HTTP statuses
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"


class MlflowError(RunbaseError):
    """An error answered with MLflow's ``error_code`` (and HTTP status) given here,
    where a runbase error class alone would not say which MLflow code fits."""

    def __init__(
        self, message: str, error_code: str = INVALID_PARAMETER_VALUE, status: int = 400
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.http_status = status


def error_code(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and MLflow error code that answer ``exc``."""
    if isinstance(exc, MlflowError):
        return exc.http_status, exc.error_code
    if isinstance(exc, NotFound):
        return 404, RESOURCE_DOES_NOT_EXIST
    if isinstance(exc, AuthError):
        return 401, "UNAUTHENTICATED"
    if isinstance(exc, Forbidden):
        return 403, "PERMISSION_DENIED"
    if isinstance(exc, Conflict):
        return 400, RESOURCE_ALREADY_EXISTS
    if isinstance(exc, TooLarge):
        return 413, "REQUEST_LIMIT_EXCEEDED"
    status = http_status(exc)
    if status == 503:
        return 503, "TEMPORARILY_UNAVAILABLE"
    if status >= 500:
        return 500, "INTERNAL_ERROR"
    return 400, INVALID_PARAMETER_VALUE  # the caller sent something runbase cannot use


def error_response(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response({"error_code": code, "message": message}, status, headers)


# -- who is calling ------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The account calling, the project of the path and their role in it."""

    user: User
    project: str
    role: str
    server: Server

    @property
    def name(self) -> str:
        return self.user.name


def _caller(request: Request, needed: str) -> Caller:
    project = request.path_params.get("project")
    if not isinstance(project, str) or not control.PROJECT_NAME_RE.fullmatch(project):
        raise NotFound("no such project")
    user = current_user(request)
    server = server_of(request)
    role = server.require(user, project, needed)
    request.state.project = project
    request.state.role = role
    return Caller(user, project, role, server)


def mlflow_reader(request: Request) -> Caller:
    """Dependency of a route that reads: the caller, with at least the reader role."""
    return _caller(request, "reader")


def mlflow_writer(request: Request) -> Caller:
    """Dependency of a route that writes: the caller, with at least the writer role."""
    return _caller(request, "writer")


ReaderCaller = Annotated[Caller, Depends(mlflow_reader)]
WriterCaller = Annotated[Caller, Depends(mlflow_writer)]


# -- request bodies -----------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    """A POST's JSON object (an empty body is ``{}``, as the MLflow client sends for
    requests without fields)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = loads(raw, max_depth=MAX_JSON_DEPTH)
    except ValueError as e:
        raise MlflowError(f"the request body is not JSON: {e}", "MALFORMED_REQUEST") from None
    if not isinstance(body, dict):
        raise MlflowError("the request body must be a JSON object", "MALFORMED_REQUEST")
    return body


def query_body(request: Request) -> dict[str, Any]:
    """A GET's query parameters as a request: a parameter given once is a string, one
    repeated (``run_ids=a&run_ids=b``) a list of strings."""
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


# -- the fields of a request ---------------------------------------------------------------
# MLflow's client sends proto3 JSON: a field at its default (0, "", false) is left out,
# and a 64-bit integer may come as a number or as a decimal string.

def field_text(
    body: dict[str, Any], key: str, *, limit: int, required: bool = False, default: str = ""
) -> str:
    """A string field (absent: ``default``; ``required``: absent or empty is an error)."""
    value = body.get(key)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise MlflowError(f"{key} must be a string, not {type(value).__name__}")
    if required and not value:
        raise MlflowError(f"missing value for required parameter '{key}'")
    if len(value) > limit:
        raise MlflowError(f"{key} is {len(value)} characters, over the limit of {limit}")
    if "\x00" in value:
        raise MlflowError(f"{key} contains a NUL character")
    return value


def field_int(
    body: dict[str, Any], key: str, *, default: int | None = None, low: int = -I64
) -> int | None:
    """A 64-bit integer field, as a number or a decimal string (absent: ``default``)."""
    value = body.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 21:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MlflowError(f"{key} must be an integer, not {str(value)[:40]!r}")
    if not low <= value < I64:
        raise MlflowError(f"{key} {value} is out of range")
    return value


_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def field_float(body: dict[str, Any], key: str, default: float = 0.0) -> float:
    """A double field: a number, or the strings proto3 JSON uses (``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``) or a decimal number as a string."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        if value in _SPECIAL:
            return _SPECIAL[value]
        try:
            return float(value) if len(value) <= 64 and value.strip() else _bad_float(key, value)
        except ValueError:
            return _bad_float(key, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _bad_float(key, value)
    try:
        return float(value)
    except OverflowError:
        return _bad_float(key, value)


def _bad_float(key: str, value: Any) -> float:
    raise MlflowError(f"{key} must be a number, not {str(value)[:40]!r}")


def field_list(body: dict[str, Any], key: str, *, limit: int) -> list[Any]:
    """A repeated field (a single value, as a GET's one query parameter, is one item)."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    if len(value) > limit:
        raise MlflowError(f"{key} holds at most {limit} items, not {len(value)}")
    return value


def field_objects(body: dict[str, Any], key: str, *, limit: int) -> list[dict[str, Any]]:
    """A repeated message field: a list of JSON objects."""
    items = field_list(body, key, limit=limit)
    if not all(isinstance(i, dict) for i in items):
        raise MlflowError(f"each item of {key} must be a JSON object")
    return items


def field_pairs(
    body: dict[str, Any], key: str, *, limit: int, key_limit: int, value_limit: int
) -> dict[str, str]:
    """A repeated ``{key, value}`` field (tags) as a dict (a later key wins)."""
    out: dict[str, str] = {}
    for item in field_objects(body, key, limit=limit):
        k = field_text(item, "key", limit=key_limit, required=True)
        out[k] = field_text(item, "value", limit=value_limit)
    return out
