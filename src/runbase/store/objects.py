"""The content-addressed object store: bytes by id, written once.

Objects live at ``objects/<hex[:2]>/<hex[2:]>`` under the store directory. They are
written to a temp file in the same filesystem, then atomically renamed into place,
and never modified afterwards (made read-only). The interface is deliberately a
handful of byte operations so an S3-compatible implementation can follow.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .hashing import copy_and_hash, hash_bytes, split_id


class LocalObjects:
    """Objects in a local directory.

    >>> objs = LocalObjects(Path(tmp) / "objects")          # doctest: +SKIP
    >>> oid = objs.put_bytes(b"hello"); objs.get_bytes(oid)  # doctest: +SKIP
    b'hello'
    """

    def __init__(self, root: Path, tmp_dir: Path | None = None) -> None:
        self.root = root
        self.tmp_dir = tmp_dir or root.parent / "tmp"

    def path(self, oid: str) -> Path:
        _, hexd = split_id(oid)
        return self.root / hexd[:2] / hexd[2:]

    def exists(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def get_bytes(self, oid: str) -> bytes:
        return self.path(oid).read_bytes()

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        if not self.exists(oid):
            self._write(oid, data)
        return oid

    def put_file(self, src: str | os.PathLike[str], known_id: str | None = None) -> tuple[str, int]:
        """Store a file's bytes; returns ``(id, size)``.

        ``known_id`` (from the stat cache) lets an already-stored file cost one stat.
        The id returned is always the hash of the bytes actually copied, so a file that
        changes while it is being stored can never be filed under a wrong id.
        """
        if known_id is not None and self.exists(known_id):
            return known_id, os.path.getsize(src)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        size_hint = os.path.getsize(src)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="obj-")
        try:
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                oid, size = copy_and_hash(fin, fout, size_hint)
            self._place(oid, Path(tmp))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return oid, size

    def delete(self, oid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(oid).unlink()

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) == 2 and sub.is_dir():
                for f in sorted(sub.iterdir()):
                    yield f"blake3:{sub.name}{f.name}"

    def _write(self, oid: str, data: bytes) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="obj-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._place(oid, Path(tmp))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _place(self, oid: str, tmp: Path) -> None:
        dest = self.path(oid)
        if dest.exists():
            return  # write-once: the same id means the same bytes
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
