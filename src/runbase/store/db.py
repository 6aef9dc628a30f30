"""The one SQL layer of runbase.

A thin wrapper over a DB-API connection: SQLite (embedded default, WAL mode) today,
PostgreSQL through the same statements later. Queries are written with ``?``
placeholders and portable SQL; the dialect translates what differs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import FormatVersionError, StoreError
from .schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION

Row = tuple[Any, ...]


class Database:
    """A metadata database connection.

    >>> db = Database.open_sqlite(Path(tmp) / "runbase.db")   # doctest: +SKIP
    >>> db.query("SELECT count(*) FROM runs")                  # doctest: +SKIP
    [(0,)]
    """

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open_sqlite(cls, path: Path, create: bool = False) -> Database:
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
        if create and not db.has_schema():
            db.create_schema()
        db.check_schema()
        return db

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    # -- schema -------------------------------------------------------------------
    def create_schema(self) -> None:
        with self.transaction() as cur:
            # re-checked under the write lock: another process may have just created it
            if cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone():
                return
            for stmt in SCHEMA_V1:
                cur.execute(stmt)
            for version in range(1, SCHEMA_VERSION):
                for stmt in MIGRATIONS[version]:
                    cur.execute(stmt)
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

    def has_schema(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        return row is not None

    def schema_version(self) -> int:
        try:
            row = self.conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"not a runbase metadata database ({e})") from e
        if row is None:
            raise StoreError("metadata database has no schema version")
        return int(row[0])

    def check_schema(self) -> None:
        """Refuse a newer schema; bring an older one forward with the known migrations."""
        v = self.schema_version()
        if v > SCHEMA_VERSION:
            raise FormatVersionError(
                f"the store's database schema is version {v}, newer than this runbase "
                f"understands ({SCHEMA_VERSION}); upgrade runbase: pip install -U runbase"
            )
        if v < SCHEMA_VERSION:
            if any(m not in MIGRATIONS for m in range(v, SCHEMA_VERSION)):
                raise FormatVersionError(
                    f"the store's database schema is version {v}, older than this runbase "
                    f"({SCHEMA_VERSION}); no migration exists for it"
                )
            self.migrate(v)

    def migrate(self, current: int) -> None:
        """Apply the forward migrations from ``current`` (each additive, in one transaction)."""
        with self.transaction() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            v = int(row[0]) if row else current
            while v < SCHEMA_VERSION:
                for stmt in MIGRATIONS[v]:
                    cur.execute(stmt)
                v += 1
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(v),))

    # -- statements ---------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction, taken eagerly so writers queue instead of deadlocking."""
        cur = self.conn.cursor()
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

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.conn.execute(sql, params).fetchone()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cur:
            cur.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction() as cur:
            cur.executemany(sql, rows)
