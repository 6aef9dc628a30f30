"""What the MLflow artifact and logged-model endpoints do, as a library (no HTTP):
where an artifact path points (a run's outputs or a logged model's files), listing,
recording an uploaded file, and the MLflow JSON of a logged model (docs/mlflow.md).

An MLflow run's artifacts are the runbase run's outputs (``run_files`` rows, role
``output``, source ``mlflow``); a logged model's files are ``logged_model_files`` rows.
Both point at objects of the server's object store by content hash, so the same bytes
uploaded twice are stored once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from runbase.core.ids import is_valid_id
from runbase.core.safepath import check_relpath
from runbase.errors import NotFound, RunbaseError, UnsafePathError
from runbase.records import experiments, external
from runbase.records.files import list_files
from runbase.server.mlflow_base import (
    MAX_KEY,
    MODEL_ID_RE,
    Caller,
    check_experiment_id,
    check_model_id,
    check_text,
    field_pairs,
    page_offset,
    page_size,
    paged,
    pairs,
    pairs_json,
    writable_model,
    writable_run,
)
from runbase.store import Store

MAX_PATH = 1000  # an artifact path's characters
MAX_NAME = 500
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
ARTIFACTS_ROOT = "mlflow-artifacts:"


@dataclass(frozen=True)
class Target:
    """Where an artifact path of the mlflow-artifacts API points: run ``owner`` (kind
    ``run``) or logged model ``owner`` (kind ``model``) of ``experiment_id``, at
    ``path`` below its root ("" is the root itself)."""

    experiment_id: str
    kind: str  # run | model
    owner: str
    path: str


__all__ = [
    "MAX_KEY",
    "MODEL_ID_RE",
    "check_experiment_id",
    "check_model_id",
]  # shared with the routes


def check_run_id(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_id(value):
        raise NotFound(f"Run '{str(value)[:40]}' not found")
    return value


def check_path(path: str) -> str:
    """A relative POSIX artifact path: no ``..``, not absolute, no NUL, <= 1000 chars."""
    if len(path) > MAX_PATH:
        raise RunbaseError(f"an artifact path is at most {MAX_PATH} characters")
    try:
        return check_relpath(path)
    except UnsafePathError as e:
        raise RunbaseError(f"unsafe artifact path: {e}") from None


def parse_target(rest: str, allow_root: bool) -> Target:
    """``{exp}/{run_id}/artifacts[/{path}]`` or ``{exp}/models/{model_id}/artifacts[/{path}]``
    (the path after the API root). ``allow_root``: the path may be empty (listing)."""
    if len(rest) > MAX_PATH + 100:
        raise RunbaseError(f"an artifact path is at most {MAX_PATH} characters")
    parts = rest.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "models":
        head, kind, owner = 4, "model", check_model_id(parts[2])
        marker = parts[3] if len(parts) > 3 else None
    elif len(parts) >= 2:
        head, kind, owner = 3, "run", check_run_id(parts[1])
        marker = parts[2] if len(parts) > 2 else None
    else:
        raise RunbaseError(
            "an artifact path is {experiment_id}/{run_id}/artifacts/{path} or "
            "{experiment_id}/models/{model_id}/artifacts/{path}"
        )
    if marker != "artifacts":
        raise RunbaseError(f"no artifacts at {rest[:200]!r} (expected .../artifacts/...)")
    path = "/".join(parts[head:])
    if path:
        check_path(path)
    elif not allow_root:
        raise RunbaseError("name the artifact's path below .../artifacts/")
    return Target(check_experiment_id(parts[0]), kind, owner, path)


def check_owner(store: Store, target: Target) -> None:
    """The run or logged model exists and belongs to the experiment the path names."""
    if target.kind == "run":
        if not external.exists(store, target.owner):
            raise NotFound(f"no run {target.owner}")
        found = experiments.of_run(store, target.owner).id
    else:
        found = str(experiments.get_model(store, target.owner)["experiment_id"])
    if found != target.experiment_id:
        raise NotFound(f"{target.kind} {target.owner} is not in experiment {target.experiment_id}")


def check_writable(store: Store, caller: Caller, target: Target) -> None:
    """An upload to ``target`` by ``caller``: the run's author or an admin, the run not
    deleted (server.mlflow_base.writable_run; artifacts are allowed on any run, a push
    spares them), or one who may change the logged model (writable_model); then the
    target is checked as a read is."""
    if target.kind == "run":
        writable_run(store, caller, target.owner)
    else:
        writable_model(store, caller, target.owner)
    check_owner(store, target)


def files_of(store: Store, target: Target) -> list[tuple[str, str, int]]:
    """``(path, oid, size)`` of the stored files of the target's owner at or below the
    target's path (every file: the root)."""
    if target.kind == "model":
        return experiments.model_files(store, target.owner, target.path)
    out = []
    below = target.path + "/"
    for item in list_files(store, target.owner)["outputs"]:
        if item.get("directory") or not item.get("stored") or not item.get("hash"):
            continue  # a directory's manifest or bytes kept by hash only: no file to serve
        path = str(item["path"])
        if target.path and path != target.path and not path.startswith(below):
            continue
        out.append((path, str(item["hash"]), int(item.get("size") or 0)))
    return out


def listing(store: Store, target: Target) -> list[dict[str, Any]]:
    """MLflow's ``files``: the entries directly below the target's path, relative to it
    (a file's own path lists nothing, as MLflow's stores answer)."""
    check_owner(store, target)
    prefix = target.path + "/" if target.path else ""
    dirs: dict[str, None] = {}
    files: list[dict[str, Any]] = []
    for path, _, size in files_of(store, target):
        if not path.startswith(prefix):
            continue
        name, sep, _ = path[len(prefix) :].partition("/")
        if sep:
            dirs[name] = None
        else:
            files.append({"path": name, "is_dir": False, "file_size": size})
    entries = files + [{"path": d, "is_dir": True} for d in dirs]
    return sorted(entries, key=lambda e: str(e["path"]))


def find_file(store: Store, target: Target) -> tuple[str, int]:
    """``(oid, size)`` of the file at the target's path (NotFound for a directory)."""
    check_owner(store, target)
    for path, oid, size in files_of(store, target):
        if path == target.path:
            return oid, size
    raise NotFound(f"no artifact file {target.path!r} in {target.kind} {target.owner}")


def record_file(store: Store, target: Target, oid: str, size: int) -> None:
    """The uploaded bytes (already in the object store) become the file at the path."""
    if target.kind == "model":
        experiments.put_model_file(store, target.owner, target.path, oid, size)
    else:
        external.add_output(store, target.owner, target.path, oid, size, "mlflow")


# ---------------------------------------------------------------- logged models


def artifact_location(experiment_id: str, model_id: str) -> str:
    return f"{ARTIFACTS_ROOT}/{experiment_id}/models/{model_id}/artifacts"


def optional_text(value: Any, what: str, limit: int = MAX_NAME) -> str | None:
    """Text of at most ``limit`` characters, or None when absent or empty."""
    return check_text(value, what, limit=limit) or None


def create_model(store: Store, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """POST logged-models: a PENDING model of the experiment, linked to its source run.
    Linking is a write to that run: ``runs:/<run>/<name>`` and ``register_model`` load
    the newest model of that name linked to it, so only who may write the run (its
    author or an admin) may link one."""
    exp_id = check_experiment_id(body.get("experiment_id"))
    exp = experiments.get(store, exp_id)
    if exp.lifecycle_stage != "active":
        raise RunbaseError(f"experiment {exp_id} is deleted")
    run_id = body.get("source_run_id") or None
    if run_id is not None:
        writable_run(store, caller, check_run_id(run_id), active=False, values=False)
    name = optional_text(body.get("name"), "a model's name") or f"model-{secrets.token_hex(4)}"
    info: dict[str, Any] = {
        "model_type": optional_text(body.get("model_type"), "model_type"),
        "creator_id": caller.name,
        "status_message": None,
        "tags": field_pairs(body, "tags"),
        "params": field_pairs(body, "params"),
        "metrics": [],
    }
    return experiments.create_model(store, exp_id, name, run_id, info, "LOGGED_MODEL_PENDING")


def get_model(store: Store, model_id: str) -> dict[str, Any]:
    return experiments.get_model(store, check_model_id(model_id))


def _info(row: dict[str, Any]) -> dict[str, Any]:
    info = row.get("info")
    return dict(info) if isinstance(info, dict) else {}


def delete_model(store: Store, caller: Caller, model_id: str) -> None:
    """MLflow's delete: the model and its file list go (its bytes at the next ``gc``
    if nothing else holds them; a registered version keeps its own manifest)."""
    writable_model(store, caller, model_id)
    experiments.delete_model(store, model_id)


def finalize(store: Store, caller: Caller, model_id: str, status: Any) -> dict[str, Any]:
    if status not in STATUSES:
        raise RunbaseError(f"status is one of {', '.join(STATUSES)}")
    writable_model(store, caller, model_id)
    return experiments.update_model(store, model_id, status=status)


def change_tags(
    store: Store, caller: Caller, model_id: str, tags: Any = None, drop: str | None = None
) -> None:
    info = _info(writable_model(store, caller, model_id))
    current = dict(info.get("tags") or {})
    if drop is not None:
        if drop not in current:
            raise NotFound(f"logged model {model_id} has no tag {drop!r}")
        current.pop(drop)
    current.update(pairs(tags, "tags"))
    if len(current) > 1000:
        raise RunbaseError("a logged model has at most 1000 tags")
    experiments.update_model(store, model_id, info={**info, "tags": current})


def add_params(store: Store, caller: Caller, model_id: str, params: Any) -> None:
    info = _info(writable_model(store, caller, model_id))
    current = dict(info.get("params") or {})
    for key, value in pairs(params, "params").items():
        if key in current and current[key] != value:
            raise RunbaseError(f"param {key!r} is {current[key]!r}; it cannot become {value!r}")
        current[key] = value
    experiments.update_model(store, model_id, info={**info, "params": current})


def model_json(row: dict[str, Any]) -> dict[str, Any]:
    """MLflow's ``LoggedModel`` of a logged_models row."""
    info = _info(row)
    exp_id, model_id = str(row["experiment_id"]), str(row["id"])
    body: dict[str, Any] = {
        "model_id": model_id,
        "experiment_id": exp_id,
        "name": row["name"],
        "creation_timestamp_ms": external.ms(float(row["created_at"])),
        "last_updated_timestamp_ms": external.ms(float(row["updated_at"])),
        "artifact_uri": artifact_location(exp_id, model_id),
        "status": row["status"] if row["status"] in STATUSES else "LOGGED_MODEL_PENDING",
        "tags": pairs_json(info.get("tags") or {}),
    }
    for key in ("model_type", "status_message"):  # creator_id is a number in MLflow
        if info.get(key):
            body[key] = info[key]
    if row.get("run_id"):
        body["source_run_id"] = row["run_id"]
    params = pairs_json(info.get("params") or {})
    return {"info": body, "data": {"params": params, "metrics": info.get("metrics") or []}}


_CLAUSE = re.compile(
    r"\s*(?:attributes\.)?(name|model_id|source_run_id|status|model_type|"
    r"tags\.`[^`]+`|tags\.\w+|params\.`[^`]+`|params\.\w+)\s*(=|!=)\s*'((?:[^'\\]|\\.)*)'\s*",
)


def parse_filter(text: Any) -> list[tuple[str, str, str]]:
    """The part of MLflow's logged-model filter the client itself sends: clauses
    ``field = 'value'`` / ``!=`` joined by AND (fields: name, model_id, source_run_id,
    status, model_type, tags.X, params.X). Anything else is refused clearly."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    if not isinstance(text, str) or len(text) > 10_000:
        raise RunbaseError("filter is text of at most 10000 characters")
    clauses = []
    for part in re.split(r"\s+(?:AND|and)\s+", text.strip()):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise RunbaseError(
                f"unsupported logged-model filter {part[:100]!r}: runbase answers "
                "`field = 'value'` and `!=` joined by AND (docs/mlflow.md)"
            )
        clauses.append((m.group(1).replace("`", ""), m.group(2), m.group(3).replace("\\'", "'")))
    return clauses


def _field(row: dict[str, Any], name: str) -> str | None:
    info = _info(row)
    if name.startswith(("tags.", "params.")):
        group, _, key = name.partition(".")
        value = (info.get(group) or {}).get(key)
        return value if isinstance(value, str) else None
    column = {"model_id": "id", "source_run_id": "run_id"}.get(name, name)
    value = info.get(name) if name == "model_type" else row.get(column)
    return value if isinstance(value, str) else None


def search_models(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """POST logged-models/search: the experiments' models matching the filter, newest
    first, paged by offset (``page_token`` is the offset as text)."""
    ids = body.get("experiment_ids") or []
    if not isinstance(ids, list) or len(ids) > 1000:
        raise RunbaseError("experiment_ids is a list of at most 1000 ids")
    clauses = parse_filter(body.get("filter"))
    limit = page_size(body.get("max_results"), default=100, most=1000)
    start = page_offset(body.get("page_token"))
    rows = experiments.search_models(store, [check_experiment_id(i) for i in ids])
    found = [r for r in rows if all((_field(r, f) == v) == (op == "=") for f, op, v in clauses)]
    found.sort(key=lambda r: (-float(r["created_at"]), str(r["id"])))
    page, token = paged(found, start, limit)
    out: dict[str, Any] = {"models": [model_json(r) for r in page]}
    if token:
        out["next_page_token"] = token
    return out
