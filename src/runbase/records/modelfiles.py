"""A model version's bytes on disk (docs/models.md): ``runbase model get`` writes them,
``runbase model status`` checks that a deployed path still holds them (drift).

Writing is exact and atomic: every object is verified against its id as it is copied
(a damaged store raises CorruptObject, nothing is left at the destination), a file is
written to a temp file renamed over the destination, a directory is built in a temp
directory next to it and renamed into place. An existing destination with other bytes
is replaced only when asked (``force``); one with the same bytes is left alone.

Whether a path holds a version (the drift check, ``get``'s "already there", the
library's ``model_path``) is decided strictly, by :func:`read_path` and
:func:`differences`: every file is read and hashed in full each time (no stat cache: a
file rewritten in place with its size and mtime kept is caught), nothing is left out
(no skip list: ``__pycache__``, ``.env``, a symlink, a FIFO in a deployed tree are all
differences), symlinks are never followed and FIFOs, sockets and devices never opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from runbase.capture.manifest import TREE_FORMAT, TREE_VERSION, load_manifest
from runbase.core import fsname, progress
from runbase.core.ids import ALGO
from runbase.core.safepath import SafeRoot, check_relpath
from runbase.errors import Conflict, CorruptObject, RunbaseError, UnsafePathError, UsageError
from runbase.records import registry
from runbase.records.registry import Version
from runbase.store import Store
from runbase.store.hashing import new_hasher

# parts of a store that a destination never writes into
_STORE_PARTS = ("objects", "spool", "tmp", "envs", "corrupt", "runbase.db", "FORMAT")

STATES = ("in_sync", "other_version", "no_version", "missing")


def default_name(version: Version) -> str:
    """Where ``model get`` writes without ``-o`` (and the file name ``model_path`` keeps):
    the last part of the path the version's run wrote, for a file; else the model's
    name. A recorded path is not trusted: a name that is not a plain file name (``..``,
    a NUL, a server's odd answer) gives the model's name instead."""
    base = os.path.basename(version.path or "") if version.kind == "file" else ""
    try:
        return check_relpath(base) if base else version.name
    except UnsafePathError:
        return version.name


def materialize(
    store: Store, version: Version, dest: str, force: bool = False, mode: int = 0o644
) -> dict[str, Any]:
    """Write ``version``'s exact bytes at ``dest`` (a file, or a directory from its
    manifest). Returns ``{"ref", "path", "oid", "kind", "size", "files", "written"}``
    (``written`` false: ``dest`` held exactly those bytes already, checked strictly by
    :func:`differences`). Conflict when the store lacks the bytes, or ``dest`` holds
    something else and not ``force``; UsageError when ``dest`` is a FIFO, a socket or
    a device (never opened)."""
    dest = os.path.abspath(dest)
    if not registry.bytes_present(store, version.oid, version.kind):
        raise Conflict(
            f"the bytes of {version.ref} ({version.oid[:19]}) are not in this store "
            "(`runbase pull` them, or `runbase model get --remote NAME`)"
        )
    out = {
        "ref": version.ref,
        "path": dest,
        "oid": version.oid,
        "kind": version.kind,
        "size": version.size,
        "files": 1,
        "written": False,
    }
    held = read_path(dest)
    if held is not None:
        if not differences(store, held, version):
            if version.kind == "dir":
                out["files"] = len(load_manifest(store, version.oid))
            return out
        if not force:
            raise Conflict(
                f"{dest} exists and holds other bytes than {version.ref}: "
                "use --force to replace it, or -o another path"
            )
        present = "dir" if held.kind == "directory" else "file"  # a symlink is replaced
        if present != version.kind:
            raise Conflict(
                f"{dest} is a {'directory' if present == 'dir' else 'file'} and "
                f"{version.ref} a {'directory' if version.kind == 'dir' else 'file'}: "
                "remove it first or write elsewhere (-o)"
            )
    parent = os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise RunbaseError(f"cannot create {parent}: {e.strerror or e}") from None
    if version.kind == "dir":
        out["files"] = _write_dir(store, version, dest, mode)
    else:
        _write_file(store, version, dest, mode)
    out["written"] = True
    return out


def _forbidden(store: Store) -> list[str]:
    return [os.path.join(store.root, p) for p in _STORE_PARTS]


def _write_file(store: Store, version: Version, dest: str, mode: int) -> None:
    root = SafeRoot(os.path.dirname(dest), _forbidden(store))
    name = root.check(os.path.basename(dest))
    try:
        with root.create(name, mode) as fd:
            store.objects.copy_to(version.oid, fd)
    except CorruptObject as e:
        raise RunbaseError(
            f"{version.ref}: {e} (nothing was written; see `runbase fsck`)"
        ) from None
    except OSError as e:
        raise RunbaseError(f"cannot write {dest}: {e.strerror or e}") from None


def _write_dir(store: Store, version: Version, dest: str, mode: int) -> int:
    """Build the tree in a temp directory beside ``dest``, then rename it into place
    (the old tree, with ``force``, moved aside first and removed after)."""
    entries = load_manifest(store, version.oid)
    parent, base = os.path.dirname(dest), os.path.basename(dest)
    SafeRoot(parent, _forbidden(store)).check(base)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    old: str | None = None
    try:
        _fill(store, SafeRoot(tmp), entries, mode)
        os.chmod(tmp, 0o755)  # writable: a later --force moves it aside
        if os.path.lexists(dest):
            old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=parent)
            os.rename(dest, os.path.join(old, "tree"))
        os.rename(tmp, dest)
    except CorruptObject as e:
        raise RunbaseError(
            f"{version.ref}: {e} (nothing was written; see `runbase fsck`)"
        ) from None
    except OSError as e:
        raise RunbaseError(f"cannot write {dest}: {e.strerror or e}") from None
    finally:
        for left in (tmp, old):
            if left is not None and os.path.lexists(left):
                _remove_tree(left)
    return len(entries)


def _fill(store: Store, root: SafeRoot, entries: Iterable[dict[str, Any]], mode: int) -> None:
    for e in entries:
        if e["type"] == "link":
            root.symlink(e["path"], e["target"])  # one leading out of the tree is refused
            continue
        executable = e["type"] == "x"
        with root.create(e["path"], (mode | 0o111) if executable else mode) as fd:
            store.objects.copy_to(e["oid"], fd)


def _remove_tree(path: str) -> None:
    """Remove a tree this module built (its read-only directories made writable)."""
    for dirpath, dirnames, _ in os.walk(path):
        for d in (dirpath, *(os.path.join(dirpath, n) for n in dirnames)):
            with contextlib.suppress(OSError):
                if not os.path.islink(d):
                    os.chmod(d, 0o700)
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the strict comparison

DIFFERENCES_SHOWN = 100  # the status shape lists this many; "more_differences" counts the rest


@dataclass(frozen=True)
class Entry:
    """One thing inside a directory, as :func:`read_path` found it (never followed)."""

    path: str  # relative, in its stored form (runbase.core.fsname), "/"-separated
    kind: str  # file | symlink | directory | fifo | socket | device
    oid: str | None = None  # a file's hash
    size: int = 0
    target: str | None = None  # a symlink's target, stored form


@dataclass(frozen=True)
class Held:
    """What a path holds, read once: every file hashed in full, nothing skipped."""

    kind: str  # file | directory | symlink
    oid: str | None  # a file's hash; a directory's as a tree of its files and symlinks
    size: int  # bytes: the file, or a directory's files together
    entries: tuple[Entry, ...] = ()  # a directory's, in the order capture walks a tree
    exact: bool = True  # a directory's tree holds all of it (no FIFO, no empty directory)
    target: str | None = None  # a symlink's target


def read_path(path: str) -> Held | None:
    """What ``path`` holds (None: nothing there), without a stat cache and without a
    skip list: a file hashed in full with the hasher objects are verified with, a
    directory walked with ``lstat`` and every entry recorded. A symlink is never
    followed, a FIFO, socket or device never opened: one at ``path`` is a UsageError."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise RunbaseError(f"cannot read {path}: {e.strerror or e}") from None
    kind = _kind(st.st_mode)
    if kind == "symlink":
        return Held("symlink", None, 0, target=_readlink(path))
    if kind == "file":
        oid, size = _hash_file(path)
        return Held("file", oid, size)
    if kind == "directory":
        return _read_dir(path)
    raise UsageError(
        f"{path} is a {kind}, not a file or a directory: runbase never opens one "
        "(a model version is a file or a directory)"
    )


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def _readlink(path: str) -> str:
    try:
        return fsname.encode(os.readlink(path))
    except OSError as e:
        raise RunbaseError(f"cannot read the symlink {path}: {e.strerror or e}") from None


def _hash_file(path: str) -> tuple[str, int]:
    """``(hash, size)`` of a regular file, one read in chunks. Opened without following
    a symlink and without blocking, and checked to be a regular file once open: a path
    swapped for a FIFO or a link after its ``lstat`` is refused, never read through."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise RunbaseError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunbaseError(f"{path} changed while it was read (it is not a file now)")
        h = new_hasher(st.st_size)
        buf = bytearray(min(max(st.st_size, 1), _READ_STEP))
        view = memoryview(buf)
        size = 0
        while n := os.readv(fd, [buf]):
            h.update(view[:n])
            size += n
            progress.advance(n)
        return f"{ALGO}:{h.hexdigest()}", size
    except OSError as e:
        raise RunbaseError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


# one buffer reused for a whole file (memory stays flat); large steps let the hasher's
# threads work on a large file, as store.hashing.hash_file does
_READ_STEP = 64 << 20


def _read_dir(root: str) -> Held:
    """Walk ``root`` in capture's order (os.walk's: a directory's files by name, then
    each subdirectory by name, depth first), hashing each file once, following nothing.
    A stack, not recursion: a tree however deep is an answer, not a RecursionError."""
    entries: list[Entry] = []
    dirs: list[str] = []
    stack = [("", root)]
    while stack:
        rel, full = stack.pop()
        try:
            with os.scandir(full) as it:
                found = sorted((e.name, e.stat(follow_symlinks=False).st_mode) for e in it)
        except OSError as e:
            raise RunbaseError(f"cannot read {full}: {e.strerror or e}") from None
        subdirs = []
        for name, mode in found:
            kind, path, child = _kind(mode), rel + name, os.path.join(full, name)
            stored = fsname.encode(path)
            if kind == "directory":
                subdirs.append((path + "/", child))
                dirs.append(stored)
                entries.append(Entry(stored, kind))
            elif kind == "file":
                oid, size = _hash_file(child)
                entries.append(Entry(stored, kind, oid, size))
            elif kind == "symlink":
                entries.append(Entry(stored, kind, target=_readlink(child)))
            else:
                entries.append(Entry(stored, kind))  # never opened
        stack.extend(reversed(subdirs))
    held = [e for e in entries if e.kind in ("file", "symlink")]
    implied = {p for e in held for p in _parents(e.path)}
    exact = len(held) + len(dirs) == len(entries) and set(dirs) <= implied
    return Held("directory", _tree_id(held), sum(e.size for e in held), tuple(entries), exact)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _tree_id(entries: list[Entry]) -> str:
    """The id of the tree manifest of ``entries`` (capture.manifest's exact bytes), hashed
    and not stored: equal to a version's id exactly when they list the same files."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    h = new_hasher()
    h.update(dumps({"format": TREE_FORMAT, "version": TREE_VERSION})[:-1].encode())
    h.update(b',"entries":[')
    for i, e in enumerate(entries):
        item = (
            {"path": e.path, "type": "f", "oid": e.oid, "size": e.size}
            if e.kind == "file"
            else {"path": e.path, "type": "link", "target": e.target}
        )
        h.update(("," if i else "").encode() + dumps(item).encode())
    h.update(b"]}")
    return f"{ALGO}:{h.hexdigest()}"


Fetch = Callable[[list[str]], object]  # brings objects into the store (a remote's)


def differences(
    store: Store, held: Held | None, version: Version, fetch: Fetch | None = None
) -> list[dict[str, Any]]:
    """How what a path holds (:func:`read_path`) differs from ``version``: ``[]`` exactly
    when it holds the version's bytes and nothing else. Each difference is ``{"path"
    (relative; "." the path itself), "problem" (missing | extra | changed | type |
    target), "expected", "actual"}``, sorted by path. A directory is compared with the
    version's manifest entry by entry (``fetch``: how to bring a manifest this store
    lacks); file contents and symlink targets are compared, not permissions."""
    if held is None:
        return [_diff(".", "missing", _word(version.kind), None)]
    if version.kind != "dir":
        if held.kind != "file":
            return [_diff(".", "type", "file", held.kind)]
        return [] if held.oid == version.oid else [_diff(".", "changed", version.oid, held.oid)]
    if held.kind != "directory":
        return [_diff(".", "type", "directory", held.kind)]
    if held.exact and held.oid == version.oid:
        return []  # the same manifest bytes: the same files and symlinks, nothing more
    manifest = _manifest(store, version, fetch)
    if manifest is None:  # no manifest to compare with: what differs is not known
        return [_diff(".", "changed", version.oid, held.oid)]
    return _tree_differences(held.entries, manifest)


def _word(kind: str) -> str:
    return "directory" if kind == "dir" else kind


def _diff(path: str, problem: str, expected: str | None, actual: str | None) -> dict[str, Any]:
    return {"path": path, "problem": problem, "expected": expected, "actual": actual}


def _manifest(store: Store, version: Version, fetch: Fetch | None) -> list[dict[str, Any]] | None:
    if not store.objects.exists(version.oid) and fetch is not None:
        fetch([version.oid])
    if not store.objects.exists(version.oid):
        return None
    try:
        return load_manifest(store, version.oid)
    except (ValueError, UnsafePathError) as e:
        raise RunbaseError(f"the manifest of {version.ref} is unreadable: {e}") from None


def _tree_differences(
    entries: Iterable[Entry], manifest: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    expected = {e["path"]: e for e in manifest}
    dirs = {p for path in expected for p in _parents(path)}
    out: list[dict[str, Any]] = []
    covered: set[str] = set()  # reported as a whole: what is below is not listed again
    seen: set[str] = set()
    for a in entries:
        if covered and any(p in covered for p in _parents(a.path)):
            continue
        seen.add(a.path)
        want = expected.get(a.path)
        if want is None:
            if a.kind == "directory" and a.path in dirs:
                continue
            if a.path in dirs:
                out.append(_diff(a.path, "type", "directory", a.kind))
            else:
                out.append(_diff(a.path, "extra", None, a.kind))
            covered.add(a.path)
        elif want["type"] == "link":
            if a.kind != "symlink":
                out.append(_diff(a.path, "type", "symlink", a.kind))
                covered.add(a.path)
            elif a.target != want["target"]:
                out.append(_diff(a.path, "target", want["target"], a.target))
        elif a.kind != "file":
            out.append(_diff(a.path, "type", "file", a.kind))
            covered.add(a.path)
        elif a.oid != want["oid"]:
            out.append(_diff(a.path, "changed", want["oid"], a.oid))
    for path, want in expected.items():
        if path not in seen and not any(p in covered for p in _parents(path)):
            out.append(
                _diff(path, "missing", "symlink" if want["type"] == "link" else "file", None)
            )
    return sorted(out, key=lambda d: d["path"])


def _holds(store: Store, held: Held, version: Version, fetch: Fetch | None) -> bool:
    """Whether ``held`` is exactly ``version`` (a quick no first: the kind, the size)."""
    if version.kind == "dir":
        if held.kind != "directory":
            return False
        if held.exact and held.oid == version.oid:
            return True
        if isinstance(version.size, int) and version.size != held.size:
            return False
    elif held.kind != "file" or held.oid != version.oid:
        return False
    return not differences(store, held, version, fetch)


def drift(
    store: Store, ref: str, path: str, candidates: list[Version] | None = None
) -> dict[str, Any]:
    """Whether ``path`` holds exactly the version ``ref`` names now: the status shape
    ``{"ref", "path", "state", "in_sync", "expected", "actual_oid", "matches",
    "differences", "more_differences"}`` (state: in_sync | other_version | no_version |
    missing)."""
    expected = registry.resolve_ref(store, ref)
    if candidates is None:
        candidates = registry.versions(store, expected.name)
    return drift_of(store, str(ref), expected, candidates, path)


def drift_of(
    store: Store,
    ref: str,
    expected: Version,
    candidates: list[Version],
    path: str,
    fetch: Fetch | None = None,
) -> dict[str, Any]:
    """:func:`drift` with the expected version and the model's versions given (read
    from a team server by ``runbase model status --remote``; ``fetch`` brings the
    manifest of a directory version from it when this store lacks it)."""
    held = read_path(path)
    diffs = differences(store, held, expected, fetch)
    matches: list[str] = []
    if held is not None:
        known: dict[str, bool] = {expected.oid: not diffs}
        for v in candidates:
            if v.oid not in known:
                known[v.oid] = _holds(store, held, v, fetch)
            if known[v.oid]:
                matches.append(v.ref)
    if held is None:
        state = "missing"
    elif not diffs:
        state = "in_sync"
    elif matches:
        state = "other_version"
    else:
        state = "no_version"
    return {
        "ref": ref,
        "path": os.path.abspath(path),
        "state": state,
        "in_sync": state == "in_sync",
        "expected": expected.to_json(),
        "actual_oid": held.oid if held is not None else None,
        "matches": matches,
        "differences": diffs[:DIFFERENCES_SHOWN],
        "more_differences": max(0, len(diffs) - DIFFERENCES_SHOWN),
    }
