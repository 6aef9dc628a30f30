"""The failure policy once a run has started: warn once, never raise into user code."""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


_seen: set[str] = set()
_lock = threading.Lock()


def warn_once(key: str, message: str) -> None:
    """Print ``runbase: warning: <message>`` to stderr the first time ``key`` is seen."""
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    try:
        sys.stderr.write(
            f"runbase: warning: {message} (tracking continues; your code is unaffected)\n"
        )
        sys.stderr.flush()
    except Exception:
        pass


def safe_call(
    key: str, fn: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any
) -> Any:
    """Call ``fn``; on any exception warn once ("could not record <key>: ...") and
    return ``default``: ``safe_call("the code snapshot", snapshot_code, store, run_id, root)``."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the whole point is to swallow
        warn_once(key, f"could not record {key}: {type(e).__name__}: {e}")
        return default
