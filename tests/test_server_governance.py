"""Team server governance for the model registry (docs/server.md, "Protected stages"
and "Webhooks"), on a real server database (SQLite and PostgreSQL): the approver role,
protected stages set with the real `runbase server stages` CLI and seen by the
registry's actor, webhooks added with `runbase server hooks add` and delivered by the
server's own delivery thread to a real local HTTP server (signature checked with
hmac), retried, failed with their error, and never sent twice by two processes.
The events are real registry changes in the project's store: the delivery thread
queues them from the log itself (the outbox), so a change whose process dies before
nudging it is still delivered, two processes never queue one event twice, and a new
hook does not receive the events made before it."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.server
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import require, runbase_cmd, wait_until
from runbase.errors import Forbidden, NotFound
from runbase.records import accounts, registry
from runbase.server import admin, control, hooks
from runbase.server.service import Server, ServerConfig

BACKENDS = ["sqlite", "postgresql"]
PROJECT = "alpha"
BACKOFF = 0.02  # seconds before a second attempt (1 s in production): 8 tries in ~2.6 s


# -- a receiver: a real HTTP server on a free local port ---------------------------------------


@dataclass
class Receiver:
    """Records every POST; answers by path: /ok 200, /flaky 500 then 200, /down 503
    ("maintenance") always, /moved a 302 (not followed)."""

    url: str = ""
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.got if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            path = self.path.split("?")[0]
            with rec.lock:
                rec.got.append((path, dict(self.headers), body))
                tries = sum(1 for p, _, _ in rec.got if p == path)
            if path == "/moved":
                self.send_response(302)
                self.send_header("Location", f"{rec.url}/ok")
                self.end_headers()
                return
            status = {"/ok": 200, "/down": 503}.get(path, 500 if tries == 1 else 200)
            answer = b"maintenance" if status == 503 else b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- a migrated server database ----------------------------------------------------------------


def _database(backend: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return str(tmp / "srv" / "server.db")
    psycopg = require("psycopg")
    server = request.getfixturevalue("pg_server")
    name = f"govern_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@dataclass
class Team:
    db: str
    objects: str
    tmp: Path

    def admin(self, *args: str) -> str:
        """``runbase server ARGS --db DB``: its stdout (it must succeed)."""
        return runbase_cmd("server", *args, "--db", self.db, check=True).stdout

    def admin_fails(self, *args: str) -> str:
        """``runbase server ARGS --db DB`` that must fail with a clear message: its stderr."""
        proc = runbase_cmd("server", *args, "--db", self.db)
        assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr

    def server(self) -> Server:
        config = ServerConfig(
            self.db, self.objects, scratch=self.tmp / "scratch", hook_backoff=BACKOFF
        )
        return Server(config)


@pytest.fixture(params=BACKENDS)
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Team:
    db = _database(request.param, tmp_path, request)
    objects = str(tmp_path / "objects")
    admin.migrate(db, objects)
    with admin.opened(db) as c:
        control.add_project(c, PROJECT)
    for name in ("ann", "bob", "carl"):
        admin.add_user(db, name, projects=())
    return Team(db, objects, tmp_path)


def _actor(srv: Server, nudge: bool = True) -> registry.Actor:
    """The actor the server's API gives an approver; ``nudge=False``: as if the process
    died right after the commit, before waking the delivery thread (no ``on_events``)."""
    actor = srv.model_actor("ann", PROJECT, "approver")
    assert actor.on_events is not None
    return actor if nudge else dataclasses.replace(actor, on_events=None)


def _register(srv: Server, nudge: bool = True) -> registry.Event:
    """A real ``register`` in the project's store: a new version of bytes of its own."""
    data = f"model weights {uuid.uuid4()}".encode()
    with srv.store(PROJECT) as store:
        oid = store.objects.put_bytes(data)
        source = registry.Source(oid, "file", len(data), None, None)
        [event] = registry.register(
            store, "churn", source, message="weights", actor=_actor(srv, nudge)
        )
    return event


def _promote(
    srv: Server, version: str, stage: str = "production", nudge: bool = True
) -> registry.Event:
    with srv.store(PROJECT) as store:
        [event] = registry.promote(
            store, "churn", version, stage, message="better recall", actor=_actor(srv, nudge)
        )
    return event


def _demote(srv: Server, stage: str = "production") -> registry.Event:
    with srv.store(PROJECT) as store:
        [event] = registry.demote(store, "churn", stage, message="rolled off", actor=_actor(srv))
    return event


def _doc_verify() -> Any:
    """The ``verify`` function of docs/server.md ("A delivery"), run as written."""
    doc = (Path(__file__).parent.parent / "docs" / "server.md").read_text()
    example = doc.split("Check the signature", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(example, scope)  # noqa: S102 - the documentation's own code
    return scope["verify"]


def _signed(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC of ``"<timestamp>." + body``, compare in
    constant time; and the same answer from the documented example. That example also
    refuses the same delivery with another timestamp (a replay made to look fresh) and
    one older than its tolerance window."""
    header = headers.get("X-Runbase-Signature-256", "")
    stamp = headers["X-Runbase-Timestamp"]
    assert re.fullmatch(r"[0-9]{10}", stamp), stamp
    signed = f"{stamp}.".encode() + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    ours = hmac.compare_digest(expected, header)
    verify = _doc_verify()
    when = int(stamp) + 1.0  # a second after it was sent
    assert verify(secret, body, stamp, header, now=when) is ours
    assert verify(secret, body, str(int(stamp) + 1), header, now=when) is False
    assert verify(secret, body, stamp, header, now=int(stamp) + 301.0) is False
    assert verify(secret, body + b" ", stamp, header, now=when) is False
    return ours


def _documented(after: str, until: str) -> set[str]:
    """The keys docs/server.md names (``"key"``) between ``after`` and ``until``: the JSON
    shapes are specs, compared with real output."""
    doc = (Path(__file__).parent.parent / "docs" / "server.md").read_text()
    text = doc.split(after, 1)[1].split(until, 1)[0]
    return set(re.findall(r'"([a-z_]+)"', text))


def _deliveries(team: Team, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(team.admin("hooks", "deliveries", "--json", *args))[
        "deliveries"
    ]
    return rows


# -- roles -------------------------------------------------------------------------------------


def test_roles_are_the_registrys() -> None:
    assert control.ROLES == registry.ROLES == ("reader", "writer", "approver", "admin")
    assert control.HOOK_EVENTS == registry.ACTIONS


def test_approver_role_through_members(team: Team) -> None:
    assert "ann: approver in alpha" in team.admin("member", PROJECT, "ann", "approver")
    team.admin("member", PROJECT, "bob", "writer")
    srv = team.server()
    try:
        ann, bob = control.get_user(srv.control, "ann"), control.get_user(srv.control, "bob")
        assert ann is not None and bob is not None
        assert srv.require(ann, PROJECT, "approver") == "approver"
        assert srv.require(ann, PROJECT, "writer") == "approver"  # it includes writer
        with pytest.raises(Forbidden, match="admin role needed"):
            srv.require(ann, PROJECT, "admin")
        with pytest.raises(Forbidden, match="approver role needed"):
            srv.require(bob, PROJECT, "approver")
        actor = srv.model_actor(ann, PROJECT, "approver")
        assert (actor.user, actor.role) == ("ann", "approver")
        assert actor.at_least("writer") and not actor.at_least("admin")
    finally:
        srv.close()
    out = team.admin("users", "add", "dora", "--project", PROJECT, "--project-role", "approver")
    assert out.startswith("rbt_")
    with admin.opened(team.db) as c:
        assert {"user": "dora", "role": "approver"} in control.members(c, PROJECT)


# -- protected stages --------------------------------------------------------------------------


def test_protect_unprotect_and_list_with_the_cli(team: Team) -> None:
    out = team.admin("stages", "protect", "production", "--project", PROJECT, "--approvals", "2")
    assert out == (
        "stage production protected in alpha: promoting to it needs two approvers "
        "(one asks, another approves)\n"
    )
    team.admin("stages", "protect", "staging", "--project", PROJECT)
    listed = json.loads(team.admin("stages", "ls", "--project", PROJECT, "--json"))
    assert listed["project"] == PROJECT
    assert [(s["stage"], s["approvals"], s["created_by"]) for s in listed["stages"]] == [
        ("production", 2, None),
        ("staging", 1, None),
    ]
    assert all(isinstance(s["created_at"], float) for s in listed["stages"])
    assert {"project", "stages"} | set(listed["stages"][0]) == _documented(
        "`stages ls --json`:", "by stage"
    )
    assert team.admin("stages", "ls", "--project", PROJECT) == (
        "production\t2 approvals\nstaging\t1 approval\n"
    )
    srv = team.server()
    try:
        assert srv.protected_stages(PROJECT) == {"production": 2, "staging": 1}
        assert dict(srv.model_actor("bob", PROJECT, "writer").protected) == {
            "production": 2,
            "staging": 1,
        }
        assert srv.protected_stages("default") == {}  # per project
        # protecting again changes the approvals
        srv.protect_stage(PROJECT, "production", 1, "carl")
        assert srv.protected_stages(PROJECT)["production"] == 1
    finally:
        srv.close()
    assert "no longer protected" in team.admin(
        "stages", "unprotect", "staging", "--project", PROJECT
    )
    assert team.admin("stages", "ls", "--project", PROJECT) == "production\t1 approval\n"
    # bad input: clear errors, nothing written
    assert "is not protected" in team.admin_fails("stages", "unprotect", "qa", "--project", PROJECT)
    assert "reads as a version" in team.admin_fails(
        "stages", "protect", "latest", "--project", PROJECT
    )
    assert "bad stage name" in team.admin_fails("stages", "protect", "Prod!", "--project", PROJECT)
    assert "no project 'nope'" in team.admin_fails("stages", "protect", "qa", "--project", "nope")
    proc = runbase_cmd("server", "stages", "protect", "qa", "--approvals", "3", "--db", team.db)
    assert proc.returncode == 2 and "3 is not in the range 1<=x<=2" in proc.stderr
    assert team.admin("stages", "ls", "--project", PROJECT) == "production\t1 approval\n"


# -- webhooks ----------------------------------------------------------------------------------


def _add_hook(team: Team, url: str, events: str = "promote,demote") -> tuple[str, str]:
    """``runbase server hooks add``: (hook id, secret printed once)."""
    proc = runbase_cmd(
        "server", "hooks", "add", url, "--project", PROJECT, "--events", events, "--db", team.db,
        check=True,
    )  # fmt: skip
    secret = proc.stdout.strip()
    assert len(secret) == 64 and int(secret, 16) >= 0, proc.stdout  # 32 random bytes, hex
    hook_id = proc.stderr.split()[1]
    assert f"webhook {hook_id} added to {PROJECT}: {url}" in proc.stderr
    return hook_id, secret


def test_a_delivery_is_signed_and_received(team: Team, receiver: Receiver) -> None:
    require("fastapi")
    require("httpx")
    from fastapi.testclient import TestClient

    from runbase.server.app import create_server_app

    hook_id, secret = _add_hook(team, f"{receiver.url}/ok?team=1")
    listed = json.loads(team.admin("hooks", "ls", "--json"))["hooks"]
    assert [(h["id"], h["project"], h["url"], h["events"]) for h in listed] == [
        (hook_id, PROJECT, f"{receiver.url}/ok?team=1", ["promote", "demote"])
    ]
    assert secret not in team.admin("hooks", "ls", "--json")  # shown once, never listed
    assert {"hooks"} | set(listed[0]) == _documented("`hooks ls --json`:", "(never")
    srv = team.server()
    app = create_server_app(ServerConfig(team.db, team.objects), server=srv)
    with TestClient(app):  # the app's lifespan starts the delivery thread
        register = _register(srv)
        promote = _promote(srv, register.version or "")
        posts = wait_until(lambda: receiver.posts("/ok"), what="the webhook POST")
    assert len(posts) == 1  # register is not among the hook's events
    headers, body = posts[0]
    assert _signed(secret, headers, body)
    assert not _signed("another secret", headers, body)
    payload = json.loads(body)
    assert payload == {
        "delivery": headers["X-Runbase-Delivery"],
        "project": PROJECT,
        "event": promote.to_json(),
    }
    assert headers["X-Runbase-Event"] == "promote"
    assert headers["Content-Type"] == "application/json"
    done = _deliveries(team, "--project", PROJECT)
    assert [(d["id"], d["state"], d["attempts"], d["last_status"]) for d in done] == [
        (headers["X-Runbase-Delivery"], "delivered", 1, 200)
    ]
    assert (done[0]["hook"], done[0]["event"], done[0]["action"]) == (
        hook_id,
        promote.id,
        "promote",
    )
    assert isinstance(done[0]["delivered_at"], float) and done[0]["last_error"] is None
    documented = _documented("`hooks deliveries --json`:", "newest first")
    assert {"deliveries"} | set(done[0]) == documented - {"pending", "delivered", "failed"}
    assert set(payload) == _documented("the same bytes on every\nattempt:", "where `event`")


def test_a_change_whose_process_dies_before_the_nudge_is_still_delivered(
    team: Team, receiver: Receiver
) -> None:
    """The registry commits the change in the project's store; the process "dies" before
    anything else happens (no ``on_events`` at all). Another process's delivery thread
    (here a fresh server, as after a restart) finds the event in the log and sends it."""
    _, secret = _add_hook(team, f"{receiver.url}/ok", events="register,promote")
    crashed = team.server()
    try:
        register = _register(crashed, nudge=False)
        promote = _promote(crashed, register.version or "", nudge=False)
    finally:
        crashed.close()
    assert _deliveries(team) == []  # nothing was queued by the dead process
    srv = team.server()
    try:
        srv.deliverer.start()
        posts = wait_until(
            lambda: len(receiver.posts("/ok")) == 2 and receiver.posts("/ok"),
            what="the two deliveries from the log",
        )
    finally:
        srv.close()
    assert [json.loads(b)["event"] for _, b in posts] == [register.to_json(), promote.to_json()]
    assert all(_signed(secret, h, b) for h, b in posts)
    assert [d["state"] for d in _deliveries(team)] == ["delivered", "delivered"]


def test_a_failing_hook_is_retried_until_delivered(team: Team, receiver: Receiver) -> None:
    _, secret = _add_hook(team, f"{receiver.url}/flaky", events="demote")
    srv = team.server()
    try:
        srv.deliverer.start()
        _promote(srv, _register(srv).version or "")
        _demote(srv)
        wait_until(
            lambda: [d["state"] for d in srv.deliveries(PROJECT)] == ["delivered"],
            what="the retried delivery",
        )
    finally:
        srv.close()
    posts = receiver.posts("/flaky")
    assert len(posts) == 2  # a 500, then the 200
    assert posts[0][1] == posts[1][1]  # the same body each attempt, signed each time
    assert posts[0][0]["X-Runbase-Delivery"] == posts[1][0]["X-Runbase-Delivery"]
    assert all(_signed(secret, h, b) for h, b in posts)
    [d] = _deliveries(team)
    assert (d["state"], d["attempts"], d["last_status"], d["last_error"]) == (
        "delivered",
        2,
        200,
        None,
    )


def test_a_hook_that_always_fails_ends_failed_with_its_error(
    team: Team, receiver: Receiver
) -> None:
    _add_hook(team, f"{receiver.url}/down", events="promote")
    _add_hook(team, f"{receiver.url}/moved", events="promote")
    srv = team.server()
    try:
        srv.deliverer.start()
        _promote(srv, _register(srv).version or "")
        wait_until(
            lambda: [d["state"] for d in srv.deliveries(PROJECT)] == ["failed", "failed"],
            what="both deliveries to give up",
        )
    finally:
        srv.close()
    assert len(receiver.posts("/down")) == hooks.MAX_ATTEMPTS == 8
    assert len(receiver.posts("/moved")) == 8
    assert receiver.posts("/ok") == []  # the redirect was not followed
    by_error = {d["last_status"]: d for d in _deliveries(team, "--state", "failed")}
    assert by_error[503]["last_error"] == "HTTP 503: maintenance"
    assert by_error[302]["last_error"] == f"HTTP 302: redirect to {receiver.url}/ok not followed"
    assert all(d["attempts"] == 8 and d["delivered_at"] is None for d in by_error.values())
    text = team.admin("hooks", "deliveries", "--project", PROJECT)
    assert "failed\t8 attempt(s)" in text and "HTTP 503: maintenance" in text


def test_an_unreachable_hook_records_the_network_error(team: Team) -> None:
    with admin.opened(team.db) as c:
        # a port nothing listens on: connection refused at once
        control.add_hook(c, PROJECT, "http://127.0.0.1:9/hook", "promote")
    srv = team.server()
    try:
        _promote(srv, _register(srv).version or "")
        srv.deliverer.run_once()  # queue from the log, then one attempt, on this thread
        [d] = srv.deliveries(PROJECT)
    finally:
        srv.close()
    assert (d["state"], d["attempts"], d["last_status"]) == ("pending", 1, None)
    assert "ConnectionRefusedError" in d["last_error"]


def test_two_processes_never_queue_or_send_one_event_twice(team: Team, receiver: Receiver) -> None:
    hook_id, _ = _add_hook(team, f"{receiver.url}/ok", events="register")
    first, second = team.server(), team.server()  # each its own database connections
    try:
        made = [_register(first, nudge=False) for _ in range(40)]
        # both read the same 40 events and race to queue them: one does, once
        barrier = threading.Barrier(2)
        counts: list[int] = []

        def queue(srv: Server) -> None:
            barrier.wait()
            counts.append(srv.deliverer.queue())

        threads = [threading.Thread(target=queue, args=(s,)) for s in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(counts) == [0, 40]
        queued = first.deliveries(PROJECT)
        assert sorted(d["event"] for d in queued) == sorted(e.id for e in made)
        # a second queuing of the same events is refused by the stale cursor, and one
        # that got past it (here: the cursor given as it now is) by the key
        [(_, _, _, cursor, _)] = accounts.hook_cursors(first.control)
        assert cursor == made[-1].seq
        again = control.delivery_rows(PROJECT, hook_id, "register", [made[0].to_json()], 0.0)
        assert not accounts.queue_deliveries(first.control, hook_id, cursor - 1, cursor, again)
        assert accounts.queue_deliveries(first.control, hook_id, cursor, cursor, again)
        assert len(first.deliveries(PROJECT)) == 40
        first.deliverer.start()
        second.deliverer.start()
        wait_until(
            lambda: all(d["state"] == "delivered" for d in first.deliveries(PROJECT)),
            what="40 deliveries",
        )
    finally:
        first.close()
        second.close()
    sent = [h["X-Runbase-Delivery"] for h, _ in receiver.posts("/ok")]
    assert len(sent) == len(set(sent)) == 40
    assert sorted(json.loads(b)["event"]["seq"] for _, b in receiver.posts("/ok")) == [
        e.seq for e in made
    ]
    assert all(d["attempts"] == 1 for d in _deliveries(team))


def test_a_new_hook_does_not_receive_old_events(team: Team, receiver: Receiver) -> None:
    """A hook starts at the end of its project's log: added through the server (the
    log's last seq) or from the command line (the events made after its creation)."""
    srv = team.server()
    try:
        old = [_register(srv), _register(srv)]
        _promote(srv, old[0].version or "")
        new_hook = srv.add_hook(PROJECT, f"{receiver.url}/ok", "register,promote")
        cli_hook, _ = _add_hook(team, f"{receiver.url}/ok?cli=1", events="register,promote")
        assert srv.deliverer.run_once() == 0  # nothing old is queued
        cursors = {h: c for h, _, _, c, _ in accounts.hook_cursors(srv.control)}
        assert cursors == {new_hook.id: 3, cli_hook: 3}
        fresh = _promote(srv, old[1].version or "")
        assert srv.deliverer.run_once() == 2  # the new event, to each hook
        with pytest.raises(NotFound, match="no project 'nope'"):
            srv.add_hook("nope", f"{receiver.url}/ok", "promote")
    finally:
        srv.close()
    got = [(p, json.loads(b)["event"]["id"]) for p, _, b in receiver.got]
    assert sorted(got) == [("/ok", fresh.id), ("/ok", fresh.id)]
    assert {d["hook"] for d in _deliveries(team)} == {new_hook.id, cli_hook}


def test_hooks_add_starts_at_the_exact_last_seq(team: Team, receiver: Receiver) -> None:
    """`runbase server hooks add` reads the project's log (its store, opened from --db as
    the server opens it) and records the last seq at creation: an event stamped by a
    host whose clock is ahead (its time after the hook's creation) is not sent again,
    and one stamped behind (committed after the hook) is sent. A row of an older
    version, with no cursor, still starts by time."""
    srv = team.server()
    try:
        old = [_register(srv), _register(srv)]
        with srv.store(PROJECT) as store:  # the second came from a host an hour ahead
            store.db.execute(
                "UPDATE model_events SET time = time + 3600 WHERE seq = ?", (old[1].seq,)
            )
        hook_id, _ = _add_hook(team, f"{receiver.url}/ok", events="register,promote")
        cursors = {h: c for h, _, _, c, _ in accounts.hook_cursors(srv.control)}
        assert cursors == {hook_id: old[1].seq}  # set at creation, not by the thread
        late = _promote(srv, old[0].version or "", nudge=False)
        with srv.store(PROJECT) as store:  # ... and this one from a host an hour behind
            store.db.execute(
                "UPDATE model_events SET time = time - 3600 WHERE seq = ?", (late.seq,)
            )
        assert srv.deliverer.run_once() == 1
        # an older row (no cursor): started by its creation time, as before
        with admin.opened(team.db) as c:
            legacy = control.add_hook(c, PROJECT, f"{receiver.url}/ok?old=1", "register")
        assert srv.deliverer.queue() == 0
        cursors = {h: c for h, _, _, c, _ in accounts.hook_cursors(srv.control)}
        # by time: the last event stamped before its creation (the one stamped an hour
        # behind, though committed last; the one stamped ahead is not counted)
        assert cursors[legacy.id] == late.seq
        # a project no request has opened yet: its store is made, its cursor is 0
        with admin.opened(team.db) as c:
            control.add_project(c, "beta")
        fresh = admin.add_hook(team.db, "beta", f"{receiver.url}/ok?beta=1", "promote")
        cursors = {h: c for h, _, _, c, _ in accounts.hook_cursors(srv.control)}
        assert cursors[fresh.id] == 0
    finally:
        srv.close()
    got = [json.loads(b)["event"]["id"] for _, _, b in receiver.got]
    assert got == [late.id]


def _drip_server(interval: float) -> tuple[str, threading.Event, Any]:
    """A receiver that reads the request, then answers one byte every ``interval``
    seconds (each read of the sender within its per-read timeout), for minutes; the
    event is set once the sender has closed the connection under it."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    hung_up = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 3000 + b"\r\n\r\n"
            try:
                for byte in answer:
                    conn.sendall(bytes([byte]))
                    if hung_up.wait(interval):
                        return
            except OSError:
                hung_up.set()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/drip", hung_up, listener


def test_a_slow_drip_receiver_is_cut_off_at_the_deadline() -> None:
    """http.client's timeout is per socket operation: a receiver dripping its answer
    (a byte every 0.1 s, against a 1 s timeout) would hold the attempt for minutes,
    past its lease. The attempt's deadline cuts it off and says so."""
    url, hung_up, listener = _drip_server(0.1)
    try:
        outcome = hooks.post(url, b"{}", {"Content-Type": "application/json"}, 1.0, 1.5)
        assert (outcome.ok, outcome.status) == (False, None)
        assert outcome.error == "no complete answer within 1.5 s (cut off)"
        # the receiver sees the connection closed (no thread left reading it)
        wait_until(hung_up.is_set, what="the hang-up")
    finally:
        listener.close()
    assert hooks.DEADLINE + hooks.TIMEOUT < hooks.LEASE / 2


def test_a_dripped_delivery_is_a_failed_attempt_with_its_error(team: Team) -> None:
    url, hung_up, listener = _drip_server(0.1)
    srv = team.server()
    try:
        with admin.opened(team.db) as c:
            control.add_hook(c, PROJECT, url, "register", after_seq=0)
        _register(srv, nudge=False)
        srv.deliverer.timeout, srv.deliverer.deadline = 1.0, 1.5
        assert srv.deliverer.run_once() == 1  # queued, then one attempt, on this thread
        [d] = srv.deliveries(PROJECT)
        wait_until(hung_up.is_set, what="the hang-up")
    finally:
        srv.close()
        listener.close()
    assert (d["state"], d["attempts"], d["last_status"]) == ("pending", 1, None)
    assert d["last_error"] == "no complete answer within 1.5 s (cut off)"


def test_a_given_secret_and_removing_a_hook(team: Team, receiver: Receiver) -> None:
    secret = "s3cret-s3cret-s3cret"
    proc = runbase_cmd(
        "server", "hooks", "add", f"{receiver.url}/ok", "--project", PROJECT,
        "--events", "promote,demote", "--secret", secret, "--db", team.db, check=True,
    )  # fmt: skip
    assert proc.stdout == ""  # a secret given is not printed back
    hook_id = proc.stderr.split()[1]
    srv = team.server()
    try:
        _promote(srv, _register(srv).version or "")
        srv.deliverer.run_once()
        [(headers, body)] = receiver.posts("/ok")
        assert _signed(secret, headers, body)
        _demote(srv)
        assert srv.deliverer.queue() == 1  # queued, pending when the hook goes
    finally:
        srv.close()
    assert team.admin("hooks", "rm", hook_id) == f"webhook {hook_id} removed\n"
    states = {d["action"]: (d["state"], d["last_error"]) for d in _deliveries(team)}
    assert states == {
        "promote": ("delivered", None),
        "demote": ("failed", "the hook was removed"),
    }
    assert team.admin("hooks", "ls") == ""


def test_bad_hooks_are_refused_at_add(team: Team) -> None:
    for url, said in [
        ("ftp://example.com/x", "use http://HOST/... or https://HOST/..."),
        ("http:///path", "use http://HOST/... or https://HOST/..."),
        ("example.com/hook", "use http://HOST/... or https://HOST/..."),
        ("http://example.com:99999/", "the port is not a number"),
        ("https://user:pw@example.com/", "put no credentials in it"),
        ("http://example.com/a b", "spaces or control characters"),
    ]:
        err = team.admin_fails("hooks", "add", url, "--project", PROJECT, "--events", "promote")
        assert said in err, (url, err)
        assert "pw" not in err
    err = team.admin_fails(
        "hooks", "add", "http://e.com/", "--project", PROJECT, "--events", "deploy"
    )
    assert "bad webhook events deploy" in err and "register, promote, demote" in err
    err = team.admin_fails(
        "hooks", "add", "http://e.com/", "--project", PROJECT, "--events", "promote",
        "--secret", "short",
    )  # fmt: skip
    assert "16 to 256 characters" in err
    assert "no project 'nope'" in team.admin_fails(
        "hooks", "add", "http://e.com/", "--project", "nope", "--events", "promote"
    )
    assert "no webhook 'feedbeef'" in team.admin_fails("hooks", "rm", "feedbeef")
    assert json.loads(team.admin("hooks", "ls", "--json")) == {"hooks": []}


# -- the control schema ------------------------------------------------------------------------


def test_control_tables_of_version_2_are_migrated_to_3(tmp_path: Path) -> None:
    db = tmp_path / "old" / "server.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    for stmt in control.CONTROL_SCHEMA.create("sqlite", version=2):
        conn.execute(stmt)
    conn.execute("INSERT INTO server_meta VALUES ('control_version', '2')")
    conn.execute("INSERT INTO projects VALUES ('default', 0, NULL)")
    conn.commit()
    conn.close()
    proc = runbase_cmd("server", "stages", "ls", "--db", str(db))
    assert proc.returncode == 1 and "older than this runbase" in proc.stderr
    assert (
        "server tables at version 3"
        in runbase_cmd(
            "server", "migrate", "--db", str(db), "--objects", str(tmp_path / "o"), check=True
        ).stdout
    )
    with admin.opened(str(db)) as c:
        assert control.control_version(c) == control.CONTROL_VERSION == 3
        for table in ("protected_stages", "hooks", "hook_deliveries"):
            assert c.query(f"SELECT count(*) FROM {table}") == [(0,)]


# -- through the HTTP API: the app's actor -----------------------------------------------------


def test_the_api_acts_as_the_caller_in_their_project(team: Team, receiver: Receiver) -> None:
    """``app.state.model_actor``: the caller's account and project role, the project's
    protected stages, and its webhooks, on the real routes of the team server."""
    require("fastapi")
    require("httpx")
    from fastapi.testclient import TestClient

    from runbase.server.app import create_server_app
    from runbase.store.hashing import hash_bytes

    tokens = {}
    for name, role in (("ann", "approver"), ("bob", "writer"), ("carl", "approver")):
        team.admin("member", PROJECT, name, role)
        with admin.opened(team.db) as c:
            tokens[name] = {"Authorization": f"Bearer {control.create_token(c, name).secret}"}
    team.admin("stages", "protect", "production", "--project", PROJECT)
    team.admin("stages", "protect", "canary", "--project", PROJECT, "--approvals", "2")
    _, secret = _add_hook(team, f"{receiver.url}/ok", events="register,promote,request,approve")
    srv = team.server()
    api = f"/p/{PROJECT}/api/models"
    with TestClient(create_server_app(ServerConfig(team.db, team.objects), server=srv)) as client:
        data = b"model weights"
        oid = hash_bytes(data)
        r = client.put(f"/p/{PROJECT}/api/objects/{oid}", content=data, headers=tokens["bob"])
        assert r.status_code == 201, r.text
        body = {"oid": oid, "external": True, "message": "weights from elsewhere"}
        r = client.post(f"{api}/churn/versions", json=body, headers=tokens["bob"])
        assert r.status_code == 201, r.text
        [registered] = r.json()["events"]
        assert registered["user"] == "bob"
        # a writer may not promote to a protected stage; an approver may
        promote = {"version": "v0.0.1", "stage": "production", "message": "ship it"}
        r = client.post(f"{api}/churn/promote", json=promote, headers=tokens["bob"])
        assert r.status_code == 403 and "approver" in r.json()["detail"], r.text
        r = client.post(f"{api}/churn/promote", json=promote, headers=tokens["ann"])
        assert r.status_code == 200, r.text
        [promoted] = r.json()["events"]
        assert (promoted["user"], promoted["stage"]) == ("ann", "production")
        # two approvals: a request, which its author cannot approve; another approver does
        canary = {"version": "v0.0.1", "stage": "canary"}
        r = client.post(f"{api}/churn/promote", json=canary, headers=tokens["bob"])
        assert r.status_code == 200, r.text
        [asked] = r.json()["events"]
        assert asked["action"] == "request"
        request_id = asked["data"]["request"]
        r = client.post(f"{api}/requests/{request_id}/approve", json={}, headers=tokens["bob"])
        assert r.status_code == 403, r.text
        r = client.post(f"{api}/requests/{request_id}/approve", json={}, headers=tokens["carl"])
        assert r.status_code == 200, r.text
        approved, promoted_canary = r.json()["events"]
        sent = [registered, promoted, asked, approved, promoted_canary]
        posts = wait_until(
            lambda: len(receiver.posts("/ok")) == len(sent) and receiver.posts("/ok"),
            what="the five deliveries",
        )
    assert all(_signed(secret, h, b) for h, b in posts)
    events = sorted((json.loads(b)["event"] for _, b in posts), key=lambda e: e["seq"])
    assert events == sent  # what the API answered is what the hook received
    assert [e["action"] for e in events] == ["register", "promote", "request", "approve", "promote"]
    assert [e["user"] for e in events] == ["bob", "ann", "bob", "carl", "carl"]
