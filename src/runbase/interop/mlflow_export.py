"""``runbase export RUN... --format mlflow DIR``: runs written as an MLflow file store.

The layout is the one MLflow's own ``FileStore`` reads (``MlflowClient("file:DIR")``,
``mlflow ui --backend-store-uri DIR``)::

    DIR/0/meta.yaml                     the Default experiment (always present)
    DIR/<exp>/meta.yaml                 one experiment per ``experiment`` tag
    DIR/<exp>/<run>/meta.yaml           id, name, user, status, times, artifact_uri
    DIR/<exp>/<run>/params/<key>        the value as text
    DIR/<exp>/<run>/metrics/<key>       one "<ms> <value> <step>" line per point, all of them
    DIR/<exp>/<run>/tags/<key>          the value as text
    DIR/<exp>/<run>/artifacts/<path>    the run's stored outputs, verified against their ids
    DIR/<exp>/<run>/inputs/, DIR/<exp>/datasets/   the run's MLflow dataset inputs

MLflow run ids are the runbase run ids (MLflow accepts any ``[A-Za-z0-9][\\w-]*``).
A run keeps its tags and gains MLflow's system tags where it has none of its own:
``mlflow.runName``, ``mlflow.user``, ``mlflow.source.git.commit`` (the code record's
commit), ``mlflow.parentRunId``; runbase's own MLflow state (tags ``runbase.mlflow.*``,
records.external) is written as MLflow keeps it: a soft-deleted run as deleted, dataset
inputs as datasets. DIR must be absent, empty, or an MLflow file store
(then the runs are added to it); a run already in DIR is never overwritten.
Everything written goes through :class:`~runbase.core.safepath.SafeRoot`: a recorded
key or path can never write outside its run's directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runbase.core.safepath import SafeRoot, check_relpath
from runbase.errors import CorruptObject, RunbaseError, UnsafePathError, UsageError
from runbase.interop.mlruns import experiment_meta, is_mlruns
from runbase.records import checkout, experiments, external
from runbase.records.external import param_text
from runbase.records.read import load_params, load_row, load_tags, series
from runbase.records.series import series_keys
from runbase.store import Store

DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
# MLflow's RunStatus numbers, as its FileStore keeps them in meta.yaml (the status
# itself comes from records.external's one map)
_RUN_STATUS = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}
# what MLflow accepts as a param/metric/tag name on POSIX: word characters, / . - : and
# space, and a name that is its own normalized path (MLflow reads names as file paths)
_NAME = re.compile(r"[/\w.\- :]+")


@dataclass
class _Dest:
    """The MLflow file store being written: its experiments by name and its run ids."""

    root: Path
    experiments: dict[str, str] = field(default_factory=dict)  # name -> id
    runs: set[str] = field(default_factory=set)


def export_mlflow(store: Store, run_ids: list[str], dest: Path) -> dict[str, Any]:
    """Write ``run_ids`` into the MLflow file store at ``dest``; what was written:
    ``{"dest", "runs": [ids], "experiments": {name: id}, "artifacts": n, "skipped":
    [{"what", "why"}]}``. UsageError for a ``dest`` that is neither empty nor MLflow's."""
    target = _open_dest(Path(dest))
    out: dict[str, Any] = {"dest": str(target.root), "runs": [], "experiments": {}}
    skipped: list[tuple[str, str]] = []
    artifacts = 0
    for run_id in dict.fromkeys(run_ids):  # each once, in the order given
        if run_id in target.runs:
            skipped.append((f"run {run_id}", f"already in {target.root}: not overwritten"))
            continue
        exp_name, exp_id = _experiment_for(store, target, run_id)
        artifacts += _write_run(store, target.root / exp_id, exp_id, run_id, skipped)
        target.runs.add(run_id)
        out["runs"].append(run_id)
        out["experiments"][exp_name] = exp_id
    out["artifacts"] = artifacts
    out["skipped"] = [{"what": w, "why": y} for w, y in skipped]
    return out


# -- the destination ------------------------------------------------------------------------


def _open_dest(root: Path) -> _Dest:
    """The store at ``root``, created when absent or empty; refused when it holds
    anything else than an MLflow file store."""
    root = root.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a directory for an MLflow file store")
    entries = sorted(os.listdir(root)) if root.is_dir() else []
    dest = _Dest(root)
    if entries:
        if not is_mlruns(root):
            raise UsageError(
                f"{root} is not empty and not an MLflow file store (no <experiment>/meta.yaml): "
                "give an empty or new directory, or an mlruns directory to add the runs to"
            )
        _read_existing(dest, entries)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".trash").mkdir(exist_ok=True)
    except OSError as e:
        raise RunbaseError(f"cannot create {root}: {e.strerror or e}") from None
    if DEFAULT_ID not in dest.experiments.values() and not (root / DEFAULT_ID).exists():
        _write_experiment(root, DEFAULT_ID, DEFAULT_NAME, time.time(), {})
        dest.experiments[DEFAULT_NAME] = DEFAULT_ID
    return dest


def _read_existing(dest: _Dest, entries: list[str]) -> None:
    for e in entries:
        meta = experiment_meta(dest.root / e)
        if meta is None:
            continue
        dest.experiments.setdefault(str(meta["name"]), e)
        for r in os.listdir(dest.root / e):
            if (dest.root / e / r / "meta.yaml").is_file():
                dest.runs.add(r)


def _experiment_for(store: Store, dest: _Dest, run_id: str) -> tuple[str, str]:
    """The name and destination id of the run's experiment (its ``experiment`` tag,
    else Default), its directory written when new: the store's own MLflow id for it
    where that id is free in ``dest``, else the next free number."""
    name = load_tags(store, [run_id])[run_id].get("experiment") or DEFAULT_NAME
    if name in dest.experiments:
        return name, dest.experiments[name]
    # (by_name may write: it gives a tagged name its row; a read-only store is only read)
    known = None if store.read_only else experiments.by_name(store, name)
    taken = set(dest.experiments.values())
    exp_id = known.id if known is not None and _free(dest.root, known.id, taken) else None
    if exp_id is None:
        n = 1
        while not _free(dest.root, str(n), taken):
            n += 1
        exp_id = str(n)
    created = known.created_at if known is not None else time.time()
    _write_experiment(dest.root, exp_id, name, created, known.tags if known is not None else {})
    dest.experiments[name] = exp_id
    return name, exp_id


def _free(root: Path, exp_id: str, taken: set[str]) -> bool:
    return exp_id not in taken and not (root / exp_id).exists()


def _write_experiment(
    root: Path, exp_id: str, name: str, created: float, tags: dict[str, str]
) -> None:
    d = root / exp_id
    ms = _ms(created)
    meta = {
        "artifact_location": d.as_uri(),
        "creation_time": ms,
        "experiment_id": exp_id,
        "last_update_time": ms,
        "lifecycle_stage": "active",
        "name": name,
    }
    d.mkdir(exist_ok=True)
    safe = SafeRoot(d)
    _write_text(safe, "meta.yaml", _yaml(meta))
    for key, value in sorted(tags.items()):
        if _mlflow_name(key):
            _write_text(safe, f"tags/{key}", value)


# -- one run --------------------------------------------------------------------------------


def _write_run(
    store: Store, exp_dir: Path, exp_id: str, run_id: str, skipped: list[tuple[str, str]]
) -> int:
    """The run's directory under ``exp_dir``; how many artifacts it holds. Written in a
    temporary directory renamed into place at the end: a run appears whole or not at
    all (an export stopped by a damaged object leaves no half run to skip next time)."""
    row = load_row(store, run_id)
    tags = load_tags(store, [run_id])[run_id]
    work = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=exp_dir))
    try:
        n = _fill_run(store, work, exp_dir / run_id, exp_id, row, tags, skipped)
        os.rename(work, exp_dir / run_id)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return n


def _fill_run(
    store: Store,
    work: Path,
    final: Path,
    exp_id: str,
    row: dict[str, Any],
    tags: dict[str, str],
    skipped: list[tuple[str, str]],
) -> int:
    run_id = row["id"]
    safe = SafeRoot(work)
    meta = _run_meta(row, exp_id, final, deleted=external.DELETED_TAG in tags)
    _write_text(safe, "meta.yaml", _yaml(meta))
    for sub in ("params", "metrics", "tags", "artifacts"):
        (work / sub).mkdir()
    for key, value in _params(store, run_id).items():
        _named(safe, "params", key, value, run_id, skipped)
    # runbase's own MLflow state (deletion, datasets, model links) is written as what it
    # is in MLflow's layout, never as tags
    visible = {k: v for k, v in tags.items() if not k.startswith(external.HIDDEN_PREFIX)}
    for key, value in sorted({**_system_tags(row), **visible}.items()):
        _named(safe, "tags", key, value, run_id, skipped)
    for key in (k["key"] for k in series_keys(store, run_id)):
        _named(safe, "metrics", key, _metric_lines(store, run_id, key), run_id, skipped)
    _datasets(external.datasets(tags), safe, SafeRoot(final.parent), run_id)
    return _artifacts(store, run_id, SafeRoot(work / "artifacts"), skipped)


def _datasets(entries: list[dict[str, Any]], run: SafeRoot, exp: SafeRoot, run_id: str) -> None:
    """The run's dataset inputs (records.external.datasets: the same whether the MLflow
    API, an MLflow import or anything else recorded them) written as MLflow's file store
    keeps them: ``<exp>/datasets/<id>/meta.yaml`` (once per name and digest) and
    ``<run>/inputs/<id>/meta.yaml`` naming it, with the input's tags."""
    for entry in entries:
        ds = entry["dataset"]
        # MLflow's Dataset needs a source type and a source: absent ones are empty
        dataset = {"source_type": "", "source": "", **ds}
        dataset_id = _digest(f"{ds['name']}\0{ds['digest']}")
        if exp.lstat(f"datasets/{dataset_id}/meta.yaml") is None:
            _write_text(exp, f"datasets/{dataset_id}/meta.yaml", _yaml(dataset))
        link = {
            "destination_id": run_id,
            "destination_type": "RUN",
            "source_id": dataset_id,
            "source_type": "DATASET",
            "tags": {t["key"]: t["value"] for t in entry["tags"]},
        }
        _write_text(run, f"inputs/{_digest(dataset_id + run_id)}/meta.yaml", _yaml(link))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True)


def _run_meta(row: dict[str, Any], exp_id: str, run_dir: Path, deleted: bool) -> dict[str, Any]:
    ended = row.get("ended_at")
    status = external.STATUS_TO_MLFLOW.get(str(row.get("status")), "RUNNING")
    return {
        "artifact_uri": (run_dir / "artifacts").as_uri(),
        "end_time": _ms(ended) if isinstance(ended, (int, float)) else None,
        "entry_point_name": "",
        "experiment_id": exp_id,
        "lifecycle_stage": "deleted" if deleted else "active",
        "run_id": row["id"],
        "run_name": row.get("name") or row["id"],
        "source_name": "",
        "source_type": 4,  # SourceType.LOCAL
        "source_version": "",
        "start_time": _ms(row.get("started_at") or 0.0),
        "status": _RUN_STATUS[status],
        "tags": [],
        "user_id": row.get("user_name") or "",
    }


def _system_tags(row: dict[str, Any]) -> dict[str, str]:
    """MLflow's own tags for what runbase records in columns (the run's tags win)."""
    out = {"mlflow.runName": str(row.get("name") or row["id"])}
    if row.get("user_name"):
        out["mlflow.user"] = str(row["user_name"])
    commit = _commit(row.get("code_json"))
    if commit:
        out["mlflow.source.git.commit"] = commit
    if row.get("parent_id"):
        out["mlflow.parentRunId"] = str(row["parent_id"])
    return out


def _commit(code_json: Any) -> str | None:
    try:
        code = json.loads(code_json) if isinstance(code_json, str) else None
    except ValueError:
        return None
    commit = code.get("commit") if isinstance(code, dict) else None
    return commit if isinstance(commit, str) and commit else None


def _params(store: Store, run_id: str) -> dict[str, str]:
    """The run's params as MLflow's text (records.external.param_text: a string as is,
    any other value as its JSON text, a value stored aside as an object in full), the
    text an import of the export reads back as the same value."""
    return {
        key: param_text(store, json.dumps(value, ensure_ascii=False))
        for key, (value, _source) in sorted(load_params(store, [run_id])[run_id].items())
    }


def _metric_lines(store: Store, run_id: str, key: str) -> str:
    s = series(store, run_id, key)
    return "".join(
        f"{_ms(t)} {_float_text(v)} {int(step)}\n"
        for step, t, v in zip(s.steps, s.times, s.values, strict=True)
    )


def _float_text(v: float) -> str:
    return repr(float(v)) if math.isfinite(v) else str(v)  # nan, inf, -inf: what float() reads


def _ms(seconds: float) -> int:
    """Seconds as MLflow's milliseconds: records.external.ms, the one conversion."""
    return external.ms(float(seconds)) or 0


def _named(
    safe: SafeRoot, sub: str, key: str, text: str, run_id: str, skipped: list[tuple[str, str]]
) -> None:
    """One param/metric/tag file, its name checked as MLflow checks it on reading."""
    what = f"{sub[:-1]} {key!r} of run {run_id}"
    if not _mlflow_name(key):
        skipped.append((what, "not a name MLflow accepts (letters, digits, _ - . / : space)"))
        return
    try:
        _write_text(safe, f"{sub}/{key}", text)
    except (UnsafePathError, OSError) as e:
        skipped.append((what, str(e)))


def _mlflow_name(key: str) -> bool:
    if not _NAME.fullmatch(key) or posixpath.normpath(key) != key or key.startswith(".."):
        return False
    try:
        check_relpath(key)
    except UnsafePathError:
        return False
    return True


def _write_text(safe: SafeRoot, rel: str, text: str) -> None:
    data = text.encode("utf-8", "surrogateescape")
    with safe.create(rel) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _artifacts(store: Store, run_id: str, safe: SafeRoot, skipped: list[tuple[str, str]]) -> int:
    """The run's stored outputs (a directory output: each of its files) as artifacts,
    each copied from the object store and verified against its id as it is written."""
    try:
        items, missing = checkout.plan(store, run_id, code=False, data=False, outputs=True)
    except (UnsafePathError, ValueError) as e:
        skipped.append((f"outputs of run {run_id}", str(e)))
        return 0
    skipped.extend((f"output {path!r} of run {run_id}", why) for path, why in missing)
    written = 0
    for item in items:
        if item.link is not None or item.oid is None:
            skipped.append((f"output {item.path!r} of run {run_id}", "a symlink: MLflow has none"))
            continue
        try:
            with safe.create(item.path, 0o755 if item.executable else 0o644) as fd:
                store.objects.copy_to(item.oid, fd)
            written += 1
        except CorruptObject as e:
            raise e.for_run(run_id) from None
        except (UnsafePathError, OSError) as e:
            skipped.append((f"output {item.path!r} of run {run_id}", str(e)))
    return written
