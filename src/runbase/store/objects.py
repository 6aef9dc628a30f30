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

_SMALL = 4 << 20  # files up to this size are read whole: hash first, write only if new


class LocalObjects:
    """Objects in a local directory.

    >>> objs = LocalObjects(Path(tmp) / "objects")          # doctest: +SKIP
    >>> oid = objs.put_bytes(b"hello"); objs.get_bytes(oid)  # doctest: +SKIP
    b'hello'
    """

    def __init__(self, root: Path, tmp_dir: Path | None = None) -> None:
        self.root = root
        self.tmp_dir = tmp_dir or root.parent / "tmp"
        self._root_s = str(root)
        self._dirs: set[str] = set()  # fan-out directories known to exist

    def _path_s(self, oid: str) -> str:
        _, hexd = split_id(oid)
        return f"{self._root_s}/{hexd[:2]}/{hexd[2:]}"

    def path(self, oid: str) -> Path:
        return Path(self._path_s(oid))

    def exists(self, oid: str) -> bool:
        return os.path.isfile(self._path_s(oid))

    def get_bytes(self, oid: str) -> bytes:
        with open(self._path_s(oid), "rb") as f:
            return f.read()

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        if not self.exists(oid):
            self._write(oid, data)
        return oid

    def put_file(
        self, src: str | os.PathLike[str], known_id: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Store a file's bytes; returns ``(id, size)``.

        ``known_id`` (from the stat cache) lets an already-stored file cost one stat.
        The id returned is always the hash of the bytes actually read, so a file that
        changes while it is being stored can never be filed under a wrong id.
        """
        if size is None:
            size = os.path.getsize(src)
        if known_id is not None and self.exists(known_id):
            return known_id, size
        if size <= _SMALL:
            with open(src, "rb") as f:
                data = f.read()
            return self.put_bytes(data), len(data)
        return self._put_large(src, size)

    def _put_large(self, src: str | os.PathLike[str], size_hint: int) -> tuple[str, int]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="obj-")
        try:
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                oid, size = copy_and_hash(fin, fout, size_hint)
            os.chmod(tmp, 0o444)
            self._place(oid, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return oid, size

    def delete(self, oid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path_s(oid))

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) == 2 and sub.is_dir():
                for f in sorted(sub.iterdir()):
                    yield f"blake3:{sub.name}{f.name}"

    def _write(self, oid: str, data: bytes) -> None:
        # created read-only from the start: the open fd may still write, nobody else can
        tmp = f"{self.tmp_dir}/obj-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileNotFoundError:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._place(oid, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _place(self, oid: str, tmp: str) -> None:
        dest = self._path_s(oid)
        parent = dest[: dest.rfind("/")]
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        if os.path.exists(dest):
            return  # write-once: the same id means the same bytes
        os.replace(tmp, dest)
