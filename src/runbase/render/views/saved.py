"""Saved views of the runs page (docs/views.md): the answers of ``/api/views``.

A view is a name and a spec (filter, sort, columns, hidden runs, chart toolbar and
panels), saved per project: in the store of ``runbase ui``, in the project's store on
a team server. Names and specs are checked here, where they come in: a bad one is a
:class:`UsageError` (400) naming the problem, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from runbase.capture.env import user_and_host
from runbase.core import viewspec
from runbase.errors import NotFound, UsageError
from runbase.records import savedviews
from runbase.records.record import iso
from runbase.store import Store


def saved_views(store: Store) -> dict[str, Any]:
    """``{views: [{name, default, user, created_at, updated_at}], default}``: every
    view by name, and the name of the project's default view (null: none)."""
    views = savedviews.list_views(store)
    return {
        "views": [_head(v) for v in views],
        "default": next((v.name for v in views if v.default), None),
    }


def saved_view(store: Store, name: str) -> dict[str, Any]:
    """``{name, spec, default, user, created_at, updated_at}``; :class:`NotFound`
    when the project has no view ``name``."""
    view = savedviews.get_view(store, viewspec.check_name(name))
    if view is None:
        raise NotFound(f"no saved view {name!r}")
    return {"name": view.name, "spec": view.spec, **_head(view)}


def save_view(
    store: Store,
    name: str,
    spec: Any,
    default: bool | None = None,
    user: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Check and save view ``name`` (created, or replaced whole): ``(the saved view as
    :func:`saved_view` answers it, created)``. ``default``: True makes it the project's
    only default view, False unsets it if it was, None leaves that as it was. ``user``:
    who saves it (None: the OS user, as ``runbase ui`` and the CLI run as)."""
    name = viewspec.check_name(name)
    spec = viewspec.check_spec(spec)
    if default is not None and not isinstance(default, bool):
        raise UsageError("default is true or false")
    if user is None:
        user = user_and_host()[0]
    created = savedviews.save_view(store, name, spec, user, default)
    return saved_view(store, name), created


def mark_default(store: Store, name: str, default: bool) -> dict[str, Any]:
    """Make view ``name`` the project's default (``default`` True) or not (False: unset
    if it was), leaving its spec as it is saved: a page ticking "default" must not
    write back the spec it loaded, which a colleague may have replaced since. The view
    as :func:`saved_view` answers it; :class:`NotFound` when there is none."""
    name = viewspec.check_name(name)
    if not isinstance(default, bool):
        raise UsageError("default is true or false")
    if not savedviews.mark_default(store, name, default):
        raise NotFound(f"no saved view {name!r}")
    return saved_view(store, name)


def delete_view(store: Store, name: str) -> None:
    """Remove view ``name`` (:class:`NotFound` when there is none)."""
    if not savedviews.delete_view(store, viewspec.check_name(name)):
        raise NotFound(f"no saved view {name!r}")


def set_default_view(store: Store, name: str | None) -> dict[str, Any]:
    """Make view ``name`` the project's default (None: no default view); the listing
    of :func:`saved_views` after it. :class:`NotFound` when there is no view ``name``."""
    if not savedviews.set_default(store, None if name is None else viewspec.check_name(name)):
        raise NotFound(f"no saved view {name!r}")
    return saved_views(store)


def _head(view: savedviews.SavedView) -> dict[str, Any]:
    return {
        "name": view.name,
        "default": view.default,
        "user": view.user,
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
    }
