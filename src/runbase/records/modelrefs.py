"""A model reference (``churn@production``, ``churn@v1.2.0``, ``churn@latest``) as the
version row it names: what lets a reference stand wherever a run (records.read.resolve)
or a file (records.lineage.oid_of) is accepted.

Its own module, below both readers and the registry (records.registry), so that each of
them can look references up without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbase.core.modelref import ModelRef, parse_ref
from runbase.errors import NotFound
from runbase.store import Store

VERSION_COLUMNS = (
    "name, version, oid, kind, size, run_id, path, git_commit, created_at, user_name, message"
)


@dataclass(frozen=True)
class RefTarget:
    """The version a reference names: enough to find its run and its bytes."""

    name: str
    version: str
    oid: str
    kind: str
    run_id: str | None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def model_exists(store: Store, name: str) -> bool:
    return (
        store.db.query_one("SELECT 1 FROM model_versions WHERE name = ? LIMIT 1", (name,))
        is not None
    )


def version_row(store: Store, ref: ModelRef) -> tuple[object, ...]:
    """The ``model_versions`` row (VERSION_COLUMNS) ``ref`` names; NotFound saying why."""
    if not model_exists(store, ref.name):
        raise NotFound(f"no model {ref.name!r} (see `runbase model ls`)")
    version = ref.value
    if ref.kind == "stage":
        row = store.db.query_one(
            "SELECT version FROM model_stages WHERE name = ? AND stage = ?", (ref.name, ref.value)
        )
        if row is None:
            hint = " (a version is written vX.Y.Z)" if _looks_like_a_version(ref.value) else ""
            raise NotFound(
                f"no version of {ref.name} is in stage {ref.value!r}{hint} "
                f"(see `runbase model show {ref.name}`)"
            )
        version = str(row[0])
    if ref.kind == "latest":
        found = store.db.query_one(
            f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? "
            "ORDER BY major DESC, minor DESC, patch DESC LIMIT 1",
            (ref.name,),
        )
    else:
        found = store.db.query_one(
            f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? AND version = ?",
            (ref.name, version),
        )
    if found is None:
        raise NotFound(
            f"no version {version} of model {ref.name} (see `runbase model show {ref.name}`)"
        )
    return tuple(found)


def _looks_like_a_version(value: str) -> bool:
    """``v1``, ``v1.2``: a stage name by the grammar, but surely a version cut short."""
    return value[:1] == "v" and value[1:2].isdigit()


def ref_target(store: Store, text: str) -> RefTarget | None:
    """The version ``text`` names; None when ``text`` is not shaped like a reference or
    no model has its name (a run named ``a@b`` still resolves as a run). A model that
    exists without that version or stage is a NotFound, not None: the reader meant it."""
    ref = parse_ref(text)
    if ref is None or not model_exists(store, ref.name):
        return None
    row = version_row(store, ref)
    oid, kind, run_id = row[2], row[3], row[5]
    if not isinstance(oid, str) or not isinstance(kind, str):
        raise NotFound(
            f"{text}: the registry's row of this version is damaged (runbase model verify)"
        )
    return RefTarget(
        str(row[0]), str(row[1]), oid, kind, run_id if isinstance(run_id, str) else None
    )
