"""Hold the stopping signals while runbase records the end of a run.

A SIGTERM/SIGHUP/SIGQUIT or Ctrl-C that arrives while a run's end is being written (its
last points, its status) would otherwise cut that short: the run then reads crashed
with its last data lost. Held, it is delivered to the handler that was there before,
once the block is done (by default, the process then dies of it as it would have).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOPPING: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Within the block the stopping signals are remembered, not acted on; the first
    one is delivered after it. Off the main thread (no handler can be set): nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        if not got:  # more of them change nothing: the block still ends
            got.append(signum)

    old: dict[int, Any] = {}
    for sig in STOPPING:
        # a handler set outside Python (None) could not be put back: left alone
        if signal.getsignal(sig) is not None:
            with contextlib.suppress(ValueError, OSError):
                old[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
        if got:
            signal.raise_signal(got[0])
