"""Tables declared once, as data; their SQL is derived from the declarations.

A :class:`Schema` is a versioned list of :class:`Table` declarations. From it come the
DDL that creates a database at a version, in either dialect (:meth:`Schema.create`),
the forward migration of each version (:meth:`Schema.migration`: the tables, columns
and indexes that version added or dropped, by their ``since``/``until``), and the
column lists that code reading rows generically relies on (the run bundles' whitelist,
runbase.records.bundle). No SQL is parsed anywhere: adding a column is one line here.

>>> t = Table("kv", [Column("k", TEXT, not_null=True), Column("v", BLOB)], key=("k",))
>>> Schema(1, [t]).create("postgresql")
['CREATE TABLE IF NOT EXISTS kv (\\n    "k" TEXT PRIMARY KEY,\\n    "v" BYTEA\\n)']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple  # not dataclasses: opening a store imports no inspect

TEXT = "TEXT"
INTEGER = "INTEGER"
DOUBLE = "DOUBLE PRECISION"  # REAL affinity in SQLite, float8 in PostgreSQL
BLOB = "BLOB"
TYPES = (TEXT, INTEGER, DOUBLE, BLOB)
DIALECTS = ("sqlite", "postgresql")

# PostgreSQL's names where they differ: SQLite's INTEGER is 64-bit, PostgreSQL's 32-bit
# (inode numbers, nanosecond mtimes and steps need BIGINT); BLOB is bytea there.
_PG_TYPES = {INTEGER: "BIGINT", BLOB: "BYTEA"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # table, column and index names: plain, lower case


def sql_type(type_: str, dialect: str) -> str:
    """The name of column type ``type_`` (one of :data:`TYPES`) in ``dialect``."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    return _PG_TYPES.get(type_, type_) if dialect == "postgresql" else type_


def quote(name: str) -> str:
    """A column name as a quoted identifier (some, such as ``offset``, are keywords)."""
    return f'"{name}"'


class Column(NamedTuple):
    """One column. ``not_null`` is what the column guarantees: a primary key column is
    declared ``not_null=True`` (both dialects' rule; a single-column key is written
    ``name TYPE PRIMARY KEY`` as the schema always has been). ``since``: the schema
    version that added the column to an existing table (``ALTER TABLE ... ADD COLUMN``);
    None: it came with its table."""

    name: str
    type: str
    not_null: bool = False
    default: int | None = None  # a constant (the schema only needs integers)
    unique: bool = False
    since: int | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not None

    @property
    def required(self) -> bool:
        """A row cannot be inserted without it."""
        return self.not_null and not self.has_default


class Index(NamedTuple):
    name: str
    columns: tuple[str, ...]
    since: int | None = None  # None: it came with its table


class Table:
    """A table: its columns in their order in the database (a column added later comes
    after the earlier ones, as ``ADD COLUMN`` puts it), its primary key, its indexes,
    the schema version that created it and the one that dropped it (``until``)."""

    def __init__(
        self,
        name: str,
        columns: Iterable[Column],
        *,
        key: tuple[str, ...],
        indexes: Iterable[Index] = (),
        since: int = 1,
        until: int | None = None,
    ) -> None:
        self.name = name
        self.columns: dict[str, Column] = {c.name: c for c in columns}
        self.key = key
        self.indexes = tuple(indexes)
        self.since = since
        self.until = until
        self._check()

    def __repr__(self) -> str:
        return f"Table({self.name!r}, {list(self.columns)!r}, key={self.key!r})"

    def _check(self) -> None:
        if not _NAME.match(self.name) or not self.key:
            raise ValueError(f"bad table declaration {self!r}")
        last = self.since
        for col in self.columns.values():
            if not _NAME.match(col.name) or col.type not in TYPES:
                raise ValueError(f"{self.name}: bad column declaration {col!r}")
            added = self.added(col)
            # ADD COLUMN appends: declaration order must be the order of the versions
            if added < last or (self.until is not None and added >= self.until):
                raise ValueError(f"{self.name}.{col.name}: since {added} out of order")
            last = added
        names = {n for ix in self.indexes for n in ix.columns} | set(self.key)
        if not names <= set(self.columns):
            raise ValueError(f"{self.name}: key or index names an unknown column")
        if any(not self.columns[k].not_null for k in self.key):
            raise ValueError(f"{self.name}: a key column must be declared not_null")

    def added(self, item: Column | Index) -> int:
        """The schema version that added ``item`` (a column or index of this table)."""
        return self.since if item.since is None else item.since

    def exists_at(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version < self.until)

    def at(self, version: int) -> Table:
        """This table as a database of schema ``version`` has it."""
        return Table(
            self.name,
            [c for c in self.columns.values() if self.added(c) <= version],
            key=self.key,
            indexes=[ix for ix in self.indexes if self.added(ix) <= version],
            since=self.since,
            until=self.until,
        )

    # -- DDL ---------------------------------------------------------------------------

    def column_ddl(self, col: Column, dialect: str) -> str:
        parts = [quote(col.name), sql_type(col.type, dialect)]
        if self.key == (col.name,):
            # NOT NULL left implicit, as the schema was always written (SQLite alone
            # then lets a NULL in, which runbase never writes)
            parts.append("PRIMARY KEY")
        elif col.not_null:
            parts.append("NOT NULL")
        if col.unique:
            parts.append("UNIQUE")
        if col.default is not None:
            parts.append(f"DEFAULT {int(col.default)}")
        return " ".join(parts)

    def create_ddl(self, dialect: str) -> list[str]:
        """``CREATE TABLE`` (with every column declared) and ``CREATE INDEX`` statements."""
        lines = [self.column_ddl(c, dialect) for c in self.columns.values()]
        if len(self.key) > 1:
            lines.append(f"PRIMARY KEY ({', '.join(map(quote, self.key))})")
        body = ",\n    ".join(lines)
        return [f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"] + [
            self.index_ddl(ix) for ix in self.indexes
        ]

    def index_ddl(self, ix: Index) -> str:
        cols = ", ".join(map(quote, ix.columns))
        return f"CREATE INDEX IF NOT EXISTS {ix.name} ON {self.name} ({cols})"


class Schema:
    """A versioned set of tables: ``version`` is the current one; versions start at 1."""

    def __init__(self, version: int, tables: Iterable[Table]) -> None:
        self.version = version
        self.tables = tuple(tables)

    def tables_at(self, version: int | None = None) -> list[Table]:
        """The tables of a database of schema ``version`` (default: current)."""
        v = self.version if version is None else version
        return [t.at(v) for t in self.tables if t.exists_at(v)]

    def create(self, dialect: str, version: int | None = None) -> list[str]:
        """The statements creating the schema at ``version`` (default: current)."""
        return [s for t in self.tables_at(version) for s in t.create_ddl(dialect)]

    def migration(self, version: int, dialect: str) -> list[str]:
        """The statements taking a database of schema ``version`` to ``version + 1``:
        each is additive except a dropped table (only caches are ever dropped)."""
        if not 1 <= version < self.version:
            raise ValueError(f"no migration from schema version {version}")
        new = version + 1
        stmts: list[str] = []
        for table in self.tables:
            if table.since == new:
                stmts += table.at(new).create_ddl(dialect)
            elif table.until == new:
                stmts.append(f"DROP TABLE IF EXISTS {table.name}")
            elif table.exists_at(new):
                for col in table.columns.values():
                    if table.added(col) == new:
                        col_sql = table.column_ddl(col, dialect)
                        stmts.append(f"ALTER TABLE {table.name} ADD COLUMN {col_sql}")
                stmts += [table.index_ddl(ix) for ix in table.indexes if table.added(ix) == new]
        return stmts
