"""The content-addressed object store: bytes by id, written once.

Objects live at ``objects/<hex[:2]>/<hex[2:]>`` under the store directory. They are
written to a temp file in the same filesystem, then atomically renamed into place,
and never modified afterwards (made read-only). The interface is deliberately a
handful of byte operations so an S3-compatible implementation can follow.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .. import progress
from ..errors import StoreError
from .hashing import ALGO, hash_bytes, new_hasher, split_id
from .hashing import CHUNK as _CHUNK

_SMALL = 4 << 20  # files up to this size are read whole: hash first, write only if new


class ObjectIdMismatch(StoreError):
    """Bytes offered under an id that is not their BLAKE3: refused, nothing is stored."""


class ObjectTooLarge(StoreError):
    """An object larger than the reader's ``max_size``: refused before it is read."""

    def __init__(self, oid: str, size: int, max_size: int) -> None:
        super().__init__(f"{oid} is {size} bytes, over {max_size}")
        self.size = size


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

    def get_bytes(self, oid: str, max_size: int | None = None) -> bytes:
        """The object's bytes (FileNotFoundError when absent); ObjectTooLarge, before
        reading, when it is over ``max_size``."""
        with open(self._path_s(oid), "rb") as f:
            if max_size is not None:
                size = os.fstat(f.fileno()).st_size
                if size > max_size:
                    raise ObjectTooLarge(oid, size, max_size)
            return f.read()

    def size(self, oid: str) -> int:
        """The object's size in bytes (FileNotFoundError when absent)."""
        return os.path.getsize(self._path_s(oid))

    def read_range(self, oid: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (a window of a large log or file)."""
        with open(self._path_s(oid), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def put_bytes(self, data: bytes) -> str:
        oid = hash_bytes(data)
        if not self.exists(oid):
            self._write(oid, data)
        return oid

    def put_claimed(self, oid: str, data: bytes) -> str:
        """Store ``data`` under ``oid`` (an id computed elsewhere, e.g. sent by a client),
        re-hashing it first: bytes that do not match their id raise ObjectIdMismatch."""
        split_id(oid)  # a malformed id raises ValueError
        actual = hash_bytes(data)
        if actual != oid:
            raise ObjectIdMismatch(f"bytes offered as {oid} hash to {actual}: refused")
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
            progress.advance(len(data))
            return self.put_bytes(data), len(data)
        return self._put_large(src, size)

    def _put_large(self, src: str | os.PathLike[str], size_hint: int) -> tuple[str, int]:
        with open(src, "rb") as fin, self.writer(size_hint) as w:
            while chunk := fin.read(_CHUNK):
                w.write(chunk)
                progress.advance(len(chunk))
        return w.oid, w.size

    def writer(self, size_hint: int = 0, expect: str | None = None) -> ObjectWriter:
        """Stream an object in: ``with objects.writer() as w: w.write(b)``, then ``w.oid``.
        Kept in memory up to 4 MiB, spilled to a temp file beyond. ``expect``: the id the
        bytes must hash to, else ObjectIdMismatch on close and nothing is stored."""
        return ObjectWriter(self, size_hint, expect)

    def iter_bytes(self, oid: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes in chunks (FileNotFoundError, raised before the first)."""
        f = open(self._path_s(oid), "rb")  # noqa: SIM115 - closed by the generator
        return _chunks(f, chunk)

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
        parent = self._parent(oid)
        if _HAS_TMPFILE:
            try:
                self._link_new(oid, parent, data)
                return
            except OSError as e:
                if e.errno not in _NO_TMPFILE:
                    raise
        # portable path: a read-only temp file (the open fd may still write), renamed
        tmp = self._tmp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            os.unlink(tmp)
            raise
        self._place(oid, tmp)

    def _link_new(self, oid: str, parent: str, data: bytes) -> None:
        # Linux: an unnamed file in the fan-out directory, linked in under its final name
        # once complete. Never visible half-written, and no temp name to rename or clean
        # up: one create + write + link (measured 0.58 s vs 0.88 s for 10,000 x 105 KiB
        # on tmpfs). EEXIST from the link: another writer stored the same bytes first.
        global _HAS_TMPFILE
        fd = os.open(parent, os.O_TMPFILE | os.O_WRONLY, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            try:
                os.link(str(fd), self._path_s(oid), src_dir_fd=_proc_fd(), follow_symlinks=True)
            except FileExistsError:
                pass
            except OSError as e:
                if e.errno in _NO_TMPFILE:
                    _HAS_TMPFILE = False
                raise
        finally:
            os.close(fd)

    def _tmp_name(self) -> str:
        os.makedirs(self.tmp_dir, exist_ok=True)
        return f"{self.tmp_dir}/obj-{os.getpid()}-{os.urandom(6).hex()}"

    def _parent(self, oid: str) -> str:
        dest = self._path_s(oid)
        parent = dest[: dest.rfind("/")]
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        return parent

    def _place(self, oid: str, tmp: str) -> None:
        """Move a complete temp file into place (or drop it: same id, same bytes)."""
        self._parent(oid)
        dest = self._path_s(oid)
        try:
            if os.path.exists(dest):
                os.unlink(tmp)  # write-once: the same id means the same bytes
            else:
                os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _chunks(f: BinaryIO, chunk: int) -> Iterator[bytes]:
    with f:
        while data := f.read(chunk):
            yield data


class SpillingWriter:
    """What every object writer shares: hash and count as bytes arrive, keep them in
    memory up to ``threshold``, then in a file from :meth:`_open_spill` (subclasses
    decide where the bytes go when the writer is closed)."""

    def __init__(self, threshold: int, size_hint: int = 0, expect: str | None = None) -> None:
        self._threshold = threshold
        self.expect = expect  # the id the sender claims: other bytes are refused
        self._hasher = new_hasher(size_hint)
        self._parts: list[bytes] = []
        self._file: BinaryIO | None = None
        self.size = 0
        self.oid = ""

    def _open_spill(self) -> BinaryIO:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        self._hasher.update(data)
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._parts.append(bytes(data))
        if self.size > self._threshold:
            self._file = self._open_spill()
            self._file.writelines(self._parts)
            self._parts = []

    def _digest(self) -> str:
        oid = f"{ALGO}:{self._hasher.hexdigest()}"
        if self.expect is not None and oid != self.expect:
            raise ObjectIdMismatch(f"bytes offered as {self.expect} hash to {oid}: refused")
        return oid


class ObjectWriter(SpillingWriter):
    """An object written as a stream (a tree manifest, a large file's bytes): hashed
    as it goes; in memory while small, in a temp file once large."""

    def __init__(
        self, objects: LocalObjects, size_hint: int = 0, expect: str | None = None
    ) -> None:
        super().__init__(_SMALL, size_hint, expect)
        self._objects = objects
        self._tmp = ""

    def _open_spill(self) -> BinaryIO:
        self._tmp = self._objects._tmp_name()
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        return os.fdopen(fd, "wb")

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._file is not None:
            self._file.close()
            if exc_type is not None:
                os.unlink(self._tmp)
                return
        if exc_type is not None:
            return
        try:
            self.oid = self._digest()
        except ObjectIdMismatch:
            if self._file is not None:
                os.unlink(self._tmp)
            self._parts = []
            raise
        if self._file is not None:
            self._objects._place(self.oid, self._tmp)
        elif not self._objects.exists(self.oid):
            self._objects._write(self.oid, b"".join(self._parts))
        self._parts = []


_HAS_TMPFILE = hasattr(os, "O_TMPFILE")
# O_TMPFILE unsupported by the kernel or file system (EISDIR on old kernels), or links
# through /proc refused (no /proc, or a sandbox): fall back to temp file + rename.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.EPERM}
_PROC_FD: list[int] = []


def _proc_fd() -> int:
    if not _PROC_FD:
        _PROC_FD.append(os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _PROC_FD[0]
