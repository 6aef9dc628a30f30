"""A progress bar on a terminal while runbase hashes or stores a lot of bytes.

Code that hashes or copies calls :func:`advance` with the bytes it processed; that is
a no-op (one global read) unless the current thread is inside :func:`shown`, which
the commands open around work a user waits for (declared inputs before a run starts,
outputs after it ends, ``fsck``). The bar (tqdm, imported only then) appears on
stderr once more than ``THRESHOLD`` bytes are involved and only when stderr is a
terminal; never while a run's own output is being shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

THRESHOLD = 256 << 20  # "a few hundred MB": below this the work takes well under a second


class _Bar:
    def __init__(self, label: str, total: int | None, stream: TextIO) -> None:
        self.owner = threading.get_ident()
        self.label = label
        self.total = total
        self.stream = stream
        self.done = 0
        self.bar: Any = None

    def add(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.done >= THRESHOLD or (self.total or 0) >= THRESHOLD:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=self.label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                leave=False,
                mininterval=0.2,
                dynamic_ncols=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_active: _Bar | None = None


def advance(n: int) -> None:
    """``n`` more bytes hashed or stored (by the thread that opened the bar)."""
    bar = _active
    if bar is not None and bar.owner == threading.get_ident():
        bar.add(n)


def _wanted(stream: TextIO) -> bool:
    if os.environ.get("RUNBASE_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def shown(label: str, total: int | None = None, stream: TextIO | None = None) -> Iterator[None]:
    """Show a bar for the bytes :func:`advance`\\ d inside this block, if it gets large."""
    global _active
    out = stream if stream is not None else sys.stderr
    if not _wanted(out) or _active is not None:
        yield
        return
    bar = _active = _Bar(label, total, out)
    try:
        yield
    finally:
        _active = None
        with contextlib.suppress(Exception):  # a broken terminal must not fail the work
            bar.close()
