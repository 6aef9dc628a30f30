"""Text from records for a terminal: file names, package names, values and messages
come from runs (possibly pulled from a server), which are not trusted, so control
characters (an escape sequence could rewrite the screen) are shown escaped."""

from __future__ import annotations


def printable(text: object, limit: int | None = None) -> str:
    """``text`` with every non-printable character written as its escape (``\\x1b``),
    cut to ``limit`` characters (an ellipsis marks the cut) when given."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)
