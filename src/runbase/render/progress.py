"""The terminal progress bar for the bytes runbase.core.progress reports.

The CLI calls :func:`install` at start-up. A bar (tqdm, imported only then) appears on
the stream once more than ``THRESHOLD`` bytes are involved, and only when that stream
is a terminal and ``$RUNBASE_NO_PROGRESS`` is unset; never while a run's own output is
being shown (the commands report progress only before a run starts and after it ends).
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from runbase.core import progress

THRESHOLD = 256 << 20  # "a few hundred MB": below this the work takes well under a second


class TerminalBar:
    """A bar that appears once the work turns out large (``THRESHOLD``)."""

    def __init__(self, label: str, total: int | None, stream: TextIO) -> None:
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
            from tqdm import tqdm  # lazy: only a large transfer on a terminal draws a bar

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


def open_bar(label: str, total: int | None, stream: TextIO) -> TerminalBar | None:
    """A bar on ``stream`` if one may be shown there: a terminal, progress not turned off."""
    return TerminalBar(label, total, stream) if _wanted(stream) else None


def _wanted(stream: TextIO) -> bool:
    if os.environ.get("RUNBASE_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def install() -> None:
    """Draw progress as a terminal bar in this process (the CLI's start-up)."""
    progress.install(open_bar)
