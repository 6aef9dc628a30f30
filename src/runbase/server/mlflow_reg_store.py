"""MLflow's model registry answered from runbase's (records.registry), as a library:
registered models are runbase models, model versions are runbase versions, aliases are
stages (docs/mlflow.md, "Model registry").

- MLflow numbers a model's versions 1, 2, 3...; runbase names them v0.0.1, ... The
  MLflow number of a version is its place in registration order.
- A version's bytes are a directory (a logged model's files, or a run's artifact
  directory) kept as a runbase tree manifest, or one artifact file; its provenance is
  the run that logged them.
- A registered model exists from its first version on (runbase has no empty models):
  creating one with no version answers as MLflow does but keeps nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runbase.capture.manifest import file_entry_json, put_manifest
from runbase.core.mlflowfilter import like
from runbase.core.modelref import check_name, check_stage, parse_version
from runbase.errors import NotFound, RunbaseError, UsageError
from runbase.records import experiments, external, registry
from runbase.records.registry import Actor, Source, Version
from runbase.server import mlflow_art_store as art
from runbase.server.mlflow_base import (
    EXPERIMENT_ID_RE,
    MODEL_ID_RE,
    check_model_id,
    decimal,
    page_offset,
    page_size,
    paged,
)
from runbase.store import Store

MODEL_PATH = "mlflow-models/"  # a version's path for a logged model's files: + model id
_ARTIFACT_URI = re.compile(
    rf"mlflow-artifacts:/+({EXPERIMENT_ID_RE.pattern})/([0-9a-z]{{16}})/artifacts(?:/(.*))?", re.S
)
_MODELS_URI = re.compile(rf"models:/({MODEL_ID_RE.pattern})/?")


def check_model_name(name: Any) -> str:
    try:
        return check_name(name)
    except UsageError as e:
        raise RunbaseError(f"{e} (runbase's registry names are lower-case)") from None


def ordered(store: Store, name: str) -> list[Version]:
    """The model's versions in registration order (MLflow's 1, 2, 3...)."""
    found = registry.versions(store, check_model_name(name))
    return sorted(found, key=lambda v: (v.created_at, parse_version(v.version)))


def number_of(versions: list[Version], version: Version) -> int:
    return next(i for i, v in enumerate(versions, 1) if v.version == version.version)


def by_number(store: Store, name: str, number: Any) -> tuple[list[Version], Version]:
    wanted = decimal(number, "an MLflow model version (a number from 1)", low=1, high=10**9)
    versions = ordered(store, name)
    if wanted > len(versions):
        raise NotFound(f"model {name!r} has no version {wanted} (it has {len(versions)})")
    return versions, versions[wanted - 1]


def source_uri(store: Store, version: Version) -> str:
    """Where MLflow finds the version's files (its ``source`` and download URI)."""
    path = version.path or ""
    if path.startswith(MODEL_PATH):
        model_id = path[len(MODEL_PATH) :]
        exp = str(experiments.get_model(store, model_id)["experiment_id"])
        return art.artifact_location(exp, model_id)
    if version.run_id is None:
        return ""
    exp = experiments.of_run(store, version.run_id).id
    return f"{art.ARTIFACTS_ROOT}/{exp}/{version.run_id}/artifacts/{path}".rstrip("/")


def version_json(store: Store, versions: list[Version], version: Version) -> dict[str, Any]:
    created = external.ms(version.created_at)
    body: dict[str, Any] = {
        "name": version.name,
        "version": str(number_of(versions, version)),
        "creation_timestamp": created,
        "last_updated_timestamp": created,
        "current_stage": "None",
        "source": source_uri(store, version),
        "status": "READY",
        "aliases": list(version.stages),
        "tags": [{"key": "runbase.version", "value": version.version}],
    }
    if version.user:
        body["user_id"] = version.user
    if version.message:
        body["description"] = version.message
    if version.run_id:
        body["run_id"] = version.run_id
    if (version.path or "").startswith(MODEL_PATH):
        body["model_id"] = (version.path or "")[len(MODEL_PATH) :]
    return body


def model_json(store: Store, name: str) -> dict[str, Any]:
    versions = ordered(store, name)
    latest = versions[-1]
    stages = registry.stages(store, name)
    numbers = {v.version: str(i) for i, v in enumerate(versions, 1)}
    changed = max(v.created_at for v in versions)
    return {
        "name": name,
        "creation_timestamp": external.ms(versions[0].created_at),
        "last_updated_timestamp": external.ms(changed),
        "latest_versions": [version_json(store, versions, latest)],
        "aliases": [{"alias": s, "version": numbers[v]} for s, v in stages.items() if v in numbers],
    }


def empty_model_json(name: str, now: float) -> dict[str, Any]:
    return {
        "name": name,
        "creation_timestamp": external.ms(now),
        "last_updated_timestamp": external.ms(now),
    }


def exists(store: Store, name: str) -> bool:
    try:
        registry.versions(store, check_model_name(name))
    except NotFound:
        return False
    return True


# ---------------------------------------------------------------- new versions


def source_of(
    store: Store,
    source: Any,
    run_id: Any,
    model_id: Any,
    hold: Callable[[str, int], None],
) -> Source:
    """The bytes an MLflow ``create_model_version`` names: a logged model
    (``model_id`` / ``models:/<id>``) or a run's artifact file or directory
    (``mlflow-artifacts:/<exp>/<run>/artifacts/<path>``). A directory becomes a tree
    manifest object, ``hold``-ed by the project like any uploaded object."""
    if not isinstance(source, str) or len(source) > 2000:
        raise RunbaseError("source is the URI of the model's files")
    models = _MODELS_URI.fullmatch(source)
    if model_id or models:
        mid = check_model_id(model_id or (models.group(1) if models else None))
        row = experiments.get_model(store, mid)
        files = [(p, o, int(s)) for p, o, s in experiments.model_files(store, mid)]
        owner = row.get("run_id") if isinstance(row.get("run_id"), str) else None
        if not files:
            raise RunbaseError(f"logged model {mid} has no files yet: nothing to register")
        return _dir_source(store, files, owner, MODEL_PATH + mid, hold)
    if source.startswith(art.ARTIFACTS_ROOT) and "/models/" in source:
        mid = source.rstrip("/").split("/models/", 1)[1].split("/", 1)[0]
        return source_of(store, f"models:/{mid}", run_id, None, hold)
    found = _ARTIFACT_URI.fullmatch(source)
    if found is None:
        raise RunbaseError(
            f"cannot register {source[:200]!r}: runbase registers a logged model "
            "(models:/<model_id>) or a run's artifacts on this server "
            "(mlflow-artifacts:/<experiment>/<run>/artifacts/<path>)"
        )
    exp, owner, path = found.group(1), found.group(2), found.group(3) or ""
    if run_id and run_id != owner:
        raise RunbaseError(f"source is an artifact of run {owner}, not of run {run_id}")
    target = art.parse_target(f"{exp}/{owner}/artifacts/{path}", allow_root=True)
    art.check_owner(store, target)
    every = art.files_of(store, target)
    for p, oid, size in every:
        if p == path:
            return Source(oid, "file", size, owner, path)
    prefix = path + "/" if path else ""
    files = [(p[len(prefix) :], o, s) for p, o, s in every if p.startswith(prefix)]
    if not files:
        raise NotFound(f"run {owner} has no artifact {path!r}")
    return _dir_source(store, files, owner, path, hold)


def _dir_source(
    store: Store,
    files: list[tuple[str, str, int]],
    run_id: str | None,
    path: str,
    hold: Callable[[str, int], None],
) -> Source:
    entries = [file_entry_json(p, o, s) for p, o, s in sorted(files)]
    oid = put_manifest(store, entries)
    hold(oid, store.objects.size(oid))
    return Source(oid, "dir", sum(s for _, _, s in files), run_id, path or None)


def create_version(
    store: Store, name: str, source: Source, description: Any, actor: Actor
) -> dict[str, Any]:
    """Register ``source`` as the next version of ``name`` (a runbase patch bump)."""
    message = art.optional_text(description, "description", registry.MAX_MESSAGE)
    registry.register(store, check_model_name(name), source, message=message, actor=actor)
    versions = ordered(store, name)
    return version_json(store, versions, versions[-1])


# ---------------------------------------------------------------- aliases


def check_alias(alias: Any) -> str:
    try:
        return check_stage(alias)
    except UsageError as e:
        raise RunbaseError(f"{e} (an MLflow alias is a runbase stage)") from None


def set_alias(store: Store, name: str, alias: Any, number: Any, actor: Actor) -> None:
    """Point ``alias`` (a runbase stage) at version ``number``: a promotion, with the
    stage's protection (an approver for a protected stage; a two-person stage opens a
    request instead, which the caller is told about)."""
    stage = check_alias(alias)
    _, version = by_number(store, name, number)
    if registry.stages(store, name).get(stage) == version.version:
        return  # MLflow's set_alias is idempotent
    events = registry.promote(store, name, version.version, stage, message=None, actor=actor)
    if any(e.action == "request" for e in events):
        raise RunbaseError(
            f"stage {stage!r} needs two people: request {events[-1].data.get('request')} "
            f"asks to promote {name}@{version.version}; an approver approves it "
            "(runbase model approve)"
        )


def delete_alias(store: Store, name: str, alias: Any, actor: Actor) -> None:
    stage = check_alias(alias)
    ordered(store, name)  # NotFound for an unknown model
    registry.demote(store, name, stage, message=None, actor=actor)


def by_alias(store: Store, name: str, alias: Any) -> dict[str, Any]:
    stage = check_alias(alias)
    versions = ordered(store, name)
    held = registry.stages(store, name).get(stage)
    for v in versions:
        if v.version == held:
            return version_json(store, versions, v)
    raise NotFound(f"model {name!r} has no alias {stage!r}")


# ---------------------------------------------------------------- searches


_CLAUSE = re.compile(
    r"\s*(name|run_id|source_run_id|tags?\.`[^`]+`|tags?\.[\w.]+)\s*(=|!=|LIKE|ILIKE)\s*"
    r"'((?:[^'\\]|\\.)*)'\s*",
    re.I,
)


def parse_filter(text: Any) -> list[tuple[str, str, str]]:
    """The registry filters the client sends: clauses on ``name`` (=, !=, LIKE,
    ILIKE), ``run_id`` (=, !=) and tags joined by AND. runbase's versions carry no MLflow
    tags, so a tag clause matches when it asks for a tag to differ (the client's own
    "not a prompt" clause)."""
    if text is None or text == "":
        return []
    if not isinstance(text, str) or len(text) > 10_000:
        raise RunbaseError("filter is text of at most 10000 characters")
    out = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.I):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise RunbaseError(
                f"unsupported registry filter {part[:100]!r}: runbase answers name "
                "(=, !=, LIKE, ILIKE), run_id and tag clauses joined by AND (docs/mlflow.md)"
            )
        field = m.group(1).lower()
        field = "tag" if field.startswith("tag") else "run_id" if "run_id" in field else field
        out.append((field, m.group(2).upper(), m.group(3).replace("\\'", "'")))
    return out


def _holds(clauses: list[tuple[str, str, str]], name: str, run_id: str | None) -> bool:
    for field, op, value in clauses:
        if field == "tag":
            ok = op in ("!=",)  # no tags: only "differs" holds
        else:
            text = name if field == "name" else (run_id or "")
            if op in ("LIKE", "ILIKE"):
                ok = like(value, text, ignore_case=op == "ILIKE")
            else:
                ok = (text == value) == (op == "=")
        if not ok:
            return False
    return True


def _page(
    items: list[Any], max_results: Any, token: Any, default: int, most: int
) -> tuple[list[Any], str | None]:
    """The page a registry search asks for (server.mlflow_base's one token format)."""
    return paged(items, page_offset(token), page_size(max_results, default=default, most=most))


def search_models(store: Store, query: dict[str, Any]) -> dict[str, Any]:
    clauses = parse_filter(query.get("filter"))
    if any(f == "run_id" for f, _, _ in clauses):
        raise RunbaseError("a registered-model filter names no run_id")
    names = [str(m["name"]) for m in registry.list_models(store)]
    names = [n for n in names if _holds(clauses, n, None)]
    page, nxt = _page(names, query.get("max_results"), query.get("page_token"), 100, 1000)
    out: dict[str, Any] = {"registered_models": [model_json(store, n) for n in page]}
    if nxt:
        out["next_page_token"] = nxt
    return out


def search_versions(store: Store, query: dict[str, Any]) -> dict[str, Any]:
    clauses = parse_filter(query.get("filter"))
    found: list[tuple[list[Version], Version]] = []
    for model in registry.list_models(store):
        versions = ordered(store, str(model["name"]))
        found.extend((versions, v) for v in reversed(versions) if _holds(clauses, v.name, v.run_id))
    # the page first, then its JSON (a version's source is looked up): a page's work only
    page, nxt = _page(found, query.get("max_results"), query.get("page_token"), 10_000, 200_000)
    out: dict[str, Any] = {"model_versions": [version_json(store, vs, v) for vs, v in page]}
    if nxt:
        out["next_page_token"] = nxt
    return out


def latest_versions(store: Store, name: str, stages: Any) -> list[dict[str, Any]]:
    """MLflow's legacy stages: none asked, the latest version; else the versions held by
    the runbase stages of those names (lower-cased: ``Production`` is ``production``)."""
    versions = ordered(store, name)
    if not stages:
        return [version_json(store, versions, versions[-1])]
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise RunbaseError("stages is a list of stage names")
    held = registry.stages(store, name)
    wanted = {held[s.lower()] for s in stages if s.lower() in held}
    return [version_json(store, versions, v) for v in versions if v.version in wanted]
