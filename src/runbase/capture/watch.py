"""Watch the project tree with inotify (Linux) for file I/O that audit hooks cannot see.

Audit hooks only see Python's own ``open``; pyarrow, h5py, native code and non-Python
child processes read and write files behind them. inotify reports every open/close
in the watched directories, whoever does it: a file closed without writing was read,
one closed after writing (or moved in) was written. The supervisor runs this while
the command runs. Events cannot be attributed to a process, so an editor saving a file
in the tree during the run shows up too (recorded with source ``watch``).

When the reader falls behind, the kernel drops events and queues one ``IN_Q_OVERFLOW``
(``/proc/sys/fs/inotify/max_queued_events``). The watcher then scans the tree: every
file modified since the watcher started is reported written, and directories made in
the gap are watched. Reads in the gap cannot be recovered (atime is not reliable); a
warning says so, once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from collections.abc import Callable

from runbase.capture.files import CODE_SUFFIXES, skip_dir
from runbase.core._safe import warn_once

IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_ISDIR = 0x40000000
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_MASK = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_MOVED_TO | IN_CREATE
_EVENT = struct.Struct("iIII")
MAX_DIRS = 5_000
MAX_SCAN_FILES = 50_000  # an overflow scan stops here (a dataset tree of millions of files)
_CLOCK_REALTIME_COARSE = 5  # Linux clock id: the clock file timestamps are taken from
_SKIP_SUFFIXES = (*CODE_SUFFIXES, ".swp", "~")


class TreeWatcher:
    """Calls ``on_file(path, "r" | "w")`` for files read or written under ``root``."""

    def __init__(self, root: str, on_file: Callable[[str, str], None]) -> None:
        self.root = root
        self.on_file = on_file
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, str] = {}
        # file mtimes at or after this are the run's writes; the coarse clock, because
        # the kernel stamps files from it (time.time() can be a few ms ahead of it)
        self._since_ns = _coarse_now_ns()
        self._scanned: dict[str, int] = {}  # path -> the mtime an overflow scan reported
        self.overflows = 0
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the select at once
        self._thread: threading.Thread | None = None

    def start(self) -> TreeWatcher:
        self._add_tree(self.root)
        self._thread = threading.Thread(target=self._loop, name="runbase-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after reading what is already queued."""
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        # closing an inotify instance waits for the kernel (synchronize_srcu, ~8-15 ms
        # measured here): let it happen beside the run's finalization
        threading.Thread(
            target=_close_all, args=((self.fd, self._wake_r, self._wake_w),), daemon=True
        ).start()

    def _add_tree(self, top: str) -> None:
        for dirpath, dirnames, _ in os.walk(top):
            dirnames[:] = [d for d in dirnames if not skip_dir(d)]
            if len(self._dirs) >= MAX_DIRS:
                return
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(dirpath), _MASK)
            if wd >= 0:
                self._dirs[wd] = dirpath

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._wake_r], [], [])
            if self.fd in ready:
                self._drain()
            if self._wake_r in ready:
                while self._drain():  # what is queued already
                    pass
                return

    def _drain(self) -> bool:
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, OSError):
            return False
        self._parse(data)
        return True

    def _parse(self, data: bytes) -> None:
        """Act on the ``inotify_event`` records in ``data`` (one read's worth)."""
        i = 0
        while i + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, i)
            name = (
                data[i + _EVENT.size : i + _EVENT.size + length]
                .rstrip(b"\0")
                .decode(errors="surrogateescape")
            )
            i += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self._overflowed()
                continue
            base = self._dirs.get(wd)
            if base is None or not name:
                continue
            path = os.path.join(base, name)
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO) and not skip_dir(name):
                    self._add_tree(path)
                continue
            if name.endswith(_SKIP_SUFFIXES):
                continue
            try:
                if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                    self.on_file(path, "w")
                elif mask & IN_CLOSE_NOWRITE:
                    self.on_file(path, "r")
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad callback
                pass

    def _overflowed(self) -> None:
        """The kernel dropped events: find the writes among them by a scan, and say so."""
        self.overflows += 1
        warn_once(
            "watch-overflow",
            "the file watcher's event queue overflowed (fs.inotify.max_queued_events): "
            "files written since are found by a scan of the project, files only read "
            "may be missing from the record",
        )
        self._scan()

    def _scan(self) -> None:
        """Report files under ``root`` modified since the start (each mtime once), and
        watch directories created since."""
        files = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not skip_dir(d)]
            if len(self._dirs) < MAX_DIRS:
                wd = self._libc.inotify_add_watch(self.fd, os.fsencode(dirpath), _MASK)
                if wd >= 0:  # the same wd again for a directory already watched
                    self._dirs[wd] = dirpath
            for name in filenames:
                files += 1
                if files > MAX_SCAN_FILES:
                    return
                if name.endswith(_SKIP_SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    mtime = os.stat(path, follow_symlinks=False).st_mtime_ns
                except OSError:  # deleted since the listing
                    continue
                if mtime < self._since_ns or self._scanned.get(path) == mtime:
                    continue
                self._scanned[path] = mtime
                try:
                    self.on_file(path, "w")
                except Exception:  # noqa: BLE001 - the watcher must outlive a bad callback
                    pass


def _coarse_now_ns() -> int:
    try:
        return time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
    except (AttributeError, OSError):  # not Linux: then no inotify either
        return time.time_ns()


def _close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def watch(root: str, on_file: Callable[[str, str], None]) -> TreeWatcher | None:
    """A started watcher, or None where inotify is unavailable (not Linux, limits)."""
    if not hasattr(os, "fsencode") or not os.path.isdir("/proc/sys/fs/inotify"):
        return None
    try:
        return TreeWatcher(root, on_file).start()
    except (OSError, AttributeError):
        return None
