"""The one SQL layer of runbase.

A thin wrapper over a DB-API connection: SQLite (embedded default, WAL mode) or
PostgreSQL (psycopg 3, ``pip install 'runbase[postgres]'``), chosen by
:func:`open_database`. Queries are written once, with ``?`` placeholders, in SQL both
dialects run alike; the tables are declared in runbase.store.schema. What does differ
is a piece of the Database (``dialect``, ``limit_all``), not a rewrite of the SQL; only
the placeholders are numbered for PostgreSQL (:func:`pg_sql`; docs/store-format.md,
"PostgreSQL").
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from runbase.core import fsname
from runbase.errors import FormatVersionError, StoreError
from runbase.store.schema import SCHEMA_VERSION, STORE_SCHEMA

Row = tuple[Any, ...]
POSTGRES_INSTALL_HINT = "pip install 'runbase[postgres]'"


def open_database(
    url_or_path: str | os.PathLike[str],
    create: bool = False,
    *,
    namespace: str | None = None,
    migrate: bool = True,
    store_schema: bool = True,
) -> Database:
    """The metadata database at ``url_or_path``: ``postgresql://…`` (or ``postgres://…``)
    is PostgreSQL; ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain path
    is SQLite. ``create=True`` creates the schema where there is none.

    ``namespace`` (PostgreSQL): the schema the tables live in, created when ``create``
    (the team server keeps each project in its own). ``migrate=False`` refuses an older
    schema instead of migrating it (``runbase server migrate`` does that on a server).
    ``store_schema=False`` opens the connection only (the server's own tables)."""
    text = os.fspath(url_or_path)
    opts = {"create": create, "migrate": migrate, "store_schema": store_schema}
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase.open(text, namespace=namespace, **opts)
    return SQLiteDatabase.open(sqlite_path(text), **opts)


def sqlite_path(text: str) -> Path:
    """The file of a SQLite URL (``sqlite:///rel.db``, ``sqlite:////abs.db``) or path."""
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"bad SQLite URL {text!r}; use sqlite:///relative/path.db")
        text = rest[1:]
    return Path(text)


class Database:
    """A metadata database: ``query``/``query_one`` (reads), ``execute``/``executemany``
    (each its own transaction) and ``transaction()`` (a cursor whose writes commit
    together; writers queue, one at a time, on both dialects). ``transaction(key)``
    writes only rows of ``key`` (a run's): on PostgreSQL (``keyed_writes``) it waits
    for writers of the same key and for keyless writers only, so the rows of different
    runs are written at once; SQLite has one writer and takes its one lock.

    >>> db = open_database(Path(tmp) / "runbase.db", create=True)   # doctest: +SKIP
    >>> db.query("SELECT count(*) FROM runs")                        # doctest: +SKIP
    [(0,)]
    """

    dialect = "sqlite"
    # OFFSET without a limit: SQLite's grammar needs a LIMIT before OFFSET, and -1 is none
    limit_all = "LIMIT -1"
    # the driver's base exception: errors of a statement, a lost connection, ...
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    # whether transaction(key) lets writers of different keys run at once
    keyed_writes = False

    @classmethod
    def open_sqlite(cls, path: Path, create: bool = False, read_only: bool = False) -> Database:
        if read_only:
            return SQLiteDatabase.open_read_only(path)
        return SQLiteDatabase.open(path, create=create)

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self, key: str | None = None) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cur:
            cur.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction() as cur:
            cur.executemany(sql, rows)

    # -- schema -------------------------------------------------------------------
    _HAS_META = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"

    def _init_schema(self, create: bool, migrate: bool = True, store_schema: bool = True) -> None:
        if not store_schema:
            return
        if not self.has_schema():
            if create:
                self.create_schema()
            else:
                self._wait_for_creator()
        self.check_schema(migrate)

    def _wait_for_creator(self) -> None:
        """Another process may be creating this store: its schema is written in one write
        transaction, so taking the write lock waits (busy timeout) until it is committed,
        instead of reading a database whose tables are not there yet."""
        with self.transaction():
            pass

    def create_schema(self) -> None:
        with self.transaction() as cur:
            # re-checked under the write lock: another process may have just created it
            if cur.execute(self._HAS_META).fetchone():
                return
            for stmt in STORE_SCHEMA.create(self.dialect):
                cur.execute(stmt)
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

    def ping(self) -> None:
        """Raise the driver's error unless the database answers (readiness probes)."""
        self.query_one("SELECT 1")

    def has_schema(self) -> bool:
        return self.query_one(self._HAS_META) is not None

    def schema_version(self) -> int:
        try:
            row = self.query_one("SELECT value FROM meta WHERE key = 'schema_version'")
        except self.errors as e:
            raise StoreError(f"not a runbase metadata database ({e})") from e
        if row is None:
            raise StoreError("metadata database has no schema version")
        return int(row[0])

    def check_schema(self, migrate: bool = True) -> None:
        """Refuse a newer schema; bring an older one forward with the known migrations
        (or, with ``migrate=False``, refuse it too: a server migrates only when told)."""
        v = self.schema_version()
        if v > SCHEMA_VERSION:
            raise FormatVersionError(
                f"the store's database schema is version {v}, newer than this runbase "
                f"understands ({SCHEMA_VERSION}); upgrade runbase: pip install -U runbase"
            )
        if v < SCHEMA_VERSION:
            if v < 1:  # migrations start from version 1 (runbase.store.tables.Schema)
                raise FormatVersionError(
                    f"the store's database schema is version {v}, older than this runbase "
                    f"({SCHEMA_VERSION}); no migration exists for it"
                )
            if not migrate:
                raise FormatVersionError(
                    f"the store's database schema is version {v}, older than this runbase "
                    f"({SCHEMA_VERSION}); run `runbase server migrate` first"
                )
            self.migrate(v)

    def migrate(self, current: int) -> None:
        """Apply the forward migrations from ``current`` (each additive, in one transaction)."""
        with self.transaction() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            v = int(row[0]) if row else current
            while v < SCHEMA_VERSION:
                for stmt in STORE_SCHEMA.migration(v, self.dialect):
                    cur.execute(stmt)
                v += 1
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(v),))


class SQLiteDatabase(Database):
    """SQLite: one connection (WAL, autocommit) shared by the threads of a process,
    writes in ``BEGIN IMMEDIATE``; the threads' transactions and reads take turns."""

    dialect = "sqlite"

    def __init__(
        self, conn: sqlite3.Connection, path: Path | None = None, read_only: bool = False
    ) -> None:
        self.conn = conn
        self.path = path
        self.read_only = read_only
        # reentrant: a nested transaction() still fails as SQLite says, not by deadlock
        self._writer = threading.RLock()

    @classmethod
    def open(
        cls, path: Path, create: bool = False, migrate: bool = True, store_schema: bool = True
    ) -> SQLiteDatabase:
        if not create and not path.exists():
            raise StoreError(f"no metadata database at {path}")
        try:
            # autocommit mode; transactions are explicit (BEGIN IMMEDIATE) so concurrent
            # writers queue on the busy timeout instead of failing with "database is locked".
            conn = sqlite3.connect(
                str(path), timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 60000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode and str(mode[0]).lower() != "wal" and create:
                raise StoreError(f"could not switch {path} to WAL mode (got {mode[0]})")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {path}: {e}") from e
        db = cls(conn, path)
        db._init_schema(create, migrate, store_schema)
        return db

    @classmethod
    def open_read_only(cls, path: Path) -> SQLiteDatabase:
        """A database on a file system this process cannot write (a read-only mount, a
        snapshot): ``mode=ro`` reads a live WAL database when its ``-shm`` file is
        there; otherwise (nothing can create it) the file is read as immutable, as it
        is. Writes fail with a StoreError that says why."""
        if not path.exists():
            raise StoreError(f"no metadata database at {path}")
        uri = path.absolute().as_uri()
        last: Exception | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(
                    f"{uri}?{flags}",
                    uri=True,
                    timeout=60.0,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA busy_timeout = 60000")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as e:
                last = e
                continue
            db = cls(conn, path, read_only=True)
            db.check_schema(migrate=False)
            return db
        raise StoreError(f"cannot open {path} read-only: {last}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    @contextlib.contextmanager
    def transaction(self, key: str | None = None) -> Iterator[sqlite3.Cursor]:
        """A write transaction, taken eagerly so writers queue instead of deadlocking.
        ``key`` changes nothing: SQLite has one writer at a time by design."""
        if self.read_only:
            raise StoreError(
                f"the store at {self.path.parent if self.path else '?'} is read-only: "
                "this command writes to it; use a writable store (--store or $RUNBASE_DIR)"
            )
        with self._writer:
            yield from self._transaction()

    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self.conn.cursor(_Cursor)
        for attempt in range(50):
            try:
                cur.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 49:
                    raise
                time.sleep(0.05)
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    # Reads take the same lock as transactions: one connection serves every thread, and
    # another thread's read must neither run inside an open transaction (seeing its
    # uncommitted rows) nor hold a statement open while that transaction commits. The
    # lock is reentrant, so reads inside a transaction on its own thread go through.
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._writer:
            return self._read(sql, params, all_rows=True)  # type: ignore[return-value]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._writer:
            return self._read(sql, params, all_rows=False)  # type: ignore[return-value]

    def _read(self, sql: str, params: Sequence[Any], all_rows: bool) -> list[Row] | Row | None:
        """One read, robust to odd text: a parameter holding lone surrogates (a file
        name that is not UTF-8) is looked up in its stored form (runbase.core.fsname, by
        _Cursor), and text stored as bytes that are not UTF-8 (another tool, a damaged
        row) reads with U+FFFD instead of failing the whole command, on a retry: the
        common path costs nothing."""
        try:
            return self._fetch(sql, params, all_rows)
        except sqlite3.OperationalError as e:
            if "decode" not in str(e):
                raise
        # under self._writer: no other thread of this connection reads meanwhile
        self.conn.text_factory = _lenient_text
        try:
            return self._fetch(sql, params, all_rows)
        finally:
            self.conn.text_factory = str

    def _fetch(self, sql: str, params: Sequence[Any], all_rows: bool) -> list[Row] | Row | None:
        cur = self.conn.cursor(_Cursor).execute(sql, params)
        return cur.fetchall() if all_rows else cur.fetchone()


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _clean_params(params: Any) -> Any:
    """``params`` with every string that holds lone surrogates in its stored form."""
    if isinstance(params, dict):
        return {k: fsname.clean(v) if isinstance(v, str) else v for k, v in params.items()}
    return tuple(fsname.clean(v) if isinstance(v, str) else v for v in params)


def _needs_clean(row: Any) -> bool:
    values = row.values() if isinstance(row, dict) else row
    return any(v.__class__ is str and fsname.needs_encoding(v) for v in values)


class _Cursor(sqlite3.Cursor):
    """A cursor that never fails on a string SQLite cannot encode: POSIX paths and
    arguments are bytes, and Python holds the undecodable ones as lone surrogates.
    Such a value is written, and looked up, in runbase.core.fsname's stored form
    (lossless, documented in docs/run-record.md) wherever it comes from: one odd file
    name must not stop a run's recording or, worse, every later command that reads
    the store."""

    def execute(self, sql: str, params: Any = (), /) -> _Cursor:
        # a few parameters per statement: checked before (cheap: ASCII is one flag)
        super().execute(sql, _clean_params(params) if _needs_clean(params) else params)
        return self

    def executemany(self, sql: str, rows: Any, /) -> _Cursor:
        # rows bind one by one, after earlier ones ran: clean before, not on retry
        super().executemany(sql, (_clean_params(r) if _needs_clean(r) else r for r in rows))
        return self


# -- PostgreSQL ---------------------------------------------------------------------------

# Every statement is written once, in SQL both dialects run alike; what differs is
# spelled by the Database (``limit_all``), never rewritten here. Only the placeholders
# differ by driver: psycopg's raw cursor takes PostgreSQL's own ``$1, $2, ...`` (no ``%``
# escaping, unlike its ``%s`` style), so each ``?`` outside a string literal or quoted
# identifier is numbered: the one tokenizer left, limited to placeholders because the
# sqlite3 module has no ``$n`` style and psycopg no ``?`` style.
_PLACEHOLDERS = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|\?""")
# an arbitrary constant: the advisory lock every write transaction takes (BEGIN IMMEDIATE)
_WRITE_LOCK = 0x72756E62617365


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """A statement of the library (``?`` placeholders) with PostgreSQL's ``$1, $2, ...``."""
    n = 0

    def number(m: re.Match[str]) -> str:
        nonlocal n
        if m.group(0) != "?":
            return m.group(0)  # a literal or quoted identifier: kept as it is
        n += 1
        return f"${n}"

    return _PLACEHOLDERS.sub(number, sql)


def _pg_value(v: Any) -> Any:
    # SQLite stores NaN as NULL and a bool as 0/1: PostgreSQL is made to do the same.
    if v.__class__ is float and math.isnan(v):
        return None
    if v.__class__ is bool:
        return int(v)
    if v.__class__ is str and fsname.needs_encoding(v):  # see _Cursor
        return fsname.encode(v)
    return v


def _pg_params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_pg_value(v) for v in params)


def _pg_row(row: Row | None) -> Row | None:
    if row is None or not any(v.__class__ is memoryview for v in row):
        return row
    return tuple(bytes(v) if v.__class__ is memoryview else v for v in row)


class _PgCursor:
    """A psycopg raw cursor that takes the library's SQL (``?`` placeholders) and
    returns rows as the sqlite3 module does (tuples, ``bytes``)."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _PgCursor:
        self._cur.execute(pg_sql(sql), _pg_params(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> _PgCursor:
        self._cur.executemany(pg_sql(sql), (_pg_params(r) for r in rows))
        return self

    def fetchone(self) -> Row | None:
        return _pg_row(self._cur.fetchone())

    def fetchall(self) -> list[Row]:
        return [_pg_row(r) for r in self._cur.fetchall()]  # type: ignore[misc]

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class _SharedConnections:
    """The autocommit connections of one database URL, per thread, shared by every
    :class:`PostgresDatabase` of that URL: a team server's projects are namespaces of
    one database, and connections must not multiply with the number of projects. A
    connection is switched to a namespace (``SET search_path``) only while idle, so a
    namespace never changes under an open transaction; a thread that needs another
    database while its connection is in a transaction gets a second connection."""

    def __init__(self, url: str, psycopg: Any) -> None:
        self.url = url
        self.psycopg = psycopg
        self.local = threading.local()
        self.conns: list[tuple[Any, threading.Thread]] = []  # (connection, its thread)
        self.users = 0
        self.lock = threading.Lock()

    def get(self, namespace: str | None) -> Any:
        mine: list[list[Any]] = self.local.__dict__.setdefault("conns", [])
        mine[:] = [e for e in mine if not (e[0].closed or e[0].broken)]  # lost: replaced
        idle = [e for e in mine if e[0].info.transaction_status == _PG_IDLE]
        entry = next((e for e in idle if e[1] == namespace), idle[0] if idle else None)
        if entry is None:
            entry = [self._connect(), _UNSET]
            mine.append(entry)
        if entry[1] != namespace:
            target = quote_ident(namespace) if namespace is not None else "DEFAULT"
            entry[0].execute(f"SET search_path TO {target}")
            entry[1] = namespace
        return entry[0]

    def _connect(self) -> Any:
        self._close_orphans()
        try:
            # raw cursors: PostgreSQL's $n placeholders (see pg_sql); % is not special
            conn = self.psycopg.connect(
                self.url, autocommit=True, cursor_factory=self.psycopg.RawCursor
            )
        except self.psycopg.Error as e:
            raise StoreError(f"cannot connect to {redact_url(self.url)}: {e}") from e
        with self.lock:
            self.conns.append((conn, threading.current_thread()))
        return conn

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended (a server's thread pool
        retires idle threads and starts new ones: their connections must not pile up)."""
        with self.lock:
            dead = [c for c, t in self.conns if not t.is_alive()]
            self.conns = [(c, t) for c, t in self.conns if t.is_alive()]
        for conn in dead:
            with contextlib.suppress(Exception):
                conn.close()

    def close_all(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for conn, _ in conns:
            with contextlib.suppress(Exception):
                conn.close()


_UNSET = object()  # a new connection's namespace: not yet set
_PG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE
_SHARED: dict[str, _SharedConnections] = {}
_SHARED_LOCK = threading.Lock()


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3: autocommit connections per thread (shared by the
    databases of one URL, see :class:`_SharedConnections`); a write transaction first
    takes a transaction-scoped advisory lock, so writers queue one at a time as SQLite's
    ``BEGIN IMMEDIATE`` makes them (read-modify-write code such as spool ingestion
    relies on it). A keyed transaction (the rows of one run: a live delta) takes that
    lock shared and an exclusive lock of its key: keyed writers of different keys run
    at once, and every keyless writer still has the namespace to itself. Reads made
    inside a transaction, on its thread, see its writes."""

    dialect = "postgresql"
    limit_all = "LIMIT ALL"
    keyed_writes = True
    _HAS_META = "SELECT 1 WHERE to_regclass('meta') IS NOT NULL"

    def __init__(self, url: str, psycopg: Any, namespace: str | None = None) -> None:
        self.url = url
        self.path = None
        self.namespace = namespace
        # writers of different namespaces (server projects) do not wait on each other
        self._write_lock = _WRITE_LOCK if namespace is None else _lock_key(namespace)
        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self._local = threading.local()  # .tx: this thread's open transaction's connection
        with _SHARED_LOCK:
            shared = _SHARED.get(url)
            if shared is None:
                shared = _SHARED[url] = _SharedConnections(url, psycopg)
            shared.users += 1
        self._shared: _SharedConnections | None = shared

    @classmethod
    def open(
        cls,
        url: str,
        create: bool = False,
        migrate: bool = True,
        store_schema: bool = True,
        namespace: str | None = None,
    ) -> PostgresDatabase:
        try:
            import psycopg  # lazy: an optional driver (~80 ms), for PostgreSQL only
        except ImportError as e:
            raise StoreError(
                f"a PostgreSQL database needs the psycopg driver: {POSTGRES_INSTALL_HINT} ({e})"
            ) from e
        if not hasattr(psycopg, "RawCursor"):  # psycopg 3.2 (2024) has it
            raise StoreError(f"psycopg {psycopg.__version__} is too old: {POSTGRES_INSTALL_HINT}")
        db = cls(url, psycopg, namespace)
        try:
            if namespace is not None and create:
                # before the search path names it: create the schema on a plain connection
                db._shared_conns().get(None).execute(
                    f"CREATE SCHEMA IF NOT EXISTS {quote_ident(namespace)}"
                )
            db._conn()  # connect now: a bad URL or a server that is down fails here
            db._init_schema(create, migrate, store_schema)
        except BaseException:
            db.close()
            raise
        return db

    def _shared_conns(self) -> _SharedConnections:
        if self._shared is None:
            raise StoreError("the database is closed")
        return self._shared

    def _conn(self) -> Any:
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            return tx
        return self._shared_conns().get(self.namespace)

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with _SHARED_LOCK:
            shared.users -= 1
            last = shared.users == 0
            if last:
                _SHARED.pop(shared.url, None)
        if last:
            shared.close_all()

    @contextlib.contextmanager
    def transaction(self, key: str | None = None) -> Iterator[_PgCursor]:
        outer = getattr(self._local, "tx", None)
        conn = self._conn()
        self._local.tx = conn
        try:
            with conn.transaction(), conn.cursor() as cur:
                if key is None:
                    cur.execute("SELECT pg_advisory_xact_lock($1)", (self._write_lock,))
                else:
                    # the namespace's lock first (shared: a keyless writer waits for the
                    # keyed ones and they for it), then the key's; always in this order
                    cur.execute("SELECT pg_advisory_xact_lock_shared($1)", (self._write_lock,))
                    cur.execute("SELECT pg_advisory_xact_lock($1, $2)", self._key_lock(key))
                yield _PgCursor(cur)
        finally:
            self._local.tx = outer

    def _key_lock(self, key: str) -> tuple[int, int]:
        """The advisory lock of ``key`` in this namespace: the two-int form, a key space
        apart from the namespaces' one-bigint locks (a collision between two keys only
        makes their writers take turns)."""
        return _int32(f"{self.namespace or ''}"), _int32(key)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._conn().cursor() as cur:
            return _PgCursor(cur).execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._conn().cursor() as cur:
            return _PgCursor(cur).execute(sql, params).fetchone()


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _lock_key(namespace: str) -> int:
    """A stable signed 64-bit advisory lock key for ``namespace``."""
    import hashlib  # lazy: only a PostgreSQL namespace needs it (OpenSSL's load)

    return int.from_bytes(
        hashlib.blake2b(namespace.encode(), digest_size=8).digest(), "big", signed=True
    )


def _int32(text: str) -> int:
    """A stable signed 32-bit number for ``text`` (an advisory lock's half)."""
    return zlib.crc32(text.encode()) - (1 << 31)


def redact_url(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
