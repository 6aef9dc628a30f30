"""Webhook deliveries (docs/server.md, "Webhooks"): one daemon thread per server
process sends the pending deliveries of the control database, signed, and retries a
failed one with exponential backoff until it has had :data:`MAX_ATTEMPTS` tries.

Every process of a deployment runs one; they share the work through the database:
a delivery is claimed by an UPDATE guarded on its state and due time, which changes
the row for one process only (``records.accounts.claim_delivery``), so no delivery is
sent twice by two processes. A claim also pushes the due time :data:`LEASE` seconds
ahead: if the process dies mid-attempt, another one retries the delivery then.

Sending: ``POST`` with ``http.client`` (no new dependency), :data:`TIMEOUT` seconds
per connect or read, redirects not followed (a 3xx is a failed attempt: a signed
body is sent only to the URL an admin set), the answer read at most 64 KiB. Success
is any 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass

from runbase.core.version import __version__
from runbase.records import accounts
from runbase.store.db import Database

MAX_ATTEMPTS = 8
BACKOFF = 1.0  # seconds before the 2nd attempt; doubled after each failed one
TIMEOUT = 5.0  # seconds, per connect and per read of an attempt
LEASE = 60.0  # a claimed delivery is not due again before this, unless its attempt ends
POLL = 5.0  # at most this long between looks at the table (other processes' work)
BATCH = 20
MAX_ANSWER = 64 << 10
SIGNATURE_HEADER = "X-Runbase-Signature-256"

log = logging.getLogger("runbase.server.hooks")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Runbase-Signature-256`` value: ``sha256=`` + hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None  # the HTTP status, None when no answer came
    error: str | None  # why it failed, for `hooks deliveries`


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT) -> Outcome:
    """One ``POST`` of ``body`` to ``url``; never raises for a network or HTTP failure."""
    parts = urllib.parse.urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout,
                context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    except ValueError as e:  # a URL checked at `hooks add` cannot get here; a row edited by hand
        return Outcome(False, None, f"bad URL: {e}")
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read(MAX_ANSWER)
    except (OSError, http.client.HTTPException) as e:
        return Outcome(False, None, _short(f"{type(e).__name__}: {e}" if str(e) else repr(e)))
    finally:
        conn.close()
    status = answer.status
    if 200 <= status < 300:
        return Outcome(True, status, None)
    if 300 <= status < 400:
        where = answer.getheader("Location") or "?"
        return Outcome(False, status, _short(f"HTTP {status}: redirect to {where} not followed"))
    said = text[:200].decode("utf-8", "replace").strip()
    return Outcome(False, status, _short(f"HTTP {status}" + (f": {said}" if said else "")))


def _short(text: str) -> str:
    """An error as stored: one line, at most 500 characters, printable."""
    flat = " ".join(text.split())
    return "".join(c if c.isprintable() else "?" for c in flat)[:500]


class DeliveryWorker:
    """Sends the control database's due deliveries; :meth:`start` runs it on a daemon
    thread, :meth:`wake` makes it look now (new deliveries), :meth:`stop` ends it.
    ``backoff``: seconds before the second attempt (doubled each time)."""

    def __init__(
        self,
        db: Database,
        *,
        backoff: float = BACKOFF,
        attempts: int = MAX_ATTEMPTS,
        timeout: float = TIMEOUT,
        poll: float = POLL,
    ) -> None:
        self.db = db
        self.backoff = backoff
        self.attempts = attempts
        self.timeout = timeout
        self.poll = poll
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="runbase-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2 * TIMEOUT + 1) -> None:
        """Stop after the attempt in progress, if any (a delivery cut short is retried
        by another process, or by this server when it starts again)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                self.run_once()
                due = accounts.next_due(self.db)
            except Exception:  # noqa: BLE001 - the database went away for a moment: try later
                log.exception("webhook deliveries: cannot read the control database")
                due = None
            wait = self.poll if due is None else min(self.poll, max(0.0, due - time.time()))
            self._wake.wait(wait)

    def run_once(self) -> int:
        """Make one attempt at each delivery due now; how many were attempted."""
        done = 0
        while not self._stopping:
            due = accounts.due_deliveries(self.db, time.time(), BATCH)
            if not due:
                break
            for delivery_id in due:
                if self._stopping:
                    break
                done += self.attempt(delivery_id)
        return done

    def attempt(self, delivery_id: str) -> int:
        """Claim ``delivery_id`` and make one attempt; 0 when another process had it."""
        now = time.time()
        claimed = accounts.claim_delivery(self.db, delivery_id, now, now + LEASE)
        if claimed is None:
            return 0
        attempts, body_text, url, secret = claimed
        body = str(body_text).encode()
        outcome = post(url, body, self._headers(delivery_id, body, secret), self.timeout)
        end = time.time()
        if outcome.ok:
            accounts.finish_attempt(
                self.db, delivery_id, "delivered", end, outcome.status, None, end
            )
        elif int(attempts) >= self.attempts:
            accounts.finish_attempt(
                self.db, delivery_id, "failed", end, outcome.status, outcome.error, None
            )
        else:
            retry = end + self.backoff * 2 ** (int(attempts) - 1)
            accounts.finish_attempt(
                self.db, delivery_id, "pending", retry, outcome.status, outcome.error, None
            )
        return 1

    @staticmethod
    def _headers(delivery_id: str, body: bytes, secret: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": f"runbase-server/{__version__}",
            "X-Runbase-Event": _action_of(body),
            "X-Runbase-Delivery": delivery_id,
            SIGNATURE_HEADER: signature(str(secret), body),
        }


def _action_of(body: bytes) -> str:
    """The event's action, from the body this server wrote (still checked: a header
    carries only a plain word)."""
    try:
        action = json.loads(body)["event"]["action"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return (
        action if isinstance(action, str) and action.isalpha() and len(action) < 32 else "unknown"
    )
