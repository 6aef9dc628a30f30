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

import functools
import marshal
import os
import time
from collections import OrderedDict
from typing import Any

_MARSHAL_VERSION = 4  # fixed, so any Python >= 3.4 reads what another one wrote
_UPSERT = (
    "INSERT INTO stat_dirs (dir, entries) VALUES (?, ?) "
    "ON CONFLICT (dir) DO UPDATE SET entries = excluded.entries"
)
_FLUSH_ENTRIES = 20_000  # dirty entries kept before they are written (bounds memory)

Entry = tuple[int, int, int, int, str, bool]

# A file modified within the timestamp granularity of its file system after it was hashed
# could keep the same (size, mtime): such a file is not cached. On the local file
# systems of Linux, timestamps come from the kernel's coarse clock (a jiffy, <= 10 ms
# behind): 0.1 s is safe. Elsewhere (FAT's 2 s steps, network file systems stamped by
# another machine's clock, unknown types) 2 s. Before, every file got 2 s: the outputs
# of a run, hashed as it ends, were never cached, and the next run re-hashed them all.
_FINE_GRAIN_NS = 100_000_000
_COARSE_GRAIN_NS = 2_000_000_000
_FINE_TYPES = frozenset({"ext4", "ext3", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs"})


@functools.lru_cache(maxsize=1)
def fine_grained_devices() -> frozenset[int]:
    """``st_dev`` of the mounted local file systems with fine timestamps (Linux's
    /proc/self/mountinfo; empty elsewhere, so every file gets the 2 s rule)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return frozenset()
    devices = set()
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 3 or right.split(" ", 1)[0] not in _FINE_TYPES:
            continue
        major, _, minor = fields[2].partition(":")
        if major.isdigit() and minor.isdigit():
            devices.add(os.makedev(int(major), int(minor)))
    return frozenset(devices)


def _decode(blob: Any) -> dict[str, Entry]:
    try:
        value = marshal.loads(bytes(blob))
    except (ValueError, EOFError, TypeError):
        return {}  # written by an incompatible Python, or damaged: only a cache
    return value if isinstance(value, dict) else {}


# Decoded rows of the directories looked up last, by (store, directory): a run that
# reads a directory's files one by one looks each up in a fresh StatCache, and decoding
# the whole row every time made that quadratic in the directory's size. A row is reused
# only while the stored bytes are exactly those it was decoded from.
_MEMO: OrderedDict[tuple[str, str], tuple[bytes, dict[str, Entry]]] = OrderedDict()
_MEMO_DIRS = 8


def _memo_key(store: Any, directory: str) -> tuple[str, str]:
    return (str(getattr(store, "root", id(store))), directory)


def _decoded(store: Any, directory: str, raw: Any) -> dict[str, Entry]:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return {}  # damaged: only a cache
    blob = bytes(raw)
    key = _memo_key(store, directory)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] == blob:
        _MEMO.move_to_end(key)
        return hit[1]
    entries = _decode(blob)
    _remember_decoded(store, directory, blob, entries)
    return entries


def _remember_decoded(store: Any, directory: str, blob: bytes, entries: dict[str, Entry]) -> None:
    key = _memo_key(store, directory)
    _MEMO[key] = (blob, entries)
    _MEMO.move_to_end(key)
    while len(_MEMO) > _MEMO_DIRS:
        _MEMO.popitem(last=False)


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
        self._started_ns = time.time_ns()  # before any file of this snapshot is hashed
        self._shared: set[str] = set()  # directories whose dict is the memo's (read-only)

    def _entries(self, directory: str, write: bool = False) -> dict[str, Entry]:
        entries = self._dirs.get(directory)
        if entries is None:
            row = self.store.db.query_one(
                "SELECT entries FROM stat_dirs WHERE dir = ?", (directory,)
            )
            entries = _decoded(self.store, directory, row[0]) if row else {}
            self._dirs[directory] = entries
            self._shared.add(directory)
        if write and directory in self._shared:  # copy-on-write: the memo's dict is shared
            entries = self._dirs[directory] = dict(entries)
            self._shared.discard(directory)
        return entries

    def lookup(self, path: str, st: os.stat_result) -> tuple[str, bool] | None:
        """``(oid, stored)`` if ``path`` is unchanged since it was hashed."""
        directory, _, name = path.rpartition("/")
        hit = self._entries(directory).get(name)
        if hit and hit[:4] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return hit[4], hit[5]
        return None

    def remember(self, path: str, st: os.stat_result, oid: str, stored: bool) -> None:
        fine = st.st_dev in fine_grained_devices()
        if st.st_mtime_ns >= self._started_ns - (_FINE_GRAIN_NS if fine else _COARSE_GRAIN_NS):
            return  # modified too close to the hash to rule out a change within one tick
        directory, _, name = path.rpartition("/")
        self._entries(directory, write=True)[name] = (
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
        self._shared.discard(directory)
        if entries is None:
            return
        if present is not None and not present.issuperset(entries):
            entries = {n: e for n, e in entries.items() if n in present}  # a copy: never the memo's
            self._dirty.add(directory)
        if directory in self._dirty:
            self._dirty.discard(directory)
            blob = marshal.dumps(entries, _MARSHAL_VERSION)
            _remember_decoded(self.store, directory, blob, entries)
            self._pending.append((directory, blob))
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
