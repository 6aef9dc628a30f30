"""The data a run read and wrote, detected without the user declaring anything.

- In every Python process of a run, an audit hook (``sys.addaudithook``) reports files
  opened for reading or writing and renames/replaces, under the project root.
- At the end of a run, the project tree is scanned for files created or modified since
  the run started: this catches what audit hooks cannot see (pyarrow/Parquet, h5py,
  ``torch.save``, C extensions, child processes that are not Python).
- Declared: ``runbase run --input/--output`` and ``runbase.input()/output()``.

Inputs are hashed (and stored) as soon as the supervisor or watcher hears of them, then
re-checked at the end: an input whose bytes changed during the run is flagged.
Outputs are hashed (and stored) at the end. Imported modules are code, not data, and
the end-of-run scan ignores files of the code snapshot (edited while the run ran).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import Any

from ..store import Store
from ..store.hashing import hash_file
from ..store.statcache import StatCache

FILE_EVENT = "file"
# Never data: VCS, the store, caches and virtualenvs (the audit hook, the tree watcher
# and the end-of-run scan share these).
SKIP_DIRS = frozenset(
    [
        ".git",
        ".runbase",
        "__pycache__",
        ".venv",
        "venv",
        "node_modules",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        ".hg",
        ".svn",
    ]
)
CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth")  # imports: code, not data


def store_internals(store_root: str) -> tuple[str, ...]:
    """Path prefixes of runbase's own files in a store: never a run's data. (Not the
    whole store: ``runbase reproduce`` runs a copy of a project that lives inside it.)"""
    base = store_root.rstrip("/") + "/"
    return tuple(base + p for p in ("objects/", "spool/", "tmp/", "envs/", "runbase.db", "FORMAT"))


def skip_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


_SCAN_MAX_FILES = 50_000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


# -- in the training process: the audit hook ----------------------------------------


def install_audit_hook(emit: Any, project_root: str, store_root: str) -> None:
    """Report ``open``/``os.rename``/``os.replace`` of files under ``project_root``.

    ``emit(path, op)`` is called once per (path, op), op being ``"r"`` or ``"w"``.
    Audit hooks cannot be removed; this one stays cheap (a few string checks) and
    never raises.
    """
    root = project_root.rstrip("/") + "/"
    skip = tuple(
        p.rstrip("/") + "/"
        for p in {sys.prefix, getattr(sys, "base_prefix", sys.prefix), root + ".git"}
        if p
    ) + store_internals(store_root)
    seen: set[tuple[str, str]] = set()

    def note(path: Any, op: str) -> None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        elif not isinstance(path, str):
            path = os.fspath(path) if isinstance(path, os.PathLike) else None
            if not isinstance(path, str):
                return
        if not path.startswith("/"):
            path = os.path.abspath(path)
        if not path.startswith(root) or path.startswith(skip) or "/__pycache__/" in path:
            return
        if path.endswith(CODE_SUFFIXES):
            return
        key = (path, op)
        if key not in seen:
            seen.add(key)
            emit(path, op)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open":
                path, mode, flags = args
                if path is None or isinstance(path, int):
                    return
                if mode is not None:
                    write = any(c in mode for c in "wax+")
                else:
                    write = bool((flags or 0) & _WRITE_FLAGS)
                note(path, "w" if write else "r")
            elif event in ("os.rename", "os.replace"):
                note(args[1], "w")
        except Exception:  # noqa: BLE001 - an audit hook must never break the program
            pass

    sys.addaudithook(hook)


# -- in the supervisor / watcher ----------------------------------------------------


def rel(root: str, path: str) -> str:
    """Paths inside the project are stored relative to it, others absolute."""
    r = root.rstrip("/") + "/"
    return path[len(r) :] if path.startswith(r) else path


def is_url(path: str) -> bool:
    """``s3://b/k``, ``https://h/p``, ``gs://…``: recorded as-is, never hashed."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and bool(scheme) and all(c.isalnum() or c in "+-." for c in scheme)


def note_file(store: Store, run_id: str, root: str, path: str, role: str, source: str) -> None:
    """Record that the run read (``input``) or wrote (``output``) ``path``; an input is
    hashed and stored right away, before the run can change it."""
    if is_url(path):
        store.db.execute(
            "INSERT INTO run_files (run_id, role, path, source, url) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, role, path) DO NOTHING",
            (run_id, role, path, source, path),
        )
        return
    key = rel(root, os.path.abspath(os.path.join(root, path)))
    store.db.execute(
        "INSERT INTO run_files (run_id, role, path, source) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id, role, path) DO UPDATE SET source = CASE WHEN excluded.source = 'declared' "
        "THEN 'declared' ELSE run_files.source END",
        (run_id, role, key, source),
    )
    if role == "input":
        row = store.db.query_one(
            "SELECT oid FROM run_files WHERE run_id = ? AND role = 'input' AND path = ?",
            (run_id, key),
        )
        if row is None or row[0] is None:  # hashed once, when first read: those are the bytes used
            _hash_into(store, run_id, root, role, key, _policy(store, run_id))


def _policy(store: Store, run_id: str) -> str:
    row = store.db.query_one("SELECT data_policy FROM runs WHERE id = ?", (run_id,))
    return row[0] if row and row[0] else "store"


def _hash_into(
    store: Store, run_id: str, root: str, role: str, key: str, policy: str
) -> str | None:
    """Hash (and store, unless hash-only) one recorded file or directory."""
    full = key if os.path.isabs(key) else os.path.join(root, key)
    snap = snapshot_path(store, full, policy)
    if snap is None:
        return None  # deleted (a temp file) or never created
    oid, size = snap
    kind = "dir" if os.path.isdir(full) else "file"
    store.db.execute(
        "UPDATE run_files SET oid = ?, size = ?, stored = ?, kind = ? WHERE run_id = ? AND role = ? AND path = ?",
        (oid, size, 1 if policy == "store" else 0, kind, run_id, role, key),
    )
    return oid


def snapshot_path(store: Store, path: str, policy: str = "store") -> tuple[str, int] | None:
    """Hash (and, with ``policy="store"``, store) a file or a directory: returns
    ``(object id, total size)``, a directory becoming a tree manifest object (the format
    of code trees); None if ``path`` does not exist. Unchanged files cost one ``lstat``;
    memory stays flat in the number of files (the manifest is streamed into the store,
    the stat cache is held one directory at a time)."""
    full = os.path.abspath(path)
    try:
        st = os.stat(full)
    except OSError:
        return None
    cache = StatCache(store)
    try:
        if stat.S_ISDIR(st.st_mode):
            return _put_dir(store, full, policy, cache)
        return _put_file(store, full, st, policy, cache)
    finally:
        cache.save()


def put_cached(
    store: Store, full: str, st: os.stat_result, cache: StatCache, store_bytes: bool = True
) -> tuple[str, int, bool]:
    """The id of one file (``store_bytes``: also its bytes in the store), through the
    stat cache: ``(oid, size, hashed)``. A hit whose object is known to be stored costs
    nothing beyond the caller's ``lstat``."""
    hit = cache.lookup(full, st)
    if hit is not None and (hit[1] or not store_bytes):
        return hit[0], st.st_size, False
    known = hit[0] if hit else None
    if store_bytes:
        oid, size = store.objects.put_file(full, known, st.st_size)
    else:
        oid, size = known or hash_file(full), st.st_size
    cache.remember(full, st, oid, store_bytes)
    return oid, size, hit is None


def _put_file(
    store: Store, full: str, st: os.stat_result, policy: str, cache: StatCache
) -> tuple[str, int]:
    oid, size, _ = put_cached(store, full, st, cache, policy == "store")
    return oid, size


def _put_dir(store: Store, full: str, policy: str, cache: StatCache) -> tuple[str, int]:
    from .code import file_entry_json, put_manifest

    total = [0]

    def entries() -> Iterator[str]:
        cut = len(full.rstrip("/")) + 1
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if not skip_dir(d))
            for name in sorted(filenames):
                p = f"{dirpath}/{name}"
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                oid, size = _put_file(store, p, st, policy, cache)
                total[0] += size
                yield file_entry_json(p[cut:], oid, size)
            cache.release(dirpath, set(filenames))

    return put_manifest(store, entries()), total[0]


def scan_outputs(root: str, since: float) -> list[str]:
    """Files under ``root`` created or modified since ``since`` (epoch seconds)."""
    since_ns = int(since * 1e9) - 50_000_000  # filesystem timestamps can lag the clock slightly
    found: list[str] = []
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not skip_dir(d)]
        for name in filenames:
            count += 1
            if count > _SCAN_MAX_FILES:
                return found
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if (
                stat.S_ISREG(st.st_mode)
                and st.st_mtime_ns >= since_ns
                and not name.endswith((".pyc",))
            ):
                found.append(p)
    return found


def finalize_files(
    store: Store, run_id: str, root: str, started_at: float, code_paths: set[str]
) -> None:
    """At the end of a run: find outputs the hooks missed, hash/store outputs, re-check inputs."""
    policy = _policy(store, run_id)
    for path in scan_outputs(root, started_at):
        key = rel(root, path)
        if key in code_paths:
            continue  # code edited during the run is not an output
        store.db.execute(
            "INSERT INTO run_files (run_id, role, path, source) VALUES (?, 'output', ?, 'scan') "
            "ON CONFLICT (run_id, role, path) DO NOTHING",
            (run_id, key),
        )
    rows = store.db.query("SELECT role, path, oid, url FROM run_files WHERE run_id = ?", (run_id,))
    for role, path, oid, url in rows:
        if url:
            continue
        if role == "output" or oid is None:
            new = _hash_into(store, run_id, root, role, path, policy)
            if new is None and role == "output":  # written, then deleted: a temp file
                store.db.execute(
                    "DELETE FROM run_files WHERE run_id = ? AND role = ? AND path = ?",
                    (run_id, role, path),
                )
        else:
            _flag_if_changed(store, run_id, root, path, oid)


def _flag_if_changed(store: Store, run_id: str, root: str, path: str, oid: str) -> None:
    full = path if os.path.isabs(path) else os.path.join(root, path)
    try:
        st = os.stat(full)
        if os.path.isdir(full):
            return
        # unchanged since it was hashed: one stat, no re-hash
        hit = StatCache(store).lookup(full, st)
        now = hit[0] if hit else hash_file(full)
    except OSError:
        return
    if now != oid:
        store.db.execute(
            "UPDATE run_files SET changed = 1 WHERE run_id = ? AND role = 'input' AND path = ?",
            (run_id, path),
        )


def list_files(store: Store, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` as in the run record."""
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    rows = store.db.query(
        "SELECT role, path, oid, size, stored, source, url, changed, kind FROM run_files WHERE run_id = ? ORDER BY path",
        (run_id,),
    )
    for role, path, oid, size, stored, source, url, changed, kind in rows:
        item = {"path": path, "hash": oid, "size": size, "stored": bool(stored), "source": source}
        if kind == "dir":
            item["directory"] = True
        if url:
            item["url"] = url
        if changed:
            item["changed_during_run"] = True
        out["inputs" if role == "input" else "outputs"].append(item)
    return out
