"""Object store backends by URL: a local directory or an S3-compatible bucket.

>>> open_objects("/data/.runbase/objects")                 # doctest: +SKIP
<runbase.store.objects.LocalObjects ...>
>>> open_objects("s3://team-bucket/runbase")               # doctest: +SKIP
S3Objects('s3://team-bucket/runbase')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from runbase.errors import StoreError
from runbase.store.objects import LocalObjects


class ObjectWriterLike(Protocol):
    oid: str
    size: int

    def write(self, data: bytes) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None: ...


class Objects(Protocol):
    """What every backend offers (``path()`` only LocalObjects: see docs/store-format.md).
    Every read that hands bytes on (``get_bytes``, ``iter_bytes``, ``read_range``,
    ``copy_to``) verifies them against the id and raises CorruptObject otherwise."""

    def exists(self, oid: str) -> bool: ...
    def get_bytes(self, oid: str, max_size: int | None = None) -> bytes: ...
    def size(self, oid: str) -> int: ...
    def read_range(self, oid: str, offset: int, length: int) -> bytes: ...
    def put_bytes(self, data: bytes) -> str: ...
    def put_claimed(self, oid: str, data: bytes) -> str: ...
    def put_file(
        self, src: str | os.PathLike[str], known_id: str | None = None, size: int | None = None
    ) -> tuple[str, int]: ...
    def writer(self, size_hint: int = 0, expect: str | None = None) -> ObjectWriterLike: ...
    def iter_bytes(self, oid: str, chunk: int = 1 << 20) -> Iterator[bytes]: ...
    def copy_to(self, oid: str, out: int) -> int: ...
    def delete(self, oid: str) -> None: ...
    def __iter__(self) -> Iterator[str]: ...


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def open_objects(url_or_path: str | os.PathLike[str], **options: Any) -> Objects:
    """LocalObjects for a path (or ``file://`` URL), S3Objects for ``s3://bucket/prefix``.

    ``options`` go to the backend (``endpoint_url=``, ``tmp_dir=``, ...). S3 credentials
    come from the usual AWS variables; the endpoint also from ``$RUNBASE_S3_ENDPOINT_URL``.
    """
    target = os.fspath(url_or_path)
    if target.startswith("s3://"):
        from runbase.store.s3 import S3Objects

        return S3Objects(target, **options)
    if target.startswith("file://"):
        target = target[7:]
    elif _SCHEME.match(target):
        raise StoreError(
            f"unsupported object store URL {target!r}: use a path or s3://bucket[/prefix]"
        )
    root = Path(target).expanduser().absolute()
    tmp = options.pop("tmp_dir", None)
    if options:
        raise TypeError(f"unexpected options for a local object store: {sorted(options)}")
    return LocalObjects(root, Path(tmp) if tmp is not None else None)
