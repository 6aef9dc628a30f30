"""``runbase checkout``: materialize a run's code and data from the store.

Files are written at their recorded relative paths under ``into``; every file is a
copy (a reflink where the filesystem offers one), never a hard link into the store,
whose objects must stay immutable. The whole plan is checked before anything is
written: local files that differ are a conflict unless ``force``.

Nothing recorded is trusted (docs/security.md): every path is validated as it is read
(:mod:`runbase.core.safepath`; a path that could leave ``into`` refuses the whole checkout),
bytes are written through :class:`~runbase.core.safepath.SafeRoot` (never through a symlink,
never outside ``into``), and every object is verified against its id as it is copied
(:class:`~runbase.errors.CorruptObject` names the object and the run).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from runbase.capture.manifest import load_manifest
from runbase.core.safepath import (
    SafeRoot,
    below_any,
    check_recorded_file,
    check_relpath,
    link_escapes,
)
from runbase.errors import CorruptObject, RunbaseError, UnsafePathError, UsageError
from runbase.store import Store
from runbase.store.hashing import CHUNK, new_hasher

# a store kept inside the target under another name: never written by a restore
_STORE_PARTS = ("objects", "spool", "tmp", "envs", "corrupt", "runbase.db", "FORMAT")


@dataclass
class _Item:
    path: str  # relative to the checkout root
    oid: str | None = None
    executable: bool = False
    link: str | None = None


@dataclass
class CheckoutReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_restorable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def plan(
    store: Store, run_id: str, code: bool = True, data: bool = True, outputs: bool = False
) -> tuple[list[_Item], list[tuple[str, str]]]:
    """What a checkout would write, and what it cannot restore (and why). Raises
    UnsafePathError when a recorded path could write outside the target."""
    items: list[_Item] = []
    missing: list[tuple[str, str]] = []
    if code:
        tree = _tree_of(store, run_id)
        if tree is None:
            missing.append((".", "the run has no code snapshot"))
        else:
            _add_tree(store, tree, "", items, missing)
    roles = [r for r, on in (("input", data), ("output", outputs)) if on]
    for role in roles:
        for path, oid, stored, url, kind in store.db.query(
            "SELECT path, oid, stored, url, kind FROM run_files WHERE run_id = ? AND role = ? ORDER BY path",
            (run_id, role),
        ):
            check_recorded_file(path, url)
            if url:
                missing.append((path, "remote data is recorded, not stored"))
            elif path.startswith("/"):
                missing.append((path, "outside the project"))
            elif not oid or not stored or not store.objects.exists(oid):
                missing.append(
                    (path, "hashed only (not stored)" if oid and not stored else "not in the store")
                )
            elif kind == "dir":
                _add_tree(store, oid, path + "/", items, missing)
            else:
                items.append(_Item(path, oid))
    return _consistent(items, missing)


def _tree_of(store: Store, run_id: str) -> str | None:
    row = store.db.query_one("SELECT code_json FROM runs WHERE id = ?", (run_id,))
    try:
        tree = json.loads(row[0]).get("tree") if row and row[0] else None
    except (ValueError, AttributeError):
        raise RunbaseError(f"run {run_id} has a malformed code record") from None
    return tree if isinstance(tree, str) else None


def _add_tree(
    store: Store, oid: str, prefix: str, items: list[_Item], missing: list[tuple[str, str]]
) -> None:
    """The entries of manifest ``oid`` (validated by load_manifest) under ``prefix``."""
    for e in load_manifest(store, oid):
        path = prefix + e["path"]
        if e["type"] == "link":
            if link_escapes(path, e["target"]):
                missing.append((path, f"symlink to {e['target']!r}, outside the tree: not created"))
            else:
                items.append(_Item(path, link=e["target"]))
        elif not store.objects.exists(e["oid"]):
            missing.append((path, "not in the store"))
        else:
            items.append(_Item(path, e["oid"], e["type"] == "x"))


def _consistent(
    items: list[_Item], missing: list[tuple[str, str]]
) -> tuple[list[_Item], list[tuple[str, str]]]:
    """One item per path (data recorded after code wins), and nothing below a path the
    run records as a file or symlink: writing it would go through that symlink."""
    by_path = {check_relpath(i.path): i for i in items}
    leaves = set(by_path)
    kept = []
    for item in by_path.values():
        above = below_any(item.path, leaves)
        if above is not None:
            missing.append((item.path, f"below {above!r}, a file or symlink of the run"))
        else:
            kept.append(item)
    return kept, missing


def checkout(
    store: Store,
    run_id: str,
    into: str | os.PathLike[str] = ".",
    code: bool = True,
    data: bool = True,
    outputs: bool = False,
    force: bool = False,
) -> CheckoutReport:
    """Write the run's code and/or data under ``into``; refuse to overwrite local
    changes unless ``force``."""
    root = SafeRoot(into, [os.path.join(store.root, p) for p in _STORE_PARTS])
    items, missing = plan(store, run_id, code, data, outputs)
    report = CheckoutReport(not_restorable=missing)
    todo: list[_Item] = []
    conflicts: list[str] = []
    for item in items:
        try:
            state = _state(root, item)
        except UnsafePathError as e:  # a symlink or file on disk where a directory goes
            report.not_restorable.append((item.path, e.why))
            continue
        if state == "same":
            report.unchanged.append(item.path)
        else:
            todo.append(item)
            if state == "different":
                conflicts.append(item.path)
    if conflicts and not force:
        shown = ", ".join(conflicts[:10]) + (
            f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        )
        raise UsageError(
            f"local files differ from the run's: {shown}; use --force to overwrite them"
        )
    for item in todo:
        _write(store, root, item, run_id)
        report.written.append(item.path)
    return report


def _state(root: SafeRoot, item: _Item) -> str:
    st = root.lstat(item.path)
    if st is None:
        return "absent"
    if item.link is not None:
        same = stat.S_ISLNK(st.st_mode) and root.readlink(item.path) == item.link
        return "same" if same else "different"
    if not stat.S_ISREG(st.st_mode):
        return "different"
    return "same" if _hash_at(root, item.path, st.st_size) == item.oid else "different"


def _hash_at(root: SafeRoot, rel: str, size: int) -> str:
    h = new_hasher(size)
    with os.fdopen(root.open_read(rel), "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"blake3:{h.hexdigest()}"


def _write(store: Store, root: SafeRoot, item: _Item, run_id: str) -> None:
    try:
        if item.link is not None:
            root.symlink(item.path, item.link)
            return
        assert item.oid is not None
        with root.create(item.path, 0o755 if item.executable else 0o644) as fd:
            store.objects.copy_to(item.oid, fd)
    except CorruptObject as e:  # the temp file is gone; nothing was written at the path
        raise e.for_run(run_id) from None
    except FileNotFoundError:
        raise RunbaseError(
            f"object {item.oid} for {item.path} vanished from the store while restoring "
            f"run {run_id}; `runbase fsck` lists what is missing"
        ) from None
    except OSError as e:
        raise RunbaseError(f"cannot write {item.path}: {e.strerror or e}") from None


def describe(report: CheckoutReport) -> dict[str, Any]:
    return {
        "written": len(report.written),
        "unchanged": len(report.unchanged),
        "not_restorable": [{"path": p, "why": w} for p, w in report.not_restorable],
    }
