"""MLflow mirror: a script that logs to MLflow, run under ``runbase run``, is one run.

The seam is MLflow's ``TrackingServiceClient``: ``MlflowClient`` is a thin layer on it,
and the fluent API (``mlflow.log_param``, ``log_metric``, ``set_tags``, ``end_run``),
autologging (its queueing client calls ``MlflowClient.log_batch``), system metrics and
asynchronous logging (``synchronous=False``: the same methods, before the queue) all
reach it. Its run-writing methods are wrapped:

* The first top-level MLflow run this process creates (no ``mlflow.parentRunId`` tag)
  is *the* run: its params (source ``mlflow``), metrics (MLflow's step; its timestamp
  as the point's time), tags (MLflow's system tags too), run name (when the program
  gave one) and experiment (runbase's ``experiment`` tag, unless it is MLflow's
  "Default") are mirrored into the runbase run. Nested runs, and later top-level runs,
  stay MLflow's alone (a loop of top-level runs is a sweep: ``runbase sweep``).
* When ``runbase run --publish REMOTE`` publishes and MLflow's tracking URI is that
  remote's ``/p/<project>/mlflow``, that run IS the runbase run: ``create_run`` asks
  the server to adopt the runbase run id (tag ``runbase.run_id``), and the run's writes
  are recorded here only; they reach the server by live publishing and the final push
  (nothing is sent twice). Its ``set_terminated`` is not sent either: runbase records
  the command's real exit status; nor is the status MLflow's fluent
  ``start_run(run_id=...)`` sets when the script resumes the run (MLflow's store-level
  ``update_run_info``), nor ``delete_tag`` (the runbase run keeps the tag). Reads,
  artifacts and every other run go to the server as usual. MLflow's rule that a param
  is written once is kept here for it.

MLflow's own calls run as they would without runbase, and whatever the mirror fails
at is one warning: it never breaks training.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse

from runbase.capture.params import mlflow_param_value
from runbase.core._imphook import when_imported
from runbase.core._safe import warn_once
from runbase.core.mlflowtags import ADOPT_TAG, HIDDEN_PREFIX, PARENT_TAG, RUN_NAME_TAG
from runbase.core.spool import STEP_KEY, TIME_KEY
from runbase.integrations._common import top_process, wrap
from runbase.tracking import tracker as _tracker
from runbase.tracking._child import PUBLISH_URL_ENV
from runbase.tracking.params import record_params

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType
    from typing import Any

SOURCE = "mlflow"
DEFAULT_EXPERIMENT = "Default"
_SERVICE = "mlflow.tracking._tracking_service.client"
_REST_STORE = "mlflow.store.tracking.rest_store"


class _State:
    """Which MLflow run is mirrored (one per process) and how."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claimed = False  # a top-level run was taken (later ones are left alone)
        self.run_id: str | None = None  # the mirrored MLflow run's id
        self.local = False  # its writes stay here (the publishing server is its store)
        self.params: dict[str, str] = {}  # what it logged: MLflow's write-once rule

    def reset(self) -> None:
        with self.lock:
            self.claimed, self.run_id, self.local, self.params = False, None, False, {}


state = _State()


def install(module: ModuleType) -> None:
    """``mlflow`` was imported: wrap its tracking service client and its REST store
    (both imported with it)."""
    when_imported(_SERVICE, _patch)
    when_imported(_REST_STORE, _patch_rest_store)


def _patch(module: ModuleType) -> None:
    cls = module.TrackingServiceClient
    wrap(cls, "create_run", _create_run)
    wrap(cls, "log_metric", _log_metric)
    wrap(cls, "log_param", _log_param)
    wrap(cls, "set_tag", _set_tag)
    wrap(cls, "delete_tag", _delete_tag)
    wrap(cls, "log_batch", _log_batch)
    wrap(cls, "update_run", _update_run)
    wrap(cls, "set_terminated", _set_terminated)


def _patch_rest_store(module: ModuleType) -> None:
    # MLflow's fluent start_run(run_id=...) (its way to add to an existing run) calls the
    # store's update_run_info directly, not the service client's update_run
    wrap(module.RestStore, "update_run_info", _update_run_info)


# -- the wrappers ---------------------------------------------------------------------------


def _create_run(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_run(
        self: Any,
        experiment_id: Any,
        start_time: Any = None,
        tags: Any = None,
        run_name: Any = None,
    ) -> Any:
        t = _tracker.active()
        if t is None or not _top_level(tags) or not _claim():
            return original(self, experiment_id, start_time, tags, run_name)
        try:
            local = _publishes_to(str(self.tracking_uri))
            run = None
            if local:
                run = _adopted(original, self, t.run_id, experiment_id, start_time, tags, run_name)
            if run is None:  # as the program asked
                run = original(self, experiment_id, start_time, tags, run_name)
        except BaseException:
            state.reset()  # not created: the next top-level run may be the one
            raise
        _guarded("create_run", _mirror_created, self, run, experiment_id, tags, run_name, local)
        return run

    return create_run


def _adopted(
    original: Callable[..., Any],
    client: Any,
    run_id: str,
    experiment_id: Any,
    start_time: Any,
    tags: Any,
    run_name: Any,
) -> Any:
    """The MLflow run made by asking the server to adopt runbase run ``run_id``; None
    when it refused (another user's token in MLFLOW_TRACKING_TOKEN, say): the program's
    own request is then made as it would be without runbase."""
    try:
        return original(
            client, experiment_id, start_time, {**(tags or {}), ADOPT_TAG: run_id}, run_name
        )
    except Exception as e:  # noqa: BLE001 - refused: MLflow's run is made the usual way
        warn_once(
            "mlflow-adopt",
            f"the MLflow server did not adopt runbase run {run_id} ({e}); the MLflow run is a "
            "run of its own there, and its values are recorded in the runbase run too",
        )
        return None


def _log_metric(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_metric(self: Any, run_id: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not _mirrored(run_id):
            return original(self, run_id, key, value, *args, **kwargs)
        local = state.local
        result = None if local else original(self, run_id, key, value, *args, **kwargs)
        timestamp = _arg(args, kwargs, 0, "timestamp")
        step = _arg(args, kwargs, 1, "step")
        _guarded("log_metric", _mirror_metrics, [(key, value, timestamp, step)])
        return _done(args, kwargs, 2) if local else result

    return log_metric


def _log_param(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_param(self: Any, run_id: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not _mirrored(run_id):
            return original(self, run_id, key, value, *args, **kwargs)
        local = state.local
        if local:
            _check_params([(key, str(value))])  # raises as the server would
        result = original(self, run_id, key, value, *args, **kwargs) if not local else None
        _guarded("log_param", _mirror_params, [(key, str(value))])
        if not local:
            return result
        return value if _arg(args, kwargs, 0, "synchronous", True) else _no_operations()

    return log_param


def _set_tag(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_tag(self: Any, run_id: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not _mirrored(run_id):
            return original(self, run_id, key, value, *args, **kwargs)
        local = state.local
        result = None if local else original(self, run_id, key, value, *args, **kwargs)
        _guarded("set_tag", _mirror_tags, [(key, str(value))])
        return _done(args, kwargs, 0) if local else result

    return set_tag


def _delete_tag(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_tag(self: Any, run_id: Any, key: Any) -> Any:
        if not (_mirrored(run_id) and state.local):
            return original(self, run_id, key)
        # the adopted run's tags are recorded here (set_tag): the deletion stays here too.
        # A runbase run's tags are never deleted by its process, so the run keeps the
        # tag (docs/mlflow.md)
        return None

    return delete_tag


def _log_batch(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_batch(
        self: Any,
        run_id: Any,
        metrics: Any = (),
        params: Any = (),
        tags: Any = (),
        synchronous: Any = True,
    ) -> Any:
        if not _mirrored(run_id):
            return original(self, run_id, metrics, params, tags, synchronous)
        metrics, params, tags = list(metrics or ()), list(params or ()), list(tags or ())
        pairs = [(p.key, str(p.value)) for p in params]
        local = state.local
        if local:
            _check_params(pairs)
        result = None if local else original(self, run_id, metrics, params, tags, synchronous)
        _guarded("log_batch", _mirror_batch, metrics, pairs, [(g.key, str(g.value)) for g in tags])
        if not local:
            return result
        return None if synchronous else _no_operations()

    return log_batch


def _update_run(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_run(self: Any, run_id: Any, status: Any = None, name: Any = None) -> Any:
        if not _mirrored(run_id):
            return original(self, run_id, status, name)
        if not state.local:
            original(self, run_id, status, name)
        if name:  # a status is runbase's to record: the command's real outcome
            _guarded("update_run", _mirror_tags, [(RUN_NAME_TAG, str(name))])
        return None

    return update_run


def _update_run_info(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_run_info(
        self: Any, run_id: Any, run_status: Any, end_time: Any, run_name: Any
    ) -> Any:
        if not (_mirrored(run_id) and state.local):
            return original(self, run_id, run_status, end_time, run_name)
        # the adopted run resumed (start_run(run_id=...)): it is running (runbase records
        # the command's real status); a name is mirrored as update_run mirrors it
        if run_name:
            _guarded("update_run", _mirror_tags, [(RUN_NAME_TAG, str(run_name))])
        return self.get_run(run_id).info  # what the store answers: the run's info

    return update_run_info


def _set_terminated(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_terminated(self: Any, run_id: Any, status: Any = None, end_time: Any = None) -> Any:
        if not (_mirrored(run_id) and state.local):
            return original(self, run_id, status, end_time)
        # the status is the command's exit, recorded when it ends; what MLflow still
        # has queued (asynchronous logging of other runs) goes out as set_terminated does
        # (an MLflow before 2.8 has no asynchronous logging, nor this method)
        shut_down = getattr(getattr(self, "store", None), "shut_down_async_logging", None)
        if callable(shut_down):
            _guarded("set_terminated", shut_down)
        return None

    return set_terminated


# -- which run, and where it is written ------------------------------------------------------


def _top_level(tags: Any) -> bool:
    return not (isinstance(tags, dict) and tags.get(PARENT_TAG))


def _claim() -> bool:
    with state.lock:
        if state.claimed:
            return False
        state.claimed = True
        return True


def _mirrored(run_id: Any) -> bool:
    """Is ``run_id`` the MLflow run mirrored into the active runbase run?"""
    return state.run_id is not None and run_id == state.run_id and _tracker.active() is not None


def _publishes_to(tracking_uri: str) -> bool:
    """Is ``tracking_uri`` the MLflow API of the server project this run publishes to?"""
    base = os.environ.get(PUBLISH_URL_ENV, "")
    return bool(base) and same_url(tracking_uri, base.rstrip("/") + "/mlflow")


def same_url(a: str, b: str) -> bool:
    """Equal http(s) URLs, but for the case of scheme and host and a trailing slash."""

    def norm(url: str) -> tuple[str, str, str] | None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return None
        return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")

    na = norm(a)
    return na is not None and na == norm(b)


def _mirror_created(
    client: Any, run: Any, experiment_id: Any, tags: Any, run_name: Any, local: bool
) -> None:
    t = _tracker.active()
    if t is None:
        return
    run_id = run.info.run_id
    with state.lock:
        state.run_id = run_id
        # the server adopted the runbase run: its writes stay here (else it answered
        # with a run of its own: written there as any run, and mirrored)
        state.local = local and run_id == t.run_id
    if local and not state.local:
        warn_once(
            "mlflow-adopt-other",
            f"the MLflow server made run {run_id} instead of adopting runbase run "
            f"{t.run_id}; MLflow's values are sent to it and also recorded in the runbase run",
        )
    sent = {str(k): str(v) for k, v in (tags or {}).items() if k != ADOPT_TAG}
    _mirror_tags(sent.items())
    name = run_name or sent.get(RUN_NAME_TAG)
    if name:
        _mirror_name(str(name))
    experiment = _experiment_name(client, experiment_id)
    if experiment and experiment != DEFAULT_EXPERIMENT:
        t.event("tag", key="experiment", value=experiment)


def _experiment_name(client: Any, experiment_id: Any) -> str | None:
    try:
        return str(client.store.get_experiment(str(experiment_id)).name)
    except Exception as e:  # noqa: BLE001 - the run is made; only its experiment tag is missing
        warn_once("mlflow-experiment", f"could not read MLflow experiment {experiment_id}: {e}")
        return None


# -- recording ---------------------------------------------------------------------------------


def _mirror_metrics(metrics: Iterable[tuple[Any, Any, Any, Any]]) -> None:
    """Append MLflow metrics ``(key, value, timestamp ms, step)`` to the run's buffer:
    consecutive ones of one step and time share an entry (``log_metrics`` logs many)."""
    t = _tracker.active()
    if t is None:
        return
    entry: dict[str, Any] | None = None
    for key, value, timestamp, step in metrics:
        f = _tracker.to_float(value)
        if f is None:
            continue
        when = _seconds(timestamp)
        at = _step(step)
        if entry is None or entry[TIME_KEY] != when or entry.get(STEP_KEY) != at or key in entry:
            if entry is not None:
                t.buf.append(entry)
            entry = {TIME_KEY: when}
            if at is not None:
                entry[STEP_KEY] = at
        entry[str(key)] = f
    if entry is not None:
        t.buf.append(entry)


def _seconds(timestamp: Any) -> float:
    try:
        return float(timestamp) / 1000.0 if timestamp is not None else time.time()
    except (TypeError, ValueError):
        return time.time()


def _step(step: Any) -> int | None:
    """MLflow's step as runbase's (None: MLflow's default, 0); an int, as MLflow's
    client sends it, is taken as it is: this runs for every metric point."""
    if step.__class__ is int:
        return step
    return _tracker._to_int(step) if step is not None else 0


def _mirror_params(pairs: list[tuple[Any, str]]) -> None:
    if not pairs:
        return
    with state.lock:
        for key, value in pairs:
            state.params.setdefault(str(key), value)
    # the one MLflow param rule (capture.params): the number or boolean a string spells
    # exactly, else the string; the server's MLflow API keeps a param the same way
    values = {str(key): mlflow_param_value(value) for key, value in pairs}
    record_params(values, source=SOURCE, weak=not top_process())


def _check_params(pairs: list[tuple[Any, str]]) -> None:
    """MLflow's rule, which its server would apply: a param, once logged, keeps its
    value (the same value again is fine). No params (a batch of metrics, as autologging
    sends every step): nothing to check, and the params logged so far are not copied."""
    if not pairs:
        return
    with state.lock:
        seen = dict(state.params)
    pending: dict[str, str] = {}
    for key, value in pairs:
        old = seen.get(str(key), pending.get(str(key)))
        if old is not None and old != value:
            from mlflow.exceptions import MlflowException  # lazy: mlflow is loaded (we wrap it)
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(
                f"Changing param values is not allowed. Param with key='{key}' was already "
                f"logged with value='{old}' for run ID='{state.run_id}'. Attempted logging "
                f"new value '{value}'.",
                INVALID_PARAMETER_VALUE,
            )
        pending[str(key)] = value


def _mirror_tags(tags: Iterable[tuple[Any, str]]) -> None:
    """MLflow tags as runbase tags; ``mlflow.runName`` is the run's name (kept in the
    run, as the server's MLflow API keeps it), and the tags runbase reserves for its
    MLflow state (``runbase.mlflow.*``: soft delete, datasets, model links; the
    server's MLflow API refuses them) are not taken."""
    t = _tracker.active()
    if t is None:
        return
    for key, value in tags:
        if key == RUN_NAME_TAG:
            if value:
                t.event("name", name=value)
        elif str(key).startswith(HIDDEN_PREFIX):
            warn_once(f"mlflow-tag-{key}", f"MLflow tag {key!r} is runbase's own; not recorded")
        else:
            t.event("tag", key=str(key), value=value)


def _mirror_name(name: str) -> None:
    t = _tracker.active()
    if t is not None:
        t.event("name", name=name)


def _mirror_batch(
    metrics: list[Any], params: list[tuple[Any, str]], tags: list[tuple[Any, str]]
) -> None:
    _mirror_params(params)
    _mirror_tags(tags)
    _mirror_metrics((m.key, m.value, m.timestamp, m.step) for m in metrics)


# -- helpers ----------------------------------------------------------------------------------


def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the mirror never breaks training
        warn_once(f"mlflow-{what}", f"the MLflow integration could not mirror {what}: {e}")


def _arg(
    args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None
) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _done(args: tuple[Any, ...], kwargs: dict[str, Any], index: int) -> Any:
    """What a write kept here answers: None, or (``synchronous=False``, its argument at
    ``index``) an empty ``RunOperations``, as a queued write that is already done."""
    return None if _arg(args, kwargs, index, "synchronous", True) else _no_operations()


def _no_operations() -> Any:
    from mlflow.utils.async_logging.run_operations import RunOperations  # lazy: mlflow is loaded

    return RunOperations([])
