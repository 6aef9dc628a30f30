"""Hybrid workspaces for ``runbase explain``: one run's recorded files with some files
of another run written over them, each hybrid in a directory of its own.

    ws = Workspace(store, a, Path(".runbase/explain/x…/work"))   # A's code + inputs, once
    d = ws.make("h3", code={"src/f.py": b_entry}, data={"data/train.csv": None})
    ...run the command in d...
    ws.remove("h3")

The run's code tree and stored inputs are materialized once, verified against the
store (:func:`runbase.records.checkout.checkout`), into ``root/base``. Each hybrid is a
clone of ``base`` file by file: a reflink (the file system shares the blocks copy-on-
write: instant, no space) where the file system offers one (XFS, Btrfs), else a copy —
never a hard link, through which a script writing its inputs would change the base
every later hybrid starts from. Symlinks are re-created, modes kept. Then the overlay:
each entry's object is copied out of the store (verified), through
:class:`~runbase.core.safepath.SafeRoot` (every path checked, nothing written through a
symlink), and the ``None`` entries are deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from runbase.capture.manifest import load_manifest, put_manifest
from runbase.core.safepath import SafeRoot, check_manifest, check_relpath
from runbase.errors import UsageError
from runbase.records.checkout import checkout, describe
from runbase.store import Store
from runbase.store.objects import reflink

BASE = "base"
_SPARE = "spare-"  # a hybrid given back, to be reset and re-used
_COPY_CHUNK = 1 << 30  # per copy_file_range call: the kernel copies, not Python
# copy_file_range cannot copy between these two files: read and write instead
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def _umask() -> int:
    """This process's umask, read without setting it (os.umask would change it for every
    thread for a moment); all bits (always chmod) where /proc does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o7777


class Workspace:
    """Hybrids of run ``run_id`` under ``root`` (``root/base`` is the run as recorded)."""

    def __init__(self, store: Store, run_id: str, root: Path) -> None:
        self.store, self.run_id, self.root = store, run_id, Path(root).absolute()
        self.base = self.root / BASE
        # a base left by an earlier explanation may have been changed: start clean
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        report = checkout(store, run_id, self.base, code=True, data=True, outputs=False)
        self.not_restorable: list[dict[str, Any]] = list(describe(report)["not_restorable"])
        self.reflinks = _probe_reflink(self.root)
        self._stamps: dict[str, dict[str, _Stamp]] = {}  # hybrid -> its files as cloned
        self._spare: list[tuple[Path, dict[str, _Stamp]]] = []

    def make(self, name: str, code: dict[str, dict[str, Any] | None], data: dict[str, Any]) -> Path:
        """A new hybrid ``root/name``: a clone of the base with ``code`` (path -> tree
        manifest entry, None: delete) and ``data`` (path -> ``{"type": "f", "oid"}``,
        None: delete) written over it. UnsafePathError (nothing of it is kept) when a
        path could leave the hybrid or an entry is malformed.

        A hybrid given back by :meth:`remove` is re-used: only what differs from the
        base is put back (what the last command or overlay wrote, changed or deleted,
        found by inode, ctime and size, which no write leaves as they were), so the
        unchanged files of a 2,000-file tree or of 1 GiB of inputs are not copied again."""
        dest = self._path(name)
        shutil.rmtree(dest, ignore_errors=True)  # a hybrid of an earlier, interrupted try
        overlay = _checked_overlay({**code, **data})
        try:
            if self._spare:
                spare, stamps = self._spare.pop()
                os.replace(spare, dest)  # a rename: the files' inodes and ctimes stay
                reset_tree(self.base, dest, stamps)
            else:
                clone_tree(self.base, dest)
            # taken before the overlay: what it writes differs from the base next time
            self._stamps[name] = stamp_tree(dest)
            _apply(self.store, SafeRoot(dest), overlay)
        except BaseException:
            self._stamps.pop(name, None)
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest

    def remove(self, name: str) -> None:
        """Done with hybrid ``name``: kept aside for the next :meth:`make`."""
        dest = self._path(name)
        stamps = self._stamps.pop(name, None)
        if stamps is None or not dest.is_dir() or dest.is_symlink():
            shutil.rmtree(dest, ignore_errors=True)
            return
        spare = self.root / f"{_SPARE}{len(self._spare)}-{os.getpid()}"
        os.replace(dest, spare)
        self._spare.append((spare, stamps))

    def _path(self, name: str) -> Path:
        bad = name.startswith(_SPARE) or name in (".", "..", BASE)
        if not name or "/" in name or "\x00" in name or bad:
            raise UsageError(f"bad hybrid name {name!r}: one path component, not {BASE!r}")
        return self.root / name


def _checked_overlay(
    overlay: dict[str, dict[str, Any] | None],
) -> list[tuple[str, dict[str, Any] | None]]:
    """The overlay's entries, each path and entry validated like a stored manifest's."""
    items = [(check_relpath(path), e) for path, e in sorted(overlay.items())]
    entries = [{**e, "path": path} for path, e in items if e is not None]
    check_manifest(entries, "the hybrid's overlay")
    return [(path, None) for path, e in items if e is None] + [(e["path"], e) for e in entries]


def _apply(store: Store, root: SafeRoot, overlay: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Deletions first (a file may replace a directory emptied by them), then writes."""
    for path, entry in overlay:
        if entry is None and root.unlink(path):
            _prune(root, path)
    for path, entry in overlay:
        if entry is None:
            continue
        if entry["type"] == "link":
            root.symlink(path, entry["target"])
            continue
        st = root.lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            shutil.rmtree(os.path.join(root.root, path))  # B has a file where A had a tree
        with root.create(path, 0o755 if entry["type"] == "x" else 0o644) as fd:
            store.objects.copy_to(entry["oid"], fd)


def _prune(root: SafeRoot, path: str) -> None:
    """Remove the directories above ``path`` that its deletion left empty."""
    parent = path.rpartition("/")[0]
    while parent and root.rmdir(parent):
        parent = parent.rpartition("/")[0]


def clone_tree(src: Path, dst: Path) -> None:
    """Clone directory ``src`` as ``dst`` (which must not exist): files by reflink or
    copy (never a hard link), symlinks re-created, modes kept."""
    _clone_tree(str(src), str(dst), _umask())


def _clone_tree(src: str, dst: str, umask: int) -> None:
    os.mkdir(dst)
    with os.scandir(src) as it:
        for entry in it:
            _clone_entry(entry, f"{dst}/{entry.name}", umask)
    shutil.copymode(src, dst)


def _clone_entry(entry: os.DirEntry[str], dst: str, umask: int) -> None:
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), dst)
    elif entry.is_dir(follow_symlinks=False):
        _clone_tree(entry.path, dst, umask)
    elif entry.is_file(follow_symlinks=False):
        clone_file(entry.path, dst, entry.stat(follow_symlinks=False).st_mode, umask)


# (type bits + permissions, inode, ctime, size): any write, chmod, truncation, rename
# over or re-creation of a file changes one of them; ctime cannot be set back by a
# process. A directory's ctime moves with every entry made in it: only its mode counts.
_Stamp = tuple[int, int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    if stat.S_ISDIR(st.st_mode):
        return (st.st_mode, st.st_ino, 0, 0)
    return (st.st_mode, st.st_ino, st.st_ctime_ns, st.st_size)


def stamp_tree(root: Path) -> dict[str, _Stamp]:
    """Every entry under ``root`` (relative path -> stamp), ``""`` for ``root`` itself."""
    out = {"": _stamp(os.lstat(root))}
    _stamp_dir(str(root), "", out)
    return out


def _stamp_dir(path: str, rel: str, out: dict[str, _Stamp]) -> None:
    with os.scandir(path) as it:
        for entry in it:
            r = rel + entry.name
            st = entry.stat(follow_symlinks=False)
            out[r] = _stamp(st)
            if stat.S_ISDIR(st.st_mode):
                _stamp_dir(entry.path, r + "/", out)


def reset_tree(base: Path, dest: Path, stamps: dict[str, _Stamp]) -> None:
    """Make ``dest`` (a clone of ``base`` when ``stamps`` were taken) equal to ``base``
    again: entries whose stamp changed or that are new are removed, then what is
    missing is cloned from ``base``."""
    if _stamp(os.lstat(dest)) != stamps.get(""):
        os.chmod(dest, stat.S_IMODE(os.lstat(base).st_mode))
    kept: set[str] = set()
    _drop_changed(str(dest), "", stamps, kept)
    _fill_missing(str(base), str(dest), "", kept, _umask())


def _drop_changed(path: str, rel: str, stamps: dict[str, _Stamp], kept: set[str]) -> None:
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        r = rel + entry.name
        st = entry.stat(follow_symlinks=False)
        if stamps.get(r) != _stamp(st):
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            continue
        kept.add(r)
        if stat.S_ISDIR(st.st_mode):
            _drop_changed(entry.path, r + "/", stamps, kept)


def _fill_missing(src: str, dst: str, rel: str, kept: set[str], umask: int) -> None:
    with os.scandir(src) as it:
        for entry in it:
            r = rel + entry.name
            d = f"{dst}/{entry.name}"
            if r not in kept:
                _clone_entry(entry, d, umask)
            elif entry.is_dir(follow_symlinks=False):
                _fill_missing(entry.path, d, r + "/", kept, umask)


def clone_file(src: str, dst: str, mode: int, umask: int | None = None) -> bool:
    """A new file ``dst`` with ``src``'s bytes and mode; True when it shares ``src``'s
    blocks (a reflink), False when they were copied. ``umask``: the process's (read
    once per tree by the caller; None: read here)."""
    # descriptors, not file objects, and the mode given at creation: a hybrid is
    # thousands of these, each a handful of system calls
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        perm = stat.S_IMODE(mode)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perm)
        try:
            linked = reflink(fin, fd)
            if not linked:
                _copy_fd(fin, fd)
            if perm & (_umask() if umask is None else umask):  # taken away at creation
                os.fchmod(fd, perm)
        finally:
            os.close(fd)
    finally:
        os.close(fin)
    return linked


def _copy_fd(fin: int, fout: int) -> None:
    try:
        while os.copy_file_range(fin, fout, _COPY_CHUNK):
            pass
        return
    except OSError as e:
        if e.errno not in _NO_COPY_RANGE:
            raise
    os.lseek(fin, 0, os.SEEK_SET)
    os.lseek(fout, 0, os.SEEK_SET)
    os.ftruncate(fout, 0)
    while chunk := os.read(fin, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view) :]


def _probe_reflink(directory: Path) -> bool:
    """Whether the file system of ``directory`` makes reflinks."""
    src, dst = directory / ".reflink-probe-a", directory / ".reflink-probe-b"
    try:
        src.write_bytes(b"runbase")
        return clone_file(str(src), str(dst), 0o600)
    except OSError:
        return False
    finally:
        for p in (src, dst):
            with contextlib.suppress(OSError):
                p.unlink()


def hybrid_tree(
    store: Store, base_tree: str | None, code: dict[str, dict[str, Any] | None]
) -> str | None:
    """A new tree manifest: ``base_tree``'s entries with ``code`` written over them (None:
    the path is gone); None when there is neither a tree nor an overlay."""
    if base_tree is None and not code:
        return None
    entries = {e["path"]: e for e in (load_manifest(store, base_tree) if base_tree else [])}
    for path, e in _checked_overlay(code):
        if e is None:
            entries.pop(path, None)
            continue
        # a file replacing a directory, or a directory replacing a file: the other goes
        for other in [p for p in entries if p.startswith(path + "/")]:
            del entries[other]
        parent = path.rpartition("/")[0]
        while parent:
            entries.pop(parent, None)
            parent = parent.rpartition("/")[0]
        keys = (
            ("path", "type", "target") if e["type"] == "link" else ("path", "type", "oid", "size")
        )
        entries[path] = {k: e[k] for k in keys if k in e}
    return put_manifest(store, [entries[p] for p in sorted(entries)])
