"""Request body limits, enforced before a body is read whole."""

from __future__ import annotations

from typing import Any

from runbase.errors import TooLarge
from runbase.server.auth import SESSION_COOKIE
from runbase.server.service import MAX_OBJECT_BYTES
from runbase.web.api import json_response

MAX_BUNDLE = 512 << 20  # a run bundle's JSON (metrics of a huge run stay well below)
MAX_SMALL_BODY = 1 << 20  # any other JSON body (notes, members, object id lists)
MAX_ANONYMOUS_BODY = 64 << 10  # a request without a credential (the login form)


def _body_limit(method: str, path: str, headers: dict[bytes, bytes]) -> int:
    if b"authorization" not in headers and SESSION_COOKIE.encode() not in headers.get(
        b"cookie", b""
    ):
        return MAX_ANONYMOUS_BODY  # refused anyway: read no more than a login form
    if method == "PUT" and "/objects/" in path:
        return MAX_OBJECT_BYTES
    if path.endswith(("/bundle", "/live")):
        return MAX_BUNDLE
    return MAX_SMALL_BODY


class BodyLimit:
    """Refuse request bodies over their limit before they are read whole (_body_limit:
    objects, streamed to the store, up to MAX_OBJECT_BYTES; run bundles MAX_BUNDLE;
    anything else 1 MiB; without a credential 64 KiB)."""

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
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, counted, send)
