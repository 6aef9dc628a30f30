"""Webhook deliveries (docs/server.md, "Webhooks"): one daemon thread per server
process queues the deliveries of each project's registry events, sends the pending
ones, signed, and retries a failed one with exponential backoff until it has had
:data:`MAX_ATTEMPTS` tries.

Queuing is an outbox driven by the log itself, so no committed event is ever missed:
a registry change commits in its project's store, and the webhook queue is in
another database (the control tables), so queuing "right after the commit" would
lose the event to a crash in between. Instead each hook keeps a cursor, the last
``model_events.seq`` of its project it has queued; the thread reads the events after
it (``records.registry.events``) and, in one control transaction, inserts their
deliveries and moves the cursor, guarded on its old value (``accounts.queue_deliveries``):
of two processes reading the same events, one queues them and the other nothing. A
registry change only wakes the thread early (``Actor.on_events``); a crash before
that delays the delivery until the next look, at most :data:`POLL` seconds later, on
any process. Events are committed in ``seq`` order (each change takes the log's lock
first), so a cursor never passes an event still to come.

Every process of a deployment runs one; they share the work through the database:
a delivery is claimed by an UPDATE guarded on its state and due time, which changes
the row for one process only (``records.accounts.claim_delivery``), so no delivery is
sent twice by two processes. A claim also pushes the due time :data:`LEASE` seconds
ahead: if the process dies mid-attempt, another one retries the delivery then.

Sending: ``POST`` with ``http.client`` (no new dependency), :data:`TIMEOUT` seconds
per connect or read, and :data:`DEADLINE` seconds for the whole attempt, well inside
the :data:`LEASE`: a receiver that drips its answer a byte at a time (each read within
the per-read timeout) is cut off at the deadline (a watchdog shuts the socket), so no
attempt outlives its claim and no other process re-sends a delivery still in flight.
Redirects are not followed (a 3xx is a failed attempt: a signed body is sent only to
the URL an admin set); a failed attempt's answer is read at most 64 KiB, a 2xx's not at
all. Success is any 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from runbase.core.version import __version__
from runbase.records import accounts, registry
from runbase.server import control
from runbase.store import Store
from runbase.store.db import Database

MAX_ATTEMPTS = 8
BACKOFF = 1.0  # seconds before the 2nd attempt; doubled after each failed one
TIMEOUT = 5.0  # seconds, per connect and per read of an attempt
DEADLINE = 20.0  # seconds, the whole attempt: connect, send, the answer's status line
LEASE = 60.0  # a claimed delivery is not due again before this, unless its attempt ends
# an attempt must end (and record its outcome) long before its claim lapses
assert DEADLINE + TIMEOUT < LEASE / 2
POLL = 5.0  # at most this long between looks at the table (other processes' work)
BATCH = 20
PAGE = 500  # events read from a project's log, and queued, per control transaction
MAX_ANSWER = 64 << 10
SIGNATURE_HEADER = "X-Runbase-Signature-256"
TIMESTAMP_HEADER = "X-Runbase-Timestamp"
TOLERANCE = 300  # seconds: the window docs/server.md tells receivers to accept

log = logging.getLogger("runbase.server.hooks")

Borrow = Callable[[str], AbstractContextManager[Store]]  # a project's store, lent


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Runbase-Signature-256`` value: ``sha256=`` + hex HMAC-SHA256 of
    ``f"{timestamp}."`` + ``body``. The timestamp (``X-Runbase-Timestamp``, Unix
    seconds) is signed with the body, so a captured delivery cannot be replayed
    later than the receiver's tolerance window with a fresh timestamp."""
    signed = f"{int(timestamp)}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def start_seq(store: Store, since: float | None = None) -> int:
    """Where a new hook's cursor starts in ``store``'s log: the last event's seq (a hook
    added through the server or ``runbase server hooks add``, both of which read the
    project's log), or (``since``) the last seq of the events made before that time:
    only for a hook row of an older version whose cursor was never set. Times are an
    approximation (an event's time is taken before the log's lock, and hosts' clocks
    differ), so every hook made now gets the exact seq."""
    return registry.last_seq(store, before=since)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None  # the HTTP status, None when no answer came
    error: str | None  # why it failed, for `hooks deliveries`


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float = TIMEOUT,
    deadline: float = DEADLINE,
) -> Outcome:
    """One ``POST`` of ``body`` to ``url``, over in at most ``deadline`` seconds (each
    connect or read at most ``timeout``); never raises for a network or HTTP failure."""
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
    watchdog = _Watchdog(conn, deadline)
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        status = answer.status
        # a 2xx is all that counts: its body is not read (nor waited for)
        text = b"" if 200 <= status < 300 else answer.read(MAX_ANSWER)
    except (OSError, http.client.HTTPException) as e:
        if watchdog.fired:
            return Outcome(False, None, f"no complete answer within {deadline:g} s (cut off)")
        return Outcome(False, None, _short(f"{type(e).__name__}: {e}" if str(e) else repr(e)))
    finally:
        watchdog.cancel()
        conn.close()
    if watchdog.fired:  # a shut socket reads as the answer's end: what came may be cut
        return Outcome(False, None, f"no complete answer within {deadline:g} s (cut off)")
    if 200 <= status < 300:
        return Outcome(True, status, None)
    if 300 <= status < 400:
        where = answer.getheader("Location") or "?"
        return Outcome(False, status, _short(f"HTTP {status}: redirect to {where} not followed"))
    said = text[:200].decode("utf-8", "replace").strip()
    return Outcome(False, status, _short(f"HTTP {status}" + (f": {said}" if said else "")))


class _Watchdog:
    """Shuts ``conn``'s socket ``deadline`` seconds from now: http.client's timeout is
    per socket operation, so a receiver sending a byte every few seconds would keep one
    read going forever; a shut socket ends whatever read or write is blocked on it."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self.conn = conn
        self.fired = False
        self.timer = threading.Timer(deadline, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected yet, or closed already: the connect's own timeout ends it

    def cancel(self) -> None:
        self.timer.cancel()


def _short(text: str) -> str:
    """An error as stored: one line, at most 500 characters, printable."""
    flat = " ".join(text.split())
    return "".join(c if c.isprintable() else "?" for c in flat)[:500]


class DeliveryWorker:
    """Queues the deliveries of the projects' new events (read through ``borrow``) and
    sends the due ones; :meth:`start` runs it on a daemon thread, :meth:`wake` makes it
    look now (new events), :meth:`stop` ends it. ``backoff``: seconds before the second
    attempt (doubled each time); ``timeout``, ``deadline``: of each attempt (:func:`post`)."""

    def __init__(
        self,
        db: Database,
        borrow: Borrow | None = None,
        *,
        backoff: float = BACKOFF,
        attempts: int = MAX_ATTEMPTS,
        timeout: float = TIMEOUT,
        deadline: float = DEADLINE,
        poll: float = POLL,
    ) -> None:
        self.db = db
        self.borrow = borrow  # None: only send what is queued (nothing reads the logs)
        self.backoff = backoff
        self.attempts = attempts
        self.timeout = timeout
        self.deadline = deadline
        self.poll = poll
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="runbase-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = DEADLINE + 1) -> None:
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
        """Queue the deliveries of the events committed since the last look, then make
        one attempt at each delivery due now; how many were attempted."""
        self.queue()
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

    def queue(self) -> int:
        """Queue the deliveries of every hook's events after its cursor; how many. A
        project whose store cannot be read now is logged and tried at the next look."""
        if self.borrow is None:
            return 0
        by_project: dict[str, list[tuple[str, str, int | None, float]]] = {}
        for hook_id, project, wanted, cursor, created in accounts.hook_cursors(self.db):
            by_project.setdefault(project, []).append((hook_id, wanted, cursor, created))
        queued = 0
        for project, project_hooks in by_project.items():
            try:
                with self.borrow(project) as store:
                    for hook_id, wanted, cursor, created in project_hooks:
                        queued += self._queue_hook(store, project, hook_id, wanted, cursor, created)
            except Exception:  # noqa: BLE001 - one project's trouble must not stop the others
                log.exception("webhooks of project %s: cannot queue its new events", project)
        return queued

    def _queue_hook(
        self,
        store: Store,
        project: str,
        hook_id: str,
        wanted: str,
        cursor: int | None,
        created: float,
    ) -> int:
        if cursor is None:  # a row of an older version, with no cursor: its creation time
            start = start_seq(store, since=created)
            if not accounts.start_cursor(self.db, hook_id, start):
                return 0  # another process started it: its cursor is read at the next look
            cursor = start
        queued = 0
        while not self._stopping:
            events = registry.events(store, after=cursor, limit=PAGE)
            if not events:
                break
            rows = control.delivery_rows(
                project, hook_id, wanted, [e.to_json() for e in events], time.time()
            )
            if not accounts.queue_deliveries(self.db, hook_id, cursor, events[-1].seq, rows):
                break  # another process queued these (or the hook went): nothing written
            queued += len(rows)
            cursor = events[-1].seq
            if len(events) < PAGE:
                break
        return queued

    def attempt(self, delivery_id: str) -> int:
        """Claim ``delivery_id`` and make one attempt; 0 when another process had it."""
        now = time.time()
        claimed = accounts.claim_delivery(self.db, delivery_id, now, now + LEASE)
        if claimed is None:
            return 0
        attempts, body_text, url, secret = claimed
        body = str(body_text).encode()
        headers = self._headers(delivery_id, body, secret, int(time.time()))
        outcome = post(url, body, headers, self.timeout, self.deadline)
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
    def _headers(delivery_id: str, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
        """The headers of one attempt: the body is the same on every attempt, the
        timestamp (and so the signature) is the attempt's."""
        return {
            "Content-Type": "application/json",
            "User-Agent": f"runbase-server/{__version__}",
            "X-Runbase-Event": _action_of(body),
            "X-Runbase-Delivery": delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(str(secret), timestamp, body),
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
