"""The stat cache: (device, inode, size, mtime_ns) -> object id, so an unchanged file
costs one ``stat``, not a re-hash. Loaded per directory prefix in one query and saved
in one transaction."""

from __future__ import annotations

import os
import time
from typing import Any

_UPSERT = (
    "INSERT INTO stat_cache (path, dev, ino, size, mtime_ns, oid) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, "
    "size = excluded.size, mtime_ns = excluded.mtime_ns, oid = excluded.oid"
)


class StatCache:
    """The cached ids of the files under ``prefix``.

    >>> cache = StatCache(store, "/repo")            # doctest: +SKIP
    >>> cache.lookup(path, os.lstat(path))           # doctest: +SKIP
    """

    def __init__(self, store: Any, prefix: str, paths: list[str] | None = None) -> None:
        self.store = store
        if paths is None:
            p = prefix.rstrip("/") + "/"
            rows = store.db.query(
                "SELECT path, dev, ino, size, mtime_ns, oid FROM stat_cache WHERE path >= ? AND path < ?",
                (p, p + "\U0010ffff"),
            )
        else:  # exactly these: a code snapshot must not load the data files' rows too
            rows = []
            for i in range(0, len(paths), 500):
                chunk = paths[i : i + 500]
                rows += store.db.query(
                    "SELECT path, dev, ino, size, mtime_ns, oid FROM stat_cache WHERE path IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
        self._entries = {r[0]: r[1:] for r in rows}
        self._updates: list[tuple[Any, ...]] = []
        # a file modified within the mtime granularity could change again unnoticed
        self._recent = time.time_ns() - 2_000_000_000

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        hit = self._entries.get(path)
        if hit and hit[:4] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return str(hit[4])
        return None

    def remember(self, path: str, st: os.stat_result, oid: str) -> None:
        if st.st_mtime_ns < self._recent:
            self._updates.append((path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, oid))

    def save(self) -> None:
        if self._updates:
            self.store.db.executemany(_UPSERT, self._updates)
            self._updates = []
