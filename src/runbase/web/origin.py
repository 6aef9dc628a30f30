"""Cross-site writes refused on ``runbase ui`` (:class:`SameOriginWrites`).

``runbase ui`` has no login: whoever reaches its port is the local admin. A page on any
web site can still make the browser send a "simple" request to
``http://127.0.0.1:PORT`` (a form post, or ``fetch(url, {mode: "no-cors", method:
"POST", body: new Blob([json])})``): no CORS preflight is sent, the answer is unreadable
to the page, but the write happens, and FastAPI reads a body without a content type as
JSON. So every unsafe request is checked here, in one place, before any route runs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runbase.web.api import json_response

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values of a request the UI's own page (or no page: curl, the address
# bar) made; "same-site" is refused: another port of 127.0.0.1 is the same site
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class SameOriginWrites:
    """Refuse an unsafe request (POST, PUT, PATCH, DELETE) a browser sent for another site.

    - 403 when its ``Origin`` header is present and is not the app's own origin (the
      scheme and the ``Host`` header it was asked under; ``null`` is never its own), or
      its ``Sec-Fetch-Site`` is present and is neither ``same-origin`` nor ``none``;
    - 415 when it has a body whose ``Content-Type`` is not ``application/json``: a
      browser sends another site's JSON only after a CORS preflight, which this app
      never answers with a permission, so a cross-site body can only come as text/plain,
      a form or no type at all.

    Safe methods are not checked (they change nothing; ``HostCheck`` keeps other sites'
    pages from reading answers). Clients that are not browsers send no ``Origin`` and no
    ``Sec-Fetch-Site``, and pass with a JSON body.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") in UNSAFE_METHODS:
            refusal = refuse(scope)
            if refusal is not None:
                status, detail = refusal
                await json_response({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def refuse(scope: Any) -> tuple[int, str] | None:
    """(status, detail) when this unsafe request is refused, None when it may go on."""
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, scope, headers.get("host")):
        return 403, (
            f"runbase ui refuses a change requested by a page of another site (Origin "
            f"{origin!r}): runbase ui has no login, so only its own pages may change "
            "the store; open the UI itself to make this change"
        )
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in OWN_FETCH_SITES:
        return 403, (
            f"runbase ui refuses a change requested from another site (Sec-Fetch-Site "
            f"{site!r}): runbase ui has no login, so only its own pages may change the "
            "store; open the UI itself to make this change"
        )
    if _has_body(headers):
        kind = headers.get("content-type")
        media = (kind or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            shown = "no Content-Type" if kind is None else f"Content-Type {kind!r}"
            return 415, (
                f"a request body must be JSON sent with Content-Type: application/json, "
                f"not {shown} (runbase ui refuses other bodies: a page of another site "
                "can send those without asking)"
            )
    return None


def _headers(scope: Any) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None and length.strip() not in ("", "0"):
        return True
    return "transfer-encoding" in headers


def _same_origin(origin: str, scope: Any, host: str | None) -> bool:
    """Whether ``Origin`` names this app: the same host and port as the ``Host`` header
    (or the address the request came to) under the request's scheme."""
    if host is None:
        server = scope.get("server")
        if not server:
            return False
        host = f"{server[0]}:{server[1]}"
    scheme = scope.get("scheme", "http")
    own = _endpoint(f"{scheme}://{host}")
    theirs = _endpoint(origin.strip())
    return own is not None and own == theirs


def _endpoint(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or a scheme://host[:port], None if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]
