"""Spool files: how a training process hands data to the store without touching it.

A live run writes append-only spool files under ``<store>/spool/<run id>/``, one per
process (``<pid>-<nonce>.spool``). Each is the 8-byte magic ``RBSPOOL1`` followed by
frames ``[u32 length][u32 crc32][marshal payload]`` (little endian). A payload is a
list of entries; a metric entry is a dict of ``{key: number}`` plus ``"\\0t"`` (time)
and optionally ``"\\0s"`` (step); any other entry is a dict with ``"\\0k"`` naming
its kind. A truncated or corrupt final frame (the process was killed mid-write) is
ignored. marshal is used because it serialises these dicts in C (~6 M entries/s
measured) and, unlike pickle, cannot execute code when read back.
"""

from __future__ import annotations

import marshal
import os
import struct
import zlib
from collections.abc import Iterator

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any


MAGIC = b"RBSPOOL1"
_HEADER = struct.Struct("<II")
TIME_KEY = "\x00t"
STEP_KEY = "\x00s"
KIND_KEY = "\x00k"


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def open_spool_file(spool_dir: str, prefix: str = "") -> int:
    """Create ``<spool_dir>/<prefix><pid>-<nonce>.spool`` with its magic written and
    return the append-only fd; on an error nothing is left behind and OSError is raised."""
    path = os.path.join(spool_dir, f"{prefix}{os.getpid()}-{os.urandom(4).hex()}.spool")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, MAGIC)
    except OSError:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return fd


def encode_frame(entries: list[dict[str, Any]]) -> bytes:
    """Serialise a batch; raises ValueError when an entry holds an unmarshallable value."""
    payload = marshal.dumps(entries)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: str | os.PathLike[str], offset: int = 0) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(end offset, entries)`` for every complete frame after ``offset``."""
    with open(path, "rb") as f:
        if offset == 0:
            if f.read(len(MAGIC)) != MAGIC:
                return
            offset = len(MAGIC)
        else:
            f.seek(offset)
        while True:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            length, crc = _HEADER.unpack(head)
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return  # torn tail write: everything before it is intact
            try:
                entries = marshal.loads(payload)
            except (ValueError, EOFError, TypeError):
                return
            offset += _HEADER.size + length
            yield offset, entries if isinstance(entries, list) else []
