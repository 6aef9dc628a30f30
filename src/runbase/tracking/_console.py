"""Tee ``sys.stdout``/``sys.stderr`` into the run's logs (for runs without a supervisor).

Only Python-level writes are seen; ``runbase run`` captures everything a process writes.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from runbase.capture.secrets import StreamScrubber
from runbase.core.runfiles import LOG_FILES


class _Tee:
    def __init__(
        self, inner: Any, fds: list[int], scrubbers: list[StreamScrubber], lock: threading.Lock
    ) -> None:
        self._inner = inner
        self._fds = fds
        self._scrubbers = scrubbers
        self._lock = lock
        self._broken = False

    def write(self, s: str) -> int:
        n = self._inner.write(s)
        if not self._broken and s:
            try:
                data = s.encode("utf-8", "replace")
                with self._lock:
                    for fd, scrub in zip(self._fds, self._scrubbers, strict=True):
                        os.write(fd, scrub.feed(data))
            except Exception:  # noqa: BLE001
                self._broken = True
        return n

    def flush_logs(self) -> None:
        try:
            with self._lock:
                for fd, scrub in zip(self._fds, self._scrubbers, strict=True):
                    os.write(fd, scrub.flush())
        except Exception:  # noqa: BLE001
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Capture:
    def __init__(self, out: _Tee, err: _Tee, fds: list[int]) -> None:
        self.out, self.err, self.fds = out, err, fds

    def add_secrets(self, values: set[str]) -> None:
        """Scrub these too from now on (params redacted after the capture began)."""
        with self.out._lock:
            for tee in (self.out, self.err):
                for scrubber in tee._scrubbers:
                    scrubber.add(values)

    def restore(self) -> None:
        for tee, name in ((self.out, "stdout"), (self.err, "stderr")):
            tee.flush_logs()
            # a tee still held (a logging handler; a later capture over it) passes
            # writes through: its fds close below, and their numbers get reused
            tee._broken = True
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._inner)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


def capture(spool_dir: str, secrets: set[str]) -> Capture | None:
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out_fd = os.open(os.path.join(spool_dir, LOG_FILES["output"]), flags, 0o644)
        err_fd = os.open(os.path.join(spool_dir, LOG_FILES["stderr"]), flags, 0o644)
    except OSError:
        return None
    lock = threading.Lock()
    combined = StreamScrubber(secrets)
    out = _Tee(sys.stdout, [out_fd], [combined], lock)
    err = _Tee(sys.stderr, [out_fd, err_fd], [combined, StreamScrubber(secrets)], lock)
    sys.stdout, sys.stderr = out, err
    return Capture(out, err, [out_fd, err_fd])
