"""Request body limits, enforced before a body is read whole: ``runbase ui`` gives every
body the size of a saved view, the team server a limit per route
(:mod:`runbase.server.middleware`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runbase.core.viewspec import MAX_SPEC_BYTES
from runbase.errors import TooLarge
from runbase.web.api import json_response

# a saved view: its spec is at most 64 KiB as compact UTF-8 JSON; a client's JSON may
# spell it longer (spaces, \uXXXX escapes: up to 4x for text outside ASCII)
MAX_VIEW_BODY = 4 * MAX_SPEC_BYTES

# (method, path, headers) -> the most bytes that request's body may have
LimitOf = Callable[[str, str, dict[bytes, bytes]], int]


def view_bodies(method: str, path: str, headers: dict[bytes, bytes]) -> int:
    """``runbase ui``'s only bodies are saved views."""
    return MAX_VIEW_BODY


class BodyLimit:
    """Refuse request bodies over ``limit_of``'s limit before they are read whole: a
    declared ``Content-Length`` over it at once, a streamed body as soon as it passes it
    (413 either way, never a route's 400 for an unreadable body)."""

    def __init__(self, app: Any, limit_of: LimitOf = view_bodies) -> None:
        self.app = app
        self.limit_of = limit_of

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limit_of(scope.get("method", ""), scope.get("path", ""), headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
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
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Any:
    return json_response({"detail": f"request body over {limit} bytes"}, 413)
