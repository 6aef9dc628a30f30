"""The store: layout, format versions, objects, location rules."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import blake3
import pytest

from runbase.errors import FormatVersionError, StoreError
from runbase.store import FORMAT_VERSION, Store, locate
from runbase.store.hashing import hash_bytes, hash_file


def test_init_creates_documented_layout(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    root = store.root
    assert json.loads((root / "FORMAT").read_text()) == {
        "format": "runbase-store",
        "version": FORMAT_VERSION,
    }
    for sub in ("objects", "spool", "tmp"):
        assert (root / sub).is_dir()
    conn = sqlite3.connect(root / "runbase.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "meta",
        "runs",
        "params",
        "tags",
        "metrics",
        "metric_chunks",
        "stat_dirs",
        "spool_offsets",
    } <= tables


def test_open_without_store_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="runbase init"):
        Store.open(tmp_path / "nope")


@pytest.mark.parametrize("version,word", [(FORMAT_VERSION + 1, "newer"), (0, "older")])
def test_other_format_versions_are_refused(tmp_path: Path, version: int, word: str) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    store.close()
    (tmp_path / ".runbase" / "FORMAT").write_text(
        json.dumps({"format": "runbase-store", "version": version})
    )
    with pytest.raises(FormatVersionError, match=word):
        Store.open(tmp_path / ".runbase")


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / ".runbase", create=True).close()
    conn = sqlite3.connect(tmp_path / ".runbase" / "runbase.db")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(FormatVersionError, match="newer"):
        Store.open(tmp_path / ".runbase")


def test_not_a_store_is_refused(tmp_path: Path) -> None:
    d = tmp_path / ".runbase"
    d.mkdir()
    (d / "FORMAT").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(StoreError, match="not a runbase store"):
        Store.open(d)


def test_object_ids_are_blake3_of_raw_bytes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    data = b"hello\r\nworld\x00"
    oid = store.objects.put_bytes(data)
    assert oid == "blake3:" + blake3.blake3(data).hexdigest()
    path = store.objects.path(oid)
    hexd = oid.split(":")[1]
    assert path == store.root / "objects" / hexd[:2] / hexd[2:]
    assert path.read_bytes() == data
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only (root ignores modes)
    assert path.stat().st_mode & 0o222 == 0
    assert hash_bytes(data) == oid


def test_objects_are_write_once_and_deduplicated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    a = store.objects.put_bytes(b"same")
    b = store.objects.put_bytes(b"same")
    assert a == b
    assert list(store.objects) == [a]
    assert list((store.root / "tmp").iterdir()) == []  # no temp files left behind


def test_put_file_hashes_what_it_copies(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(9 << 20))  # above the multi-threaded hashing threshold
    oid, size = store.objects.put_file(f)
    assert size == 9 << 20
    assert oid == hash_file(f) == "blake3:" + blake3.blake3(f.read_bytes()).hexdigest()
    # a wrong "known" id that is not stored falls back to hashing the real bytes
    oid2, _ = store.objects.put_file(f, known_id="blake3:" + "0" * 64)
    assert oid2 == oid


def test_locate_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "a" / "b").mkdir(parents=True)
    (repo / ".git").mkdir()
    assert locate(cwd=repo / "a" / "b") == repo / ".runbase"  # git top level
    plain = tmp_path / "plain"
    plain.mkdir()
    assert locate(cwd=plain) == plain / ".runbase"  # cwd outside git
    Store.open(plain / ".runbase", create=True).close()
    (plain / "sub").mkdir()
    assert locate(cwd=plain / "sub") == plain / ".runbase"  # nearest existing store
    monkeypatch.setenv("RUNBASE_DIR", str(tmp_path / "elsewhere"))
    assert locate(cwd=repo) == tmp_path / "elsewhere"
    assert locate("explicit", cwd=repo) == Path("explicit").absolute()


def test_a_store_opened_while_another_process_creates_it_waits_for_its_schema(
    tmp_path: Path,
) -> None:
    """The creator writes the schema in one write transaction; a reader that opens the
    file in between waits for it instead of calling it 'not a runbase database'."""
    import threading

    from runbase.store.db import SQLiteDatabase
    from runbase.store.schema import SCHEMA_VERSION, STORE_SCHEMA

    path = tmp_path / "runbase.db"
    locked, opened = threading.Event(), threading.Event()

    def creator() -> None:
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")  # as SQLiteDatabase.open does first
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        opened.wait(0.5)  # the reader is (most likely) waiting on the lock by now
        for stmt in STORE_SCHEMA.create("sqlite"):
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        conn.execute("COMMIT")
        conn.close()

    t = threading.Thread(target=creator)
    t.start()
    locked.wait(10)
    db = SQLiteDatabase.open(path, create=False)
    opened.set()
    t.join()
    assert db.schema_version() == SCHEMA_VERSION
    db.close()
