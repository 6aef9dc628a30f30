"""Objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...): the interface of
:class:`~runbase.store.objects.LocalObjects`, for a team server.

Keys follow the local layout under the URL's prefix: ``s3://bucket/team`` keeps the
object ``blake3:abcdef…`` at ``team/objects/ab/cdef…``. Objects are written once: a
PUT carries ``If-None-Match: *`` (a server that refuses the header gets a HEAD then a
plain PUT instead: the same id means the same bytes, so a race only rewrites
identical bytes). Every object is re-hashed from the bytes actually sent before it is
accepted; a multipart upload whose parts do not hash to the claimed id is aborted, so
a wrong object never becomes visible. ``path()`` does not exist here: code that
needs a local file (``fsck``, ``gc``, ``du``, ``checkout``) works on local stores only.

Needs boto3: ``pip install 'runbase[s3]'``. Credentials come from the usual AWS
variables and files (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``); the endpoint of a non-AWS server from ``endpoint_url`` or
``$RUNBASE_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from runbase.core import progress
from runbase.core.ids import ALGO, split_id
from runbase.errors import StoreError
from runbase.store.hashing import hash_bytes, new_hasher
from runbase.store.objects import (
    CorruptObject,
    ObjectIdMismatch,
    ObjectTooLarge,
    SpillingWriter,
    verified_chunks,
    verify_once,
    write_all,
)

INSTALL_HINT = "pip install 'runbase[s3]'"
MULTIPART_THRESHOLD = 16 << 20  # larger objects go up in parts (and spill to a temp file)
PART_SIZE = 8 << 20  # S3's minimum is 5 MiB (the last part may be smaller)
_PARTS_IN_FLIGHT = 4
_CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)
_KEY_TAIL = re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}")


def parse_url(url: str) -> tuple[str, str]:
    """``'s3://bucket/some/prefix/'`` -> ``('bucket', 'some/prefix')``."""
    if not url.startswith("s3://"):
        raise StoreError(f"not an S3 URL: {url!r} (expected s3://bucket[/prefix])")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise StoreError(f"no bucket in S3 URL {url!r} (expected s3://bucket[/prefix])")
    return bucket, prefix.strip("/")


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError  # lazy: boto3 is optional (runbase[s3])

    return ClientError


def _code(e: Exception) -> tuple[str, int]:
    resp: dict[str, Any] = getattr(e, "response", {}) or {}
    return (
        str(resp.get("Error", {}).get("Code", "")),
        int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0),
    )


def make_client(endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 S3 client (thread-safe), or StoreError naming the extra to install."""
    try:
        # lazy: boto3 is optional (runbase[s3]) and heavy; a missing one is reported here
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise StoreError(f"an S3 object store needs boto3: {INSTALL_HINT} ({e})") from e
    endpoint = endpoint_url or os.environ.get("RUNBASE_S3_ENDPOINT_URL") or None
    region = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = Config(
        max_pool_connections=32,
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region or "us-east-1", config=config
    )


class S3Objects:
    """Objects in ``s3://bucket/prefix``, with the interface of LocalObjects.

    >>> objs = S3Objects("s3://team-bucket/runbase", endpoint_url="http://127.0.0.1:8333")  # doctest: +SKIP
    >>> oid = objs.put_bytes(b"hello"); objs.get_bytes(oid)  # doctest: +SKIP
    b'hello'
    """

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        *,
        client: Any = None,
        region_name: str | None = None,
        tmp_dir: str | os.PathLike[str] | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self._base = f"{self.prefix}/objects/" if self.prefix else "objects/"
        self.client = client if client is not None else make_client(endpoint_url, region_name)
        self.tmp_dir = str(tmp_dir) if tmp_dir is not None else None
        if part_size < 5 << 20:
            raise ValueError("S3 multipart parts are at least 5 MiB")
        self.multipart_threshold = max(multipart_threshold, part_size)
        self.part_size = part_size
        self._conditional = True  # If-None-Match: * until the server says it cannot
        self._ClientError = _client_error()
        self._verified: set[str] = set()  # objects read_range has hashed whole

    def __repr__(self) -> str:
        return f"S3Objects({self.url!r})"

    def key(self, oid: str) -> str:
        """The object's key in the bucket: ``<prefix>/objects/ab/cdef…``."""
        _, hexd = split_id(oid)
        return f"{self._base}{hexd[:2]}/{hexd[2:]}"

    def path(self, oid: str) -> Path:
        raise StoreError(
            f"objects in {self.url} have no local path; this operation needs a local store"
        )

    # -- reading -----------------------------------------------------------------------

    def exists(self, oid: str) -> bool:
        return self._key_exists(self.key(oid))

    def _get(self, oid: str) -> Any:
        """The GET response (streaming body, length); FileNotFoundError when absent."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(oid))
        except self._ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no object {oid} in {self.url}") from e
            raise

    def get_bytes(self, oid: str, max_size: int | None = None) -> bytes:
        """The object's bytes; FileNotFoundError when it is not there (as locally);
        ObjectTooLarge, from the response's length before the body is read, when it is
        over ``max_size``."""
        resp = self._get(oid)
        body = resp["Body"]
        try:
            size = int(resp.get("ContentLength") or 0)
            if max_size is not None and size > max_size:
                raise ObjectTooLarge(oid, size, max_size)
            data: bytes = body.read()
        finally:
            body.close()
        actual = hash_bytes(data)
        if actual != oid:  # a damaged or truncated object in the bucket: never handed on
            raise CorruptObject(oid, actual, where=self.url)
        return data

    def copy_to(self, oid: str, out: int) -> int:
        """Write the object's bytes to descriptor ``out`` as they download, hashing them:
        CorruptObject when they are not ``oid`` (the caller removes ``out``'s file)."""
        size = 0
        for chunk in self.iter_bytes(oid):
            write_all(out, chunk)
            size += len(chunk)
        return size

    def _key_exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except self._ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def size(self, oid: str) -> int:
        """The object's size in bytes (a HEAD; FileNotFoundError when absent)."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self.key(oid))
        except self._ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no object {oid} in {self.url}") from e
            raise
        return int(resp["ContentLength"])

    def read_range(self, oid: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (a ranged GET). The whole object is
        verified once per process first (a window alone cannot be): CorruptObject."""
        if length <= 0:
            return b""
        verify_once(self, oid, self._verified)
        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=self.key(oid), Range=f"bytes={offset}-{offset + length - 1}"
            )
        except self._ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no object {oid} in {self.url}") from e
            if status == 416 or code == "InvalidRange":  # at or past the end
                return b""
            raise
        body = resp["Body"]
        try:
            data: bytes = body.read()
            return data
        finally:
            body.close()

    def __iter__(self) -> Iterator[str]:
        """Every stored id, in key order (as LocalObjects: sorted by hex)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._base
        )
        n = len(self._base)
        for page in pages:
            for item in page.get("Contents", ()):
                tail = item["Key"][n:]
                if _KEY_TAIL.fullmatch(tail):
                    yield f"{ALGO}:{tail[:2]}{tail[3:]}"

    # -- writing -----------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        self._put_new(oid, data)
        return oid

    def put_claimed(self, oid: str, data: bytes) -> str:
        """Store ``data`` under ``oid`` computed elsewhere, re-hashing it first: bytes
        that do not match their id raise ObjectIdMismatch and nothing is stored."""
        split_id(oid)
        actual = hash_bytes(data)
        if actual != oid:
            raise ObjectIdMismatch(f"bytes offered as {oid} hash to {actual}: refused")
        self._put_new(oid, data)
        return oid

    def _put_new(self, oid: str, data: bytes) -> None:
        """Upload ``data`` (already known to be ``oid``) unless it is there."""
        if not self.exists(oid):
            if len(data) > self.multipart_threshold:
                self.upload_stream(oid, io.BytesIO(data))
            else:
                self._put_object(oid, data)

    def put_file(
        self, src: str | os.PathLike[str], known_id: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Store a file's bytes; returns ``(id, size)``. As LocalObjects: ``known_id``
        costs one HEAD when already stored, and the id is always the hash of the bytes
        actually uploaded (a file that changes while it is stored is hashed again)."""
        if size is None:
            size = os.path.getsize(src)
        if known_id is not None and self.exists(known_id):
            return known_id, size
        if size <= self.multipart_threshold:
            with open(src, "rb") as f:
                data = f.read()
            progress.advance(len(data))
            return self.put_bytes(data), len(data)
        for _ in range(3):
            oid, n = _hash_path(src)  # first pass: the key to upload to
            if self.exists(oid):
                progress.advance(n)
                return oid, n
            with open(src, "rb") as f:
                try:
                    return oid, self.upload_stream(oid, f, report=True)
                except ObjectIdMismatch:
                    continue  # the file changed between the two passes: again
        raise StoreError(f"{src} kept changing while it was being stored")

    def writer(self, size_hint: int = 0, expect: str | None = None) -> S3ObjectWriter:
        """Stream an object in: ``with objects.writer() as w: w.write(b)``, then ``w.oid``.
        Kept in memory up to the multipart threshold, spilled to a temp file beyond.
        ``expect``: the id the bytes must hash to, else ObjectIdMismatch on close."""
        return S3ObjectWriter(self, size_hint, expect)

    def iter_bytes(self, oid: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes in chunks (FileNotFoundError, raised before the first),
        hashed as they go: CorruptObject after the last when they are not ``oid``."""
        return verified_chunks(oid, _body_chunks(self._get(oid)["Body"], chunk), self.url)

    def delete(self, oid: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(oid))

    def _put_object(self, oid: str, data: bytes) -> None:
        """One PUT of bytes already hashed to ``oid``; an existing object is kept."""
        key = self.key(oid)
        for attempt in range(5):
            try:
                if self._conditional:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                else:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
                return
            except self._ClientError as e:
                code, status = _code(e)
                if status == 412 or code == "PreconditionFailed":
                    return  # written by someone else: the same id is the same bytes
                if status == 409 or code == "ConditionalRequestConflict":
                    time.sleep(0.05 * (attempt + 1))  # a concurrent conditional PUT
                    continue
                if self._conditional and (status == 501 or code == "NotImplemented"):
                    self._conditional = False  # HEAD (done by the caller) + plain PUT
                    continue
                raise
        if not self.exists(oid):
            raise StoreError(f"could not store {oid} in {self.url}: concurrent writes kept failing")

    def upload_stream(self, oid: str, f: BinaryIO, report: bool = False) -> int:
        """Multipart upload of a stream claimed to hash to ``oid``; returns its size.

        The parts are hashed as they are read and sent; the upload is completed only
        when they hash to ``oid`` (else aborted: ObjectIdMismatch, nothing visible)."""
        key = self.key(oid)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        hasher = new_hasher(self.multipart_threshold)
        size = 0
        parts: list[dict[str, Any]] = []
        in_flight: deque[Future[dict[str, Any]]] = deque()
        completed = False
        try:
            with ThreadPoolExecutor(_PARTS_IN_FLIGHT, thread_name_prefix="runbase-s3") as pool:
                number = 0
                while chunk := _read_full(f, self.part_size):
                    hasher.update(chunk)
                    size += len(chunk)
                    if report:
                        progress.advance(len(chunk))
                    number += 1
                    if len(in_flight) >= _PARTS_IN_FLIGHT:
                        parts.append(in_flight.popleft().result())
                    in_flight.append(pool.submit(self._upload_part, key, upload_id, number, chunk))
                while in_flight:
                    parts.append(in_flight.popleft().result())
            actual = f"{ALGO}:{hasher.hexdigest()}"
            if actual != oid:
                raise ObjectIdMismatch(f"bytes uploaded as {oid} hash to {actual}: refused")
            if not parts:  # an empty stream: S3 needs at least one part
                parts.append(self._upload_part(key, upload_id, 1, b""))
            self._complete(key, upload_id, parts)
            completed = True
        finally:
            if not completed:
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except Exception:
                    pass  # the original error matters more
        return size

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        part: dict[str, Any] = {"PartNumber": number, "ETag": resp["ETag"]}
        for k in _CHECKSUMS:  # a server that checksums parts wants them back at the end
            if resp.get(k):
                part[k] = resp[k]
        return part

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        try:
            if self._conditional:
                self.client.complete_multipart_upload(IfNoneMatch="*", **kwargs)
            else:
                self.client.complete_multipart_upload(**kwargs)
        except self._ClientError as e:
            code, status = _code(e)
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                # stored meanwhile by another writer (same id, same bytes), or being
                # stored by one (409, AWS): wait for it to land
                for attempt in range(20):
                    if self._key_exists(key):
                        return
                    time.sleep(0.05 * (attempt + 1))
                raise StoreError(f"{key}: a concurrent upload of the same object never landed")
            if self._conditional and (status == 501 or code == "NotImplemented"):
                self._conditional = False
                self.client.complete_multipart_upload(**kwargs)
                return
            raise


class S3ObjectWriter(SpillingWriter):
    """An object written as a stream: hashed as it goes; in memory while small, in a
    temp file once large; uploaded when closed (in parts when large, re-hashed as sent)."""

    def __init__(self, objects: S3Objects, size_hint: int = 0, expect: str | None = None) -> None:
        super().__init__(objects.multipart_threshold, size_hint, expect)
        self._objects = objects

    def _open_spill(self) -> BinaryIO:
        return tempfile.TemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix="runbase-s3-", dir=self._objects.tmp_dir
        )

    def __enter__(self) -> S3ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                return
            self.oid = self._digest()
            if self._objects.exists(self.oid):
                return
            if self._file is None:
                self._objects.put_claimed(self.oid, b"".join(self._parts))
            else:
                self._file.seek(0)
                self._objects.upload_stream(self.oid, self._file)
        finally:
            self._parts = []
            if self._file is not None:
                self._file.close()


def _body_chunks(body: Any, chunk: int) -> Iterator[bytes]:
    try:
        while data := body.read(chunk):
            yield data
    finally:
        body.close()


def _read_full(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    chunks: list[bytes] = []
    left = n
    while left > 0:
        b = f.read(left)
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _hash_path(src: str | os.PathLike[str]) -> tuple[str, int]:
    """Id and size of a file's bytes, without reporting progress (the upload reports)."""
    h = new_hasher(os.path.getsize(src))
    n = 0
    with open(src, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            n += len(chunk)
    return f"{ALGO}:{h.hexdigest()}", n
