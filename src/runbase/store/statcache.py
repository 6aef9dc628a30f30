"""The stat cache: (device, inode, size, mtime_ns) -> object id, so an unchanged file
costs one ``lstat``, not a re-hash.

One row per directory (``stat_dirs``: the directory's path -> a marshalled dict of
file name -> ``(dev, ino, size, mtime_ns, oid, stored)``), loaded when a snapshot
first looks up a file of that directory and released when the walk leaves it, so
memory stays flat in the number of files and an unchanged tree of 10,000 files in
100 directories costs 100 small reads. ``stored`` says the object was in the store
when the entry was written: such a hit needs no existence check (``gc`` and ``fsck``
drop the entries of objects they delete or find bad, see :func:`forget`). A hash-only
entry (``stored`` false) still needs the bytes copied when a later run stores them.
"""

from __future__ import annotations

import marshal
import os
import time
from typing import Any

_MARSHAL_VERSION = 4  # fixed, so any Python >= 3.4 reads what another one wrote
_UPSERT = (
    "INSERT INTO stat_dirs (dir, entries) VALUES (?, ?) "
    "ON CONFLICT (dir) DO UPDATE SET entries = excluded.entries"
)
_FLUSH_ENTRIES = 20_000  # dirty entries kept before they are written (bounds memory)

Entry = tuple[int, int, int, int, str, bool]


def _decode(blob: Any) -> dict[str, Entry]:
    try:
        value = marshal.loads(bytes(blob))
    except (ValueError, EOFError, TypeError):
        return {}  # written by an incompatible Python, or damaged: only a cache
    return value if isinstance(value, dict) else {}


class StatCache:
    """Cached ids of files, per directory.

    >>> cache = StatCache(store)                      # doctest: +SKIP
    >>> cache.lookup(path, os.lstat(path))            # doctest: +SKIP
    ('blake3:…', True)
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._dirs: dict[str, dict[str, Entry]] = {}
        self._dirty: set[str] = set()
        self._pending: list[tuple[str, bytes]] = []
        self._pending_entries = 0
        # a file modified within the mtime granularity could change again unnoticed
        self._recent = time.time_ns() - 2_000_000_000

    def _entries(self, directory: str) -> dict[str, Entry]:
        entries = self._dirs.get(directory)
        if entries is None:
            row = self.store.db.query_one(
                "SELECT entries FROM stat_dirs WHERE dir = ?", (directory,)
            )
            entries = _decode(row[0]) if row else {}
            self._dirs[directory] = entries
        return entries

    def lookup(self, path: str, st: os.stat_result) -> tuple[str, bool] | None:
        """``(oid, stored)`` if ``path`` is unchanged since it was hashed."""
        directory, _, name = path.rpartition("/")
        hit = self._entries(directory).get(name)
        if hit and hit[:4] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return hit[4], hit[5]
        return None

    def remember(self, path: str, st: os.stat_result, oid: str, stored: bool) -> None:
        if st.st_mtime_ns >= self._recent:
            return
        directory, _, name = path.rpartition("/")
        self._entries(directory)[name] = (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            oid,
            stored,
        )
        self._dirty.add(directory)

    def release(self, directory: str, present: set[str] | None = None) -> None:
        """Done with ``directory``: queue its row for writing and free it. With
        ``present`` (every file name it holds now), entries of deleted files go."""
        entries = self._dirs.pop(directory, None)
        if entries is None:
            return
        if present is not None and not present.issuperset(entries):
            for name in [n for n in entries if n not in present]:
                del entries[name]
            self._dirty.add(directory)
        if directory in self._dirty:
            self._dirty.discard(directory)
            self._pending.append((directory, marshal.dumps(entries, _MARSHAL_VERSION)))
            self._pending_entries += len(entries)
            if self._pending_entries >= _FLUSH_ENTRIES:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.store.db.executemany(_UPSERT, self._pending)
        self._pending = []
        self._pending_entries = 0

    def save(self) -> None:
        """Write every change (one transaction per batch)."""
        for directory in list(self._dirs):
            self.release(directory)
        self._flush()


def forget(store: Any, oids: set[str]) -> int:
    """Drop the entries pointing at ``oids`` (objects deleted or found bad), so the
    next snapshot of those files stores them again. Returns how many were dropped."""
    if not oids:
        return 0
    dropped = 0
    updates: list[tuple[str, bytes]] = []
    for directory, blob in store.db.query("SELECT dir, entries FROM stat_dirs"):
        entries = _decode(blob)
        bad = [name for name, e in entries.items() if e[4] in oids]
        if bad:
            for name in bad:
                del entries[name]
            dropped += len(bad)
            updates.append((directory, marshal.dumps(entries, _MARSHAL_VERSION)))
    if updates:
        store.db.executemany(_UPSERT, updates)
    return dropped
