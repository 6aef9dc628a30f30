"""The inotify tree watcher (capture.watch) when the kernel's event queue overflows: the
files written while events were dropped are still reported, and a warning says so once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from runbase.capture import watch as watchmod
from runbase.core import _safe

MAX_QUEUED = Path("/proc/sys/fs/inotify/max_queued_events")
WARNING = "runbase: warning: the file watcher's event queue overflowed"


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """warn_once is once per process: this test must see its own warning."""
    monkeypatch.setattr(_safe, "_seen", set())


class Seen:
    """The supervisor's on_file: collects (path, op); ``hold`` blocks the watcher's
    thread in its first callback until released, so the kernel queue fills behind it."""

    def __init__(self, hold: bool = False) -> None:
        self.events: list[tuple[str, str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, path: str, op: str) -> None:
        self.entered.set()
        self.release.wait(60)
        self.events.append((path, op))

    def written(self) -> set[str]:
        return {p for p, op in self.events if op == "w"}


def test_a_real_queue_overflow_is_scanned_and_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kernel's own IN_Q_OVERFLOW: the watcher's thread is held in a callback while
    more files are written than the queue holds (two events a file: create, close)."""
    limit = int(MAX_QUEUED.read_text())
    if limit > 200_000:  # a raised sysctl: the synthetic test below covers the code path
        pytest.skip(f"max_queued_events is {limit}: too many files to overflow it here")
    seen = Seen(hold=True)
    watcher = watchmod.TreeWatcher(str(tmp_path), seen).start()
    try:
        (tmp_path / "first.txt").write_text("x")
        assert seen.entered.wait(30), "the watcher never reported the first file"
        paths = [str(tmp_path / f"f{i}.txt") for i in range(limit // 2 + 500)]
        for p in paths:
            with open(p, "w") as f:
                f.write("y")
        sub = tmp_path / "made-during-overflow"  # its IN_CREATE is dropped: never watched
        sub.mkdir()
        (sub / "late.txt").write_text("z")
        paths.append(str(sub / "late.txt"))
    finally:
        seen.release.set()
        watcher.stop()
    assert watcher.overflows >= 1, "the queue did not overflow"
    assert set(paths) <= seen.written()
    assert str(tmp_path / "first.txt") in seen.written()
    assert str(sub) in watcher._dirs.values()  # and watched from the scan on
    assert capsys.readouterr().err.count(WARNING) == 1


def test_an_overflow_record_scans_the_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The parser fed the record the kernel queues on overflow (wd -1, IN_Q_OVERFLOW, no
    name): files modified since the start are reported written, each mtime once; older
    files, skipped suffixes and skipped directories are not; a new directory is watched."""
    old = tmp_path / "before.txt"
    old.write_text("old")
    os.utime(old, ns=(0, 0))  # long before the watcher started
    seen = Seen()
    watcher = watchmod.TreeWatcher(str(tmp_path), seen)
    watcher._add_tree(str(tmp_path))
    (tmp_path / "out.csv").write_text("1,2\n")
    (tmp_path / "train.py").write_text("pass\n")  # code: the snapshot records it
    (tmp_path / "new" / "deep").mkdir(parents=True)
    (tmp_path / "new" / "deep" / "w.bin").write_bytes(b"\0")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.bin").write_bytes(b"\0")
    record = watchmod._EVENT.pack(-1, watchmod.IN_Q_OVERFLOW, 0, 0)
    watcher._parse(record)
    watcher._parse(record)  # a second overflow: nothing new to report
    assert sorted(seen.events) == [
        (str(tmp_path / "new" / "deep" / "w.bin"), "w"),
        (str(tmp_path / "out.csv"), "w"),
    ]
    assert str(tmp_path / "new" / "deep") in watcher._dirs.values()
    assert watcher.overflows == 2
    assert capsys.readouterr().err.count(WARNING) == 1
    watchmod._close_all((watcher.fd, watcher._wake_r, watcher._wake_w))
