"""``runbase checkout``: materialize a run's code and data from the store.

Files are written at their recorded relative paths under ``into``; every file is a
copy (a reflink where the filesystem offers one), never a hard link into the store,
whose objects must stay immutable. The whole plan is checked before anything is
written: local files that differ are a conflict unless ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capture.code import load_manifest
from .errors import UsageError
from .store import Store
from .store.hashing import hash_file

_FICLONE = 0x40049409  # linux/fs.h: share the extents, copy-on-write


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
    """What a checkout would write, and what it cannot restore (and why)."""
    items: list[_Item] = []
    missing: list[tuple[str, str]] = []
    row = store.db.query_one("SELECT code_json FROM runs WHERE id = ?", (run_id,))
    if code:
        tree = json.loads(row[0]).get("tree") if row and row[0] else None
        if tree is None:
            missing.append((".", "the run has no code snapshot"))
        else:
            for e in load_manifest(store, tree):
                if e["type"] == "link":
                    items.append(_Item(e["path"], link=e["target"]))
                else:
                    items.append(_Item(e["path"], e["oid"], e["type"] == "x"))
    roles = [r for r, on in (("input", data), ("output", outputs)) if on]
    for role in roles:
        for path, oid, stored, url, kind in store.db.query(
            "SELECT path, oid, stored, url, kind FROM run_files WHERE run_id = ? AND role = ? ORDER BY path",
            (run_id, role),
        ):
            if url:
                missing.append((path, "remote data is recorded, not stored"))
            elif os.path.isabs(path) or path.startswith(".."):
                missing.append((path, "outside the project"))
            elif not oid or not stored or not store.objects.exists(oid):
                missing.append(
                    (path, "hashed only (not stored)" if oid and not stored else "not in the store")
                )
            elif kind == "dir":
                for e in load_manifest(store, oid):
                    items.append(_Item(f"{path}/{e['path']}", e["oid"]))
            else:
                items.append(_Item(path, oid))
    return items, missing


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
    root = Path(into).absolute()
    items, missing = plan(store, run_id, code, data, outputs)
    report = CheckoutReport(not_restorable=missing)
    todo: list[_Item] = []
    conflicts: list[str] = []
    for item in items:
        dest = root / item.path
        state = _state(dest, item)
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
        _write(store, root / item.path, item)
        report.written.append(item.path)
    return report


def _state(dest: Path, item: _Item) -> str:
    if not dest.exists() and not dest.is_symlink():
        return "absent"
    if item.link is not None:
        return "same" if dest.is_symlink() and os.readlink(dest) == item.link else "different"
    if dest.is_symlink() or not dest.is_file():
        return "different"
    return "same" if hash_file(dest) == item.oid else "different"


def _write(store: Store, dest: Path, item: _Item) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.runbase-{os.getpid()}")
    if item.link is not None:
        os.symlink(item.link, tmp)
    else:
        assert item.oid is not None
        _copy(store.objects.path(item.oid), tmp)
        os.chmod(tmp, 0o755 if item.executable else 0o644)
    os.replace(tmp, dest)


def _copy(src: Path, dst: Path) -> None:
    """A reflink when the filesystem can (instant, shares blocks copy-on-write), else a copy."""
    try:
        import fcntl

        with open(src, "rb") as fs, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), _FICLONE, fs.fileno())
        return
    except (OSError, ImportError):
        pass
    shutil.copyfile(src, dst)


def describe(report: CheckoutReport) -> dict[str, Any]:
    return {
        "written": len(report.written),
        "unchanged": len(report.unchanged),
        "not_restorable": [{"path": p, "why": w} for p, w in report.not_restorable],
    }
