"""The data a run read and wrote, detected without the user declaring anything: the
capture side (runbase.records.files records it in the run's ``run_files`` rows).

- In every Python process of a run, an audit hook (``sys.addaudithook``) reports files
  opened for reading or writing and renames/replaces, under the project root.
- At the end of a run, the project tree is scanned for files created or modified since
  the run started: this catches what audit hooks cannot see (pyarrow/Parquet, h5py,
  ``torch.save``, C extensions, child processes that are not Python).
- Declared: ``runbase run --input/--output`` and ``runbase.input()/output()``.

Here: the audit hook, the end-of-run scan, and hashing (and storing) a file or a
directory through the stat cache. No SQL: what the run's record says about each file
is decided and written by runbase.records.files.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from runbase.capture._filehook import CODE_SUFFIXES as CODE_SUFFIXES  # capture.watch skips them too
from runbase.capture._filehook import (
    FILE_EVENTS,
    data_path,
    event_path,
    interpreter_prefixes,
    read_mtime,
)
from runbase.capture.manifest import file_entry_json, put_manifest
from runbase.capture.secretfiles import is_secret_file
from runbase.capture.withhold import holds_secret
from runbase.store import Store
from runbase.store.hashing import hash_file
from runbase.store.statcache import StatCache

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


def store_internals(store_root: str) -> tuple[str, ...]:
    """Path prefixes of runbase's own files in a store: never a run's data. (Not the
    whole store: ``runbase reproduce`` runs a copy of a project that lives inside it.)"""
    base = store_root.rstrip("/") + "/"
    return tuple(base + p for p in ("objects/", "spool/", "tmp/", "envs/", "runbase.db", "FORMAT"))


def skip_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


_SCAN_MAX_FILES = 50_000


# -- in the training process: the audit hook ----------------------------------------


def install_audit_hook(
    emit: Any,
    project_root: str,
    store_root: str,
    earlier: Iterable[tuple[str, str, int | None]] = (),
    scope: Any = None,
    before_overwrite: Any = None,
) -> None:
    """Report ``open``/``os.rename``/``os.replace`` of files under ``project_root``.

    ``emit(path, op, mtime_ns)`` is called once per (path, op), op being ``"r"`` or
    ``"w"``; for a read, ``mtime_ns`` is the file's modification time as it is opened
    (the supervisor hashes it later: this tells it whether the bytes it sees are the
    ones read, and whether they were written before the run began). The hook runs
    before the open: a read of a file that does not exist (a probe for an optional
    ``config.local``) will fail, reads nothing and is not reported. ``earlier``: file
    events seen before the run started (runbase.tracking._early), reported first. Audit hooks
    cannot be removed; this one stays cheap (a few string checks, one ``stat`` per file
    read) and never raises. With ``scope``, a path is reported once per value of
    ``scope()`` (the run reported to: each job run of a process, runbase.tracking.jobs, hears of
    the files it reads even when an earlier job read them).

    ``before_overwrite(path, mtime_ns)`` is called when this process is about to write
    (open for writing, rename onto, or ``WRITE_EVENT``) a file it read before, with the
    modification time of that read, once per read: the bytes read are still there, for
    the last time (a resumed checkpoint, read then saved over; see
    runbase.records.files.preimage). A write of a file not read costs one dict lookup.
    """
    root = project_root.rstrip("/") + "/"
    skip = (*interpreter_prefixes(), root + ".git/", *store_internals(store_root))
    seen: set[tuple[str, str, Any]] = set()
    reads: dict[tuple[str, Any], int] = {}  # (path, scope) -> modification time read

    def note(raw: Any, op: str, mtime: int | None = None) -> None:
        path = data_path(raw, skip)
        if path is None or not path.startswith(root):
            return
        key = (path, op, scope() if scope is not None else None)
        if op == "w" and reads:
            read = reads.pop((path, key[2]), None)
            if read is not None and before_overwrite is not None:
                before_overwrite(path, read)
        if key in seen or (op == "r" and (path, "w", key[2]) in seen):
            return  # (a read of what this process wrote itself: its own bytes)
        if op == "r" and mtime is None:
            mtime = read_mtime(path)
            if mtime is None:
                return  # the open will fail: nothing is read (a later read is reported)
        seen.add(key)
        if op == "r" and mtime is not None:
            reads[(path, key[2])] = mtime
        emit(path, op, mtime)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in FILE_EVENTS:
            return  # every audit event of the process comes here: most are not files'
        try:
            found = event_path(event, args)
            if found is not None:
                note(*found)
        except Exception:  # noqa: BLE001 - an audit hook must never break the program
            pass

    for path, op, mtime in earlier:
        note(path, op, mtime)
    sys.addaudithook(hook)


# -- hashing and storing files and directories, finding outputs -----------------------


def rel(root: str, path: str) -> str:
    """Paths inside the project are stored relative to it, others absolute."""
    r = root.rstrip("/") + "/"
    return path[len(r) :] if path.startswith(r) else path


def is_url(path: str) -> bool:
    """``s3://b/k``, ``https://h/p``, ``gs://…``: recorded as-is, never hashed."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and bool(scheme) and all(c.isalnum() or c in "+-." for c in scheme)


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
                if not stat.S_ISREG(st.st_mode) or is_secret_file(name):
                    continue  # a directory's secret files are left out, as from code
                if policy == "store" and holds_secret(p, st.st_size):
                    continue  # and so are those holding a redacted value
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
