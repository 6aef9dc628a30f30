"""Each project's run store on the server: its own metadata namespace (a PostgreSQL
schema or a SQLite file), all of them sharing one object store (bytes are stored once
across projects and users)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbase.errors import StoreError
from runbase.server.control import project_db_location
from runbase.store import Store
from runbase.store.backends import open_objects
from runbase.store.db import open_database
from runbase.store.pool import StorePool
from runbase.store.protocol import Objects

__all__ = ["ProjectStores", "open_project_store"]


def open_project_store(
    db_url: str,
    objects: Objects,
    project: str,
    scratch: Path,
    create: bool = False,
    migrate: bool = False,
) -> Store:
    """Project ``project``'s store. The server never migrates implicitly (``migrate``
    is for ``runbase server migrate``): an older schema is refused with that advice."""
    url, namespace = project_db_location(db_url, project)
    if namespace is None:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
    db = open_database(url, create=create, namespace=namespace, migrate=migrate)
    root = scratch / project
    root.mkdir(parents=True, exist_ok=True)
    return Store(root, db, objects)


class ProjectStores:
    """Opened project stores, lent one request at a time. PostgreSQL keeps one
    connection per thread inside one store, so a project shares a single store; SQLite
    connections must not cross threads, so each project has a pool."""

    def __init__(self, db_url: str, objects: Objects, scratch: Path | None = None) -> None:
        self.db_url = db_url
        self.objects = objects
        self._tmp = None if scratch is not None else tempfile.TemporaryDirectory(prefix="rbsrv-")
        self.scratch = scratch if scratch is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.shared = db_url.startswith(("postgresql://", "postgres://"))
        self._pools: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _open(self, project: str) -> Store:
        # create=True: a project registered in the control tables gets its schema on
        # first use (an existing one is only checked, never migrated here)
        return open_project_store(self.db_url, self.objects, project, self.scratch, create=True)

    def _pool(self, project: str) -> Any:
        with self._lock:
            pool = self._pools.get(project)
        if pool is not None:
            return pool
        created: Any = (
            self._open(project) if self.shared else StorePool(lambda: self._open(project))
        )
        with self._lock:
            pool = self._pools.setdefault(project, created)
        if pool is not created:
            created.close()
        return pool

    def check(self, projects: list[str]) -> None:
        """Open every project's store now, so that a schema this runbase does not know
        (newer, or older: ``runbase server migrate``) stops the server at startup
        rather than failing that project's requests one by one."""
        for name in projects:
            with self.borrow(name):
                pass

    @contextlib.contextmanager
    def borrow(self, project: str) -> Iterator[Store]:
        pool = self._pool(project)
        if isinstance(pool, Store):
            yield pool
            return
        with pool.borrow() as store:
            yield store

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for p in pools:
            with contextlib.suppress(Exception):
                p.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def open_objects_checked(url: str) -> Objects:
    try:
        return open_objects(url)
    except StoreError:
        raise
    except Exception as e:  # a bad endpoint, missing credentials: say which store
        raise StoreError(f"cannot open the object store {url}: {e}") from e
