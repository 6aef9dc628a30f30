"""Store upkeep: ``fsck`` (verify every object, and the model registry's audit chain),
``gc`` (delete objects no run, no model version and no logged model refers to), ``du`` (where the bytes
go, and what deduplication saved)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runbase.capture.manifest import load_manifest
from runbase.core import progress
from runbase.core.ids import split_id
from runbase.core.shapes import CODE, LOGS, NOTEBOOK, Oid, load_column, loads
from runbase.errors import BundleError, CorruptObject, ObjectTooLarge, UnsafePathError
from runbase.records.registry import VerifyReport, verify
from runbase.store import Store
from runbase.store.hashing import hash_file
from runbase.store.statcache import forget

GC_GRACE_SECONDS = (
    3600  # objects younger than this are never collected: a live run may be writing them
)


MAX_MANIFEST = 1 << 30  # bytes of a tree manifest read to list its blobs (~10 M files)


class _Trees:
    """The blobs of tree manifests, each manifest read once (runs share trees).

    ``expand=False`` lists no blobs (the manifests' own ids only). ``strict``: a
    manifest that is present but malformed or oversized raises BundleError instead of
    counting as empty (a server must not let a run name blobs it cannot see listed);
    one that is absent lists nothing either way (its own id is reported missing)."""

    def __init__(self, store: Store, expand: bool = True, strict: bool = False) -> None:
        self.store = store
        self.expand = expand
        self.strict = strict
        self.seen: dict[str, list[str]] = {}

    def blobs(self, tree: str) -> list[str]:
        if not self.expand:
            return []
        if tree not in self.seen:
            self.seen[tree] = self._read(tree)
        return self.seen[tree]

    def _read(self, tree: str) -> list[str]:
        try:
            entries = load_manifest(self.store, tree, MAX_MANIFEST if self.strict else None)
            oids = [e["oid"] for e in entries if e.get("oid")]
            if self.strict:
                for oid in oids:
                    split_id(oid)
            return oids
        except FileNotFoundError:
            return []  # absent: fsck reports it, a server asks for it
        except UnsafePathError:
            if self.strict:
                raise  # a push naming a path outside its tree: refused with that path
            return []
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            ObjectTooLarge,
            CorruptObject,
        ) as e:
            if self.strict:
                raise BundleError(f"{tree} is not a readable tree manifest: {e}") from None
            return []  # a broken manifest: fsck reports it


def _scopes(column: str, run_ids: list[str] | None) -> Iterator[tuple[str, list[str]]]:
    """``(condition, args)`` pairs that together select the rows of ``run_ids`` (all rows
    when None), in chunks that stay under the databases' limits on query parameters."""
    if run_ids is None:
        yield "1 = 1", []
        return
    for i in range(0, len(run_ids), 500):
        chunk = run_ids[i : i + 500]
        yield f"{column} IN ({','.join('?' * len(chunk))})", chunk


def references(
    store: Store,
    run_ids: list[str] | None = None,
    *,
    expand: bool = True,
    strict: bool = False,
) -> Iterator[tuple[str, str, str]]:
    """Every object the metadata refers to: ``(object id, kind, run id or "")``; only
    those of the runs ``run_ids`` when given (the store-wide package-list cache, run id
    "", is then left out). ``expand``/``strict``: how tree manifests are read (_Trees)."""
    trees = _Trees(store, expand, strict)
    for cond, args in _scopes("id", run_ids):
        yield from _run_row_refs(store, cond, args, trees)
    for cond, args in _scopes("run_id", run_ids):
        # media before data: an image the run also wrote as a file is listed as media
        # first (the kind run_objects keeps), so it travels where data stays behind
        yield from _media_refs(store, cond, args)
        yield from _file_and_param_refs(store, cond, args, trees)
    if run_ids is None:
        for (value,) in store.db.query("SELECT value FROM meta WHERE key LIKE 'packages:%'"):
            yield value.split(" ", 1)[0], "env", ""
        yield from _model_refs(store, trees)
        yield from _logged_model_refs(store)


def _run_row_refs(
    store: Store, cond: str, args: list[str], trees: _Trees
) -> Iterator[tuple[str, str, str]]:
    """Objects named by runs rows: code snapshot, packages, logs, notebook."""
    for run_id, code_json, packages_id, logs_json, notebook_json in store.db.query(
        f"SELECT id, code_json, packages_id, logs_json, notebook_json FROM runs WHERE {cond}",
        args,
    ):
        # fitted to the documented shapes (runbase.core.shapes): a malformed column names no
        # object, instead of stopping gc, fsck or a push with a traceback
        code = load_column(code_json, CODE)
        if code:
            if code.get("patch"):
                yield code["patch"], "code", run_id
            if code.get("tree"):
                yield code["tree"], "code", run_id
                for oid in trees.blobs(code["tree"]):
                    yield oid, "code", run_id
        if packages_id:
            yield packages_id, "env", run_id
        for entry in (load_column(logs_json, LOGS) or {}).values():
            yield entry["oid"], "logs", run_id
        nb = load_column(notebook_json, NOTEBOOK) or {}
        for key in ("oid", "cells_oid"):  # the notebook file, the cells that ran: code
            if nb.get(key):
                yield nb[key], "code", run_id


def _file_and_param_refs(
    store: Store, cond: str, args: list[str], trees: _Trees
) -> Iterator[tuple[str, str, str]]:
    """Objects named by run_files rows (stored data) and large parameter values."""
    for run_id, oid, kind in store.db.query(
        f"SELECT run_id, oid, kind FROM run_files WHERE oid IS NOT NULL AND stored = 1 AND {cond}",
        args,
    ):
        yield oid, "data", run_id
        if kind == "dir":  # only directories are manifests: never parse a data file
            for blob in trees.blobs(oid):
                yield blob, "data", run_id
    for run_id, value in store.db.query(
        f"SELECT run_id, value FROM params WHERE value LIKE '{{\"$object\"%' AND {cond}", args
    ):
        try:
            oid = loads(value)["$object"]  # bounded depth: never a RecursionError
        except (ValueError, KeyError):
            continue
        if Oid().fit(oid):
            yield oid, "params", run_id


def _model_refs(store: Store, trees: _Trees) -> Iterator[tuple[str, str, str]]:
    """The bytes of each registered model version (a directory's manifest and its
    files): a version keeps them as long as it is registered, whatever becomes of its
    run, so ``model get`` can always deliver what a stage holds. Store-wide only: a
    run's bundle does not carry them (versions travel with the registry's events)."""
    for oid, kind, run_id in store.db.query("SELECT oid, kind, run_id FROM model_versions"):
        if not Oid().fit(oid):  # a damaged row names nothing (verify reports the registry)
            continue
        owner = run_id if isinstance(run_id, str) else ""
        yield oid, "model", owner
        if kind == "dir":  # only directories are manifests: never parse a model file
            for blob in trees.blobs(oid):
                yield blob, "model", owner


def _logged_model_refs(store: Store) -> Iterator[tuple[str, str, str]]:
    """The files of MLflow's logged models (records.experiments): an experiment's, not
    a run's, so store-wide only, like the registry's versions. The run a model was
    logged from, if any, is named as its owner."""
    rows = store.db.query(
        "SELECT f.oid, m.run_id FROM logged_model_files f "
        "LEFT JOIN logged_models m ON m.id = f.model_id"
    )
    for oid, run_id in rows:
        if Oid().fit(oid):  # a malformed id names nothing
            yield oid, "model", run_id if isinstance(run_id, str) else ""


def _media_refs(store: Store, cond: str, args: list[str]) -> Iterator[tuple[str, str, str]]:
    """Objects named by media rows: the images and tables runs logged."""
    for run_id, oid in store.db.query(f"SELECT run_id, oid FROM media WHERE {cond}", args):
        if Oid().fit(oid):  # a malformed id names nothing (bundles refuse them)
            yield oid, "media", run_id


@dataclass
class FsckReport:
    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (oid, kind, run)
    registry: VerifyReport = field(default_factory=VerifyReport)  # the model registry's chain

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing and self.registry.ok


def fsck(store: Store) -> FsckReport:
    """Re-hash every object; list those whose bytes do not match their id (moved aside
    to ``corrupt/``, so that a pull can bring good copies), and objects the metadata
    refers to that are missing (data of ``--hash-only`` runs is not expected there);
    verify the model registry's audit chain (``report.registry``)."""
    report = FsckReport()
    with progress.shown("checking objects"):
        for oid in store.objects:
            report.checked += 1
            try:
                if hash_file(store.local_objects.path(oid)) != oid:
                    report.corrupt.append(oid)
            except OSError:
                report.corrupt.append(oid)
    # moved aside (corrupt/), so the store stops claiming them: `runbase pull --data`
    # then fetches good copies, and the references below name the runs that need them
    for oid in report.corrupt:
        store.local_objects.quarantine(oid)
    seen: set[str] = set()
    for oid, kind, run_id in references(store):
        if oid not in seen:
            seen.add(oid)
            if not store.objects.exists(oid):
                report.missing.append((oid, kind, run_id))
    # the stat cache must not vouch for bad objects: the next snapshot of an unchanged
    # file then hashes and stores it again instead of trusting the cache
    forget(store, set(report.corrupt) | {m[0] for m in report.missing})
    # the registry's audit log: its hash chain, its head and the state it produced
    # (runbase model verify); a broken chain fails fsck as a damaged object does
    report.registry = verify(store)
    return report


@dataclass
class GcReport:
    unreferenced: list[tuple[str, int]] = field(default_factory=list)  # (oid, size)
    kept_young: int = 0
    deleted: bool = False
    work_dirs: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes) of reproduce/
    kept_work_dirs: int = 0  # in use by a running reproduction, or recent

    @property
    def bytes(self) -> int:
        return sum(s for _, s in self.unreferenced)

    @property
    def work_bytes(self) -> int:
        return sum(s for _, s in self.work_dirs)


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (links counted, not followed)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def work_dirs(store: Store, kind: str = "reproduce") -> list[tuple[Path, int]]:
    """``(directory, bytes)`` of each work directory under ``.runbase/<kind>/``:
    ``reproduce`` (the re-runs' materialized code and data) or ``envs`` (rebuilt
    virtual environments, a cache that ``reproduce --env venv`` reuses)."""
    return [(d, _tree_bytes(d)) for d in _work_dir_paths(store, kind)]


def _work_dir_paths(store: Store, kind: str) -> list[Path]:
    try:
        entries = sorted((store.root / kind).iterdir())
    except OSError:
        return []
    return [d for d in entries if d.is_dir() and not d.is_symlink()]


def _gc_work_dirs(store: Store, report: GcReport, delete: bool, cutoff: float) -> None:
    """Reproduce work directories are scratch once their re-run ended (its record and
    outputs are in the store): collected like objects, after the same grace period."""
    for d in _work_dir_paths(store, "reproduce"):  # sized only when collected
        busy = store.db.query_one(
            "SELECT 1 FROM runs WHERE project_root = ? AND status = 'running' LIMIT 1", (str(d),)
        )
        try:
            young = d.stat().st_mtime > cutoff
        except OSError:
            continue
        if busy or young:
            report.kept_work_dirs += 1
            continue
        report.work_dirs.append((str(d), _tree_bytes(d)))
        if delete:
            shutil.rmtree(d, ignore_errors=True)


def gc(store: Store, delete: bool = False, grace: float = GC_GRACE_SECONDS) -> GcReport:
    """Objects no run and no model version refers to. Dry run unless ``delete``; objects younger than
    ``grace`` seconds are kept, so runs in progress (which store data before recording
    it) are safe."""
    live = {oid for oid, _, _ in references(store)}
    report = GcReport(deleted=delete)
    cutoff = time.time() - grace
    for oid in store.objects:
        if oid in live:
            continue
        try:
            st = os.stat(store.local_objects.path(oid))
        except OSError:
            continue
        if st.st_mtime > cutoff:
            report.kept_young += 1
            continue
        report.unreferenced.append((oid, st.st_size))
        if delete:
            store.objects.delete(oid)
    if delete:  # stat-cache entries say "stored": they must not point at deleted objects
        forget(store, {oid for oid, _ in report.unreferenced})
    _gc_work_dirs(store, report, delete, cutoff)
    return report


@dataclass
class Usage:
    total_bytes: int = 0
    objects: int = 0
    database_bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # bytes of distinct objects by first kind
    referenced_bytes: int = 0  # what the runs refer to, counting every reference
    runs: int = 0
    reproduce_bytes: int = 0  # .runbase/reproduce/: re-runs' work directories (gc removes)
    reproduce_dirs: int = 0
    envs_bytes: int = 0  # .runbase/envs/: rebuilt virtual environments (a cache)

    @property
    def saved_by_dedup(self) -> int:
        distinct = sum(v for k, v in self.by_kind.items() if k != "unreferenced")
        return max(0, self.referenced_bytes - distinct)


def du(store: Store) -> Usage:
    """Store size by kind (code, data, env, logs, params, media) and the bytes
    deduplication saved."""
    u = Usage()
    sizes: dict[str, int] = {}
    for oid in store.objects:
        try:
            sizes[oid] = os.path.getsize(store.local_objects.path(oid))
        except OSError:
            continue
    u.objects = len(sizes)
    u.total_bytes = sum(sizes.values())
    counted: set[str] = set()
    per_run: set[tuple[str, str]] = set()
    for oid, kind, run_id in references(store):
        size = sizes.get(oid, 0)
        if (oid, run_id) not in per_run:
            per_run.add((oid, run_id))
            u.referenced_bytes += size
        if oid not in counted:
            counted.add(oid)
            u.by_kind[kind] = u.by_kind.get(kind, 0) + size
    u.by_kind["unreferenced"] = sum(s for o, s in sizes.items() if o not in counted)
    for name in ("runbase.db", "runbase.db-wal"):
        try:
            u.database_bytes += os.path.getsize(store.root / name)
        except OSError:
            pass
    row = store.db.query_one("SELECT count(*) FROM runs")
    u.runs = int(row[0]) if row else 0
    repro = work_dirs(store, "reproduce")
    u.reproduce_dirs, u.reproduce_bytes = len(repro), sum(b for _, b in repro)
    u.envs_bytes = sum(b for _, b in work_dirs(store, "envs"))
    return u
