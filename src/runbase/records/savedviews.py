"""The saved views of the runs page, rows of the ``views`` table (docs/store-format.md):
one store is one project, so a view's name is unique in it, and at most one view is
the project's default.

The spec is kept as the JSON text it was checked as (``runbase.core.viewspec``); rows
are read back through their shapes, since a store's rows are not trusted (a pulled or
edited database may hold anything): a name that cannot name a view is not listed, a
spec that does not fit reads as what fits of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from runbase.core import shapes, viewspec
from runbase.errors import UsageError
from runbase.store import Store

_COLUMNS = "name, spec, is_default, user_name, created_at, updated_at"


@dataclass(frozen=True)
class SavedView:
    name: str
    spec: dict[str, Any] | None  # fitted to this version (viewspec.read_spec); None: listed
    default: bool
    user: str | None
    created_at: float | None  # seconds since 1970; None: not a valid time in the store
    updated_at: float | None


def list_views(store: Store) -> list[SavedView]:
    """Every view, by name, without its spec (``spec`` None: a listing needs none)."""
    rows = store.db.query(
        "SELECT name, NULL, is_default, user_name, created_at, updated_at FROM views ORDER BY name"
    )
    views = [v for v in map(_view, rows) if v is not None]
    return _one_default(views)


def get_view(store: Store, name: str) -> SavedView | None:
    row = store.db.query_one(f"SELECT {_COLUMNS} FROM views WHERE name = ?", (name,))
    view = _view(row) if row is not None else None
    if view is None or not view.default:
        return view
    # several defaults can only come from outside runbase: the listing's one wins
    return view if default_view(store) == name else _undefault(view)


def default_view(store: Store) -> str | None:
    """The name of the project's default view, if it has one."""
    rows = store.db.query("SELECT name FROM views WHERE is_default = 1 ORDER BY name")
    return next((r[0] for r in rows if _valid_name(r[0])), None)


def save_view(
    store: Store,
    name: str,
    spec: dict[str, Any],
    user: str | None,
    default: bool | None = None,
    now: float | None = None,
) -> bool:
    """Create or replace view ``name`` (``spec`` already checked: ``viewspec.check_spec``);
    True when it was created. ``default``: True makes it the project's only default,
    False unsets it if it was, None keeps it as it was (a new view is not the default)."""
    now = time.time() if now is None else now
    text = viewspec.dumps(spec)
    with store.db.transaction() as cur:
        exists = _exists(cur, name)
        if exists:
            cur.execute(
                "UPDATE views SET spec = ?, user_name = ?, updated_at = ? WHERE name = ?",
                (text, user, now, name),
            )
        else:
            cur.execute(
                f"INSERT INTO views ({_COLUMNS}) VALUES (?, ?, 0, ?, ?, ?)",
                (name, text, user, now, now),
            )
        if default:
            _make_default(cur, name)
        elif default is not None:
            cur.execute("UPDATE views SET is_default = 0 WHERE name = ?", (name,))
    return not exists


def delete_view(store: Store, name: str) -> bool:
    """Remove view ``name``; False when there was none."""
    with store.db.transaction() as cur:
        return bool(cur.execute("DELETE FROM views WHERE name = ?", (name,)).rowcount)


def set_default(store: Store, name: str | None) -> bool:
    """Make view ``name`` the project's only default (None: no default); False when
    there is no view ``name`` (nothing changes then)."""
    with store.db.transaction() as cur:
        if name is not None and not _exists(cur, name):
            return False
        _make_default(cur, name)
    return True


def mark_default(store: Store, name: str, default: bool) -> bool:
    """Only whether view ``name`` is the default changes (its spec stays as saved, by
    whoever saved it last): True makes it the project's only default, False unsets it
    if it was. False when there is no view ``name`` (nothing changes then)."""
    with store.db.transaction() as cur:
        if not _exists(cur, name):
            return False
        if default:
            _make_default(cur, name)
        else:
            cur.execute("UPDATE views SET is_default = 0 WHERE name = ?", (name,))
    return True


def _exists(cur: Any, name: str) -> bool:
    return cur.execute("SELECT 1 FROM views WHERE name = ?", (name,)).fetchone() is not None


def _make_default(cur: Any, name: str | None) -> None:
    """``name`` becomes the only default view (None: there is none)."""
    cur.execute(
        "UPDATE views SET is_default = 0 WHERE is_default <> 0 AND name <> ?", (name or "",)
    )
    if name is not None:
        cur.execute("UPDATE views SET is_default = 1 WHERE name = ?", (name,))


def _view(row: Any) -> SavedView | None:
    name, spec = row[0], row[1]
    if not _valid_name(name):
        return None
    # the other columns as core.shapes.COLUMNS["views"] declares them (misfits: null)
    cols = shapes.fit_row("views", dict(zip(_FITTED, row[2:], strict=True)))
    # a number a SQLite column took is no user (a reader of runs shows it as text)
    user = cols["user_name"] if isinstance(row[3], str) else None
    return SavedView(
        name=name,
        spec=viewspec.read_spec(spec) if spec is not None else None,
        default=cols["is_default"] == 1,
        user=user,
        created_at=cols["created_at"],
        updated_at=cols["updated_at"],
    )


_FITTED = ("is_default", "user_name", "created_at", "updated_at")


def _valid_name(name: Any) -> bool:
    try:
        viewspec.check_name(name)
    except UsageError:  # a row no view could have been saved as: left out
        return False
    return True


def _one_default(views: list[SavedView]) -> list[SavedView]:
    """At most one default (the first by name), whatever the rows say."""
    seen = False
    out = []
    for v in views:
        out.append(_undefault(v) if v.default and seen else v)
        seen = seen or v.default
    return out


def _undefault(view: SavedView) -> SavedView:
    return SavedView(view.name, view.spec, False, view.user, view.created_at, view.updated_at)
