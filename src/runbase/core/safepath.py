"""Paths read from a store, a bundle or a server, made safe to write (docs/security.md).

A run records relative paths (code manifest entries, run-file rows, the entries of a
directory input's manifest) that ``checkout`` and ``reproduce`` later write under a
target directory. Those paths come from whoever wrote the run, so they are checked
twice:

- where they enter (bundle import, push, pull, :func:`runbase.capture.manifest.load_manifest`):
  :func:`check_relpath` and :func:`check_manifest`;
- where bytes are written: :class:`SafeRoot` walks every parent component with
  ``O_NOFOLLOW`` from a directory descriptor of the target, so nothing is written
  through a symlink, whatever appeared on disk between the check and the write.

Every refusal raises :class:`~runbase.errors.UnsafePathError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from typing import Any

from runbase.core import fsname
from runbase.core.ids import split_id
from runbase.errors import UnsafePathError

# names never written by a restore, in any directory (as git refuses ``.git``): a
# repository's hooks or a store's objects must not come from a pulled run
RESERVED = frozenset({".git", ".runbase"})
_DRIVE = re.compile(r"^[A-Za-z]:")
MANIFEST_TYPES = frozenset({"f", "x", "link"})


def _reserved(part: str) -> bool:
    # Windows and macOS file systems ignore case and trailing dots/spaces: ".GIT." is ".git"
    return part.rstrip(". ").casefold() in RESERVED


def check_relpath(path: Any) -> str:
    """``path`` if it is a plain relative path: components separated by single ``/``,
    none empty, ``.`` or ``..``, no NUL, not absolute, no backslash or drive letter that
    another OS would read as a separator, nothing named ``.git`` or ``.runbase``.

    >>> check_relpath("src/train.py")
    'src/train.py'
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError(path, "a recorded path must be a non-empty string")
    if "\x00" in path:
        raise UnsafePathError(path, "contains a NUL byte")
    if path.startswith("/") or _DRIVE.match(path) or path.startswith("\\"):
        raise UnsafePathError(path, "is absolute")
    for part in path.split("/"):
        _check_part(path, part)
    return path


def _check_part(path: str, part: str) -> None:
    """One component of ``path`` (NUL and absoluteness are checked on the whole)."""
    if part in ("", ".", ".."):
        raise UnsafePathError(path, "is not normalized (empty, '.' or '..' component)")
    # a POSIX name may hold a backslash; one that makes '..' on Windows may not
    if "\\" in part and any(p in (".", "..") or _reserved(p) for p in part.split("\\")):
        raise UnsafePathError(path, "has a '..' or reserved component after a backslash")
    if part[0] == "." and _reserved(part):  # every reserved name starts with a dot
        raise UnsafePathError(path, f"writes into {part!r}, which a restore never touches")


def check_recorded_file(path: Any, url: Any = None) -> str:
    """A run-file row's path: a URL row is a name only (never written); an absolute path
    records a file outside the project (never written either) and must be normalized;
    anything else is a path under the project (:func:`check_relpath`)."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError(path, "a recorded path must be a non-empty string")
    if "\x00" in path:
        raise UnsafePathError(path, "contains a NUL byte")
    if url is not None:
        return path
    if path.startswith("/"):
        if os.path.normpath(path) != path or path.startswith("//"):
            raise UnsafePathError(path, "an absolute path must be normalized")
        return path
    return check_relpath(path)


def link_escapes(path: str, target: str) -> bool:
    """Whether symlink ``path`` (relative to the tree) pointing at ``target`` leads out
    of the tree: an absolute target, or one whose ``..`` climb above the root."""
    if not target or target.startswith("/") or "\x00" in target:
        return True
    depth = path.count("/")  # directories between the root and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_manifest(entries: Any, where: str = "manifest") -> list[dict[str, Any]]:
    """A tree manifest's entries, each checked: a safe relative path, a known type, an
    object id (files) or a string target (links); no path twice; nothing below a symlink
    or a file entry. A link leading out of the tree is kept here (a project may link to
    its data) and never created by a restore (:meth:`SafeRoot.symlink`)."""
    if not isinstance(entries, list):
        raise UnsafePathError(where, "a manifest's entries must be a list")
    seen: set[str] = set()  # every entry is a file or a link: nothing may be below one
    dirs: set[str] = set()  # the directories the entries are in, all checked already
    for e in entries:
        if not isinstance(e, dict):
            raise UnsafePathError(where, "a manifest entry must be an object")
        path = e.get("path")
        if not isinstance(path, str):
            raise UnsafePathError(path, "a recorded path must be a non-empty string")
        parent, _, name = path.rpartition("/")
        if parent and parent in dirs and "\x00" not in name:
            _check_part(path, name)  # the usual case: only the new name is checked
        else:
            check_relpath(path)
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        if path in seen:
            raise UnsafePathError(path, f"appears twice in {where}")
        seen.add(path)
        kind = e.get("type")
        if kind not in MANIFEST_TYPES:
            raise UnsafePathError(path, f"has unknown entry type {kind!r}")
        if kind == "link":
            target = e.get("target")
            if not isinstance(target, str) or not target or "\x00" in target:
                raise UnsafePathError(path, "a symlink entry needs a target without NUL")
        else:
            try:
                split_id(e.get("oid"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise UnsafePathError(path, "a file entry needs an object id") from None
    clash = seen & dirs
    if clash:
        leaf = min(clash)
        below = min(p for p in seen if p.startswith(leaf + "/"))
        raise UnsafePathError(below, f"is below {leaf!r}, a symlink or file entry")
    return entries


def _parents(path: str) -> Iterator[str]:
    i = path.find("/")
    while i != -1:
        yield path[:i]
        i = path.find("/", i + 1)


def below_any(path: str, prefixes: set[str] | frozenset[str]) -> str | None:
    """The first of ``prefixes`` that ``path`` lies strictly below, else None (one set
    lookup per parent directory: a tree of a million files stays linear)."""
    return next((p for p in _parents(path) if p in prefixes), None)


class SafeRoot:
    """Writes under one target directory that never leave it: every parent is opened
    from the root's descriptor with ``O_NOFOLLOW`` (a symlink on disk, planted or not,
    is refused, never followed), temp files are created ``O_EXCL | O_NOFOLLOW`` next to
    their destination, and renamed over it (replacing a symlink, not writing through it).

    ``forbidden``: absolute paths under the root that are never written (a store kept
    inside the target under another name than ``.runbase``).
    """

    def __init__(self, root: str | os.PathLike[str], forbidden: Iterable[str] = ()) -> None:
        self.root = os.path.abspath(root)
        real = os.path.realpath(self.root)
        self._forbidden = tuple(
            os.path.relpath(os.path.realpath(f), real)
            for f in forbidden
            if (os.path.realpath(f) + "/").startswith(real + "/")
        )

    def check(self, rel: str) -> str:
        check_relpath(rel)
        for f in self._forbidden:
            if f == "." or rel == f or rel.startswith(f + "/"):
                raise UnsafePathError(rel, "is inside the runbase store")
        return rel

    # -- reading what is there ---------------------------------------------------------
    def lstat(self, rel: str) -> os.stat_result | None:
        """What is at ``rel`` now (not following a final symlink); None when absent.
        UnsafePathError when a parent on disk is a symlink or not a directory."""
        with self._parent(rel, create=False) as (fd, name):
            if fd is None:
                return None
            try:
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None

    def readlink(self, rel: str) -> str:
        with self._parent(rel, create=False) as (fd, name):
            if fd is None:
                raise FileNotFoundError(rel)
            return fsname.encode(os.readlink(name, dir_fd=fd))

    def open_read(self, rel: str) -> int:
        """A read descriptor of the regular file at ``rel`` (never through a symlink)."""
        with self._parent(rel, create=False) as (fd, name):
            if fd is None:
                raise FileNotFoundError(rel)
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)

    # -- writing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def create(self, rel: str, mode: int = 0o644) -> Iterator[int]:
        """A write descriptor of a new temp file next to ``rel``; renamed over ``rel``
        when the block ends normally, removed when it raises (nothing half-written)."""
        with self._parent(rel, create=True) as (fd, name):
            assert fd is not None
            tmp = self._tmp_name(name)
            out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
            try:
                try:
                    yield out
                    os.fchmod(out, mode)
                finally:
                    os.close(out)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise

    def symlink(self, rel: str, target: str) -> None:
        """Create symlink ``rel`` -> ``target``; one leading out of the tree is refused."""
        if link_escapes(rel, target):
            raise UnsafePathError(rel, f"is a symlink to {target!r}, outside the target")
        with self._parent(rel, create=True) as (fd, name):
            assert fd is not None
            tmp = self._tmp_name(name)
            os.symlink(fsname.decode(target), tmp, dir_fd=fd)
            try:
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise

    def unlink(self, rel: str) -> bool:
        """Remove the file or symlink at ``rel`` (never through a symlinked parent);
        False when nothing is there."""
        with self._parent(rel, create=False) as (fd, name):
            if fd is None:
                return False
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return False
            return True

    def rmdir(self, rel: str) -> bool:
        """Remove the directory at ``rel`` if it is empty; False when it is not (or absent)."""
        with self._parent(rel, create=False) as (fd, name):
            if fd is None:
                return False
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:  # absent, not empty, or not a directory
                return False
            return True

    @staticmethod
    def _tmp_name(name: str) -> str:
        return f".{name[:100]}.runbase-{os.getpid()}-{os.urandom(4).hex()}"

    @contextlib.contextmanager
    def _parent(self, rel: str, create: bool) -> Iterator[tuple[int | None, str]]:
        """A descriptor of ``rel``'s parent directory and its last component; (None, name)
        when a parent is absent and ``create`` is false."""
        # a recorded name is in runbase.core.fsname's stored form: written as the bytes it
        # stands for (decoding never makes a "/" or NUL: only bytes >= 0x80 are mapped)
        parts = fsname.decode(self.check(rel)).split("/")
        if create:
            os.makedirs(self.root, exist_ok=True)
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if create:
                raise
            yield None, parts[-1]  # no target yet: nothing is there
            return
        try:
            for i, part in enumerate(parts[:-1]):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if create:
                        raise
                    yield None, parts[-1]
                    return
                except OSError as e:
                    # ELOOP: a symlink; ENOTDIR: a file where a directory must be
                    shown = "/".join(parts[: i + 1])
                    st = _lstat_at(fd, part)
                    what = "a symlink" if st and stat.S_ISLNK(st.st_mode) else "not a directory"
                    raise UnsafePathError(
                        rel, f"{shown!r} in the target is {what}; never written through"
                    ) from e
                os.close(fd)
                fd = nfd
            yield fd, parts[-1]
        finally:
            os.close(fd)


def _lstat_at(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
