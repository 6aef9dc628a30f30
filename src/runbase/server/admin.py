"""Administration of a team server's database, without a running server:
``runbase server migrate``, ``users add``, ``projects add``, ``members set``,
``hooks add``."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.errors import NotFound
from runbase.records import accounts, experiments
from runbase.server import control, hooks
from runbase.server.projects import open_objects_checked, open_project_store
from runbase.store.db import Database
from runbase.store.schema import SCHEMA_VERSION


@contextlib.contextmanager
def opened(db_url: str) -> Iterator[Database]:
    """The control tables of ``db_url`` (refused when not migrated to this version)."""
    db = control.open_control(db_url)
    try:
        yield db
    finally:
        db.close()


@dataclass
class MigrateReport:
    control_version: int
    store_version: int
    projects: list[str] = field(default_factory=list)


def migrate(db_url: str, objects_url: str | None = None) -> MigrateReport:
    """Create or bring forward the server tables and every project's store schema.
    Idempotent: running it on an up-to-date database changes nothing."""
    db = control.open_control(db_url, create=True)
    try:
        names = accounts.project_names(db)
    finally:
        db.close()
    objects: Any = open_objects_checked(objects_url) if objects_url else None
    with tempfile.TemporaryDirectory(prefix="rbmig-") as scratch:
        for name in names:
            store = open_project_store(
                db_url, objects, name, Path(scratch), create=True, migrate=True
            )
            try:  # runs pushed before schema 8: their experiments get rows now, not on a read
                experiments.adopt_tagged(store)
            finally:
                store.close()
    return MigrateReport(control.CONTROL_VERSION, SCHEMA_VERSION, names)


def add_user(
    db_url: str,
    name: str,
    role: str = "user",
    projects: tuple[str, ...] = (control.DEFAULT_PROJECT,),
    project_role: str = "writer",
    ttl: float | None = None,
) -> control.NewToken:
    """A new user, member of ``projects`` with ``project_role``; returns their first
    API token (its secret is shown this once)."""
    with opened(db_url) as db:
        return control.add_user_with_token(db, name, role, projects, project_role, ttl)


def add_hook(
    db_url: str,
    project: str,
    url: str,
    events: str | list[str],
    secret: str | None = None,
) -> control.NewHook:
    """A webhook of ``project`` that receives its events from now on: its cursor is the
    exact last seq of the project's registry log, read from the project's store as the
    server does (``Server.add_hook``), never guessed from the time. The store's objects
    are not opened: only its log is read."""
    with opened(db_url) as db:
        if not accounts.project_exists(db, project):  # before a store is made for it
            raise NotFound(f"no project {project!r}; `runbase server projects list` lists them")
        # the hook is checked (URL, events, secret) before the project's store is opened
        control.check_hook_url(url)
        control.check_hook_events(events)
        if secret is not None:
            control.check_hook_secret(secret)
        with tempfile.TemporaryDirectory(prefix="rbhook-") as scratch:
            # create: a project no request has used yet gets its store's schema, as the
            # server gives it on first use (an older schema is refused: migrate first)
            no_objects: Any = None  # only the log is read (as migrate without --objects)
            store = open_project_store(db_url, no_objects, project, Path(scratch), create=True)
            try:
                after = hooks.start_seq(store)
            finally:
                store.close()
        return control.add_hook(db, project, url, events, secret, after_seq=after)
