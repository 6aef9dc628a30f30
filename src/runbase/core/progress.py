"""Progress reporting: code that hashes or stores many bytes says how far it got.

Code that hashes or copies calls :func:`advance` with the bytes it processed; that is
a no-op (one global read) unless the current thread is inside :func:`shown`, which
the commands open around work a user waits for (declared inputs before a run starts,
outputs after it ends, ``fsck``). Nothing is drawn here: :func:`shown` hands the
bytes to the display the program installed (:func:`install`), and without one (a
library user's process, a test) nothing is shown. The CLI installs the terminal bar
of runbase.render.progress at start-up. Stdlib only, so the store can report to it.
"""

from __future__ import annotations

import contextlib
import sys
import threading

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms, and a script's
if TYPE_CHECKING:  # run imports this module when it loads the tracking API
    from collections.abc import Callable, Iterator
    from typing import Protocol, TextIO

    class Display(Protocol):
        """One progress display, open for the length of a :func:`shown` block."""

        def add(self, n: int) -> None: ...
        def close(self) -> None: ...

    # (label, total bytes if known, stream) -> a display, or None when there is nothing
    # to show on that stream (not a terminal, progress turned off)
    Opener = Callable[[str, "int | None", TextIO], "Display | None"]

_opener: Opener | None = None
_active: tuple[int, Display] | None = None  # (the thread that opened it, its display)


def install(opener: Opener | None) -> None:
    """Show progress through ``opener`` from now on (None: show nothing)."""
    global _opener
    _opener = opener


def advance(n: int) -> None:
    """``n`` more bytes hashed or stored (counted for the thread that opened the block)."""
    active = _active
    if active is not None and active[0] == threading.get_ident():
        active[1].add(n)


@contextlib.contextmanager
def shown(label: str, total: int | None = None, stream: TextIO | None = None) -> Iterator[None]:
    """Report the bytes :func:`advance`\\ d inside this block to a display on ``stream``
    (stderr by default). A block inside another shows nothing of its own."""
    global _active
    opener = _opener
    if opener is None or _active is not None:
        yield
        return
    display = opener(label, total, stream if stream is not None else sys.stderr)
    if display is None:
        yield
        return
    _active = (threading.get_ident(), display)
    try:
        yield
    finally:
        _active = None
        with contextlib.suppress(Exception):  # a broken terminal must not fail the work
            display.close()
