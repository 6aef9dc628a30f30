"""Talking to a team server: named remotes and servers' tokens from the user's config
(runbase.core.config), and a small HTTP client (stdlib only: ``import runbase`` stays
light) that retries what a restarting server or a flaky network make fail.

The config (runbase.core.config) holds, for this module::

    {"servers": {"https://runbase.example.com": {"token": "rbt_…"}},
     "remotes": {"team": {"url": "https://runbase.example.com", "project": "vision"}},
     "publish": "team"}

``$RUNBASE_TOKEN`` overrides the stored token (CI, containers).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from runbase.core.config import load_config, save_config
from runbase.core.shapes import loads
from runbase.errors import RemoteError, UsageError

DEFAULT_PROJECT = "default"
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"a server URL is http(s)://host[:port], not {url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class Remote:
    """A project on a server, as this user reaches it."""

    name: str
    url: str
    project: str
    token: str | None

    def client(self) -> Client:
        return Client(self.url, self.token)

    @property
    def api(self) -> str:
        return f"/p/{urllib.parse.quote(self.project)}/api"

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/p/{self.project}/runs/{run_id}"


def token_for(url: str, config: dict[str, Any] | None = None) -> str | None:
    """The token for the server at ``url``: ``$RUNBASE_TOKEN`` if that server is one
    the config names (a login or a remote: the token never goes to a server a pasted
    run URL names), else the token kept by ``runbase login``."""
    config = config if config is not None else load_config()
    url = normalize_url(url)
    servers = config.get("servers") or {}
    env = os.environ.get("RUNBASE_TOKEN")
    if env and url in _known_servers(config):
        return env.strip()
    entry = servers.get(url) or {}
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) else None


def _known_servers(config: dict[str, Any]) -> set[str]:
    known = {normalize_url(u) for u in (config.get("servers") or {})}
    for entry in (config.get("remotes") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            known.add(normalize_url(entry["url"]))
    return known


def login(url: str, token: str, check: bool = True) -> dict[str, Any]:
    """Keep ``token`` for the server at ``url`` (checked against ``/api/v1/me`` first)."""
    url = normalize_url(url)
    me = Client(url, token).get_json("/api/v1/me") if check else {}
    config = load_config()
    config.setdefault("servers", {})[url] = {"token": token}
    save_config(config)
    return me


def add_remote(name: str, url: str, project: str = DEFAULT_PROJECT) -> Remote:
    if not _REMOTE_NAME.match(name):
        raise UsageError(f"bad remote name {name!r}: letters, digits, '.', '_', '-'")
    url = normalize_url(url)
    config = load_config()
    config.setdefault("remotes", {})[name] = {"url": url, "project": project}
    save_config(config)
    return Remote(name, url, project, token_for(url, config))


def remove_remote(name: str) -> None:
    config = load_config()
    if name not in (config.get("remotes") or {}):
        raise UsageError(f"no remote {name!r}")
    del config["remotes"][name]
    save_config(config)


def remotes() -> dict[str, Remote]:
    config = load_config()
    out = {}
    for name, entry in (config.get("remotes") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            url = entry["url"]
            project = entry.get("project") or DEFAULT_PROJECT
            out[name] = Remote(name, url, project, token_for(url, config))
    return out


def get_remote(name: str | None = None) -> Remote:
    """Remote ``name``; without a name, the only one (or the ``publish`` default)."""
    all_remotes = remotes()
    if name is None:
        default = load_config().get("publish")
        if isinstance(default, str) and default in all_remotes:
            name = default
        elif len(all_remotes) == 1:
            name = next(iter(all_remotes))
        else:
            raise UsageError(
                "which remote? add one with `runbase remote add NAME URL`"
                if not all_remotes
                else f"name a remote: {', '.join(sorted(all_remotes))}"
            )
    if name not in all_remotes:
        raise UsageError(f"no remote {name!r}; add it with `runbase remote add {name} URL`")
    return all_remotes[name]


_RUN_URL = re.compile(r"^(https?://.+?)/p/([^/]+)/runs/([^/?#]+)")


def split_remote_ref(ref: str) -> tuple[Remote, str] | None:
    """``NAME:RUN`` (a configured remote) or a run's URL on a server; None otherwise."""
    m = _RUN_URL.match(ref)
    if m:
        url, project, run = m.group(1), urllib.parse.unquote(m.group(2)), m.group(3)
        return Remote(url, url, project, token_for(url)), urllib.parse.unquote(run)
    name, sep, run = ref.partition(":")
    if sep and run and name in remotes():
        return get_remote(name), run
    return None


# -- HTTP ---------------------------------------------------------------------------------

RETRY_STATUS = frozenset({429, 502, 503, 504})


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Client:
    """JSON and byte requests to one server, a keep-alive connection per thread.

    Connection failures and 429/502/503/504 are retried with exponential backoff and
    jitter for up to ``retry_for`` seconds (a server restarting, PostgreSQL failing
    over); other errors raise :class:`RemoteError` with the server's ``detail``.
    """

    def __init__(self, url: str, token: str | None, retry_for: float = 60.0, timeout: float = 60.0):
        self.url = normalize_url(url)
        parts = urllib.parse.urlsplit(self.url)
        insecure = parts.scheme == "http" and not _loopback(parts.hostname or "")
        if token and insecure and os.environ.get("RUNBASE_ALLOW_HTTP") != "1":
            raise UsageError(
                f"refusing to send an API token over plain http to {parts.hostname}: use "
                "https (or, on a network you trust, set RUNBASE_ALLOW_HTTP=1)"
            )
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._prefix = parts.path
        self._token = token
        self.retry_for = retry_for
        self.timeout = timeout
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._netloc, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "runbase"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        h.update(extra or {})
        return h

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Callable[[], IO[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, bytes]:
        """``(status, body)``; ``body`` may be a callable opening a fresh stream per try."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            err: Exception | None = None
            try:
                status, data = self._once(method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                status, data, err = 0, b"", e
            else:
                if status in ok:
                    return status, data
                if status not in RETRY_STATUS:
                    raise _error(method, path, status, data)
            if time.monotonic() + delay > deadline:
                if err is not None:
                    raise RemoteError(f"cannot reach {self.url}: {err}") from err
                raise _error(method, path, status, data)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)

    def _once(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None
    ) -> tuple[int, bytes]:
        conn = self._conn()
        stream = body() if callable(body) else None
        try:
            conn.request(
                method,
                self._prefix + path,
                body=stream if stream is not None else body,
                headers=self._headers(headers),
            )
            resp = conn.getresponse()
            data = resp.read()
        finally:
            if stream is not None:
                stream.close()
        if resp.will_close:
            self._drop()
        return resp.status, data

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        if params:
            path += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._answer("GET", path, self.request("GET", path)[1])

    def send_json(self, method: str, path: str, data: Any) -> Any:
        raw = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        _, body = self.request(method, path, raw, {"Content-Type": "application/json"})
        return self._answer(method, path, body) if body else None

    def _answer(self, method: str, path: str, body: bytes) -> Any:
        """A server's JSON answer; nothing read from a server is trusted: malformed or
        too deeply nested JSON is a clear error, never a traceback."""
        try:
            return loads(body, max_depth=None)  # what the answer holds is checked by type
        except ValueError as e:  # TooDeep included
            raise RemoteError(f"{method} {path}: {self.url} answered malformed JSON: {e}")

    def download(self, path: str, write: Callable[[bytes], None]) -> int:
        """Stream ``GET path`` into ``write`` (no retry once bytes have arrived)."""
        conn = self._conn()
        try:
            conn.request("GET", self._prefix + path, headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                raise _error("GET", path, resp.status, resp.read())
            n = 0
            while chunk := resp.read(1 << 20):
                write(chunk)
                n += len(chunk)
            return n
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise RemoteError(f"download from {self.url} failed: {e}") from e


def _error(method: str, path: str, status: int, data: bytes) -> RemoteError:
    try:
        body = loads(data, max_depth=None)
        detail = body.get("detail") if isinstance(body, dict) else body
    except ValueError:
        body, detail = None, data[:200].decode("utf-8", "replace")
    hint = ""
    if status == 401:
        hint = " (log in: `runbase login URL --token T`, or set RUNBASE_TOKEN)"
    return RemoteError(f"{method} {path}: HTTP {status}: {detail}{hint}", status, body)
