"""The team server's request body limits, per route (enforced by
:class:`runbase.web.limits.BodyLimit` before a body is read whole)."""

from __future__ import annotations

import re

from runbase.server.auth import OID_PATH, RUN_ID_PATH, SESSION_COOKIE
from runbase.server.service import MAX_OBJECT_BYTES
from runbase.web.limits import MAX_VIEW_BODY

MAX_BUNDLE = 512 << 20  # a run bundle's JSON (metrics of a huge run stay well below)
MAX_SMALL_BODY = 1 << 20  # any other JSON body (notes, members, object id lists)
MAX_ANONYMOUS_BODY = 64 << 10  # a request without a credential (the login form)
# an MLflow log-batch: 100 params of 6,000 and 100 tags of 8,000 characters and 1,000
# metrics, JSON-escaped, pass 1 MiB; log-inputs carries dataset schemas and profiles
MAX_MLFLOW_BODY = 16 << 20

# the routes with large bodies, matched whole (a saved view's name is a path of its own
# and may end in /live or hold /objects/: it must not get their limits)
_PROJECT = r"/p/[^/]+/api"
_OBJECT = re.compile(rf"{_PROJECT}/objects/{OID_PATH.strip('^$')}")
_BUNDLE = re.compile(rf"{_PROJECT}/runs/{RUN_ID_PATH.strip('^$')}/(bundle|live)")
_VIEWS = re.compile(rf"{_PROJECT}/views(/.*)?", re.S)
_MLFLOW = r"/p/[^/]+/mlflow/api/2\.0"
_MLFLOW_TRACKING = re.compile(rf"{_MLFLOW}/mlflow/.*", re.S)
# an artifact file, streamed into the object store as it arrives (re-hashed there)
_MLFLOW_ARTIFACT = re.compile(rf"{_MLFLOW}/mlflow-artifacts/artifacts/.+", re.S)


def body_limit(method: str, path: str, headers: dict[bytes, bytes]) -> int:
    """The most bytes this request's body may have: objects (streamed to the store) up
    to MAX_OBJECT_BYTES, run bundles MAX_BUNDLE, saved views MAX_VIEW_BODY, MLflow
    artifacts as objects and MLflow API requests MAX_MLFLOW_BODY, anything else 1 MiB;
    without a credential 64 KiB."""
    if b"authorization" not in headers and SESSION_COOKIE.encode() not in headers.get(
        b"cookie", b""
    ):
        return MAX_ANONYMOUS_BODY  # refused anyway: read no more than a login form
    if method == "PUT" and _OBJECT.fullmatch(path):
        return MAX_OBJECT_BYTES
    # PUT .../bundle pushes a run, POST .../live publishes one
    bundle = _BUNDLE.fullmatch(path)
    if bundle and (method, bundle.group(1)) in (("PUT", "bundle"), ("POST", "live")):
        return MAX_BUNDLE
    if _VIEWS.fullmatch(path):
        return MAX_VIEW_BODY  # parsed whole by the route before the spec's size is checked
    if method == "PUT" and _MLFLOW_ARTIFACT.fullmatch(path):
        return MAX_OBJECT_BYTES
    if method in ("POST", "PATCH") and _MLFLOW_TRACKING.fullmatch(path):
        return MAX_MLFLOW_BODY
    return MAX_SMALL_BODY
