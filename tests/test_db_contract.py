"""The SQL layer's contract, run against SQLite and a real, throwaway PostgreSQL.

The same tests, parametrized over both dialects, drive the schema, its migrations and
the statements the library issues (through the library's own functions where
practical). PostgreSQL is a cluster started for the session (initdb + pg_ctl, as user
``postgres`` when the tests run as root); its binaries are required: a machine without
them FAILS these tests (``apt-get install postgresql``; scripts/install-test-deps).
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import _free_port
from runbase.core.query import compile_sort, compile_where
from runbase.core.spool import KIND_KEY, MAGIC, STEP_KEY, TIME_KEY, encode_frame
from runbase.errors import FormatVersionError, StoreError
from runbase.records import ingest, lifecycle, read
from runbase.records.paging import page_rows
from runbase.records.record import build_record
from runbase.records.types import MetricSummary, RunRecord, RunsRow
from runbase.render import views
from runbase.store import Store
from runbase.store.db import Database, open_database, pg_sql
from runbase.store.schema import RUNS, SCHEMA_VERSION, STORE_SCHEMA
from runbase.store.statcache import StatCache
from runbase.store.tables import sql_type

DIALECTS = ["sqlite", "postgresql"]


# -- databases of both dialects (the PostgreSQL cluster: conftest.pg_server) ----------------


_db_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=DIALECTS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each dialect: a SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return _pg_database(request.getfixturevalue("pg_server"), f"t{next(_db_counter)}")


def _pg_database(server: str, name: str) -> str:
    """A fresh, empty PostgreSQL database on ``server``: its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    d = open_database(url, create=True)
    yield d
    d.close()


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[Store]:
    """A store (objects and spool on disk) whose metadata database is ``url``'s."""
    local = Store.open(tmp_path / "store", create=True)
    local.close()
    s = Store(local.root, open_database(url, create=True), local.objects)
    yield s
    s.close()


def _raw(url: str, stmts: list[str]) -> None:
    """Statements run straight on the driver, outside runbase."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        for s in stmts:
            conn.execute(s)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pconn:
            for s in stmts:
                pconn.execute(s)


# -- schema ------------------------------------------------------------------------------------


def test_schema_created_with_version(db: Database, url: str) -> None:
    assert db.dialect == ("sqlite" if url.startswith("sqlite") else "postgresql")
    assert db.has_schema()
    assert db.schema_version() == SCHEMA_VERSION
    for table in ("runs", "params", "tags", "metrics", "metric_chunks", "run_files",
                  "spool_offsets", "stat_dirs"):  # fmt: skip
        assert db.query_one(f"SELECT count(*) FROM {table}") == (0,)
    db.create_schema()  # again: a no-op
    assert db.query("SELECT key, value FROM meta") == [("schema_version", str(SCHEMA_VERSION))]
    # reopening an existing database (create=False) checks it and works
    again = open_database(url)
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_migrations_from_version_1(url: str) -> None:
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    _raw(
        url,
        STORE_SCHEMA.create(dialect, version=1)
        + [
            "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
            "INSERT INTO runs (id, name, status, started_at, command, mode) "
            "VALUES ('r1', 'old', 'finished', 1.5, '[]', 'run')",
            "INSERT INTO stat_cache VALUES ('/a', 1, 2, 3, 4, 'blake3:x')",
        ],
    )
    db = open_database(url)  # check_schema applies every migration on open
    assert db.schema_version() == SCHEMA_VERSION
    assert db.query("SELECT id, name, data_policy, notebook_json FROM runs") == [
        ("r1", "old", None, None)
    ]
    assert db.query("SELECT count(*) FROM run_files") == [(0,)]
    assert db.query("SELECT count(*) FROM stat_dirs") == [(0,)]
    with pytest.raises(db.errors):
        db.query("SELECT count(*) FROM stat_cache")  # dropped by 2 -> 3
    db.close()


def test_newer_schema_refused(db: Database, url: str) -> None:
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.close()
    with pytest.raises(FormatVersionError, match="newer than this runbase"):
        open_database(url)


def _columns(db: Database, table: str) -> list[tuple[str, str, bool, Any]]:
    """``(name, type, NOT NULL, default)`` of each column of ``table``, in order, as the
    database itself reports them (SQLite: PRAGMA table_info; PostgreSQL: the catalog)."""
    if db.dialect == "sqlite":
        return [(r[1], r[2], bool(r[3]), r[4]) for r in db.query(f"PRAGMA table_info({table})")]
    rows = db.query(
        "SELECT column_name, upper(data_type), is_nullable = 'NO', column_default "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [(n, t, bool(nn), d) for n, t, nn, d in rows]


def _tables(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return {r[0] for r in db.query(sql)}


def test_declared_tables_are_the_database(url: str) -> None:
    """The declarations (runbase.store.schema) are what a fresh store has, and what an
    old store migrated from version 1 has, column by column, in either dialect: the
    PostgreSQL DDL differs only in type names."""
    fresh = open_database(url, create=True)
    declared = STORE_SCHEMA.tables_at()
    assert _tables(fresh) == {t.name for t in declared}
    for table in declared:
        want = [
            # a single-column key is written "PRIMARY KEY" alone: SQLite reports it nullable
            (c.name, sql_type(c.type, fresh.dialect),
             c.not_null and (fresh.dialect == "postgresql" or table.key != (c.name,)),
             None if c.default is None else str(c.default))
            for c in table.columns.values()
        ]  # fmt: skip
        assert _columns(fresh, table.name) == want, table.name
    fresh.close()


def test_migrated_store_equals_a_fresh_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    conn = sqlite3.connect(old, isolation_level=None)
    for stmt in STORE_SCHEMA.create("sqlite", version=1):
        conn.execute(stmt)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.close()
    a, b = open_database(old), open_database(new, create=True)

    def shape(db: Database) -> dict[str, Any]:
        return {
            t: (db.query(f"PRAGMA table_info({t})"),
                sorted(db.query(f"PRAGMA index_list({t})"), key=lambda r: r[1]))
            for t in sorted(_tables(db))
        }  # fmt: skip

    assert shape(a) == shape(b)
    a.close()
    b.close()


# -- the library's statements ------------------------------------------------------------------


def _spool(store: Store, run_id: str, entries: list[dict[str, Any]]) -> None:
    path = store.spool_dir(run_id) / "1-test.spool"
    with open(path, "ab") as f:
        if f.tell() == 0:
            f.write(MAGIC)
        f.write(encode_frame(entries))


def test_run_lifecycle_through_the_library(store: Store) -> None:
    big = 1 << 40  # 64-bit steps, past PostgreSQL's 32-bit INTEGER
    run_id = lifecycle.create_run(
        store, command=["python", "t.py"], mode="api", name="first", tags={"team": "vision"}
    )
    lifecycle.record_argv_params(store, run_id, ["t.py", "--lr", "0.1", "--opt", "sgd"])
    lifecycle.record_code(store, run_id, {"commit": "abc123", "dirty": False})
    t = time.time()
    _spool(
        store,
        run_id,
        [
            {"loss": 1.0, TIME_KEY: t, STEP_KEY: big},
            {"loss": 0.5, "acc": 0.5, TIME_KEY: t + 1, STEP_KEY: big + 1},
            {"loss": math.nan, "acc": math.inf, TIME_KEY: t + 2},  # auto step: big + 2
            {KIND_KEY: "param", "key": "lr", "value": "0.2", "source": "inline"},
            {KIND_KEY: "summary", "values": {"f1": math.nan, "best": -math.inf, "acc": 0.75}},
            {KIND_KEY: "tag", "key": "stage", "value": "dev"},
            {KIND_KEY: "name", "name": "renamed"},
        ],
    )
    res = lifecycle.ingest_and_handle(store, run_id)
    assert (res.points, res.entries) == (5, 7)
    assert ingest.ingest(store, run_id).entries == 0  # the offset was recorded: no duplicates
    assert lifecycle.finalize(store, run_id, "finished", exit_code=0)
    assert not lifecycle.finalize(store, run_id, "failed", exit_code=1)  # already final

    run = read.list_runs(store)[0]
    assert (run["id"], run["name"], run["status"], run["exit_code"]) == (
        run_id, "renamed", "finished", 0)  # fmt: skip
    assert run["params"] == {"lr": 0.2, "opt": "sgd"}
    assert run["tags"] == {"team": "vision", "stage": "dev"}
    m = run["metrics"]
    assert m["loss"]["count"] == 3 and math.isnan(m["loss"]["last"])  # NaN: NULL, read as NaN
    assert (m["loss"]["min"], m["loss"]["max"], m["loss"]["step"]) == (0.5, 1.0, big + 2)
    assert m["acc"]["value"] == 0.75 and m["acc"]["last"] == math.inf
    assert math.isnan(m["f1"]["value"]) and m["best"]["value"] == -math.inf
    series = read.series(store, run_id, "loss")
    assert series.steps == [big, big + 1, big + 2]
    assert series.values[:2] == [1.0, 0.5] and math.isnan(series.values[2])
    assert read.resolve(store, run_id[:10]) == run_id
    assert read.resolve(store, "renamed") == run_id


def test_record_has_its_typed_keys(store: Store) -> None:
    """runbase.records.types names every key of a built record, and RunsRow is the
    declared runs table (runbase.store.schema), column for column."""
    run_id = lifecycle.create_run(store, command=["t"], mode="api", name="typed")
    _spool(store, run_id, [{"loss": 1.0, TIME_KEY: time.time(), STEP_KEY: 0}])
    lifecycle.ingest_and_handle(store, run_id)
    lifecycle.finalize(store, run_id, "finished", exit_code=0)
    rec = build_record(store, run_id)
    assert set(rec) == RunRecord.__required_keys__ | RunRecord.__optional_keys__
    assert set(rec["metrics"]["loss"]) == MetricSummary.__required_keys__
    assert list(RunsRow.__annotations__) == list(RUNS.columns)


def test_upserts(db: Database) -> None:
    upsert_meta = (
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    db.execute(upsert_meta, ("packages:x", "a 1"))
    db.execute(upsert_meta, ("packages:x", "b 2"))
    assert db.query("SELECT value FROM meta WHERE key LIKE 'packages:%'") == [("b 2",)]
    ins = "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?) "
    db.executemany(ins + "ON CONFLICT (run_id, key) DO NOTHING",
                   [("r", "lr", "0.1", 0.1, "argv"), ("r", "lr", "0.3", 0.3, "argv")])  # fmt: skip
    config = (
        ins + "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
        "num = excluded.num WHERE params.source = 'config'"
    )
    db.executemany(config, [("r", "lr", "0.5", 0.5, "config"), ("r", "wd", "1", 1, "config")])
    assert db.query("SELECT key, value, num, source FROM params ORDER BY key") == [
        ("lr", "0.1", 0.1, "argv"),  # an argv row is not replaced by a config file's
        ("wd", "1", 1.0, "config"),
    ]
    db.execute(config, ("r", "wd", "2", 2, "config"))
    assert db.query_one("SELECT value FROM params WHERE key = 'wd'") == ("2",)


def test_blobs_and_64_bit_integers(db: Database, store: Store, tmp_path: Path) -> None:
    every_byte = bytes(range(256)) * 3
    db.execute(
        "INSERT INTO metric_chunks (run_id, key, seq, n, steps, times, vals) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("r", "k", 0, 1, every_byte, b"", b"\x00"),
    )
    row = db.query_one("SELECT steps, times, vals FROM metric_chunks WHERE run_id = ?", ("r",))
    assert row == (every_byte, b"", b"\x00") and all(type(v) is bytes for v in row)
    huge = (1 << 63) - 1
    db.execute(
        'INSERT INTO spool_offsets (run_id, file, "offset") VALUES (?, ?, ?) '
        'ON CONFLICT (run_id, file) DO UPDATE SET "offset" = excluded."offset"',
        ("r", "f", huge),
    )
    db.execute(
        "INSERT INTO metrics (run_id, key, count, last_step, has_summary) VALUES (?, ?, ?, ?, ?)",
        ("r", "k", 1 << 33, -(1 << 62), True),  # a bool is stored as 1, as SQLite does
    )
    assert db.query_one('SELECT "offset" FROM spool_offsets') == (huge,)
    assert db.query("SELECT count, last_step, has_summary FROM metrics") == [
        (1 << 33, -(1 << 62), 1)
    ]
    # the stat cache: a marshalled blob per directory (inode numbers, nanosecond mtimes)
    f = tmp_path / "data" / "x.bin"
    f.parent.mkdir()
    f.write_bytes(b"x")
    os.utime(f, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    cache = StatCache(store)
    cache.remember(str(f), os.lstat(f), "blake3:" + "ab" * 32, True)
    cache.save()
    fresh = StatCache(store)
    assert fresh.lookup(str(f), os.lstat(f)) == ("blake3:" + "ab" * 32, True)
    (blob,) = store.db.query_one("SELECT entries FROM stat_dirs")  # type: ignore[misc]
    assert type(blob) is bytes


def test_nan_and_infinities(db: Database) -> None:
    ins = "INSERT INTO metrics (run_id, key, count, last, min, max, has_summary, value) "
    db.executemany(
        ins + "VALUES (?, ?, 1, ?, ?, ?, 0, ?)",
        [("r", "nan", math.nan, math.nan, math.nan, math.nan),
         ("r", "inf", math.inf, -math.inf, math.inf, 1e308)],
    )  # fmt: skip
    rows = db.query("SELECT key, last, min, max, value FROM metrics ORDER BY key")
    assert rows == [("inf", math.inf, -math.inf, math.inf, 1e308), ("nan", None, None, None, None)]
    assert db.query("SELECT key FROM metrics WHERE value > ?", (1e300,)) == [("inf",)]
    summ = read.metric_summary(1, None, None, None, 5, None, 0)
    assert math.isnan(summ["last"])


def test_concurrent_writers(db: Database, store: Store) -> None:
    """Two threads doing read-modify-write transactions: writers queue, none is lost."""
    db.execute("INSERT INTO meta (key, value) VALUES ('counter', '0')")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(40):
                with db.transaction() as cur:
                    (v,) = cur.execute("SELECT value FROM meta WHERE key = 'counter'").fetchone()
                    cur.execute(
                        "UPDATE meta SET value = ? WHERE key = 'counter'", (str(int(v) + 1),)
                    )
            for _ in range(5):
                lifecycle.create_run(store, command=["x"], mode="api")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert db.query_one("SELECT value FROM meta WHERE key = 'counter'") == ("80",)
    assert store.db.query_one("SELECT count(*) FROM runs") == (10,)


def test_a_failed_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as cur:
        cur.execute("INSERT INTO meta (key, value) VALUES ('gone', 'x')")
        raise RuntimeError("boom")
    assert db.query_one("SELECT value FROM meta WHERE key = 'gone'") is None
    with pytest.raises(db.errors):
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', 'dup')")
    assert db.schema_version() == SCHEMA_VERSION  # and the connection is still usable


# -- filters and sorts (runbase ls --where / --sort) -------------------------------------------


def _runs(store: Store) -> dict[str, str]:
    """Five runs with params, metrics and tags; name -> id."""
    specs = [
        ("brisk-otter", {"lr": "0.1", "opt": '"sgd"'}, {"acc": 0.91}, {"team": "vision"}),
        ("brisk-lynx", {"lr": "0.01", "opt": '"adam"'}, {"acc": 0.95}, {}),
        ("calm-heron", {"lr": "0.001"}, {"acc": 0.5}, {"team": "nlp"}),
        ("calm_fox", {"opt": '"a%b"'}, {}, {}),
        ("100%-done", {}, {"acc": math.nan}, {"baseline": ""}),
    ]
    ids: dict[str, str] = {}
    for i, (name, params, metrics, tags) in enumerate(specs):
        run_id = lifecycle.create_run(store, command=["x"], mode="api", name=name, tags=tags)
        store.db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (1000.0 + i, run_id))
        _spool(store, run_id, [
            *({KIND_KEY: "param", "key": k, "value": v} for k, v in params.items()),
            {KIND_KEY: "summary", "values": metrics},
        ])  # fmt: skip
        ingest.ingest(store, run_id)
        ids[name] = run_id
    return ids


WHERE = {
    "params.lr < 0.05": {"brisk-lynx", "calm-heron"},
    "metrics.acc > 0.9": {"brisk-otter", "brisk-lynx"},
    "metrics.acc.count == 0 and metrics.acc.max >= 0.9": {"brisk-otter", "brisk-lynx"},
    'name ~ "brisk-*"': {"brisk-otter", "brisk-lynx"},
    'name ~ "BRISK-*"': {"brisk-otter", "brisk-lynx"},  # ASCII case ignored, as in SQLite
    'name ~ "calm_*"': {"calm_fox"},  # _ and % are literal in a glob
    'name ~ "*%*"': {"100%-done"},
    "name ~ 'c?lm-*'": {"calm-heron"},
    'params.opt ~ "a*"': {"brisk-lynx", "calm_fox"},
    'params.opt == "sgd" or tags.baseline': {"brisk-otter", "100%-done"},
    "tags.team != 'nlp'": {"brisk-otter"},
    "params.lr in (0.1, 0.001)": {"brisk-otter", "calm-heron"},
    "not params.lr and started_at > 1002.5": {"calm_fox", "100%-done"},
    "duration >= 0 and status == 'running' and exit_code == null": {
        "brisk-otter",
        "brisk-lynx",
        "calm-heron",
        "calm_fox",
        "100%-done",
    },  # fmt: skip
}


def test_where_expressions(store: Store) -> None:
    _runs(store)
    for where, expected in WHERE.items():
        got = {r["name"] for r in read.list_runs(store, where, limit=None)}
        assert got == expected, where
        assert read.count_runs(store, where) == len(expected), where


SORTS = {
    "-metrics.acc": ["brisk-lynx", "brisk-otter", "calm-heron", "100%-done", "calm_fox"],
    "metrics.acc": ["calm-heron", "brisk-otter", "brisk-lynx", "100%-done", "calm_fox"],
    "params.lr": ["calm-heron", "brisk-lynx", "brisk-otter", "100%-done", "calm_fox"],
    "-params.opt": ["brisk-otter", "brisk-lynx", "calm_fox", "100%-done", "calm-heron"],
    "name": ["100%-done", "brisk-lynx", "brisk-otter", "calm-heron", "calm_fox"],
    "tags.team, -started_at": [
        "calm-heron",
        "brisk-otter",
        "100%-done",
        "calm_fox",
        "brisk-lynx",
    ],  # fmt: skip
    "": ["100%-done", "calm_fox", "calm-heron", "brisk-lynx", "brisk-otter"],
}


def test_sorts_and_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from runbase.records import paging

    monkeypatch.setattr(paging, "_PROBE_SHARE", 1)  # the walk's probe runs on 5 runs too
    ids = _runs(store)
    names = {v: k for k, v in ids.items()}
    for sort, expected in SORTS.items():
        assert [r["name"] for r in read.list_runs(store, sort=sort, limit=None)] == expected, sort
        order, args = compile_sort(sort)
        rows = store.db.query(f"SELECT runs.name FROM runs ORDER BY {order}", args)
        assert [r[0] for r in rows][: len(expected)] == expected, sort
        cond, cargs = compile_where("started_at > 0")
        for walk in (True, False, None):  # index walked, every run sorted, or probed
            for limit, offset in ((1, 0), (2, 0), (2, 1), (None, 2), (10, 4)):
                got = page_rows(store, cond, cargs, sort, limit, offset, walk=walk)
                want = expected[offset:][:limit] if limit else expected[offset:]
                assert [names[r[0]] for r in got] == want, (sort, walk, limit, offset)


def test_web_views_queries(store: Store) -> None:
    _runs(store)
    keys = views.store_keys(store)  # a recursive CTE walking the key indexes
    assert keys == {"param_keys": ["lr", "opt"], "metric_keys": ["acc"],
                    "tag_keys": ["baseline", "team"]}  # fmt: skip
    page = views.runs_page(store, where="metrics.acc > 0.4", sort="-metrics.acc", limit=2,
                           group_by="tag:team")  # fmt: skip
    assert page["total"] == 3 and [r["name"] for r in page["runs"]] == ["brisk-lynx", "brisk-otter"]
    assert {g["key"]: g["count"] for g in page["groups"]} == {None: 1, "vision": 1, "nlp": 1}


# -- the dialect layer itself -------------------------------------------------------------------


def test_pg_translation(db: Database) -> None:
    """Statements are not rewritten for PostgreSQL: only ``?`` placeholders are numbered
    (outside literals and quoted identifiers); ``%`` needs no escaping (raw cursors), and
    what differs by dialect is a piece the Database spells (``limit_all``)."""
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?' LIMIT -1 OFFSET ?") == (
        "SELECT a FROM t WHERE b = $1 AND c LIKE 'x%?' LIMIT -1 OFFSET $2"
    )
    assert pg_sql("""SELECT "o?" FROM t WHERE s = 'it''s ?' AND x LIKE ? ESCAPE '\\'""") == (
        """SELECT "o?" FROM t WHERE s = 'it''s ?' AND x LIKE $1 ESCAPE '\\'"""
    )
    db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [("a%", "1"), ("b", "2%")])
    rows = db.query(
        f"SELECT key, value, '100%?' FROM meta WHERE key LIKE '_%' AND value <> ? "
        f"ORDER BY key {db.limit_all} OFFSET ?",
        ("x", 1),
    )
    assert rows == [("b", "2%", "100%?"), ("schema_version", str(SCHEMA_VERSION), "100%?")]
    pg = [sql_type(t, "postgresql") for t in ("BLOB", "INTEGER", "DOUBLE PRECISION", "TEXT")]
    assert pg == ["BYTEA", "BIGINT", "DOUBLE PRECISION", "TEXT"]
    assert sql_type("INTEGER", "sqlite") == "INTEGER"


def test_open_database_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = open_database(tmp_path / "a.db", create=True)
    b = open_database(f"sqlite:///{tmp_path / 'b.db'}", create=True)
    monkeypatch.chdir(tmp_path)
    c = open_database("sqlite:///c.db", create=True)
    assert (a.dialect, b.dialect, c.dialect) == ("sqlite",) * 3
    assert all((tmp_path / n).is_file() for n in ("a.db", "b.db", "c.db"))
    for d in (a, b, c):
        d.close()
    with pytest.raises(StoreError, match="no metadata database"):
        open_database(tmp_path / "missing.db")
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)  # not installed
    with pytest.raises(StoreError, match=r"pip install 'runbase\[postgres\]'"):
        open_database("postgresql://nobody@127.0.0.1:1/none")


def test_unreachable_server_is_a_store_error(pg_server: str) -> None:
    port = _free_port()
    with pytest.raises(StoreError, match="cannot connect") as e:
        open_database(f"postgresql://postgres:secret@127.0.0.1:{port}/x?connect_timeout=2")
    assert "secret" not in str(e.value)


def test_namespaces_share_one_connection_per_thread(pg_server: str) -> None:
    """A team server's projects are namespaces of one database: connections must not
    multiply with them, and a namespace never changes under an open transaction."""
    url = _pg_database(pg_server, "nsshare")
    dbs = [open_database(url, create=True, namespace=f"ns{i}") for i in range(6)]
    try:
        for i, d in enumerate(dbs):
            d.execute("INSERT INTO meta (key, value) VALUES ('who', ?)", (str(i),))
        for i, d in enumerate(dbs):
            assert d.query("SELECT value FROM meta WHERE key = 'who'") == [(str(i),)]
        shared = dbs[0]._shared  # type: ignore[attr-defined]
        assert shared is dbs[5]._shared and len(shared.conns) == 1  # type: ignore[attr-defined]
        # a transaction of ns0 open while ns1 is read: ns1 gets a second connection,
        # ns0's own reads see its uncommitted write, and a rollback leaves both right
        with pytest.raises(RuntimeError), dbs[0].transaction() as cur:
            cur.execute("UPDATE meta SET value = 'changed' WHERE key = 'who'")
            assert dbs[0].query("SELECT value FROM meta WHERE key = 'who'") == [("changed",)]
            assert dbs[1].query("SELECT value FROM meta WHERE key = 'who'") == [("1",)]
            raise RuntimeError("roll back")
        assert len(shared.conns) == 2
        for i, d in enumerate(dbs):
            assert d.query("SELECT value FROM meta WHERE key = 'who'") == [(str(i),)]
    finally:
        # the connections of threads that have ended are closed, not piled up
        import threading

        for _ in range(3):
            t = threading.Thread(target=lambda: dbs[2].query("SELECT 1"))
            t.start()
            t.join()
        assert len(shared.conns) <= 3
        conns = [c for c, _ in shared.conns]
        for d in dbs:
            d.close()
    assert shared.conns == [] and all(c.closed for c in conns)
