"""The saved views of a project on a team server (``runbase views --remote NAME``), read
through its API (docs/api.md, "Saved views"). A server's answer is not trusted: each
view is read through its documented shape, a view whose name could not have been
saved is left out, and the spec is fitted to the spec of this version."""

from __future__ import annotations

import urllib.parse
from typing import Any

from runbase.core import shapes, viewspec
from runbase.errors import RemoteError, UsageError
from runbase.remote.client import Remote

_HEAD = shapes.Obj(
    {
        "name": shapes.Str(viewspec.MAX_NAME),
        "default": shapes.Bool(),
        "user": shapes.NAME,
        "created_at": shapes.Str(64),
        "updated_at": shapes.Str(64),
    }
)
_FIELDS = ("name", "default", "user", "created_at", "updated_at")


def remote_views(remote: Remote) -> dict[str, Any]:
    """``{views: [{name, default, user, created_at, updated_at}], default}`` of the
    remote's project, as ``GET /api/views`` answers it."""
    answer = remote.client().get_json(f"{remote.api}/views")
    items = answer.get("views") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise RemoteError(f"{remote.url} answered no list of views")
    views = [v for v in map(_head, items) if v is not None]
    default = next((v["name"] for v in views if v["default"]), None)
    return {"views": views, "default": default}


def remote_view(remote: Remote, name: str) -> dict[str, Any]:
    """One view of the remote's project and its spec, as ``GET /api/views/{name}``."""
    path = f"{remote.api}/views/{urllib.parse.quote(viewspec.check_name(name), safe='')}"
    answer = remote.client().get_json(path)
    view = _head(answer)
    if view is None or view["name"] != name or not isinstance(answer, dict):
        raise RemoteError(f"{remote.url} answered no view {name!r}")
    return {"name": name, "spec": viewspec.fit_spec(answer.get("spec")), **view}


def _head(value: Any) -> dict[str, Any] | None:
    fitted = _HEAD.fit(value)
    if not isinstance(fitted, dict):
        return None
    try:
        viewspec.check_name(fitted.get("name"))
    except UsageError:
        return None
    head = {k: fitted.get(k) for k in _FIELDS}
    head["default"] = head["default"] is True
    return head
