"""Administration of a team server's database, without a running server:
``runbase server migrate``, ``users add``, ``projects add``, ``members set``."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.records import accounts
from runbase.server import control
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
