"""Issue 14.3: no corrupted byte is handed back.

A flipped byte in a code object and a truncated data object, made on the disk of a real
store, are refused by `runbase checkout` and `runbase reproduce` (which never says
"reproduced" on them), naming the object and the run and suggesting `runbase fsck` /
`runbase pull --data`; nothing half-written is left at the destination. Every reading
call of the object layer verifies what it read; the server's object download does too.
A missing log object is a clear message from `runbase logs`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from sec_runkit import Made, clone, make_run

from conftest import require, runbase_cmd, start_server
from runbase.store.hashing import hash_bytes
from runbase.store.objects import CorruptObject, LocalObjects


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_run(tmp_path_factory.mktemp("made"))


@pytest.fixture
def mine(made: Made, tmp_path: Path) -> Made:
    return clone(made, tmp_path)


def flip(path: Path, at: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _says_corrupt(r: object, oid: str, run_id: str) -> None:
    out = r.stdout + r.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in out, out
    assert oid in out and run_id in out and "corrupted" in out, out
    assert "runbase fsck" in out and "runbase pull --data" in out, out


def test_flipped_code_byte_refused_by_checkout(mine: Made, tmp_path: Path) -> None:
    oid = mine.code_oid()
    flip(mine.object_path(oid), 10)
    target = tmp_path / "target"
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), "--code", cwd=mine.root)
    assert r.returncode == 1
    _says_corrupt(r, oid, mine.run_id)
    assert not (target / "train.py").exists()
    leftovers = [p.name for p in target.rglob("*") if ".runbase-" in p.name]
    assert leftovers == []  # the temp file of the refused copy is gone
    # the bad copy is moved aside: the store no longer claims it, fsck names it missing
    assert not mine.object_path(oid).exists()
    assert (mine.store / "corrupt" / oid.split(":")[1]).exists()
    r = runbase_cmd("fsck", cwd=mine.root)
    assert r.returncode == 1 and oid in r.stderr


def test_truncated_data_refused_by_checkout_and_reproduce(mine: Made, tmp_path: Path) -> None:
    oid = mine.input_oid()
    truncate(mine.object_path(oid))
    target = tmp_path / "target"
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
    assert r.returncode == 1
    _says_corrupt(r, oid, mine.run_id)
    assert not (target / "data" / "in.csv").exists()
    # put the truncated copy back where it was: reproduce meets it too
    shutil.copy(mine.store / "corrupt" / oid.split(":")[1], mine.object_path(oid))
    r = runbase_cmd("reproduce", mine.run_id, cwd=mine.root)
    assert r.returncode != 0 and "reproduced" not in r.stdout, r.stdout
    _says_corrupt(r, oid, mine.run_id)
    n_runs = runbase_cmd("ls", "--json", cwd=mine.root, check=True).stdout
    assert len(json.loads(n_runs)) == 1  # nothing was re-run on the bad bytes


def test_flipped_code_byte_refused_by_reproduce(mine: Made) -> None:
    oid = mine.code_oid()
    flip(mine.object_path(oid), 0)
    r = runbase_cmd("reproduce", mine.run_id, cwd=mine.root)
    assert r.returncode != 0 and "reproduced" not in r.stdout
    _says_corrupt(r, oid, mine.run_id)


def test_good_checkout_still_byte_identical(mine: Made, tmp_path: Path) -> None:
    target = tmp_path / "target"
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
    assert r.returncode == 0, r.stderr
    for rel in ("train.py", "data/in.csv"):
        assert (target / rel).read_bytes() == (mine.root / rel).read_bytes()


def test_every_read_of_the_object_layer_verifies(tmp_path: Path) -> None:
    objs = LocalObjects(tmp_path / "objects")
    data = os.urandom(3 << 20)  # several chunks
    oid = objs.put_bytes(data)
    small = objs.put_bytes(b"small object")
    assert objs.get_bytes(oid) == data
    assert b"".join(objs.iter_bytes(oid)) == data
    assert objs.read_range(oid, 5, 10) == data[5:15]
    for o in (oid, small):
        os.chmod(objs.path(o), 0o644)
    truncate(objs.path(oid))
    flip(objs.path(small), 3)

    def put_back(o: str) -> None:
        """A refused object is moved aside to corrupt/: put it back for the next reader."""
        if not objs.path(o).exists():
            shutil.copy(tmp_path / "corrupt" / o.split(":")[1], objs.path(o))

    fresh = LocalObjects(tmp_path / "objects")  # `objs` verified `oid` for read_range
    for read in (
        lambda o: fresh.get_bytes(o),
        lambda o: b"".join(fresh.iter_bytes(o)),
        lambda o: fresh.read_range(o, 0, 4),
    ):
        for o in (oid, small):
            put_back(o)
            with pytest.raises(CorruptObject) as e:
                read(o)
            assert e.value.oid == o and e.value.actual != o
            assert not objs.path(o).exists()
    put_back(small)
    fd = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with pytest.raises(CorruptObject):
            fresh.copy_to(small, fd)
    finally:
        os.close(fd)
    good = fresh.put_bytes(b"good bytes")
    fd = os.open(tmp_path / "copy2", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert fresh.copy_to(good, fd) == len(b"good bytes")
    finally:
        os.close(fd)
    assert (tmp_path / "copy2").read_bytes() == b"good bytes"
    assert hash_bytes(b"good bytes") == good


def test_logs_with_a_missing_object(mine: Made) -> None:
    row = runbase_cmd("show", mine.run_id, "--json", cwd=mine.root, check=True).stdout
    logs = json.loads(row).get("logs") or {}
    oid = (logs.get("output") or {}).get("oid")
    assert oid, logs
    mine.object_path(oid).unlink()
    r = runbase_cmd("logs", mine.run_id, cwd=mine.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert oid in r.stderr and "runbase pull" in r.stderr


def test_pull_data_brings_a_good_copy_back(mine: Made, tmp_path: Path) -> None:
    """The remedy the error suggests works: a refused object is moved aside, and
    `runbase pull --data` fetches a good copy from a real server that has one."""
    require("fastapi")
    from runbase.server import admin

    db, objects = str(tmp_path / "server.db"), str(tmp_path / "objects")
    admin.migrate(db, objects)
    token = admin.add_user(db, "alice").secret
    server = start_server(db, objects, log_dir=tmp_path)
    try:
        runbase_cmd("login", server.url, "--token", token, cwd=mine.root, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=mine.root, check=True)
        runbase_cmd("push", mine.run_id, cwd=mine.root, check=True)
        oid = mine.input_oid()
        truncate(mine.object_path(oid))
        target = tmp_path / "target"
        r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
        assert r.returncode == 1 and oid in r.stderr
        runbase_cmd("pull", "--data", mine.run_id, cwd=mine.root, check=True)
        r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
        assert r.returncode == 0, r.stderr
        assert (target / "data" / "in.csv").read_bytes() == (mine.root / "data/in.csv").read_bytes()
    finally:
        server.stop()


def test_pull_refuses_a_corrupted_server_copy(mine: Made, tmp_path: Path) -> None:
    """A damaged object on the server is never stored by a pull (nor served whole)."""
    require("fastapi")
    from runbase.server import admin

    db, objects = str(tmp_path / "server.db"), tmp_path / "objects"
    admin.migrate(db, str(objects))
    token = admin.add_user(db, "alice").secret
    server = start_server(db, str(objects), log_dir=tmp_path)
    try:
        runbase_cmd("login", server.url, "--token", token, cwd=mine.root, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=mine.root, check=True)
        runbase_cmd("push", mine.run_id, cwd=mine.root, check=True)
        oid = mine.code_oid()
        on_server = objects / "objects" / oid[7:9] / oid[9:]
        if not on_server.exists():
            on_server = objects / oid[7:9] / oid[9:]
        os.chmod(on_server, 0o644)
        flip(on_server, 5)
        other = tmp_path / "other"
        other.mkdir()
        runbase_cmd("init", cwd=other)
        r = runbase_cmd("pull", mine.run_id, cwd=other, timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert oid in r.stderr, r.stderr
        for store in other.rglob("objects"):
            assert not (store / oid[7:9] / oid[9:]).exists()
    finally:
        server.stop()
