"""A model version's bytes on disk (docs/models.md): ``runbase model get`` writes them,
``runbase model status`` checks that a deployed path still holds them (drift).

Writing is exact and atomic: every object is verified against its id as it is copied
(a damaged store raises CorruptObject, nothing is left at the destination), a file is
written to a temp file renamed over the destination, a directory is built in a temp
directory next to it and renamed into place. An existing destination with other bytes
is replaced only when asked (``force``); one with the same bytes is left alone.

Hashing for the drift check is the hashing of a run's outputs (capture.files, policy
``hash-only``): a path holds a version exactly when it hashes to the version's id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from typing import Any

from runbase.capture.files import snapshot_path
from runbase.capture.manifest import load_manifest
from runbase.core.safepath import SafeRoot
from runbase.errors import Conflict, CorruptObject, RunbaseError, UsageError
from runbase.records import registry
from runbase.records.registry import Version
from runbase.store import Store

# parts of a store that a destination never writes into
_STORE_PARTS = ("objects", "spool", "tmp", "envs", "corrupt", "runbase.db", "FORMAT")

STATES = ("in_sync", "other_version", "no_version", "missing")


def oid_at(store: Store, path: str) -> str | None:
    """The id of the file or directory at ``path`` (None: nothing there), hashed as a
    run's outputs are; a directory's tree manifest is kept in the store."""
    if not os.path.lexists(path):
        return None
    snap = snapshot_path(store, path, policy="hash-only")
    return snap[0] if snap else None


def materialize(
    store: Store, version: Version, dest: str, force: bool = False, mode: int = 0o644
) -> dict[str, Any]:
    """Write ``version``'s exact bytes at ``dest`` (a file, or a directory from its
    manifest). Returns ``{"ref", "path", "oid", "kind", "size", "files", "written"}``
    (``written`` false: ``dest`` held those bytes already). Conflict when the store
    lacks the bytes, or ``dest`` holds something else and not ``force``."""
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
    present = _existing(dest)
    if present is not None:
        if oid_at(store, dest) == version.oid:
            if version.kind == "dir":
                out["files"] = len(load_manifest(store, version.oid))
            return out
        if not force:
            raise Conflict(
                f"{dest} exists and holds other bytes than {version.ref}: "
                "use --force to replace it, or -o another path"
            )
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


def _existing(dest: str) -> str | None:
    """``file``, ``dir`` or None (nothing); something else (a socket, a device) refused."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return "file"  # a symlink is replaced by the file, never written through
    raise UsageError(f"{dest} is neither a file nor a directory")


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


def version_from_json(item: dict[str, Any]) -> Version:
    """A version of the JSON shape (a team server's answer, already fitted to it by
    remote.models) as the registry's :class:`Version`."""
    try:
        created = dt.datetime.fromisoformat(str(item.get("created_at"))).timestamp()
    except ValueError:
        created = 0.0

    def text(key: str) -> str | None:
        value = item.get(key)
        return value if isinstance(value, str) else None

    size = item.get("size")
    return Version(
        str(item["name"]),
        str(item["version"]),
        str(item["oid"]),
        "dir" if item.get("kind") == "dir" else "file",
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        text("run"),
        text("path"),
        text("git_commit"),
        created,
        text("user"),
        text("message"),
        tuple(s for s in item.get("stages") or () if isinstance(s, str)),
    )


def drift(
    store: Store, ref: str, path: str, candidates: list[Version] | None = None
) -> dict[str, Any]:
    """Whether ``path`` holds the version ``ref`` names now: the status shape
    ``{"ref", "path", "state", "in_sync", "expected", "actual_oid", "matches"}``
    (state: in_sync | other_version | no_version | missing)."""
    expected = registry.resolve_ref(store, ref)
    if candidates is None:
        candidates = registry.versions(store, expected.name)
    return drift_of(store, str(ref), expected, candidates, path)


def drift_of(
    store: Store, ref: str, expected: Version, candidates: list[Version], path: str
) -> dict[str, Any]:
    """:func:`drift` with the expected version and the model's versions given (read
    from a team server by ``runbase model status --remote``)."""
    actual = oid_at(store, path)
    matches = [v.ref for v in candidates if actual is not None and v.oid == actual]
    if actual is None:
        state = "missing"
    elif actual == expected.oid:
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
        "actual_oid": actual,
        "matches": matches,
    }
