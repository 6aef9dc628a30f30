"""Request body limits, enforced before a body is read whole."""

from __future__ import annotations

import re
from typing import Any

from runbase.core.viewspec import MAX_SPEC_BYTES
from runbase.errors import TooLarge
from runbase.server.auth import OID_PATH, RUN_ID_PATH, SESSION_COOKIE
from runbase.server.service import MAX_OBJECT_BYTES
from runbase.web.api import json_response

MAX_BUNDLE = 512 << 20  # a run bundle's JSON (metrics of a huge run stay well below)
MAX_SMALL_BODY = 1 << 20  # any other JSON body (notes, members, object id lists)
MAX_ANONYMOUS_BODY = 64 << 10  # a request without a credential (the login form)
# a saved view: its spec is at most 64 KiB as compact UTF-8 JSON; a client's JSON may
# spell it longer (spaces, \uXXXX escapes: up to 4x for text outside ASCII)
MAX_VIEW_BODY = 4 * MAX_SPEC_BYTES

# the routes with large bodies, matched whole (a saved view's name is a path of its own
# and may end in /live or hold /objects/: it must not get their limits)
_PROJECT = r"/p/[^/]+/api"
_OBJECT = re.compile(rf"{_PROJECT}/objects/{OID_PATH.strip('^$')}")
_BUNDLE = re.compile(rf"{_PROJECT}/runs/{RUN_ID_PATH.strip('^$')}/(bundle|live)")
_VIEWS = re.compile(rf"{_PROJECT}/views(/.*)?", re.S)


def _body_limit(method: str, path: str, headers: dict[bytes, bytes]) -> int:
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
    return MAX_SMALL_BODY


class BodyLimit:
    """Refuse request bodies over their limit before they are read whole (_body_limit:
    objects, streamed to the store, up to MAX_OBJECT_BYTES; run bundles MAX_BUNDLE;
    saved views MAX_VIEW_BODY; anything else 1 MiB; without a credential 64 KiB)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = _body_limit(scope.get("method", ""), scope.get("path", ""), headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await json_response({"detail": f"request body over {limit} bytes"}, 413)(
                scope, receive, send
            )
            return
        seen, over, answered = 0, False, False

        async def counted() -> dict[str, Any]:
            nonlocal seen, over
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise TooLarge(f"request body over {limit} bytes")
            return message

        async def sending(message: dict[str, Any]) -> None:
            # a route that parses JSON answers any error reading its body with a 400:
            # once the body was over its limit, the answer is the 413 below
            nonlocal answered
            if not over:
                answered = True
                await send(message)

        await self.app(scope, counted, sending)
        if over and not answered:
            await json_response({"detail": f"request body over {limit} bytes"}, 413)(
                scope, receive, send
            )
