"""The MLflow tracking API as a library: an MLflow request (its JSON fields, as
server.mlflow_routes hands them over) -> records calls on a project's store -> MLflow's
JSON entities (docs/mlflow.md has the mapping).

An MLflow run is a runbase run (the same ``runs`` row); its experiment is its
``experiment`` tag (no tag: MLflow's Default experiment, id "0"); params are runbase
params of source ``mlflow``; metrics runbase metric series. What MLflow keeps that
runbase has no column for (soft delete, dataset inputs, logged-model inputs and
outputs) is kept in tags under ``runbase.mlflow.`` (records.external), which the MLflow
API does not show among a run's tags. Who may write what: server.mlflow_base's one
check (writable_run).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runbase.core import mlflowfilter
from runbase.core.ids import is_valid_id
from runbase.core.mlflowfilter import OrderKey, Subject
from runbase.core.mlflowtags import (
    ADOPT_TAG,
    HIDDEN_PREFIX,
    MODEL_HISTORY_TAG,
    MODEL_INPUT_PREFIX,
    MODEL_OUTPUT_PREFIX,
    PARENT_TAG,
    RUN_NAME_TAG,
)
from runbase.errors import Conflict, Forbidden, NotFound, RunNotFound, UsageError
from runbase.records import experiments, external
from runbase.records.experiments import EXPERIMENT_TAG, Experiment
from runbase.records.read import load_row, load_runs, load_tags
from runbase.server.mlflow_base import (
    EXPERIMENT_ID_RE,
    INVALID_PARAMETER_VALUE,
    MAX_KEY,
    MAX_PAIRS,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    MLFLOW_MODE,
    Caller,
    MlflowError,
    WritableRun,
    check_model_id,
    field_float,
    field_int,
    field_list,
    field_objects,
    field_pairs,
    field_text,
    page_offset,
    page_size,
    page_token,
    paged,
    pairs_json,
    writable_run,
)
from runbase.store import Store

# MLflow's limits (mlflow/utils/validation.py), enforced as its server does (the key and
# value limits are server.mlflow_base's, shared with logged models)
MAX_EXPERIMENT_NAME = 500
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS_TAGS = MAX_PAIRS
MAX_DATASETS = 1000
MAX_RESULTS_DEFAULT = 1000
MAX_RESULTS = 50_000
MAX_HISTORY_PAGE = 25_000
MAX_BULK_RUNS = 100
MAX_BULK_RESULTS = 2_500
BULK_RESULTS_DEFAULT = 320
MAX_BULK_POINTS = 2_000_000  # points one bulk-interval request reads (over all its runs)
MAX_ID = 64  # characters of any id field (runbase's are 16, experiments' decimal)

# MLflow's tags, runbase's adoption tag and where soft delete, datasets and model links
# are kept: core.mlflowtags, the one home of these names
SOURCE = "mlflow"  # runbase params' source
MODE = MLFLOW_MODE  # runbase runs' mode

_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_VIEWS = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}
_VIEW_NUMBERS = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
_STEP = re.compile(r"-?[0-9]{1,18}")


# -- conversions ---------------------------------------------------------------------------


ms = external.ms  # epoch seconds (runbase) as epoch milliseconds (MLflow), rounded


def seconds(millis: int, what: str) -> float:
    """A time MLflow sent (epoch milliseconds) as runbase's epoch seconds; 0 is 0."""
    if millis < 0:
        raise MlflowError(f"{what} {millis} is before 1970")
    return float(external.seconds(millis) or 0.0)


def number_json(value: float) -> float | str:
    """A double as MLflow's JSON writes it: NaN and the infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def artifact_location(experiment_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}"


def artifact_uri(experiment_id: str, run_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def _enum(value: Any, names: dict[str, Any], numbers: dict[int, str], what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = numbers.get(value, value)
    if not isinstance(value, str) or value not in names:
        raise MlflowError(f"{what} must be one of {', '.join(names)}, not {str(value)[:40]!r}")
    return value


def _view(value: Any) -> str:
    if value is None or value == "":
        return "active"
    return _VIEWS[_enum(value, _VIEWS, _VIEW_NUMBERS, "the view type")]


# -- paging --------------------------------------------------------------------------------


def _page(body: dict[str, Any], default: int, most: int) -> tuple[int, int]:
    """``(offset, max_results)`` of a paged request (server.mlflow_base's one format)."""
    size = page_size(body.get("max_results"), default=default, most=most)
    return page_offset(body.get("page_token")), size


_paged = paged


# -- experiments ---------------------------------------------------------------------------


def experiment_json(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.id,
        "name": e.name,
        "artifact_location": artifact_location(e.id),
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": ms(e.created_at),
        "last_update_time": ms(e.updated_at),
        "tags": pairs_json(e.tags),
    }


def _experiment_id(body: dict[str, Any], required: bool = True) -> str:
    """The request's experiment id ("" when absent and not ``required``); text that
    cannot be an id names no experiment (404, as MLflow answers an unknown id)."""
    value = field_text(body, "experiment_id", limit=MAX_ID, required=required)
    if value and not EXPERIMENT_ID_RE.fullmatch(value):
        raise NotFound(f"No Experiment with id={value[:40]} exists")
    return value


def create_experiment(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    name = field_text(body, "name", limit=MAX_EXPERIMENT_NAME, required=True)
    tags = field_pairs(body, "tags", limit=MAX_BATCH_PARAMS_TAGS)
    # an artifact_location is not honoured: artifacts live in the server's object store
    field_text(body, "artifact_location", limit=4096)
    if experiments.by_name(store, name) is not None:
        raise MlflowError(f"Experiment(name={name}) already exists", "RESOURCE_ALREADY_EXISTS", 400)
    return {"experiment_id": experiments.create(store, name, None, tags).id}


def get_experiment(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": experiment_json(experiments.get(store, _experiment_id(body)))}


def get_experiment_by_name(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    name = field_text(body, "experiment_name", limit=MAX_EXPERIMENT_NAME, required=True)
    found = experiments.by_name(store, name)
    if found is None:
        raise NotFound(f"Could not find experiment with name '{name}'")
    return {"experiment": experiment_json(found)}


def search_experiments(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    view = _view(body.get("view_type"))
    offset, size = _page(body, MAX_RESULTS_DEFAULT, MAX_RESULTS)
    clauses = mlflowfilter.parse_filter(
        field_text(body, "filter", limit=mlflowfilter.MAX_FILTER), "experiment"
    )
    order = mlflowfilter.parse_order_by(_strings(body, "order_by", 20), "experiment")
    found = {e.id: e for e in experiments.search(store, view)}
    subjects = [
        Subject(
            id=e.id,
            attributes={
                "name": e.name,
                "experiment_id": e.id,
                "creation_time": ms(e.created_at),
                "last_update_time": ms(e.updated_at),
            },
            tags=e.tags,
        )
        for e in found.values()  # by id: the last tie-breaker
    ]
    subjects = [s for s in subjects if mlflowfilter.matches(clauses, s)]
    keys = [*order, OrderKey("attribute", "creation_time", ascending=False)]
    page, token = _paged(mlflowfilter.sort_subjects(subjects, keys), offset, size)
    out: dict[str, Any] = {"experiments": [experiment_json(found[s.id]) for s in page]}
    if token:
        out["next_page_token"] = token
    return out


def _may_change_experiment(store: Store, caller: Caller, exp: Experiment) -> None:
    """Renaming, deleting or restoring an experiment touches every run in it (their
    ``experiment`` tag, what MLflow lists): a project admin may, a writer only when
    every run in it is theirs (docs/mlflow.md, "Who may change what")."""
    if caller.role == "admin":
        return
    for run_id in experiments.run_ids(store, [exp.id]):
        author = load_row(store, run_id).get("user_name")
        if author != caller.name:
            raise Forbidden(
                f"experiment {exp.id} holds runs of {author}: renaming, deleting or "
                "restoring it is for a project admin, or a writer whose runs are all of it"
            )


def update_experiment(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    exp = experiments.get(store, _experiment_id(body))
    if exp.lifecycle_stage != "active":
        raise MlflowError(f"cannot rename experiment {exp.id}: it is deleted")
    new_name = field_text(body, "new_name", limit=MAX_EXPERIMENT_NAME, required=True)
    _may_change_experiment(store, caller, exp)
    try:
        experiments.rename(store, exp.id, new_name)
    except Conflict as e:
        raise MlflowError(str(e)) from None
    return {}


def set_experiment_stage(
    store: Store, caller: Caller, body: dict[str, Any], stage: str
) -> dict[str, Any]:
    exp = experiments.get(store, _experiment_id(body))
    _may_change_experiment(store, caller, exp)
    experiments.set_stage(store, exp.id, stage)
    return {}


def set_experiment_tag(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    exp_id = _experiment_id(body)
    key = field_text(body, "key", limit=MAX_KEY, required=True)
    value = field_text(body, "value", limit=MAX_TAG_VALUE)
    experiments.set_tag(store, exp_id, key, value)
    return {}


def delete_experiment_tag(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    exp_id = _experiment_id(body)
    experiments.delete_tag(store, exp_id, field_text(body, "key", limit=MAX_KEY, required=True))
    return {}


# -- runs as MLflow sees them ----------------------------------------------------------------


@dataclass
class RunView:
    """One run as loaded from the records (params as MLflow's strings)."""

    row: dict[str, Any]
    experiment_id: str
    params: dict[str, str]
    tags: dict[str, str]  # every runbase tag, hidden ones too
    summary: dict[str, dict[str, Any]]  # metrics: runbase's summary rows

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def deleted(self) -> bool:
        return external.DELETED_TAG in self.tags

    @property
    def status(self) -> str:
        return external.STATUS_TO_MLFLOW.get(str(self.row.get("status")), "FAILED")


def _param_text(store: Store, value: Any) -> str:
    """A runbase param (decoded JSON) as an MLflow string: a string as it is, a number
    or boolean as its JSON text (the text MLflow sent), a value kept as an object read
    back."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "$object" in value:
        return external.param_text(store, json.dumps(value))
    return json.dumps(value, ensure_ascii=False)


class _Experiments:
    """Experiment ids by name, read once per request (runs name theirs by tag)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: dict[str, str] | None = None  # read when a run first needs it

    def of(self, tags: dict[str, str], run_id: str) -> str:
        name = tags.get(EXPERIMENT_TAG)
        if not name:
            return experiments.DEFAULT_ID
        if self.ids is None:
            self.ids = {e.name: e.id for e in experiments.search(self.store, "all")}
        if name not in self.ids:  # a tag written since: of_run gives it an id
            self.ids[name] = experiments.of_run(self.store, run_id).id
        return self.ids[name]


def load_views(store: Store, run_ids: list[str]) -> list[RunView]:
    """The runs ``run_ids`` (unknown ones left out), in that order."""
    exps = _Experiments(store)
    out = []
    for r in load_runs(store, run_ids):
        tags = dict(r.get("tags") or {})
        params = {k: _param_text(store, v) for k, v in (r.get("params") or {}).items()}
        out.append(RunView(r, exps.of(tags, r["id"]), params, tags, r.get("metrics") or {}))
    return out


def load_view(store: Store, run_id: str) -> RunView:
    if not isinstance(run_id, str) or not is_valid_id(run_id):
        raise RunNotFound(f"Run '{str(run_id)[:40]}' not found")
    views = load_views(store, [run_id])
    if not views:
        raise RunNotFound(f"Run '{run_id}' not found")
    return views[0]


def _metrics_json(latest: dict[str, tuple[float, float, int]]) -> list[dict[str, Any]]:
    """Each metric's last logged point (MLflow's ``data.metrics``), from
    records.external.latest_metrics."""
    return [
        {"key": key, "value": number_json(value), "timestamp": ms(t), "step": step}
        for key, (value, t, step) in sorted(latest.items())
    ]


def run_info_json(view: RunView) -> dict[str, Any]:
    row = view.row
    info: dict[str, Any] = {
        "run_id": view.id,
        "run_uuid": view.id,
        "run_name": row.get("name") or "",
        "experiment_id": view.experiment_id,
        "user_id": row.get("user_name") or "",
        "status": view.status,
        "start_time": ms(row.get("started_at")),
        "artifact_uri": artifact_uri(view.experiment_id, view.id),
        "lifecycle_stage": "deleted" if view.deleted else "active",
    }
    if row.get("ended_at") is not None:
        info["end_time"] = ms(row["ended_at"])
    return info


def _visible_tags(view: RunView) -> dict[str, str]:
    tags = {
        k: v
        for k, v in view.tags.items()
        if not k.startswith(HIDDEN_PREFIX)  # soft delete included
    }
    tags[RUN_NAME_TAG] = str(view.row.get("name") or "")
    parent = view.row.get("parent_id")
    if parent and PARENT_TAG not in tags:
        tags[PARENT_TAG] = str(parent)
    return tags


def _inputs(view: RunView) -> dict[str, Any]:
    models = [
        {"model_id": key[len(MODEL_INPUT_PREFIX) :]}
        for key in sorted(view.tags)
        if key.startswith(MODEL_INPUT_PREFIX)
    ]
    # records.external's codec: an entry a push left malformed is skipped
    return {"dataset_inputs": external.datasets(view.tags), "model_inputs": models}


def _outputs(view: RunView) -> dict[str, Any]:
    models = []
    for key in sorted(view.tags):
        if key.startswith(MODEL_OUTPUT_PREFIX):
            step = view.tags[key]
            models.append(
                {
                    "model_id": key[len(MODEL_OUTPUT_PREFIX) :],
                    "step": int(step) if _STEP.fullmatch(step) else 0,
                }
            )
    return {"model_outputs": models}


def run_json(
    store: Store, view: RunView, latest: dict[str, tuple[float, float, int]] | None = None
) -> dict[str, Any]:
    """A run as MLflow's JSON; ``latest``: its metrics' last points when already read
    (records.external.latest_metrics of many runs at once)."""
    if latest is None:
        latest = external.latest_metrics(store, [view.id]).get(view.id, {})
    return {
        "info": run_info_json(view),
        "data": {
            "metrics": _metrics_json(latest),
            "params": pairs_json(view.params),
            "tags": pairs_json(_visible_tags(view)),
        },
        "inputs": _inputs(view),
        "outputs": _outputs(view),
    }


def _run_id(body: dict[str, Any]) -> str:
    run_id = field_text(body, "run_id", limit=MAX_ID) or field_text(body, "run_uuid", limit=MAX_ID)
    if not run_id:
        raise MlflowError("missing value for required parameter 'run_id'")
    return run_id


def _writable(
    store: Store, caller: Caller, run_id: str, active: bool = True, values: bool = True
) -> WritableRun:
    """The run a write goes to (server.mlflow_base.writable_run: the caller's or an
    admin's, not deleted with ``active``, an MLflow run with ``values``)."""
    return writable_run(store, caller, run_id, active=active, values=values)


# -- runs: create, read, update ----------------------------------------------------------


def create_run(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    exp = experiments.get(store, _experiment_id(body, required=False) or experiments.DEFAULT_ID)
    if exp.lifecycle_stage != "active":
        raise MlflowError(f"the experiment {exp.id} is deleted: restore it to add runs")
    tags = field_pairs(body, "tags", limit=MAX_BATCH_METRICS)
    _refuse_hidden(tags)
    name = field_text(body, "run_name", limit=external.MAX_NAME) or tags.get(RUN_NAME_TAG) or None
    start_ms = field_int(body, "start_time", default=None)
    started = time.time() if start_ms is None else seconds(start_ms, "start_time")
    adopt = tags.pop(ADOPT_TAG, None)
    tags.pop(RUN_NAME_TAG, None)
    tags.pop(EXPERIMENT_TAG, None)  # the experiment is experiment_id's
    if exp.id != experiments.DEFAULT_ID:
        tags[EXPERIMENT_TAG] = exp.name
    parent = tags.get(PARENT_TAG)
    parent_id = parent if parent and external.exists(store, parent) else None
    if adopt is not None:
        adopted = _adopt(store, caller, adopt, exp)
        if adopted is not None:
            return {"run": run_json(store, load_view(store, adopted))}
    try:
        run_id = external.create_run(
            store,
            run_id=adopt,
            name=name,
            started_at=started,
            user=caller.name,
            mode=MODE,
            command=[],
            parent_id=parent_id,
            tags=tags,
        )
    except Conflict:
        if adopt is None:
            raise
        # the run's first live publish (or another process of it) made it meanwhile
        run_id = _adopt(store, caller, adopt, exp) or adopt
    return {"run": run_json(store, load_view(store, run_id))}


def _adopt(store: Store, caller: Caller, run_id: str, exp: Experiment) -> str | None:
    """``runbase run --publish`` of an MLflow script: the MLflow run is the runbase run
    ``run_id`` (tag ``runbase.run_id``). None: no run has that id yet (it is created
    with it); else the running run of the caller (its experiment tag set if it has none)."""
    if not is_valid_id(run_id):
        raise MlflowError(f"tag {ADOPT_TAG} must be a runbase run id, not {run_id[:40]!r}")
    if not external.exists(store, run_id):
        return None
    row = load_row(store, run_id)
    if row.get("user_name") != caller.name:
        raise Forbidden(f"run {run_id} belongs to {row.get('user_name')}, not to {caller.name}")
    if row.get("status") != "running":
        raise MlflowError(f"run {run_id} has ended ({row.get('status')}); start a new run")
    tags = load_tags(store, [run_id])[run_id]
    if EXPERIMENT_TAG not in tags and exp.id != experiments.DEFAULT_ID:
        external.set_tags(store, run_id, {EXPERIMENT_TAG: exp.name})
    return run_id


def get_run(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    return {"run": run_json(store, load_view(store, _run_id(body)))}


def update_run(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    run_id = _run_id(body)
    view = _writable(store, caller, run_id, active=False, values=False)
    name = field_text(body, "run_name", limit=external.MAX_NAME)
    end_ms = field_int(body, "end_time", default=None, low=0)
    ended = None if end_ms is None else seconds(end_ms, "end_time")
    raw = body.get("status")
    to = external.STATUS_FROM_MLFLOW
    status = None if raw in (None, "") else to[_enum(raw, to, _STATUS_NUMBERS, "status")]
    if view.row.get("mode") != MODE:
        if not _changes_nothing(view, name, status, end_ms):
            _writable(store, caller, run_id, active=False)  # refused: its process's values
        return {"run_info": run_info_json(load_view(store, view.id))}
    if name:
        external.set_name(store, view.id, name)
    if status is not None:
        external.set_status(store, view.id, status, ended)
    elif ended is not None and view.row.get("status") != "running":
        external.set_status(store, view.id, str(view.row["status"]), ended)
    return {"run_info": run_info_json(load_view(store, view.id))}


def _changes_nothing(view: WritableRun, name: str, status: str | None, end_ms: int | None) -> bool:
    """Whether an update of a run recorded by its own process asks for nothing but what
    MLflow's fluent ``start_run(run_id=...)`` sends to resume a run: status RUNNING (or
    its own), its own name, its own end time. The run adopted by ``runbase run
    --publish`` is resumed so (docs/mlflow.md); its status is its process's, so the
    answer is a no-op."""
    row = view.row
    ended = row.get("ended_at")
    return (
        status in (None, "running", row.get("status"))
        and (not name or name == row.get("name"))
        and (end_ms is None or (ended is not None and end_ms == ms(ended)))
    )


def delete_run(store: Store, caller: Caller, body: dict[str, Any], deleted: bool) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body), active=False, values=False)
    external.soft_delete(store, view.id, deleted)
    return {}


# -- runs: search -------------------------------------------------------------------------


def _strings(body: dict[str, Any], key: str, limit: int) -> list[str]:
    items = field_list(body, key, limit=limit)
    if not all(isinstance(i, str) for i in items):
        raise MlflowError(f"each item of {key} must be a string")
    return items


def _subject(view: RunView) -> Subject:
    row = view.row
    metrics = {k: float(s["last"]) for k, s in view.summary.items() if s.get("last") is not None}
    datasets = []
    for entry in external.datasets(view.tags):  # validated: names and digests are text
        ds = {"name": entry["dataset"]["name"], "digest": entry["dataset"]["digest"]}
        context = external.dataset_context(entry)
        datasets.append(ds if context is None else {**ds, "context": context})
    return Subject(
        id=view.id,
        attributes={
            "run_id": view.id,
            "run_name": str(row.get("name") or ""),
            "status": view.status,
            "user_id": str(row.get("user_name") or ""),
            "artifact_uri": artifact_uri(view.experiment_id, view.id),
            "lifecycle_stage": "deleted" if view.deleted else "active",
            "start_time": ms(row.get("started_at")),
            "end_time": ms(row.get("ended_at")),
        },
        metrics=metrics,
        params=view.params,
        tags=_visible_tags(view),
        datasets=datasets,
    )


def search_runs(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    exp_ids = _strings(body, "experiment_ids", 1000)
    view_type = _view(body.get("run_view_type"))
    offset, size = _page(body, MAX_RESULTS_DEFAULT, MAX_RESULTS)
    clauses = mlflowfilter.parse_filter(field_text(body, "filter", limit=mlflowfilter.MAX_FILTER))
    order = mlflowfilter.parse_order_by(_strings(body, "order_by", 20))
    views = {v.id: v for v in load_views(store, experiments.run_ids(store, exp_ids))}
    wanted = [
        v for v in views.values() if view_type == "all" or (view_type == "deleted") == v.deleted
    ]
    subjects = [_subject(v) for v in sorted(wanted, key=lambda v: v.id)]
    subjects = [s for s in subjects if mlflowfilter.matches(clauses, s)]
    keys = [*order, OrderKey("attribute", "start_time", ascending=False)]
    page, token = _paged(mlflowfilter.sort_subjects(subjects, keys), offset, size)
    latest = external.latest_metrics(store, [s.id for s in page])
    out: dict[str, Any] = {
        "runs": [run_json(store, views[s.id], latest.get(s.id, {})) for s in page]
    }
    if token:
        out["next_page_token"] = token
    return out


# -- runs: logging ------------------------------------------------------------------------


def _refuse_hidden(tags: Iterable[str]) -> None:
    for key in tags:
        if key.startswith(HIDDEN_PREFIX):  # soft delete, datasets, model links
            raise MlflowError(f"tag {key!r} is reserved by runbase")


def _set_tags(store: Store, run_id: str, tags: dict[str, str]) -> None:
    """MLflow's set-tag: ``mlflow.runName`` renames the run (runbase keeps the name in
    the run, not in a tag); ``experiment`` moves it to the experiment of that name, so
    the value must be one."""
    _refuse_hidden(tags)
    if EXPERIMENT_TAG in tags:
        try:
            experiments.check_name(tags[EXPERIMENT_TAG])
        except UsageError as e:
            raise MlflowError(f"tag {EXPERIMENT_TAG!r} names the run's experiment: {e}") from None
    tags = dict(tags)
    tags.pop(ADOPT_TAG, None)
    name = tags.pop(RUN_NAME_TAG, None)
    if name:
        external.set_name(store, run_id, name)
    if tags:
        external.set_tags(store, run_id, tags)


def _set_params(store: Store, caller: Caller, run_id: str, params: dict[str, str]) -> None:
    def hold(oid: str, size: int) -> None:  # a long value's object: the project holds it
        caller.server.accept_object(caller.project, oid, size)

    try:
        external.set_params(store, run_id, params, SOURCE, hold=hold)
    except Conflict as e:  # MLflow's params never change: its code for that
        raise MlflowError(str(e), INVALID_PARAMETER_VALUE) from None


def _metric(item: dict[str, Any]) -> tuple[str, int, float, float]:
    key = field_text(item, "key", limit=MAX_KEY, required=True)
    value = field_float(item, "value")
    stamp = field_int(item, "timestamp", default=None, low=0)
    step = field_int(item, "step", default=0)
    when = time.time() if stamp is None else seconds(stamp, "timestamp")
    return key, step or 0, when or 0.0, value


def set_tag(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body))
    key = field_text(body, "key", limit=MAX_KEY, required=True)
    _set_tags(store, view.id, {key: field_text(body, "value", limit=MAX_TAG_VALUE)})
    return {}


def delete_tag(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body))
    key = field_text(body, "key", limit=MAX_KEY, required=True)
    _refuse_hidden([key])
    external.delete_tag(store, view.id, key)
    return {}


def log_param(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body))
    key = field_text(body, "key", limit=MAX_KEY, required=True)
    _set_params(store, caller, view.id, {key: field_text(body, "value", limit=MAX_PARAM_VALUE)})
    return {}


def log_metric(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body))
    external.log_points(store, view.id, [_metric(body)])
    return {}


def log_batch(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    view = _writable(store, caller, _run_id(body))
    metrics = field_objects(body, "metrics", limit=MAX_BATCH_METRICS)
    params = field_objects(body, "params", limit=MAX_BATCH_PARAMS_TAGS)
    tags = field_pairs(body, "tags", limit=MAX_BATCH_PARAMS_TAGS)
    if len(metrics) + len(params) + len(tags) > MAX_BATCH_METRICS:
        raise MlflowError(f"a batch holds at most {MAX_BATCH_METRICS} metrics, params and tags")
    by_key: dict[str, str] = {}
    for p in params:
        key = field_text(p, "key", limit=MAX_KEY, required=True)
        value = field_text(p, "value", limit=MAX_PARAM_VALUE)
        if by_key.get(key, value) != value:
            raise MlflowError(f"param {key!r} is given twice in the batch, with different values")
        by_key[key] = value
    points = [_metric(m) for m in metrics]
    if by_key:
        _set_params(store, caller, view.id, by_key)
    if points:
        external.log_points(store, view.id, points)
    if tags:
        _set_tags(store, view.id, tags)
    return {}


def log_inputs(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """Dataset inputs (each kept as a tag ``runbase.mlflow.dataset.<hash>``: the same
    dataset in the same context is one input, as MLflow) and logged-model inputs."""
    view = _writable(store, caller, _run_id(body), values=False)
    entries = field_objects(body, "datasets", limit=MAX_DATASETS)
    try:
        tags, too_large = external.dataset_tags(entries)
    except UsageError as e:
        raise MlflowError(str(e)) from None
    if too_large:
        raise MlflowError(
            f"{too_large} dataset input(s) too large to record (schema, source and profile "
            f"together over {experiments.MAX_VALUE} characters)"
        )
    for item in field_objects(body, "models", limit=MAX_DATASETS):
        tags[MODEL_INPUT_PREFIX + _model_id(store, item)] = ""
    if tags:
        external.set_tags(store, view.id, tags)
    return {}


def _model_id(store: Store, item: dict[str, Any]) -> str:
    """A logged model a run's inputs or outputs name: one of this project."""
    model_id = check_model_id(field_text(item, "model_id", limit=MAX_ID, required=True))
    experiments.get_model(store, model_id)  # NotFound: no such logged model
    return model_id


def log_outputs(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """Logged models a run produced (MLflow 3's ``log_model`` links them so)."""
    view = _writable(store, caller, _run_id(body), values=False)
    tags = {}
    for item in field_objects(body, "models", limit=MAX_DATASETS):
        tags[MODEL_OUTPUT_PREFIX + _model_id(store, item)] = str(field_int(item, "step", default=0))
    if tags:
        external.set_tags(store, view.id, tags)
    return {}


def log_model(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """MLflow's record of a logged model's metadata: appended to the run's tag
    ``mlflow.log-model.history`` (a JSON list), as MLflow's own server keeps it."""
    view = _writable(store, caller, _run_id(body), values=False)
    text = field_text(body, "model_json", limit=experiments.MAX_VALUE, required=True)
    try:
        model = json.loads(text)
    except ValueError:
        raise MlflowError("model_json is not JSON") from None
    try:
        history = json.loads(view.tags.get(MODEL_HISTORY_TAG, "[]"))
    except ValueError:
        history = []
    history = [*(history if isinstance(history, list) else []), model]
    value = json.dumps(history)
    while len(value) > experiments.MAX_VALUE and len(history) > 1:
        history = history[1:]  # the oldest entries give way
        value = json.dumps(history)
    if len(value) > experiments.MAX_VALUE:
        raise MlflowError("model_json is too large to record")
    external.set_tags(store, view.id, {MODEL_HISTORY_TAG: value})
    return {}


# -- metric histories ---------------------------------------------------------------------


def _point_json(key: str, run_id: str, step: int, t: float, value: float) -> dict[str, Any]:
    return {
        "key": key,
        "value": number_json(value),
        "timestamp": ms(t),
        "step": step,
        "run_id": run_id,
    }


def get_metric_history(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """One page of a metric's points in the order logged, read from the chunks that
    hold it (records.external.metric_page). Without ``max_results`` a page is the
    most MLflow's server gives (25,000), and ``next_page_token`` leads on: the client
    always pages."""
    run_id = _run_id(body)
    key = field_text(body, "metric_key", limit=MAX_KEY, required=True)
    view = load_view(store, run_id)
    offset = page_offset(body.get("page_token"))
    size = page_size(body.get("max_results"), default=MAX_HISTORY_PAGE, most=MAX_HISTORY_PAGE)
    page, nxt = external.metric_page(store, view.id, key, offset, size)
    out: dict[str, Any] = {"metrics": [_point_json(key, view.id, *p) for p in page]}
    if nxt is not None:
        out["next_page_token"] = page_token(nxt)
    return out


def _points_between(
    store: Store, run_id: str, key: str, start: int | None, end: int | None, budget: list[int]
) -> list[tuple[int, float, float]]:
    """The run's points of ``key`` with a step in ``[start, end]`` (all: no range),
    read a page at a time; ``budget[0]`` counts down the points one request may read."""
    out: list[tuple[int, float, float]] = []
    pos: int | None = 0
    while pos is not None:
        page, pos = external.metric_page(store, run_id, key, pos, MAX_HISTORY_PAGE)
        budget[0] -= len(page)
        if budget[0] < 0:
            raise MlflowError(
                f"the runs hold over {MAX_BULK_POINTS} points of {key!r}: ask for a step "
                "range (start_step, end_step) or fewer runs"
            )
        out.extend(p for p in page if start is None or end is None or start <= p[0] <= end)
    return out


def _spread(points: list[Any], most: int) -> list[Any]:
    """``most`` of ``points`` evenly spaced, the first and the last kept (one: the last)."""
    if most <= 1:
        return points[-1:]
    last = len(points) - 1
    picks = sorted({round(i * last / (most - 1)) for i in range(most)})
    return [points[i] for i in picks]


def get_metric_history_bulk_interval(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """The points of one metric of up to 100 runs between two steps, at most
    ``max_results`` per run (evenly spaced, first and last kept)."""
    run_ids = _strings(body, "run_ids", MAX_BULK_RUNS)
    if not run_ids:
        raise MlflowError("missing value for required parameter 'run_ids'")
    key = field_text(body, "metric_key", limit=MAX_KEY, required=True)
    start = field_int(body, "start_step", default=None)
    end = field_int(body, "end_step", default=None)
    if (start is None) != (end is None) or (start is not None and end is not None and start > end):
        raise MlflowError("give both start_step and end_step, start_step <= end_step")
    most = field_int(body, "max_results", default=BULK_RESULTS_DEFAULT)
    if most is None or not 1 <= most <= MAX_BULK_RESULTS:
        raise MlflowError(f"max_results must be between 1 and {MAX_BULK_RESULTS}")
    out: list[dict[str, Any]] = []
    budget = [MAX_BULK_POINTS]
    for view in load_views(store, list(dict.fromkeys(run_ids))):
        points = _points_between(store, view.id, key, start, end, budget)
        points.sort(key=lambda p: (p[0], p[1]))
        if len(points) > most:
            points = _spread(points, most)
        out.extend(_point_json(key, view.id, *p) for p in points)
    return {"metrics": out}
