"""Process identity that survives pid reuse: (pid, start time)."""

from __future__ import annotations

import os


def start_id(pid: int) -> str | None:
    """An opaque token for the process's start time, or None if unknown/not running."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        # field 22 (starttime), counted after the ")" that closes the command name
        return data.rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        pass
    try:
        import psutil  # optional, for non-Linux systems

        return str(psutil.Process(pid).create_time())
    except Exception:
        return None


def is_alive(pid: int, start: str | None) -> bool:
    """True if process ``pid`` runs and (when known) started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is None:
        return True
    now = start_id(pid)
    if now is None:
        return True
    if now != start:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except OSError:
        return True
