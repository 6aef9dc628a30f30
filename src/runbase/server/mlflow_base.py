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

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from runbase.core.ids import is_valid_id
from runbase.core.shapes import I64, loads
from runbase.core.text import text_problem
from runbase.errors import (
    AuthError,
    Conflict,
    Forbidden,
    NotFound,
    RunbaseError,
    RunNotFound,
    TooLarge,
    http_status,
)
from runbase.records import experiments, external
from runbase.records.read import load_row, load_tags
from runbase.server import control
from runbase.server.auth import current_user, server_of
from runbase.server.control import User
from runbase.server.service import Server
from runbase.store import Store
from runbase.web.api import json_response

MAX_JSON_DEPTH = 32  # MLflow's requests nest 4 levels at most
MLFLOW_MODE = "mlflow"  # runbase runs' mode for a run made through the MLflow API
# the one rule of each id, the records' own (a logged model's id as MLflow makes them; an
# experiment id, counted from 0, below 2**63)
MODEL_ID_RE = experiments.MODEL_ID_RE
EXPERIMENT_ID_RE = experiments.EXPERIMENT_ID_RE
MAX_PAGE_OFFSET = 1 << 40
# MLflow's limits (mlflow/utils/validation.py), enforced as its server does
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PAIRS = 100  # tags or params in one request (MLflow's MAX_PARAMS_TAGS_PER_BATCH)

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
# and a 64-bit integer may come as a number or as a decimal string. Every MLflow route
# (tracking, artifacts, logged models, registry) checks its input with these, so each
# kind of value has one rule and one error.

_DECIMAL = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: "²".isdigit() is True


def check_text(value: Any, what: str, *, limit: int, required: bool = False) -> str:
    """Text of at most ``limit`` characters without NUL (None is ""; ``required``: not
    empty)."""
    text = "" if value is None else value
    problem = text_problem(text, limit)
    if problem is not None:
        raise MlflowError(f"{what} {problem}")
    if required and not text:
        raise MlflowError(f"missing value for required parameter '{what}'")
    return str(text)


def decimal(value: Any, what: str, *, low: int = -I64, high: int = I64 - 1) -> int:
    """An integer given as a JSON number or as decimal text (ASCII digits, an optional
    minus), within ``[low, high]``; anything else is a 400, never a crash."""
    if isinstance(value, float) and value.is_integer() and abs(value) < I64:
        value = int(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise MlflowError(f"{what} must be an integer, not {str(value)[:40]!r}")
    if not low <= value <= high:
        raise MlflowError(f"{what} {value} is out of range ({low} to {high})")
    return value


def field_text(
    body: dict[str, Any], key: str, *, limit: int, required: bool = False, default: str = ""
) -> str:
    """A string field (absent: ``default``; ``required``: absent or empty is an error)."""
    value = body.get(key)
    return check_text(default if value is None else value, key, limit=limit, required=required)


def field_int(
    body: dict[str, Any], key: str, *, default: int | None = None, low: int = -I64
) -> int | None:
    """A 64-bit integer field, as a number or a decimal string (absent: ``default``)."""
    value = body.get(key)
    if value is None or value == "":
        return default
    return decimal(value, key, low=low)


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
    return _listed(body.get(key), key, limit=limit)


def _listed(value: Any, what: str, *, limit: int) -> list[Any]:
    """The value of a repeated field ``what`` as a list (absent: empty; one value: one
    item)."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    if len(value) > limit:
        raise MlflowError(f"{what} holds at most {limit} items, not {len(value)}")
    return value


def field_objects(body: dict[str, Any], key: str, *, limit: int) -> list[dict[str, Any]]:
    """A repeated message field: a list of JSON objects."""
    return _objects(body.get(key), key, limit)


def _objects(value: Any, what: str, limit: int) -> list[dict[str, Any]]:
    items = _listed(value, what, limit=limit)
    if not all(isinstance(i, dict) for i in items):
        raise MlflowError(f"each item of {what} must be a JSON object")
    return items


def pairs(
    value: Any,
    what: str,
    *,
    limit: int = MAX_PAIRS,
    key_limit: int = MAX_KEY,
    value_limit: int = MAX_TAG_VALUE,
) -> dict[str, str]:
    """The value of a repeated ``{key, value}`` field ``what`` (tags, params) as a dict
    (a later key wins): the one reader of MLflow's pairs, on every route."""
    out: dict[str, str] = {}
    for item in _objects(value, what, limit):
        k = check_text(item.get("key"), f"a key of {what}", limit=key_limit, required=True)
        out[k] = check_text(item.get("value"), f"the value of {what} {k[:40]!r}", limit=value_limit)
    return out


def field_pairs(body: dict[str, Any], key: str, *, limit: int = MAX_PAIRS) -> dict[str, str]:
    """A repeated ``{key, value}`` field of ``body`` (:func:`pairs`, tags' limits)."""
    return pairs(body.get(key), key, limit=limit)


def pairs_json(d: dict[str, str]) -> list[dict[str, str]]:
    """A dict as MLflow's repeated ``{key, value}`` field, in key order: the one writer."""
    return [{"key": k, "value": v} for k, v in sorted(d.items())]


def check_model_id(value: Any) -> str:
    """A logged model's id (``m-<32 hex>``); anything else names no model."""
    if not isinstance(value, str) or not MODEL_ID_RE.fullmatch(value):
        raise MlflowError(f"not a logged model id (m-<32 hex>): {str(value)[:40]!r}")
    return value


def check_experiment_id(value: Any) -> str:
    """An experiment id: decimal text of 1 to 18 digits (a number is taken as its text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not EXPERIMENT_ID_RE.fullmatch(value):
        raise MlflowError(f"not an experiment id: {str(value)[:40]!r}")
    return value


# -- pages ---------------------------------------------------------------------------------
# One page-token format for every MLflow list endpoint: base64 of ``{"offset": n}``.


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_offset(token: Any) -> int:
    """The offset a page token stands for (absent or empty: 0)."""
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or len(token) > 200:
        raise MlflowError("invalid page token: not one this server gave")
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise MlflowError(f"invalid page token {token[:40]!r}") from None
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise MlflowError(f"invalid page token {token[:40]!r}")
    if not 0 <= offset < MAX_PAGE_OFFSET:
        raise MlflowError(f"invalid page token {token[:40]!r}")
    return offset


def page_size(value: Any, *, default: int, most: int) -> int:
    """``max_results``: absent (or proto3's 0) is ``default``; else 1 to ``most``."""
    if value is None or value == "" or value == 0 and not isinstance(value, bool):
        return default
    return decimal(value, "max_results", low=1, high=most)


def paged(items: list[Any], offset: int, size: int) -> tuple[list[Any], str | None]:
    """The page of ``items`` from ``offset`` and the token of the next page (None: last)."""
    page = items[offset : offset + size]
    return page, page_token(offset + size) if offset + size < len(items) else None


# -- who may change what -------------------------------------------------------------------


@dataclass
class WritableRun:
    """The run a write goes to: its runs row and tags (no params or metrics read)."""

    id: str
    row: dict[str, Any]
    tags: dict[str, str]


def writable_run(
    store: Store, caller: Caller, run_id: Any, *, active: bool = True, values: bool = False
) -> WritableRun:
    """The run a write of ``caller`` goes to, checked: it exists; the caller wrote it or
    is a project admin (the rule of ``runbase push``); with ``active``, it is not
    soft-deleted (as MLflow); with ``values`` (params, metrics, tags, status), it was
    made through the MLflow API: a run recorded by its own process (``runbase run``,
    push) gets its values from there, and a push would replace what the API wrote."""
    if not isinstance(run_id, str) or not is_valid_id(run_id):
        raise RunNotFound(f"Run '{str(run_id)[:40]}' not found")
    try:
        row = load_row(store, run_id)
    except RunNotFound:
        raise RunNotFound(f"Run '{run_id}' not found") from None
    author = row.get("user_name")
    if author != caller.name and caller.role != "admin":
        raise Forbidden(f"run {run_id} belongs to {author}; only they or an admin may change it")
    tags = load_tags(store, [run_id]).get(run_id, {})
    if active and external.DELETED_TAG in tags:
        raise MlflowError(
            f"The run {run_id} must be in the 'active' state. Current state is deleted."
        )
    if values and row.get("mode") != MLFLOW_MODE:
        raise MlflowError(
            f"run {run_id} is recorded by its own process (runbase run/push): its values "
            "come from there; log to an MLflow run instead"
        )
    return WritableRun(run_id, row, tags)


def writable_model(store: Store, caller: Caller, model_id: Any) -> dict[str, Any]:
    """A logged model ``caller`` may change: they made it (its ``creator_id``), wrote its
    source run, or are a project admin. Returns its row (records.experiments.get_model)."""
    row = experiments.get_model(store, check_model_id(model_id))
    if caller.role == "admin":
        return row
    info: dict[str, Any] = row["info"] if isinstance(row.get("info"), dict) else {}
    if info.get("creator_id") == caller.name:
        return row
    run_id = row.get("run_id")
    if (
        isinstance(run_id, str)
        and external.exists(store, run_id)
        and load_row(store, run_id).get("user_name") == caller.name
    ):
        return row
    raise Forbidden(
        f"logged model {model_id} belongs to {info.get('creator_id') or 'another user'}; only "
        "its creator, the author of its source run or an admin may change it"
    )
