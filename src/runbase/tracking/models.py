"""The model registry from Python (docs/models.md, Library)::

    import runbase
    m = runbase.model("churn")
    m.versions            # [Version], highest first; .stages, .log
    m.get("production", "deploy/model.pkl")
    path = runbase.model_path("churn@production")   # a local, verified, read-only copy

Reading goes to the local store (``store=``: another one). ``model_path`` with
``remote=`` fetches the version's bytes from a team server when this store lacks them.
"""

from __future__ import annotations

import os

from runbase.core.modelref import check_name, require_ref
from runbase.records import registry
from runbase.records.modelfiles import default_name, materialize
from runbase.records.registry import Event, Version
from runbase.store import Store

MODELS_DIR = "models"  # under the store: <store>/models/<oid hex>/<file name>


class Model:
    """One model of a store's registry; each attribute reads the registry as it is now."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = check_name(name)
        self._store = store
        registry.versions(store, name)  # NotFound now for a model that does not exist

    def __repr__(self) -> str:
        return f"<runbase.Model {self.name}: {len(self.versions)} versions, stages {self.stages}>"

    @property
    def versions(self) -> list[Version]:
        """The versions, highest first (each with the stages holding it)."""
        return registry.versions(self._store, self.name)

    @property
    def stages(self) -> dict[str, str]:
        """``{stage: version}``."""
        return registry.stages(self._store, self.name)

    @property
    def log(self) -> list[Event]:
        """The model's audit log, oldest first."""
        return registry.events(self._store, self.name)

    def version(self, ref: str = "latest") -> Version:
        """The version ``ref`` names: ``v1.2.0``, ``latest``, a stage, or ``NAME@...``."""
        return registry.resolve_ref(self._store, self._ref(ref))

    def get(self, ref: str = "latest", dest: str | os.PathLike[str] | None = None,
            force: bool = False) -> str:  # fmt: skip
        """Write the version's exact bytes at ``dest`` (default: its file name here);
        the path written. An existing ``dest`` with other bytes needs ``force``."""
        version = self.version(ref)
        target = os.fspath(dest) if dest is not None else default_name(version)
        return str(materialize(self._store, version, target, force=force)["path"])

    def _ref(self, ref: str) -> str:
        return ref if "@" in ref else f"{self.name}@{ref}"


def model(name: str, store: str | os.PathLike[str] | None = None) -> Model:
    """The model ``name`` of the local store's registry (NotFound if it has none)."""
    return Model(name, Store.open(store))


def model_path(
    ref: str, store: str | os.PathLike[str] | None = None, remote: str | None = None
) -> str:
    """The local path of the bytes ``ref`` (``churn@production``) names: a read-only copy
    under the store (``<store>/models/<oid hex>/<file name>``), written once, and each
    time it is handed out read in full and compared with the version (a file's hash; a
    directory entry by entry: nothing added, removed or changed), rewritten if it
    differs in any way.
    ``remote``: a team server's remote whose registry says which version ``ref`` is,
    its bytes fetched when this store lacks them."""
    require_ref(ref)
    s = Store.open(store, create=remote is not None)
    version = _fetch(s, ref, remote) if remote is not None else registry.resolve_ref(s, ref)
    dest = os.path.join(s.root, MODELS_DIR, version.oid.partition(":")[2], default_name(version))
    return str(materialize(s, version, dest, force=True, mode=0o444)["path"])


def _fetch(store: Store, ref: str, remote_name: str) -> Version:
    """The version the remote's registry names, its bytes brought into ``store`` when
    this store lacks them (re-hashed as they arrive)."""
    # lazy: the HTTP client loads only for a remote
    from runbase.remote import models as remote_models
    from runbase.remote.client import get_remote

    remote = get_remote(remote_name)
    return remote_models.version_from_json(
        remote_models.pull_version(store, remote, ref)["version"]
    )
