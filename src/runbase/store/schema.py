"""SQL schema of the metadata store, version by version.

Portable SQL only (SQLite and PostgreSQL): the same statements create both, through
:func:`ddl` (PostgreSQL's type names).
``SCHEMA_VERSION`` is stored in the ``meta`` table; see docs/store-format.md.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 5

# DOUBLE PRECISION is REAL affinity in SQLite and float8 in PostgreSQL; BLOB maps to bytea.
SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        exit_signal INTEGER,
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        heartbeat_at DOUBLE PRECISION,
        command TEXT NOT NULL,
        cwd TEXT,
        user_name TEXT,
        host TEXT,
        project_root TEXT,
        mode TEXT NOT NULL,
        owner_pid INTEGER,
        owner_start TEXT,
        parent_id TEXT,
        sweep_id TEXT,
        reproduces TEXT,
        code_commit TEXT,
        code_json TEXT,
        env_json TEXT,
        packages_id TEXT,
        logs_json TEXT,
        error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status)",
    "CREATE INDEX IF NOT EXISTS runs_name ON runs (name)",
    "CREATE INDEX IF NOT EXISTS runs_commit ON runs (code_commit)",
    "CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id)",
    """CREATE TABLE IF NOT EXISTS params (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        num DOUBLE PRECISION,
        source TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    )""",
    "CREATE INDEX IF NOT EXISTS params_key_num ON params (key, num)",
    """CREATE TABLE IF NOT EXISTS tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    )""",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL,
        last DOUBLE PRECISION,
        min DOUBLE PRECISION,
        max DOUBLE PRECISION,
        last_step INTEGER,
        last_time DOUBLE PRECISION,
        summary DOUBLE PRECISION,
        has_summary INTEGER NOT NULL,
        value DOUBLE PRECISION,
        PRIMARY KEY (run_id, key)
    )""",
    "CREATE INDEX IF NOT EXISTS metrics_key_value ON metrics (key, value)",
    """CREATE TABLE IF NOT EXISTS metric_chunks (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        n INTEGER NOT NULL,
        steps BLOB NOT NULL,
        times BLOB NOT NULL,
        vals BLOB NOT NULL,
        PRIMARY KEY (run_id, key, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS spool_offsets (
        run_id TEXT NOT NULL,
        file TEXT NOT NULL,
        "offset" INTEGER NOT NULL,
        PRIMARY KEY (run_id, file)
    )""",
    """CREATE TABLE IF NOT EXISTS stat_cache (
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        oid TEXT NOT NULL
    )""",
]

# Version 2 (P2, data lineage): the files each run read and wrote.
MIGRATE_1_TO_2 = [
    """CREATE TABLE IF NOT EXISTS run_files (
        run_id TEXT NOT NULL,
        role TEXT NOT NULL,
        path TEXT NOT NULL,
        oid TEXT,
        size INTEGER,
        stored INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        url TEXT,
        changed INTEGER NOT NULL DEFAULT 0,
        kind TEXT,
        PRIMARY KEY (run_id, role, path)
    )""",
    "CREATE INDEX IF NOT EXISTS run_files_oid ON run_files (oid, role)",
    "ALTER TABLE runs ADD COLUMN data_policy TEXT",
]

# Version 3: the stat cache holds one row per directory (loaded as the walk enters it,
# so memory stays flat in the number of files) and knows whether each object is stored.
# The old per-file table is only a cache: dropping it costs one re-hash of each file.
MIGRATE_2_TO_3 = [
    """CREATE TABLE IF NOT EXISTS stat_dirs (
        dir TEXT PRIMARY KEY,
        entries BLOB NOT NULL
    )""",
    "DROP TABLE IF EXISTS stat_cache",
]

# Version 4: the notebook a run came from and the cells it executed (docs/run-record.md).
MIGRATE_3_TO_4 = ["ALTER TABLE runs ADD COLUMN notebook_json TEXT"]

# Version 5: log chunks of a live run published from another machine (a team server's
# projects; a local run's live log is its spool file). Replaced by the log objects of
# ``runs.logs_json`` when the finished run arrives.
MIGRATE_4_TO_5 = [
    """CREATE TABLE IF NOT EXISTS live_logs (
        run_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        "offset" INTEGER NOT NULL,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, stream, "offset")
    )""",
]

# Forward migrations: MIGRATIONS[v] takes a database from version v to v + 1.
MIGRATIONS = {1: MIGRATE_1_TO_2, 2: MIGRATE_2_TO_3, 3: MIGRATE_3_TO_4, 4: MIGRATE_4_TO_5}

# Dialects: the statements above are written once; PostgreSQL's DDL differs only in type
# names. SQLite's INTEGER is 64-bit, PostgreSQL's 32-bit: inode numbers, nanosecond
# mtimes and steps need BIGINT. BLOB is bytea. (DOUBLE PRECISION and TEXT are the same.)
_PG_TYPES = [(re.compile(r"\bINTEGER\b"), "BIGINT"), (re.compile(r"\bBLOB\b"), "BYTEA")]


def ddl(stmt: str, dialect: str) -> str:
    """A schema statement of this module for ``dialect`` (``sqlite`` or ``postgresql``)."""
    if dialect == "postgresql":
        for pattern, repl in _PG_TYPES:
            stmt = pattern.sub(repl, stmt)
    return stmt
