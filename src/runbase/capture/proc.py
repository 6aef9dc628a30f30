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
        import psutil  # lazy: optional, for non-Linux systems

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


# The processes of a run, for orphan recovery (docs/store-format.md, "spool"): the
# supervisor's command and every Python process attached to the run append
# "<pid> <start>\n" here at start. While any of them lives the run goes on, even when
# the supervisor that owns it was killed.
PIDS_FILE = "pids"


def register(spool_dir: str, pid: int) -> None:
    """Record process ``pid`` as one of the run's (one O_APPEND write: no interleaving)."""
    line = f"{pid} {start_id(pid) or '-'}\n".encode()
    fd = os.open(os.path.join(spool_dir, PIDS_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def live_processes(spool_dir: str) -> list[int]:
    """The recorded processes of a run that still run (same pid, same start time)."""
    try:
        with open(os.path.join(spool_dir, PIDS_FILE), "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return []
    alive = []
    for line in data.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            continue  # a torn or foreign line: the file is not trusted
        pid, start = int(parts[0]), parts[1].decode(errors="replace")
        if pid > 1 and pid != os.getpid() and is_alive(pid, None if start == "-" else start):
            alive.append(pid)
    return alive
