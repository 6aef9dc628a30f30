"""Ray Tune: every trial of a Tune experiment is a runbase run.

::

    from ray import tune
    from runbase.integrations.ray import RunbaseLoggerCallback

    tuner = tune.Tuner(
        train_fn,
        param_space={"lr": tune.loguniform(1e-4, 1e-1)},
        run_config=tune.RunConfig(callbacks=[RunbaseLoggerCallback()]),
    )
    tuner.fit()

``ray.train.RunConfig`` takes the callback the same way. Nothing else changes in the
program. The callback runs in Tune's driver process (where every trial's results
arrive) and records (docs/tune.md):

* one run per trial, named as Tune names the trial, created when the trial starts:
  its params are the trial's config (nested keys flattened to ``a.b``, source
  ``tune``), its metrics every numeric value the trial reports (``tune.report``; a
  nested dict flattened to ``a/b``, as Tune flattens it) at step
  ``training_iteration``. Tune's own bookkeeping (:data:`BOOKKEEPING`: timings,
  timestamps, ids, host and pid) is not a metric;
* its end: ``finished`` (the trainable returned, or reached the experiment's
  ``stop={...}`` criterion or the scheduler's ``max_t``), ``failed`` (it raised: the
  error text is the run's ``error``), ``pruned`` (Tune stopped it early: a scheduler
  such as ASHA, a ``Stopper``, a time budget);
* the code and environment of the driver's project ONCE per experiment, shared by
  every trial's run; under ``runbase run`` the driver's own, and the trials are job
  runs of the driver's run (``parent_id``);
* the experiment as a sweep (records.sweeps: ``runbase ls --sweep ID``), each trial's
  run a member (``sweep_id``, tag ``sweep_index`` = Tune's trial number, from 0), and
  what ran it (``executor``: ``ray``, the host and the Ray node of the trial's actor,
  the attempt: a trial Tune restarts after a failure keeps its run, whose executor
  then names the new attempt and node);
* the experiment's objective and direction in the sweep's spec: the callback's
  ``objective=``/``direction=``, else Tune's own (``TuneConfig(metric=, mode=)``, or
  the searcher's or scheduler's), and its best run (the best finished trial by the
  objective's last value), updated as trials end;
* with ``publish=``, the sweep's record too, sent to the team server when the
  experiment starts, after each trial ends and when it ends (its final status).

Tracking never breaks training: a failure of runbase inside Tune's loop is one
warning, and Tune goes on. A store that cannot be opened fails when the callback is
made, before any trial. ``import runbase`` never loads Ray; this module does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from ray.tune.logger import LoggerCallback
except ImportError as _e:  # pragma: no cover - exercised without ray installed
    raise ImportError(
        f"runbase.integrations.ray needs Ray Tune ({_e}): pip install 'runbase[ray]'"
    ) from _e

from runbase.analysis.sweepstats import DIRECTIONS, objective_value
from runbase.capture.params import SKIP_PARSER, flatten, jsonable
from runbase.capture.secrets import redact_argv
from runbase.core._safe import warn_once
from runbase.core.ids import new_run_id
from runbase.errors import UsageError
from runbase.integrations._common import wrap
from runbase.records import external, lifecycle, sweeps
from runbase.records.experiments import check_key
from runbase.records.jobruns import inherit_parent_env, parent_row, share_parent_setup
from runbase.records.read import load_metrics
from runbase.records.sweeps import INDEX_TAG, create_sweep, set_run_executor, update_sweep
from runbase.store import Store
from runbase.tracking._child import own_io, python_info
from runbase.tracking.jobs import PARENT_TAG as GROUP_TAG

SOURCE = "tune"  # the params' source (a trial's config)
STEP = "training_iteration"  # the step of every metric point
# What Tune adds to every result (ray.tune.result's auto-filled keys): its timing,
# clock, ids, placement and control flags. The run already has its own times, host and
# status; as metrics they would only crowd the charts. A trial's own report of one of
# these names is dropped too.
BOOKKEEPING = frozenset(
    {
        STEP,
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "timesteps_since_restore",
        "timestamp",
        "date",
        "pid",
        "hostname",
        "node_ip",
        "trial_id",
        "experiment_id",
        "experiment_tag",
        "done",
        "should_checkpoint",
        "checkpoint_dir_name",
        "config",
    }
)
TRIAL_TAG = "tune.trial_id"  # Tune's id of the trial, on its run
MAX_ERROR = 20_000  # characters of a failed trial's error kept (its end: the cause)
PUBLISH_WAIT = 60.0  # s: the experiment's end waits this long for its final pushes
SWEEP_PUSH = "ray-tune:sweep-push"  # warn_once key (+ the sweep id): one warning per sweep


class RunbaseLoggerCallback(LoggerCallback):
    """Record each trial of the Tune experiment as a runbase run (module docstring).

    ``store``: the store's directory (default: as ``runbase.init`` finds it:
    ``$RUNBASE_DIR``, else the project's ``.runbase``); ``publish``: a remote (a team
    server) each trial's run is streamed to while it runs, then pushed (default:
    ``$RUNBASE_PUBLISH`` or the config's ``"publish"``); ``tags``: added to every
    trial's run; ``objective`` and ``direction`` (``"max"`` or ``"min"``, both or
    neither): the metric the sweep's best run is chosen by (default: Tune's metric and
    mode). A store or remote that cannot be used, or a bad objective, raises
    RunbaseError here, before the experiment starts.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        publish: str | None = None,
        tags: dict[str, Any] | None = None,
        objective: str | None = None,
        direction: str | None = None,
    ) -> None:
        super().__init__()
        self.objective = _checked_objective(objective, direction)
        opened = Store.open(store, create=True)  # fails loudly now, not inside Tune's loop
        self.store_root = str(opened.root)
        opened.close()
        # lazy: the HTTP client, only to check the remote (a bad one fails now)
        from runbase.remote.target import resolve_target

        self.publish = resolve_target(publish)
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self._exp: _Experiment | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config (the experiment's state): the settings only
        return {
            "store_root": self.store_root,
            "publish": self.publish,
            "tags": self.tags,
            "objective": self.objective,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # a state pickled by an older runbase (Tuner.restore of its experiment) lacks
        # the settings added since: their defaults, as if the callback were made now
        self.__dict__.setdefault("objective", None)
        self._exp = None

    # -- Tune's hooks (each one warns once and returns on any failure) -----------------

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        super().setup(stop, num_samples, total_num_samples, **info)
        self._exp = _guard("start", _Experiment.begin, self, stop, total_num_samples)

    def log_trial_start(self, trial: Any) -> None:
        if self._exp is not None:
            _guard("trial start", self._exp.trial_started, trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if self._exp is not None:
            _guard("trial result", self._exp.trial_result, trial, result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if self._exp is not None:
            _guard("trial end", self._exp.trial_ended, trial, failed)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        super().on_step_end(iteration, trials, **info)
        if self._exp is not None:  # Tune's loop turns often: the sweep's driver is alive
            _guard("heartbeat", self._exp.beat)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        exp, self._exp = self._exp, None
        if exp is not None:  # trials still open: Tune was interrupted (Ctrl-C, an error)
            _guard("experiment end", exp.end, "interrupted" if exp.trials else "finished")


def _guard(what: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``; any error is one warning (tracking never breaks training)."""
    before = getattr(own_io, "active", False)
    own_io.active = True  # the store's reads and writes are no file I/O of a tracked driver
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001
        warn_once(f"ray-tune:{what}", f"runbase could not record the Tune {what}: {e}")
        return None
    finally:
        own_io.active = before


@dataclass
class _Trial:
    run_id: str
    stopped: bool = False  # Tune stopped it after this result (done set on a report)
    last: dict[str, Any] = field(default_factory=dict)
    publisher: Any = None


class _Experiment:
    """One Tune experiment's recording: its store, its sweep, its trials' runs."""

    def __init__(self, cb: RunbaseLoggerCallback, stop: Any) -> None:
        self.store = Store.open(cb.store_root)
        self.publish = cb.publish
        self.tags = cb.tags
        self.criteria = dict(stop) if isinstance(stop, dict) else {}
        controller = _tune_controller()
        self.budget = _scheduler_budget(controller)
        # the callback's own objective wins over what Tune optimizes
        self.objective = cb.objective or _tune_objective(controller)
        self.best: tuple[str, float] | None = None  # the best finished trial's run, value
        self.command = redact_argv([sys.executable, *sys.argv])[0]
        self.root = str(lifecycle.project_root())
        self.parent = _driver_run(self.store)
        self.setup: dict[str, Any] | None = None  # what every trial's run shares
        self.trials: dict[str, _Trial] = {}
        self.pushes: list[threading.Thread] = []
        self.sweep_pusher: _SweepPusher | None = None
        self.nodes: dict[str, str] | None = None  # Ray node id -> host name
        self.sweep_id = new_run_id()
        self.ended = False
        self.beat_at = time.monotonic()

    @classmethod
    def begin(cls, cb: RunbaseLoggerCallback, stop: Any, total: Any) -> _Experiment:
        exp = cls(cb, stop)
        spec: dict[str, Any] = {"command": exp.command, "search": "tune", "on": "ray"}
        if isinstance(total, int) and total > 0:
            spec["trials"] = total
        if exp.objective is not None:  # what the sweep page ranks the trials by
            spec["objective"], spec["direction"] = exp.objective
        if exp.tags:
            spec["tags"] = exp.tags
        create_sweep(exp.store, exp.sweep_id, spec)
        # this process drives it: a driver killed without its end (SIGKILL, a lost
        # machine) leaves a sweep that reads interrupted, not running forever
        sweeps.claim(exp.store, exp.sweep_id)
        if exp.parent is not None:  # the driver's run names the group of its job runs
            external.set_tags(exp.store, exp.parent, {GROUP_TAG: exp.sweep_id})
        if exp.publish:  # the team server's sweep page has its record from the start
            exp.sweep_pusher = _SweepPusher(cb.store_root, exp.publish, exp.sweep_id)
            exp.sweep_pusher.poke()
        return exp

    def beat(self) -> None:
        """The sweep's heartbeat, every BEAT_EVERY s at most (its driver is alive)."""
        now = time.monotonic()
        if now - self.beat_at >= sweeps.BEAT_EVERY:
            self.beat_at = now
            sweeps.beat(self.store, self.sweep_id)

    # -- trials ---------------------------------------------------------------------

    def trial_started(self, trial: Any) -> None:
        known = self.trials.get(trial.trial_id)
        if known is not None:  # restarted after a failure: the same run goes on, elsewhere
            set_run_executor(self.store, known.run_id, self._executor(trial))
            return
        tags = {**self.tags, INDEX_TAG: str(_trial_index(trial, len(self.trials))),
                TRIAL_TAG: str(trial.trial_id)}  # fmt: skip
        run_id = lifecycle.create_run(
            self.store,
            command=self.command,
            mode="job" if self.parent else "api",
            name=str(trial),
            project_root=self.root,
            tags=tags,
            parent_id=self.parent,
            sweep_id=self.sweep_id,
            executor=self._executor(trial),
        )
        self.trials[trial.trial_id] = t = _Trial(run_id)
        self._share_setup(run_id)
        params = flatten(trial.config or {})
        external.set_params(
            self.store, run_id, {k: _param_text(v) for k, v in params.items()}, SOURCE
        )
        if self.publish:
            t.publisher = _start_publisher(self.store, self.publish, run_id)

    def _share_setup(self, run_id: str) -> None:
        """The driver's code and environment, captured once for the experiment."""
        if self.parent is not None:  # its process's run has them (or will: inherited)
            row = parent_row(self.store, self.parent)
            if row is not None:
                share_parent_setup(self.store, run_id, row)
            return
        if self.setup is None:  # the first trial's run takes them, the others share them
            lifecycle.snapshot_code(self.store, run_id, Path(self.root))
            lifecycle.record_env(self.store, run_id, python_info())
            self.setup = parent_row(self.store, run_id)
        else:
            share_parent_setup(self.store, run_id, self.setup)

    def trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        t = self.trials.get(trial.trial_id)
        if t is None:
            self.trial_started(trial)
            t = self.trials[trial.trial_id]
        step = result.get(STEP)
        step = step if isinstance(step, int) and not isinstance(step, bool) else None
        now = time.time()
        metrics = _metrics(result)
        objective = self.objective[0] if self.objective else None
        if objective in BOOKKEEPING:  # Tune may optimize its own key (time_total_s)
            value = _number(result.get(objective))
            if value is not None:
                metrics[str(objective)] = value
        points = [(key, step if step is not None else 0, now, v) for key, v in metrics.items()]
        if points:
            external.log_points(self.store, t.run_id, points)
        t.stopped = bool(result.get("done"))
        t.last = result

    def trial_ended(self, trial: Any, failed: bool) -> None:
        t = self.trials.pop(trial.trial_id, None)
        if t is None:
            return
        status, error = self._outcome(trial, t, failed)
        self._end_run(t, status, error)

    def _outcome(self, trial: Any, t: _Trial, failed: bool) -> tuple[str, str | None]:
        if failed:
            return "failed", _error_text(trial)
        if not t.stopped or self._reached_budget(t.last):
            return "finished", None
        return "pruned", "stopped early by Ray Tune (its scheduler or a stopper)"

    def _reached_budget(self, result: dict[str, Any]) -> bool:
        """Tune stopped the trial at its full budget: the experiment's ``stop``
        criteria, or the scheduler's ``max_t`` (a trial ASHA lets run to the end)."""
        checks = list(self.criteria.items())
        if self.budget is not None:
            checks.append(self.budget)
        for key, most in checks:
            value = result.get(key)
            with contextlib.suppress(TypeError):
                if value is not None and value >= most:
                    return True
        return False

    def _end_run(self, t: _Trial, status: str, error: str | None) -> None:
        if t.publisher is not None:
            t.publisher.stop()  # before the run is finalized: compaction renumbers chunks
        if self.parent is not None:
            inherit_parent_env(self.store, t.run_id)
        code = {"finished": 0, "failed": 1}.get(status)
        # trials run at once in other processes: the project's new files are not this
        # trial's outputs (no scan); what Tune reports is
        lifecycle.finalize(self.store, t.run_id, status, exit_code=code, error=error, scan=False)
        if status == "finished" and self.objective is not None:
            _guard("best run", self._consider, t.run_id, *self.objective)
        if t.publisher is not None:  # the final push, off Tune's loop
            push = threading.Thread(target=t.publisher.finish, name="runbase-push", daemon=True)
            push.start()
            self.pushes.append(push)
        if self.sweep_pusher is not None:
            self.sweep_pusher.poke()

    def _consider(self, run_id: str, metric: str, direction: str) -> None:
        """A finished trial's run becomes the sweep's best run when its ``metric`` (the
        last value, as the sweep page reads it) beats the best so far."""
        metrics = load_metrics(self.store, [run_id]).get(run_id, {})
        value = objective_value(metrics, metric)
        if value is None:
            warn_once(
                f"ray-tune:no-objective:{self.sweep_id}",
                f"a Tune trial (run {run_id}) finished without a numeric {metric!r}: "
                "it cannot be the sweep's best run",
            )
            return
        if self.best is not None:
            better = value > self.best[1] if direction == "max" else value < self.best[1]
            if not better:
                return
        self.best = (run_id, value)
        update_sweep(self.store, self.sweep_id, best_run=run_id)

    def end(self, status: str) -> None:
        """The experiment is over: trials still open end ``killed``; the sweep's status."""
        if self.ended:
            return
        self.ended = True
        try:
            for trial_id in list(self.trials):
                t = self.trials.pop(trial_id)
                _guard("trial end", self._end_run, t, "killed", "the Tune experiment ended")
            update_sweep(self.store, self.sweep_id, status=status)
            deadline = time.monotonic() + PUBLISH_WAIT
            for push in self.pushes:
                push.join(max(0.0, deadline - time.monotonic()))
            if self.sweep_pusher is not None:  # the final row: the server's status
                self.sweep_pusher.close(max(0.0, deadline - time.monotonic()))
        finally:
            self.store.close()

    # -- where a trial runs -----------------------------------------------------------

    def _executor(self, trial: Any) -> dict[str, Any]:
        """``{"kind": "ray", "host", "node_id", "attempt"}`` of the trial's actor, as far
        as Ray's control store tells it (never a failure: the kind alone at worst)."""
        info: dict[str, Any] = {"kind": "ray"}
        failures = getattr(trial, "num_failures", 0)  # Tune's restarts so far
        if isinstance(failures, int) and not isinstance(failures, bool) and failures >= 0:
            info["attempt"] = failures
        try:
            node_id, ip = _actor_node(trial)
        except Exception:  # noqa: BLE001 - Ray's private state API may move
            return info
        if node_id:
            info["node_id"] = node_id
            host = self._hosts(node_id).get(node_id) or ip
            if host:
                info["host"] = host
        return info

    def _hosts(self, node_id: str) -> dict[str, str]:
        """Ray's node ids and host names, asked again for a node not seen yet (one that
        joined the cluster since: a restarted trial may run there)."""
        if self.nodes is None or node_id not in self.nodes:
            import ray  # lazy: loaded by Tune already

            self.nodes = {
                str(n["NodeID"]): str(n.get("NodeManagerHostname") or n.get("NodeManagerAddress"))
                for n in ray.nodes()
                if n.get("NodeID")
            }
        return self.nodes


class _SweepPusher:
    """Sends the sweep's row to the team server (remote.sweeps.push_sweep) off Tune's
    loop, from a thread of its own with its own store connection. Pokes coalesce: a
    push reads the row when it starts, so the one after the last poke sends the latest
    (and the server keeps the newer row anyway). Failures are one warning for the
    experiment; the trials' final pushes carry the row as well."""

    def __init__(self, store_root: str, remote: str, sweep_id: str) -> None:
        self.store_root = store_root
        self.remote = remote
        self.sweep_id = sweep_id
        self._store: Store | None = None  # its own connection, opened by its thread
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runbase-sweep-push", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """The row changed (or a trial ended): push it soon."""
        self._wake.set()

    def close(self, timeout: float) -> None:
        """One last push of the row as it is now; waits up to ``timeout`` seconds."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()  # then a poke or close() from now on wakes it again
                closing = self._closing.is_set()
                self._push()
                if closing:
                    return
        finally:
            if self._store is not None:
                self._store.close()

    def _push(self) -> None:
        try:
            from runbase.remote.sweeps import push_sweep  # lazy: the HTTP client

            self._store = self._store or Store.open(self.store_root)
            push_sweep(self._store, self.sweep_id, self.remote)
        except Exception as e:  # noqa: BLE001 - unreachable, refused: Tune goes on
            warn_once(
                f"{SWEEP_PUSH}:{self.sweep_id}",
                f"runbase could not publish the Tune sweep {self.sweep_id} to "
                f"{self.remote} ({e}); `runbase push` sends it with its runs",
            )


# -- helpers ------------------------------------------------------------------------------


def _driver_run(store: Store) -> str | None:
    """The run of this process under ``runbase run`` (in this store), if any."""
    run_id = os.environ.get("RUNBASE_RUN_ID")
    if not run_id or parent_row(store, run_id) is None:
        return None
    return run_id


def _checked_objective(objective: Any, direction: Any) -> tuple[str, str] | None:
    """The callback's ``(objective, direction)``, or None for Tune's own; UsageError
    when only one is given, or either is not one a sweep can rank by."""
    if objective is None and direction is None:
        return None
    if objective is None:
        raise UsageError(f"direction={direction!r} needs objective=METRIC (what it judges)")
    objective = check_key(objective, "objective")
    if direction not in DIRECTIONS:
        raise UsageError(
            f"objective={objective!r} needs direction='max' or 'min' (what is better), "
            f"not {direction!r}"
        )
    return objective, str(direction)


# Tune's frames, from the callback's ``setup`` up: Tune gives callbacks neither its
# metric nor its mode (``Callback.setup`` gets the stop criteria and sample counts), so
# they are read where Tune keeps them. FRAMES bounds the walk.
FRAMES = 24
_TUNE_RUN = ("ray.tune.tune", "run")  # tune.run(metric=, mode=), what Tuner.fit calls
_NO_METRIC = "_metric"  # ray.tune.result.DEFAULT_METRIC: Tune's anonymous metric


def _tune_frames() -> Iterator[Any]:
    frame: Any = sys._getframe(1)
    for _ in range(FRAMES):
        if frame is None:
            return
        yield frame
        frame = frame.f_back


def _tune_controller() -> Any:
    """The TuneController calling the callback's ``setup`` (None when Tune's internals
    moved): it holds the experiment's scheduler and search algorithm."""
    for frame in _tune_frames():
        owner = frame.f_locals.get("self")
        if getattr(owner, "scheduler_alg", None) is not None:
            return owner
    return None


def _tune_objective(controller: Any) -> tuple[str, str] | None:
    """``(metric, mode)`` Tune optimizes: ``tune.run``'s (``TuneConfig(metric=,
    mode=)``), else its searcher's (``OptunaSearch(metric=, mode=)``), else its
    scheduler's (``ASHAScheduler(metric=, mode=)``); None when none says both."""
    for frame in _tune_frames():
        if (frame.f_globals.get("__name__"), frame.f_code.co_name) == _TUNE_RUN:
            found = _metric_mode(frame.f_locals.get("metric"), frame.f_locals.get("mode"))
            if found is not None:
                return found
            break
    search = getattr(controller, "search_alg", None)
    for part in (getattr(search, "searcher", None), getattr(controller, "scheduler_alg", None)):
        mode = getattr(part, "mode", None) or getattr(part, "_mode", None)
        found = _metric_mode(getattr(part, "metric", None), mode)
        if found is not None:
            return found
    return None


def _metric_mode(metric: Any, mode: Any) -> tuple[str, str] | None:
    if isinstance(metric, str) and metric and metric != _NO_METRIC and mode in DIRECTIONS:
        return metric, str(mode)
    return None


def _scheduler_budget(controller: Any) -> tuple[str, Any] | None:
    """``(time attribute, max_t)`` of the experiment's scheduler (ASHA, HyperBand), found
    on the Tune controller: a trial it stops there has had its full budget. None when
    there is no such scheduler (or Tune's internals moved)."""
    sched = getattr(controller, "scheduler_alg", None)
    attr = getattr(sched, "_time_attr", None)
    most = getattr(sched, "_max_t", None)
    if most is None:
        most = getattr(sched, "_max_t_attr", None)
    if isinstance(attr, str) and isinstance(most, (int, float)):
        return attr, most
    return None


def _actor_node(trial: Any) -> tuple[str | None, str | None]:
    """The Ray node id and IP address of the trial's actor, from the control store."""
    actor = trial.temporary_state.ray_actor
    if actor is None:
        return None, None
    # lazy: Ray's control store (the public state API needs the dashboard)
    from ray._private import state

    info = state.actors(actor_id=actor._actor_id.hex())
    address = info.get("Address") or {}
    return address.get("NodeID"), address.get("IPAddress")


def _trial_index(trial: Any, started: int) -> int:
    """Tune's number of the trial (the end of its id, ``..._00003``), else the order in
    which the trials started."""
    tail = str(trial.trial_id).rpartition("_")[2]
    return int(tail) if tail.isdigit() else started


def _param_text(value: Any) -> str:
    """A config value as records.external takes params: a string as it is, anything
    else as its JSON text (numbers and booleans are stored typed)."""
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), ensure_ascii=False, default=str)


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a Tune result, nested dicts flattened to ``a/b``, without
    Tune's bookkeeping."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in BOOKKEEPING:
            continue
        if isinstance(value, dict):
            for sub, v in _metrics(value).items():
                out[f"{key}/{sub}"] = v
            continue
        number = _number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _number(value: Any) -> float | None:
    """int, float and numpy/torch scalars (not bools, not arrays)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if getattr(value, "shape", None) == () or type(value).__module__ == "numpy":
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _error_text(trial: Any) -> str:
    """What Tune says the trial died of: its error file, read where the driver has it
    (the storage path gets its copy later), else a plain note."""
    with contextlib.suppress(Exception):
        path = trial.error_file
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - MAX_ERROR))
                return f.read().decode("utf-8", "replace").strip()
    with contextlib.suppress(Exception):
        err = trial.get_error()
        if err is not None:
            return str(err)[-MAX_ERROR:]
    return "the trial failed (Ray Tune reported an error)"


# -- Tune's own command-line parser ---------------------------------------------------------

# Tune turns each trial's spec into a command line and parses it with an argparse parser
# of its own (ray.tune.experiment.config_parser): called from the user's tuner.fit(),
# runbase's argparse capture would take that parse for the driver's params ("run",
# "config", "stop", ... of the last trial). Such a parser is marked a framework's own.
_PARSER_USERS = (
    "ray.tune.experiment.config_parser",
    "ray.tune.search.basic_variant",
    "ray.tune.search.search_generator",
)


def install(module: Any = None) -> None:
    """Mark the parsers Tune makes for its trial specs as not the program's (capture.params
    SKIP_PARSER). Done when this module is imported; ``module`` (ray.tune) is for the
    automatic hooks (runbase.tracking.autohooks), which may call it when Tune is imported."""
    for name in _PARSER_USERS:
        owner = sys.modules.get(name)
        if owner is None:
            with contextlib.suppress(ImportError):
                owner = importlib.import_module(name)
        if owner is not None and callable(getattr(owner, "_make_parser", None)):
            wrap(owner, "_make_parser", _skipped_parser)


def _skipped_parser(make_parser: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parser = make_parser(*args, **kwargs)
        with contextlib.suppress(Exception):
            setattr(parser, SKIP_PARSER, True)
        return parser

    return wrapper


def _start_publisher(store: Store, remote: str, run_id: str) -> Any:
    from runbase.remote.publish import start_publisher  # lazy: the HTTP client

    return start_publisher(store, remote, run_id)


with contextlib.suppress(Exception):  # never a reason for the import to fail
    install()

__all__ = ["BOOKKEEPING", "RunbaseLoggerCallback", "install"]
