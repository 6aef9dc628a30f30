"""What every view shares: the API version, bad user input turned into
:class:`QueryError`, and an object read whole to show it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from runbase.core.query import compile_where
from runbase.errors import NotFound, ObjectTooLarge, QueryError, UsageError
from runbase.store import Store

__all__ = ["API_VERSION", "NotFound", "get_object", "user_sql", "where_sql"]

API_VERSION = 1
MAX_VIEW_OBJECT = 64 << 20  # a file, patch or manifest read whole to show it


@contextlib.contextmanager
def user_sql() -> Iterator[None]:
    """Expressions the user wrote that SQLite (or the parser) cannot take are bad input."""
    try:
        yield
    except RecursionError:
        raise QueryError("the expression is nested too deeply")
    except OverflowError as e:  # an integer SQLite cannot hold
        raise QueryError(f"a number in the expression is out of range ({e})")
    except sqlite3.OperationalError as e:
        msg = str(e)
        if any(w in msg for w in ("too large", "too many", "depth", "stack", "too complex")):
            raise QueryError(f"the expression is too large to evaluate ({msg})")
        raise


def where_sql(where: str | None) -> tuple[str, list[Any]]:
    """``where`` compiled to SQL (a malformed one: :class:`QueryError`)."""
    with user_sql():
        return compile_where(where)


def get_object(store: Store, oid: str, what: str) -> bytes:
    """An object read whole to show it; one too large is refused before it is read
    (a view must not take a server's memory: logs are read in windows instead)."""
    try:
        return store.objects.get_bytes(oid, max_size=MAX_VIEW_OBJECT)
    except ObjectTooLarge as e:
        raise UsageError(
            f"{what} ({oid}) is {e.size} bytes, too large to show here (at most "
            f"{MAX_VIEW_OBJECT}); `runbase checkout` restores it"
        ) from None
    except (OSError, ValueError) as e:
        raise NotFound(f"{what} ({oid}) is missing from the store ({e}); see `runbase fsck`")
