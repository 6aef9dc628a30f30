"""POSIX paths and command-line arguments are bytes; runbase's records are UTF-8 text.

Python hands runbase an argument or a file name that is not valid UTF-8 as a ``str``
holding lone surrogates (PEP 383, ``surrogateescape``: byte 0xE9 -> U+DCE9). Such a
string cannot be written to SQLite, JSON sent over HTTP or a terminal: it raises. So
every path and argument is *stored* in the form of this module (docs/run-record.md,
"Bytes that are not UTF-8"):

- valid UTF-8 is stored as it is (the usual case: nothing changes);
- a byte ``b`` that is not part of valid UTF-8 (0x80-0xFF) is stored as the
  private-use character U+EF00 + ``b`` (U+EF80-U+EFFF, as OPTU-8 does);
- a real character of that private-use range is stored as its three UTF-8 bytes, each
  so mapped: the form is unambiguous and every byte string round-trips.

:func:`encode` makes the stored form, :func:`decode` gives back the ``str`` that
``open()``/``os.fsencode`` turn into the original bytes, :func:`display` shows it with
U+FFFD for the bytes that are not text. Stdlib only, cheap on the common path.
"""

from __future__ import annotations

import re
from typing import Any

_RAW_BASE = 0xEF00  # byte b (0x80-0xFF) <-> U+EF00 + b
# what needs encoding: lone surrogates (any: only U+DC80-U+DCFF are bytes) and the
# private-use range that stands for bytes
_SPECIAL = re.compile("[\ud800-\udfff\uef80-\uefff]")
_RAW = re.compile("[\uef80-\uefff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _encode_char(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    if 0xDC80 <= c <= 0xDCFF:  # surrogateescape: the undecodable byte c - 0xDC00
        return chr(_RAW_BASE + c - 0xDC00)
    if 0xEF80 <= c <= 0xEFFF:  # a real private-use character: its UTF-8 bytes
        return "".join(chr(_RAW_BASE + b) for b in m.group(0).encode())
    return REPLACEMENT  # a surrogate that stands for no byte (bad JSON, surrogatepass)


def encode(s: str) -> str:
    """The stored form of a path or argument (valid Unicode, no surrogates)."""
    if s.isascii():
        return s
    return _SPECIAL.sub(_encode_char, s)


def to_bytes(stored: str) -> bytes:
    """The bytes a stored path or argument stands for."""
    if stored.isascii():
        return stored.encode()
    if not _RAW.search(stored):
        return stored.encode("utf-8", "surrogateescape")
    out = bytearray()
    for c in stored:
        o = ord(c)
        if 0xEF80 <= o <= 0xEFFF:
            out.append(o - _RAW_BASE)
        else:
            out += c.encode("utf-8", "surrogateescape")
    return bytes(out)


def decode(stored: str) -> str:
    """The file-system ``str`` of a stored path or argument: ``os.fsencode`` (and so
    ``open``, ``subprocess``) gives the original bytes back."""
    if stored.isascii():
        return stored
    return to_bytes(stored).decode("utf-8", "surrogateescape")


def display(s: str) -> str:
    """``s`` (stored or file-system form) for people: bytes that are not text as U+FFFD."""
    if s.isascii():
        return s
    if needs_encoding(s):  # the file-system form
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return to_bytes(s).decode("utf-8", "replace")


def needs_encoding(s: str) -> bool:
    """Whether ``s`` holds a surrogate, i.e. is a file-system string that cannot be
    encoded as UTF-8 as it is (a stored form never holds one: it is left alone)."""
    return not s.isascii() and _SURROGATE.search(s) is not None


def clean(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every string that cannot be
    encoded as UTF-8 put in the stored form; other values are returned as they are."""
    if isinstance(value, str):
        return encode(value) if needs_encoding(value) else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


# -- text every store can hold ---------------------------------------------------------------


def text_problem(text: str) -> str | None:
    """Why a store cannot hold ``text`` as it is, or None: a NUL (PostgreSQL text has
    none, so both dialects refuse it alike) or a lone surrogate (not UTF-8). The one
    check of every door that takes text: bundles, the server's forms, view specs, media
    keys and captions."""
    if "\x00" in text:
        return "contains a NUL character"
    if needs_encoding(text):
        return "is not valid Unicode (lone surrogate)"
    return None


def storable(text: str) -> bool:
    """Whether a store can hold ``text`` as it is (:func:`text_problem` has none)."""
    return text_problem(text) is None


def make_storable(text: str) -> str:
    """``text`` as a store can hold it: NULs dropped, each lone surrogate ``?`` (for
    text made by a program, where refusing would lose what was logged)."""
    if storable(text):
        return text
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
