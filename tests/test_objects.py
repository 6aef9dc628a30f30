"""The object store's write paths, the stat cache's "stored" promise, and progress."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from runbase.capture.files import snapshot_path
from runbase.capture.manifest import file_entry_json, load_manifest, put_manifest
from runbase.core import progress
from runbase.records.maintenance import fsck, gc
from runbase.render import progress as progress_bar
from runbase.store import Store
from runbase.store import objects as objmod
from runbase.store.hashing import hash_bytes, hash_file
from runbase.store.statcache import StatCache


def _old(path: Path) -> None:
    t = time.time() - 600  # the stat cache never keeps files modified within 2 s
    os.utime(path, (t, t))


def _data(tmp_path: Path, n: int = 5) -> Path:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    for i in range(n):
        p = d / ("sub" if i % 2 else "") / f"f{i}.bin"
        p.write_bytes(os.urandom(1000 + i))
        _old(p)
    return d


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "rename"])
def test_both_write_paths_store_read_only_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmpfile: bool
) -> None:
    if tmpfile and not objmod._HAS_TMPFILE:
        pytest.skip("no O_TMPFILE on this platform")
    monkeypatch.setattr(objmod, "_HAS_TMPFILE", tmpfile)
    store = Store.open(tmp_path / "s", create=True)
    for data in (b"", b"hello", os.urandom(5 << 20)):  # the last one goes through a temp file
        oid = store.objects.put_bytes(data)
        assert oid == hash_bytes(data) and store.objects.get_bytes(oid) == data
        assert store.objects.put_bytes(data) == oid  # write-once, no error
        assert os.stat(store.objects.path(oid)).st_mode & 0o777 == 0o444
        big = tmp_path / "big.bin"
        big.write_bytes(data)
        assert store.objects.put_file(big) == (oid, len(data))
    assert os.listdir(store.root / "tmp") == []  # nothing left behind


def test_streamed_writer_matches_whole_bytes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    parts = [os.urandom(700_000) for _ in range(9)]  # > 4 MiB: spills to a temp file
    with store.objects.writer() as w:
        for p in parts:
            w.write(p)
    assert w.oid == hash_bytes(b"".join(parts)) and w.size == 6_300_000
    assert store.objects.get_bytes(w.oid) == b"".join(parts)
    entries = [{"path": f"d/{i}.txt", "type": "f", "oid": w.oid, "size": i} for i in range(3000)]
    oid = put_manifest(store, iter(entries))
    expected = json.dumps(
        {"format": "runbase-tree", "version": 1, "entries": entries},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert store.objects.get_bytes(oid) == expected and load_manifest(store, oid) == entries
    # the fast encoder of file entries writes the same bytes as json.dumps
    odd = [
        {"path": p, "type": "f", "oid": w.oid, "size": 7} for p in ('a"b\\c', "é/ü\n", "x\u2028")
    ]
    fast = put_manifest(store, [file_entry_json(e["path"], e["oid"], e["size"]) for e in odd])
    assert fast == put_manifest(store, odd) and load_manifest(store, fast) == odd


def test_hash_only_then_store_copies_the_bytes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    data = _data(tmp_path)
    oid, _ = snapshot_path(store, str(data), "hash-only")
    blobs = [e["oid"] for e in load_manifest(store, oid)]
    assert not any(store.objects.exists(b) for b in blobs)
    assert snapshot_path(store, str(data), "store")[0] == oid  # a cache hit, not "stored"
    assert all(store.objects.exists(b) for b in blobs)


def test_unchanged_files_are_not_reread_and_changes_are_seen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    data = _data(tmp_path)
    first = snapshot_path(store, str(data))
    f = data / "f0.bin"
    cache = StatCache(store)
    assert cache.lookup(str(f), os.lstat(f)) == (hash_file(f), True)
    f.write_bytes(b"changed")
    _old(f)
    second = snapshot_path(store, str(data))
    assert second != first
    changed = {e["path"]: e["oid"] for e in load_manifest(store, second[0])}["f0.bin"]
    assert changed == hash_bytes(b"changed")
    (data / "sub" / "f1.bin").unlink()  # the directory's row forgets deleted files
    snapshot_path(store, str(data))
    assert StatCache(store).lookup(str(data / "sub" / "f1.bin"), os.lstat(f)) is None


def test_gc_and_fsck_drop_cache_entries_of_objects_they_remove(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", create=True)
    data = _data(tmp_path)
    oid, _ = snapshot_path(store, str(data))  # referenced by no run: garbage
    blobs = [e["oid"] for e in load_manifest(store, oid)]
    report = gc(store, delete=True, grace=0)
    assert {o for o, _ in report.unreferenced} >= set(blobs)
    assert not any(store.objects.exists(b) for b in blobs)
    snapshot_path(store, str(data))  # the cache no longer claims they are stored
    assert all(store.objects.exists(b) for b in blobs)

    # a run refers to the data; one object vanishes: fsck reports it and forgets it
    store.db.execute(
        "INSERT INTO run_files (run_id, role, path, oid, size, stored, source, kind) "
        "VALUES ('r1', 'input', 'data', ?, 1, 1, 'declared', 'dir')",
        (oid,),
    )
    os.chmod(store.objects.path(blobs[0]).parent, 0o755)
    os.unlink(store.objects.path(blobs[0]))
    assert [m[0] for m in fsck(store).missing] == [blobs[0]]
    snapshot_path(store, str(data))
    assert fsck(store).ok


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_tty_and_only_when_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBASE_NO_PROGRESS", raising=False)
    monkeypatch.setattr(progress_bar, "THRESHOLD", 1 << 20)
    monkeypatch.setattr(progress, "_opener", progress_bar.open_bar)  # as the CLI installs it
    store = Store.open(tmp_path / "s", create=True)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)

    tty, pipe = _Tty(), io.StringIO()
    with progress.shown("storing", stream=tty):
        store.objects.put_file(small)
    assert tty.getvalue() == ""  # below the threshold: no bar
    with progress.shown("storing", stream=tty):
        store.objects.put_file(big)
    assert "storing" in tty.getvalue() and "MB" in tty.getvalue()
    with progress.shown("storing", stream=pipe):
        hash_file(big)
    assert pipe.getvalue() == ""  # not a terminal
