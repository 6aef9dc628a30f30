"""Structured access logs: one JSON object per request on the ``runbase.server.access``
logger. Only what is safe to keep is logged: the path without its query string, the
status, timing, the user *name*; never a header, a cookie, a token or a body."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

ACCESS_LOGGER = "runbase.server.access"
log = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """ASGI middleware that logs each HTTP request when its response ends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # request.state of the handlers
        start = time.perf_counter()
        info = {"status": 500, "bytes": 0}

        async def send_logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
            elif message["type"] == "http.response.body":
                info["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                log.info(
                    json.dumps(
                        {
                            "ts": round(time.time(), 3),
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "status": info["status"],
                            "ms": round((time.perf_counter() - start) * 1000, 2),
                            "bytes": info["bytes"],
                            "user": state.get("user"),
                            "project": state.get("project"),
                            "client": client[0] if client else None,
                        },
                        separators=(",", ":"),
                    )
                )


def configure(stream: Any = None) -> None:
    """Send access logs, as bare JSON lines, to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
