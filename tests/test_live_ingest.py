"""Live deltas of many runs of one project at once (issue 21, the per-project ingest
ceiling). On PostgreSQL a delta of a running run takes its run's lock (and the project's
shared), not the project's write lock, so the deltas of different runs are written at
once; SQLite keeps its one writer. Real parts: a real team server (SQLite; PostgreSQL
with two worker processes), real ``Publisher`` deltas from a real local store, and the
advisory locks read from PostgreSQL's own ``pg_locks``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import runbase_cmd, start_server
from runbase.core.spool import STEP_KEY, TIME_KEY
from runbase.records import lifecycle
from runbase.records.bundle import export_delta
from runbase.remote.client import Client, Remote
from runbase.remote.publish import Publisher
from runbase.server.control import project_db_location
from runbase.store import Store
from runbase.store.db import PostgresDatabase
from runbase.tracking.tracker import Tracker
from serverkit import PROJECT, TeamServer

KEYS = ("loss", "acc", "lr")
WAIT = 60.0  # a bound on waits that only a deadlock or a hung server would reach


class SpoolOnly(Tracker):
    """A run's spool that the test flushes itself (no flush thread of its own)."""

    def _start(self) -> None:
        self._open_spool()


@pytest.fixture(params=["sqlite", "postgres"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TeamServer]:
    """A real team server with a writer, alice: SQLite (one worker) or a fresh
    PostgreSQL database served by two worker processes."""
    if request.param == "sqlite":
        db, workers = str(tmp_path / "server.db"), 1
    else:
        db, workers = _pg_database(request.getfixturevalue("pg_server")), 2
    objects = tmp_path / "objects"
    runbase_cmd("server", "migrate", "--db", db, "--objects", str(objects), check=True)
    srv = TeamServer(
        db, objects, tmp_path, start_server(db, str(objects), workers=workers, log_dir=tmp_path)
    )
    try:
        srv.add_user("alice", "writer")
        yield srv
    finally:
        srv.server.stop()


def _pg_database(server: str) -> str:
    import psycopg

    name = f"live_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def _log(store: Store, spool: SpoolOnly, run_id: str, steps: range) -> None:
    """Log ``steps`` of every key (value: step + key index) and ingest them, as a run's
    supervisor does."""
    for step in steps:
        entry: dict[str, Any] = {TIME_KEY: time.time(), STEP_KEY: step}
        entry.update({k: float(step + i) for i, k in enumerate(KEYS)})
        spool.buf.append(entry)
    spool.flush()
    lifecycle.ingest_live(store, run_id, time.monotonic())


def _all_at_once(n: int, work: Callable[[int], None]) -> None:
    """``work(i)`` for i < n, each on its own thread, started together; errors raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(WAIT)
            work(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads), "a publisher hung"
    if errors:
        raise errors[0]


def _series(srv: TeamServer, run_id: str, key: str) -> tuple[list[int], list[float]]:
    status, body = srv.request("alice", "GET", f"/p/{PROJECT}/api/runs/{run_id}/series/{key}")
    assert status == 200, body
    assert not body["downsampled"]
    return body["steps"], body["values"]


def test_many_live_publishers_of_one_project_all_land(team: TeamServer, tmp_path: Path) -> None:
    """12 runs of one project publish live at once, 4 rounds of 2 steps: every point of
    every run is on the server, in order, and every run is still running there."""
    n_runs, rounds = 12, 4
    store = Store.open(tmp_path / "local", create=True)
    remote = Remote("team", team.url, PROJECT, team.tokens["alice"])
    runs = [
        lifecycle.create_run(store, command=["python", "t.py"], mode="run", name=f"trial-{i}")
        for i in range(n_runs)
    ]
    spools = [SpoolOnly(r, str(store.root)) for r in runs]
    pubs = [Publisher(store.root, remote, r) for r in runs]
    ingest = threading.Lock()  # the local store's writes: one ingest at a time here

    for rnd in range(rounds):

        def publish(i: int, rnd: int = rnd) -> None:
            with ingest:
                _log(store, spools[i], runs[i], range(2 * rnd, 2 * rnd + 2))
            assert pubs[i].tick(), f"delta {rnd} of run {i} was refused"

        _all_at_once(n_runs, publish)
    for sp in spools:
        sp.close()
    for r in runs:
        status, body = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{r}")
        assert status == 200, body
        assert body["status"] == "running"
        assert {s["key"]: s["count"] for s in body["series"]} == {k: 2 * rounds for k in KEYS}
        for i, key in enumerate(KEYS):
            steps, values = _series(team, r, key)
            assert steps == list(range(2 * rounds))
            assert values == [float(s + i) for s in steps]
    store.close()


def test_two_deltas_of_one_run_never_interleave(team: TeamServer, tmp_path: Path) -> None:
    """Two deltas of one run sent at once, 6 times over: each is written whole before
    the other (the run's tag and its metric summary always from the same delta), and
    the points of both are all there, in order."""
    store = Store.open(tmp_path / "local", create=True)
    remote = Remote("team", team.url, PROJECT, team.tokens["alice"])
    rid = lifecycle.create_run(store, command=["python", "t.py"], mode="run", name="one")
    spool = SpoolOnly(rid, str(store.root))
    pub = Publisher(store.root, remote, rid)
    assert pub.tick()  # the run exists on the server: what follows are its live deltas
    sent: dict[str, int] = {}
    steps_logged = 0
    for _ in range(6):
        pair = []
        for writer in ("A", "B"):
            _log(store, spool, rid, range(steps_logged, steps_logged + 3))
            steps_logged += 3
            delta = export_delta(store, rid, sent)
            for row in delta["metric_chunks"]:
                sent[row["key"]] = max(sent.get(row["key"], -1), row["seq"])
            delta["tags"] = [*delta["tags"], {"run_id": rid, "key": "writer", "value": writer}]
            pair.append(delta)
        counts = {d2["tags"][-1]["value"]: _count(d2, "loss") for d2 in pair}

        def send(i: int, pair: list[dict[str, Any]] = pair) -> None:
            pub.client.send_json("POST", f"{remote.api}/runs/{rid}/live", pair[i])

        _all_at_once(2, send)
        status, body = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{rid}")
        assert status == 200, body
        writer = body["tags"]["writer"]
        assert body["metrics"]["loss"]["count"] == counts[writer], (writer, counts)
    spool.close()
    for i, key in enumerate(KEYS):
        steps, values = _series(team, rid, key)
        assert steps == list(range(steps_logged))
        assert values == [float(s + i) for s in steps]
    store.close()


def _count(delta: dict[str, Any], key: str) -> int:
    return next(int(m["count"]) for m in delta["metrics"] if m["key"] == key)


# -- the locks themselves (PostgreSQL: what pg_locks says) -----------------------------------


@pytest.fixture
def pg_pair(pg_server: str) -> Iterator[tuple[PostgresDatabase, str]]:
    """A project namespace of a fresh PostgreSQL database, and the database's URL."""
    url = _pg_database(pg_server)
    db = PostgresDatabase.open(url, create=True, namespace="proj")
    yield db, url
    db.close()


class _Holder:
    """A write transaction held open on its own thread until :meth:`release`."""

    def __init__(self, db: PostgresDatabase, key: str | None) -> None:
        self.inside, self.done = threading.Event(), threading.Event()
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(db, key))
        self._thread.start()

    def _run(self, db: PostgresDatabase, key: str | None) -> None:
        with db.transaction(key):
            self.inside.set()
            self._go.wait(WAIT)
        self.done.set()

    def let_go(self) -> None:
        """End the transaction (a failed test's cleanup: nothing waited for)."""
        self._go.set()

    def release(self) -> None:
        self._go.set()
        self._thread.join(WAIT)
        assert self.done.is_set()


def _waiting(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return int(row[0]) if row else 0


def _until_waiting(url: str, holder: _Holder) -> None:
    """Until PostgreSQL shows a writer queued on an advisory lock (it must not get in)."""
    deadline = time.monotonic() + WAIT
    while _waiting(url) == 0:
        assert not holder.inside.is_set(), "the second writer did not wait"
        assert time.monotonic() < deadline, "the second writer neither waited nor got in"
        time.sleep(0.02)
    assert not holder.inside.is_set()


@pytest.mark.parametrize(
    ("first", "second", "waits"),
    [
        ("run-1", "run-2", False),  # two runs' deltas: written at once
        ("run-1", "run-1", True),  # two deltas of one run: one after the other
        ("run-1", None, True),  # a project-wide writer waits for a delta ...
        (None, "run-1", True),  # ... and a delta for it
    ],
)
def test_keyed_transactions_wait_only_for_their_key_and_keyless_writers(
    pg_pair: tuple[PostgresDatabase, str], first: str | None, second: str | None, waits: bool
) -> None:
    db, url = pg_pair
    one = _Holder(db, first)
    assert one.inside.wait(WAIT)
    two = _Holder(db, second)
    if waits:
        _until_waiting(url, two)
        one.release()
        assert two.inside.wait(WAIT)
        two.release()
    else:
        assert two.inside.wait(WAIT), "a delta of another run waited for this one"
        two.release()
        one.release()


# -- the server's live route takes the run's lock (PostgreSQL) ---------------------------------


class _Send:
    """One request sent on its own thread: ``done`` once answered, ``error`` if refused."""

    def __init__(self, client: Client, path: str, body: dict[str, Any]) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(client, path, body))
        self._thread.start()

    def _run(self, client: Client, path: str, body: dict[str, Any]) -> None:
        try:
            client.send_json("POST", path, body)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test by landed()
            self.error = e
        self.done.set()

    def landed(self) -> None:
        self._thread.join(WAIT)
        assert self.done.is_set(), "the request hung"
        if self.error is not None:
            raise self.error


def _advisory_waits(url: str, subid: int) -> int:
    """Writers of this database queued on an advisory lock that another holds, of the
    two-int form (``subid`` 2: a run's key) or the one-bigint form (1: a project's)."""
    import psycopg

    sql = """
        SELECT count(*) FROM pg_locks w
        WHERE w.locktype = 'advisory' AND NOT w.granted AND w.objsubid = %(s)s
          AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND EXISTS (SELECT 1 FROM pg_locks g WHERE g.locktype = 'advisory' AND g.granted
                      AND g.database = w.database AND g.classid = w.classid
                      AND g.objid = w.objid AND g.objsubid = w.objsubid)"""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, {"s": subid}).fetchone()
    return int(row[0]) if row else 0


def _any_advisory_wait(url: str) -> bool:
    return _advisory_waits(url, 1) + _advisory_waits(url, 2) > 0


def _queued_on(url: str, subid: int, send: _Send) -> None:
    """Until PostgreSQL shows ``send``'s writer queued on a lock of form ``subid``; the
    request must not be answered meanwhile (it waits for the held lock)."""
    deadline = time.monotonic() + WAIT
    while _advisory_waits(url, subid) == 0:
        assert not send.done.is_set(), f"the request did not wait ({send.error})"
        assert time.monotonic() < deadline, "the request neither waited nor was answered"
        time.sleep(0.02)
    assert not send.done.is_set()


@pytest.mark.parametrize("team", ["postgres"], indirect=True)
def test_a_live_delta_takes_its_runs_lock_a_creation_the_projects(
    team: TeamServer, tmp_path: Path
) -> None:
    """On the server, with run A's delta held mid-write (its run's key lock and the
    project's shared, on a connection of our own): a live delta of run B is written at
    once; a delta of A queues on A's key until it is released; a new run's first delta
    (a creation) queues on the project's lock. Without the live route's ``run_lock``, B's
    delta would queue on the project's lock behind A's."""
    store = Store.open(tmp_path / "local", create=True)
    remote = Remote("team", team.url, PROJECT, team.tokens["alice"])
    client = Client(remote.url, remote.token, retry_for=0.0, timeout=WAIT)
    run_a, run_b = (
        lifecycle.create_run(store, command=["python", "t.py"], mode="run", name=n)
        for n in ("a", "b")
    )
    spools = {r: SpoolOnly(r, str(store.root)) for r in (run_a, run_b)}
    for r in (run_a, run_b):  # both exist on the server: what follows are live deltas
        assert Publisher(store.root, remote, r).tick()
        _log(store, spools[r], r, range(3))
    sent: dict[str, int] = {}  # nothing sent of either run's points yet
    url, namespace = project_db_location(team.db, PROJECT)
    db = PostgresDatabase.open(url, namespace=namespace)
    held = _Holder(db, run_a)  # a delta of A, mid-write
    try:
        assert held.inside.wait(WAIT)
        b = _Send(client, f"{remote.api}/runs/{run_b}/live", export_delta(store, run_b, sent))
        while not b.done.wait(0.02):
            assert not _any_advisory_wait(url), "B's delta waited for A's"
        b.landed()
        a = _Send(client, f"{remote.api}/runs/{run_a}/live", export_delta(store, run_a, sent))
        _queued_on(url, 2, a)  # on A's key
        held.release()
        a.landed()
        for r in (run_a, run_b):
            assert _series(team, r, "loss")[0] == [0, 1, 2]

        run_c = lifecycle.create_run(store, command=["python", "t.py"], mode="run", name="c")
        held = _Holder(db, run_a)
        assert held.inside.wait(WAIT)
        c = _Send(client, f"{remote.api}/runs/{run_c}/live", export_delta(store, run_c, {}))
        _queued_on(url, 1, c)  # on the project's lock
        held.release()
        c.landed()
        status, body = team.request("alice", "GET", f"/p/{PROJECT}/api/runs/{run_c}")
        assert status == 200 and body["status"] == "running", body
    finally:
        held.let_go()
        db.close()
        for sp in spools.values():
            sp.close()
        store.close()
