"""What an ``open``/``os.rename``/``os.replace`` audit event says about a file: shared by
the run's audit hook (capture.files) and the one ``import runbase`` arms (runbase.tracking._early).
Standard library only: this is loaded by every process that imports runbase."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `from typing import` costs ~8 ms at import
if TYPE_CHECKING:
    from typing import Any

CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth")  # imports: code, not data
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Raised (``sys.audit(WRITE_EVENT, path)``) by runbase's wrappers of writers that bypass
# Python's ``open`` (``torch.save`` writes through C++) just before they write ``path``:
# the audit hooks see it as they see an ``open`` for writing.
WRITE_EVENT = "runbase.write"
FILE_EVENTS = frozenset(("open", "os.rename", "os.replace", WRITE_EVENT))


def event_path(event: str, args: tuple[Any, ...]) -> tuple[Any, str] | None:
    """``(path as given, "r" | "w")`` of a file event, None for any other event (or an
    open of a file descriptor)."""
    if event == "open":
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return None
        if mode is not None:
            write = any(c in mode for c in "wax+")
        else:
            write = bool((flags or 0) & _WRITE_FLAGS)
        return path, "w" if write else "r"
    if event in ("os.rename", "os.replace"):
        return args[1], "w"
    if event == WRITE_EVENT:
        return args[0], "w"
    return None


def data_path(path: Any, skip: tuple[str, ...]) -> str | None:
    """The absolute path of a data file, or None: not a path, code (an import), a cache,
    or under one of the ``skip`` prefixes (the interpreter, the store)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    elif not isinstance(path, str):
        path = os.fspath(path) if isinstance(path, os.PathLike) else None
        if not isinstance(path, str):
            return None
    if not path.startswith("/"):
        path = os.path.abspath(path)
    if path.startswith(skip) or "/__pycache__/" in path or path.endswith(CODE_SUFFIXES):
        return None
    return path


def read_mtime(path: str) -> int | None:
    """The modification time of a file about to be read, None if it does not exist (the
    open will fail: nothing is read)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def interpreter_prefixes() -> tuple[str, ...]:
    return tuple(
        p.rstrip("/") + "/" for p in {sys.prefix, getattr(sys, "base_prefix", sys.prefix)} if p
    )
