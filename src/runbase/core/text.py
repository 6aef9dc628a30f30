"""Text from records for a terminal, and the one rule of a bounded text field.

File names, package names, values and messages come from runs (possibly pulled from a
server), which are not trusted, so control characters (an escape sequence could rewrite
the screen) are shown escaped (:func:`printable`). Names, keys and values a caller
gives (an experiment's name, a tag) are checked by :func:`text_problem`, which says
what is wrong and leaves the error class to the caller: records raise UsageError, the
MLflow API its own error in MLflow's shape."""

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


def text_problem(value: object, limit: int) -> str | None:
    """What keeps ``value`` from being text of at most ``limit`` characters without NUL,
    worded to follow its name (``"tag key " + problem``), or None when it is. Empty text
    has no problem here: whether it may be empty is the caller's rule."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > limit:
        return f"is {len(value)} characters, over the limit of {limit}"
    if "\x00" in value:
        return "contains a NUL character"
    return None
