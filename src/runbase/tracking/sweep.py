"""``runbase sweep``: run a command over parameter combinations, as tracked runs of one sweep.

    grid = parse_grid(["lr=0.1,0.01", "batch=16,32"])
    dists = parse_random(["wd=loguniform(1e-5,1e-2)"])
    plan = SweepPlan(["python", "train.py"], grid, dists, samples=3, seed=0)
    result = run_sweep(plan, executor=make_executor(jobs=4))   # 2 x 2 grid points x 3
    runbase.runs(sweep=result.sweep_id)

    plan = SweepPlan(["python", "train.py"], {}, dists, search="tpe", objective="acc",
                     direction="max", trials=40, prune="median")
    resume_sweep(result.sweep_id)            # an interrupted sweep: its trials left
    join_sweep(sweep_id, study_storage=url)  # another machine drives it too (tpe, cmaes)

Each trial is ``runbase run --param k=v ... -- COMMAND`` in a process of its own (so it
is exactly what ``runbase run`` records, and a crash of one run cannot touch another),
at most ``executor.slots`` at a time, on this machine or a Ray cluster
(tracking.executor), every run carrying the sweep's id (``sweep_id``) and its trial's
index (the tag ``sweep_index``, 1-based: in the order of ``combinations()`` for grid and
random, the study's trial number + 1 for a model-based search, which several drivers
may share: ``join_sweep``). The code is snapshotted once, for
every trial. The sweep's record (records.sweeps) keeps its plan, its status, its Optuna
study (tracking.search) and its best run.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.capture.overrides import INDEX_TAG, format_value, parse_assignment, parse_value
from runbase.core.heldsignals import held_signals
from runbase.core.ids import new_run_id
from runbase.errors import UsageError
from runbase.store import Store
from runbase.tracking.executor import (
    SPEC_TOKEN,
    Executor,
    Job,
    Resources,
    make_executor,
    runbase_run_argv,
)

DISTRIBUTIONS = ("uniform", "loguniform", "int", "randint", "choice")
_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)
DEFAULT_SAMPLES = 10  # per grid point, with --random and no -n
DEFAULT_TRIALS = 20  # of a model-based search without --trials
PRUNE_POLL = 0.5  # seconds between two reads of the running trials' objective series
BEAT_EVERY = 10.0  # seconds between two heartbeats of a sweep's driver (records.sweeps.beat)
BEAT_ENV = "RUNBASE_SWEEP_BEAT"  # another interval, in seconds (tests: not minutes)
# a trial's run status that counts as done (resume runs the others again)
DONE_STATUSES = ("finished", "pruned", "failed")


@dataclass(frozen=True)
class Distribution:
    """A random parameter: ``uniform(a,b)``, ``loguniform(a,b)``, ``int(a,b)`` (both
    ends included; ``randint`` is the same) or ``choice(v1,v2,...)``."""

    kind: str
    args: tuple[Any, ...]

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.args)
        a, b = self.args
        if self.kind in ("int", "randint"):
            return rng.randint(int(a), int(b))
        if self.kind == "loguniform":
            x = math.exp(rng.uniform(math.log(a), math.log(b)))
        else:
            x = rng.uniform(a, b)
        return float(f"{x:.6g}")  # 6 digits: readable on a command line and in tables

    @property
    def text(self) -> str:
        """As written after ``--random KEY=`` (parse_distribution reads it back)."""
        return f"{self.kind}({','.join(_arg_text(a) for a in self.args)})"


def _arg_text(value: Any) -> str:
    # strings as JSON ("1e3" stays text); parse_value reads it back exactly
    return json.dumps(value) if isinstance(value, str) else format_value(value)


def parse_distribution(key: str, text: str) -> Distribution:
    m = _CALL.match(text)
    if not m:
        raise UsageError(
            f"bad distribution for {key}: {text!r}; use one of "
            "uniform(a,b), loguniform(a,b), int(a,b), choice(v1,v2,...)"
        )
    kind, args = m.group(1).lower(), [parse_value(v.strip()) for v in m.group(2).split(",")]
    if kind not in DISTRIBUTIONS:
        raise UsageError(
            f"unknown distribution {m.group(1)!r} for {key}; known: {', '.join(DISTRIBUTIONS)}"
        )
    if kind == "choice":
        if not m.group(2).strip():
            raise UsageError(f"choice() for {key} needs at least one value")
        return Distribution(kind, tuple(args))
    _check_bounds(key, kind, args)
    return Distribution(kind, tuple(args))


def _check_bounds(key: str, kind: str, args: list[Any]) -> None:
    numbers = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if len(args) != 2 or not numbers:
        raise UsageError(f"{kind}() for {key} takes two numbers, got {', '.join(map(str, args))}")
    a, b = args
    if a > b:
        raise UsageError(f"{kind}({a},{b}) for {key}: the low bound is above the high one")
    if kind == "loguniform" and a <= 0:
        raise UsageError(f"loguniform({a},{b}) for {key}: bounds must be positive")
    if kind in ("int", "randint") and (int(a) != a or int(b) != b):
        raise UsageError(f"{kind}({a},{b}) for {key}: bounds must be integers")


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["lr=0.1,0.01"]`` -> ``{"lr": [0.1, 0.01]}`` (values typed like ``--param``)."""
    out: dict[str, list[Any]] = {}
    for spec in specs:
        key, _ = parse_assignment(spec)
        raw = spec.partition("=")[2]
        values = [parse_value(v.strip()) for v in raw.split(",")]
        if not raw.strip() or any(v == "" for v in values):
            raise UsageError(f"bad grid {spec!r}: use KEY=V1,V2,... with no empty value")
        out[key] = out.get(key, []) + values
    return out


def parse_random(specs: Iterable[str]) -> dict[str, Distribution]:
    """``["lr=loguniform(1e-4,1e-1)"]`` -> ``{"lr": Distribution("loguniform", ...)}``."""
    out: dict[str, Distribution] = {}
    for spec in specs:
        key, eq, text = spec.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"bad random parameter {spec!r}: use KEY=DIST, e.g. lr=uniform(0,1)")
        out[key] = parse_distribution(key, text)
    return out


def combinations(
    grid: dict[str, list[Any]],
    dists: dict[str, Distribution],
    n: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Every grid point, each with ``n`` random samples of ``dists`` (``n`` defaults to
    10 with random parameters, else 1: without them, ``n`` repeats each grid point)."""
    both = set(grid) & set(dists)
    if both:
        raise UsageError(f"{', '.join(sorted(both))}: both in --grid and in --random")
    if not grid and not dists:
        raise UsageError("nothing to sweep: give --grid KEY=V1,V2 or --random KEY=DIST")
    if n is None:
        n = DEFAULT_SAMPLES if dists else 1
    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    rng = random.Random(seed)
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    return [
        {**point, **{k: d.sample(rng) for k, d in dists.items()}}
        for point in points
        for _ in range(n)
    ]


# -- the plan -------------------------------------------------------------------------


@dataclass
class SweepPlan:
    """What a sweep runs: kept in its record (``spec``), so ``resume_sweep`` goes on."""

    command: list[str]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    search: str = "grid"  # grid | random | tpe | cmaes
    samples: int | None = None  # -n: random samples per grid point
    seed: int | None = None
    objective: str | None = None  # the metric a search optimizes and a pruner compares
    direction: str | None = None  # max | min
    trials: int | None = None  # a model search's budget; grid/random: at most this many
    prune: str | None = None  # median | asha
    prune_startup: int = 5  # trials completed before the median pruner stops any
    grace: float = 10.0  # seconds from a pruned trial's SIGTERM to its SIGKILL
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    capture_code: bool = True
    publish: str | None = None  # the remote every trial streams to (runbase run --publish)
    # declared data inputs (runbase run --input): relative to the project root once the
    # sweep starts (given relative to the working directory)
    inputs: list[str] = field(default_factory=list)

    def check(self) -> None:
        """UsageError for a plan that cannot run: before anything is recorded."""
        # lazy: optuna (through search) only for the searches that need it
        from runbase.tracking import search as se

        se.check_choices(self.search, self.prune, self.objective, self.direction)
        if self.objective is not None and self.direction is None:
            raise UsageError(
                f"--objective {self.objective} needs --direction max or min (what is better)"
            )
        if self.search in se.MODEL_SEARCHES and self.samples is not None:
            raise UsageError(
                f"-n is for grid and random sweeps; --search {self.search} takes --trials"
            )
        if self.trials is not None and self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        if not self.grace >= 0:
            raise UsageError(f"--grace must be 0 seconds or more, got {self.grace}")
        if not self.grid and not self.random:
            raise UsageError("nothing to sweep: give --grid KEY=V1,V2 or --random KEY=DIST")
        if self.search not in se.MODEL_SEARCHES:
            self.points()  # the grid/random rules (both, -n) before any run
        beat_every()  # a bad $RUNBASE_SWEEP_BEAT, before anything is recorded

    @property
    def model(self) -> bool:
        """Whether a study's sampler chooses the trials (tpe, cmaes)."""
        return self.search in ("tpe", "cmaes")

    @property
    def needs_study(self) -> bool:
        return self.model or self.prune is not None

    def points(self) -> list[dict[str, Any]]:
        """The trials of a grid or random sweep, in order: the grid points, each with
        ``samples`` random samples, the first ``trials`` of them when given."""
        n = self.samples
        if n is None and self.random and self.trials is not None:
            per_point = math.prod(len(v) for v in self.grid.values())
            n = max(1, math.ceil(self.trials / per_point))
        points = combinations(self.grid, self.random, n, self.seed)
        return points if self.trials is None else points[: self.trials]

    def total(self) -> int:
        if self.model:
            return self.trials or DEFAULT_TRIALS
        return len(self.points())

    def to_spec(self, execution: dict[str, Any] | None = None) -> dict[str, Any]:
        """The sweep record's ``spec`` (docs/sweeps.md); ``execution``: its ``on``,
        ``resources``, ``retries`` and ``jobs``."""
        return {
            "command": recorded_command(self.command),
            "grid": dict(self.grid),
            "random": {k: d.text for k, d in self.random.items()},
            "search": self.search,
            "objective": self.objective,
            "direction": self.direction,
            "trials": self.total(),
            "samples": self.samples,
            "prune": self.prune,
            "prune_startup": self.prune_startup,
            "grace": self.grace,
            "seed": self.seed,
            "name": self.name,
            "tags": dict(self.tags),
            "capture_code": self.capture_code,
            "publish": self.publish,
            "inputs": list(self.inputs),
            **(execution or {}),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SweepPlan:
        """The plan a sweep record keeps; UsageError when it is not one."""
        try:
            plan = cls(
                command=[str(a) for a in spec["command"]],
                grid={str(k): list(v) for k, v in (spec.get("grid") or {}).items()},
                random=parse_random(f"{k}={v}" for k, v in (spec.get("random") or {}).items()),
                search=str(spec.get("search") or "grid"),
                samples=_opt_int(spec.get("samples")),
                seed=_opt_int(spec.get("seed")),
                objective=spec.get("objective"),
                direction=spec.get("direction"),
                trials=_opt_int(spec.get("trials")),
                prune=spec.get("prune"),
                prune_startup=int(spec.get("prune_startup", 5)),
                grace=float(spec.get("grace", 10.0)),
                name=spec.get("name"),
                tags={str(k): str(v) for k, v in (spec.get("tags") or {}).items()},
                capture_code=bool(spec.get("capture_code", True)),
                publish=spec.get("publish"),
                inputs=[str(p) for p in spec.get("inputs") or []],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"the sweep's recorded plan is not one runbase reads: {e}") from None
        plan.check()
        return plan


def recorded_command(argv: list[str]) -> list[str]:
    """``argv`` as the sweep's record keeps it: its secrets ``***`` (the record is pushed
    with every trial, shown on the sweep page). The raw one stays in ``command.json``."""
    from runbase.capture.secrets import redact_argv  # lazy: the secret detectors

    return redact_argv(argv)[0]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- results ----------------------------------------------------------------------------


@dataclass
class Trial:
    index: int  # 1-based: the tag sweep_index
    overrides: dict[str, Any]
    run_id: str | None = None
    number: int | None = None  # its trial number in the study (an Optuna search)
    returncode: int | None = None  # of `runbase run`: the command's exit status
    stderr_tail: str = ""
    status: str | None = None  # its run's status when it ended (None: never started)
    value: float | None = None  # the objective it reached (finished runs only)
    pruned_at: float | None = None  # when the pruner marked its run (time.time())

    @property
    def ok(self) -> bool:
        return self.status == "finished" if self.status else self.returncode == 0

    def describe(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.overrides.items())


@dataclass
class SweepResult:
    sweep_id: str
    store_root: str
    trials: list[Trial] = field(default_factory=list)
    interrupted: bool = False
    plan: SweepPlan | None = None
    slots: int = 1
    total: int = 0  # trials this call was to run (a resumed sweep: those left)
    best: Trial | None = None  # of every trial of the sweep, earlier calls' included
    best_run: str | None = None

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "finished"]

    @property
    def pruned(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "pruned"]

    @property
    def failed(self) -> list[Trial]:
        ended = [t for t in self.trials if t.returncode is not None]
        return [t for t in ended if t.status not in ("finished", "pruned")]

    @property
    def not_run(self) -> int:
        """How many trials never started (the sweep was interrupted first)."""
        started = sum(1 for t in self.trials if t.returncode is not None or t.status is not None)
        return max(0, self.total - started)


def new_sweep_id() -> str:
    return new_run_id()


# -- running ----------------------------------------------------------------------------


def run_sweep(
    plan: SweepPlan,
    *,
    store: str | None = None,
    executor: Executor | None = None,
    execution: dict[str, Any] | None = None,
    study_storage: str | None = None,
    say: Callable[[str], None] | None = None,
    on_start: Callable[[SweepResult], None] | None = None,
    on_done: Callable[[Trial, int, int], None] | None = None,
) -> SweepResult:
    """Run ``plan`` as a new sweep on ``executor`` (default: this machine, one at a
    time). ``execution``: the executor's options, kept in the record for a resume
    (default: the executor's kind). ``study_storage``: the URL of the Optuna study's
    database (default: SQLite in the store). ``on_start(result)`` once the sweep has its
    id; ``on_done(trial, done, total)`` as each run ends (``done``: how many have ended,
    this one included; runs end in any order with more than one slot)."""
    plan.check()
    _check_command(plan)
    if study_storage is not None and not plan.needs_study:
        raise UsageError(
            "--study-storage is for a sweep with a study: --search tpe/cmaes or --prune"
        )
    executor = executor or make_executor(None, 1)
    if execution is None:  # what a resume makes again: a Ray sweep goes on on Ray
        execution = {"on": executor.kind}
        if executor.kind == "local":
            execution["jobs"] = executor.slots
    say = say or (lambda _line: None)
    s = Store.open(store, create=True)
    try:
        # before any record: a cluster that cannot run a trial, or reach the store
        executor.check(str(s.root), plan.publish)
        plan.inputs = _project_paths(plan.inputs, Path.cwd())
        inputs = _store_inputs(s, plan, executor)
        sweep_id = new_sweep_id()
        spec = plan.to_spec(execution)
        study, info = _open_study(s, sweep_id, plan, study_storage, say, None)
        if study is not None:  # what a driver joining from another machine reads
            _keep_sweep_in_study(study, sweep_id, spec)
        code = _snapshot(s, plan) if plan.capture_code else None
        from runbase.records import sweeps as rs  # lazy: records below, loaded late

        rs.create_sweep(s, sweep_id, spec, info)
        rs.claim(s, sweep_id)
        if spec["command"] != plan.command:  # held secrets: the raw one for a resume
            _save_command(s, sweep_id, plan.command)
        todo = _todo(plan, range(1, plan.total() + 1))
        driver = _Driver(s, sweep_id, plan, executor, study, code, say, inputs)
        return driver.run(todo, plan.total(), on_start, on_done)
    finally:
        s.close()


def resume_sweep(
    sweep_id: str,
    *,
    store: str | None = None,
    executor: Executor | None = None,
    grace: float | None = None,
    study_storage: str | None = None,
    command: list[str] | None = None,
    yes: bool = False,
    say: Callable[[str], None] | None = None,
    on_start: Callable[[SweepResult], None] | None = None,
    on_done: Callable[[Trial, int, int], None] | None = None,
) -> SweepResult:
    """Go on with sweep ``sweep_id`` until its trials are done (finished, pruned or
    failed). Grid and random sweeps run the points not done under their own index; a
    model-based search asks its study for new trials, numbered on. ``executor`` None:
    the one recorded (``execution_of``). The code is snapshotted again: it is what runs
    now. ``command``: the sweep's command given again (needed when its record holds it
    with secrets hidden, and this store has no raw copy). ``yes``: resume a sweep another
    user recorded (its command runs here). UsageError when another driver, alive, runs
    the sweep."""
    from runbase.records import sweeps as rs  # lazy: records below, loaded late

    say = say or (lambda _line: None)
    s = Store.open(store)
    try:
        rec = rs.get_sweep(s, sweep_id)
        if rec is None:
            raise UsageError(
                f"no sweep {sweep_id} in {s.root} (runbase ls --sweep ID lists its runs)"
            )
        plan = SweepPlan.from_spec(rec["spec"])
        plan.command = _command_to_run(s, sweep_id, plan.command, command)
        if grace is not None:
            plan.grace = grace
            plan.check()
        _check_command(plan)
        _check_user(rec, yes)
        executor = executor or make_executor(**execution_of(rec["spec"]))
        executor.check(str(s.root), plan.publish)
        plan.inputs = _project_paths(plan.inputs, None)  # a record's: checked again
        inputs = _store_inputs(s, plan, executor)  # hashed again: what they hold now
        rs.claim(s, sweep_id)  # before the study's running trials are told failed
        runs = rs.trial_runs(s, sweep_id)
        todo = _left(plan, runs)
        code = _snapshot(s, plan) if plan.capture_code else None
        study, info = _open_study(s, sweep_id, plan, study_storage, say, rec["study"])
        rs.update_sweep(s, sweep_id, status="running", study=info)
        say(
            f"runbase: resuming sweep {sweep_id} of {rec.get('user') or '?'} on "
            f"{rec.get('host') or '?'}: {' '.join(rec['spec']['command'])}"
        )
        driver = _Driver(s, sweep_id, plan, executor, study, code, say, inputs)
        driver.best_of(runs)
        return driver.run(todo, len(todo), on_start, on_done)
    finally:
        s.close()


def join_sweep(
    sweep_id: str,
    *,
    study_storage: str | None,
    store: str | None = None,
    executor: Executor | None = None,
    grace: float | None = None,
    publish: str | None = None,
    command: list[str] | None = None,
    yes: bool = False,
    say: Callable[[str], None] | None = None,
    on_start: Callable[[SweepResult], None] | None = None,
    on_done: Callable[[Trial, int, int], None] | None = None,
) -> SweepResult:
    """Drive sweep ``sweep_id`` (a tpe/cmaes search) alongside its other drivers, from
    its study at ``study_storage`` (a database they all reach), which holds the sweep's
    plan: trials are asked from the shared study (indexed by their trial numbers) until
    the study has the sweep's ``--trials`` in all, run on ``executor`` (this machine's:
    default one at a time here, whatever the first driver ran on) and recorded in this
    store (``store``) under the same sweep id. ``publish``: the remote name the trials
    publish to here (default: the recorded one). The claim of the sweep stays with its
    driver (a resume of a dead one): a joining driver never takes it. UsageError for a
    storage without the sweep, a grid or random sweep, or another user's sweep without
    ``yes`` (its command would run here)."""
    from runbase.tracking import search as se  # lazy: optuna

    say = say or (lambda _line: None)
    if not study_storage:
        raise UsageError(
            f"--join {sweep_id} needs the sweep's study storage: --study-storage URL (or "
            "$RUNBASE_STUDY_STORAGE), a database every driver reaches: postgresql://... or "
            "an SQLite file on a shared path, sqlite:////shared/study.db"
        )
    shared = se.shared_sweep(study_storage, sweep_id)
    plan = SweepPlan.from_spec(shared["spec"])
    if not plan.model:
        raise UsageError(
            f"sweep {sweep_id} is a {plan.search} sweep: --join is for tpe and cmaes "
            "searches, whose study chooses every trial (run the rest of a grid or random "
            f"sweep with --resume {sweep_id} where it was started)"
        )
    plan.grace = plan.grace if grace is None else grace
    plan.publish = publish or plan.publish
    plan.check()
    s = Store.open(store, create=True)
    try:
        plan.command = _command_to_run(s, sweep_id, plan.command, command, "--join")
        _check_command(plan)
        _check_user({**shared, "id": sweep_id}, yes)
        executor = executor or make_executor(None, 1)  # this machine's, not the recorded
        executor.check(str(s.root), plan.publish)
        plan.inputs = _project_paths(plan.inputs, None)  # the recorded ones, checked here
        inputs = _store_inputs(s, plan, executor)
        study = se.Study.open(
            se.space(plan.grid, plan.random),
            search=plan.search,
            direction=plan.direction or "max",
            name=sweep_id,
            url=study_storage,
            seed=None,  # another driver's sampler: its own points, not the first's again
            prune=plan.prune,
            prune_startup=plan.prune_startup,
            say=say,
            resume=True,
        )
        try:  # a dead driver's running trials do not hold the budget
            _reap(study, None, say)
        except Exception as e:  # noqa: BLE001  (a running driver tells them later)
            say(f"runbase: warning: could not check the study's other drivers: {e}")
        left = max(0, plan.total() - study.taken())
        say(
            f"runbase: joining sweep {sweep_id} of {shared.get('user') or '?'} on "
            f"{shared.get('host') or '?'}: {' '.join(shared['spec']['command'])}"
        )
        if left == 0:
            say(f"runbase: sweep {sweep_id} has all its {plan.total()} trials: nothing to run")
            _refresh_copy(s, sweep_id, study, say)
            return SweepResult(sweep_id, str(s.root), plan=plan, slots=executor.slots)
        where = {"name": sweep_id, "storage": se.redact(study_storage)}
        owns = _local_copy(s, sweep_id, shared, where)
        code = _snapshot(s, plan) if plan.capture_code else None
        driver = _Driver(s, sweep_id, plan, executor, study, code, say, inputs, beats=owns)
        return driver.run([(0, None)] * left, left, on_start, on_done)
    finally:
        s.close()


def _refresh_copy(store: Store, sweep_id: str, study: Any, say: Callable[[str], None]) -> None:
    """This store's copy of a joined sweep whose trials are all asked: the study's best
    run, and finished once none runs (a driver that ended before the others recorded
    what it saw then)."""
    from runbase.records import sweeps as rs  # lazy: records

    rec = rs.get_sweep(store, sweep_id)
    if rec is None or rec["status"] == "finished" or rec["owner"] is not None:
        return  # none here, done, or a driver of this store has it
    best = study.best()
    status = None if study.running_count() else "finished"
    rs.update_sweep(store, sweep_id, status=status, best_run=best and best["run_id"])
    if status:
        say(f"runbase: this store's record of sweep {sweep_id} now says finished")


def _keep_sweep_in_study(study: Any, sweep_id: str, spec: dict[str, Any]) -> None:
    """The sweep's plan (its command with secrets hidden), user and host written into its
    study, which a joining driver reads (join_sweep)."""
    from runbase.capture.env import user_and_host  # lazy: capture

    user, host = user_and_host()
    info = {"id": sweep_id, "spec": spec, "user": user, "host": host, "created_at": time.time()}
    try:
        study.set_sweep_info(info)
    except Exception as e:  # noqa: BLE001  (before any trial: the storage refuses a write)
        raise UsageError(f"cannot write the sweep into its study: {e}") from None


def _local_copy(store: Store, sweep_id: str, shared: dict[str, Any], study: dict[str, Any]) -> bool:
    """The joined sweep's row in this store (its trials' runs name it): made, driven by
    this process, when the store has none (True), else left as it is (False: another
    driver of this store has the claim)."""
    from runbase.records import sweeps as rs  # lazy: records

    if rs.get_sweep(store, sweep_id) is not None:
        return False
    created = shared.get("created_at")
    created = float(created) if isinstance(created, (int, float)) else None
    try:
        rs.create_sweep(
            store,
            sweep_id,
            shared["spec"],
            study,
            created_at=created,
            origin=(shared.get("user"), shared.get("host")),
        )
    except UsageError:  # another driver of this store made it meanwhile
        return False
    return True


def _command_path(store: Store, sweep_id: str) -> Path:
    return Path(store.root) / "sweeps" / sweep_id / "command.json"


def _save_command(store: Store, sweep_id: str, argv: list[str]) -> None:
    """The raw command of a sweep whose record hides a secret of it: readable by this
    user alone, in the store's ``sweeps/`` (which no bundle exports)."""
    path = _command_path(store, sweep_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(argv, f)


def _command_to_run(
    store: Store,
    sweep_id: str,
    recorded: list[str],
    given: list[str] | None,
    mode: str = "--resume",
) -> list[str]:
    """The command a resume runs: ``given`` (it must be the recorded one, secrets
    aside), else the raw copy this store keeps, else the recorded one when it hides
    nothing."""
    if given:
        if recorded_command(given) != recorded:
            raise UsageError(
                f"that is not the command of sweep {sweep_id}: it ran {' '.join(recorded)}"
            )
        return list(given)
    try:
        saved = json.loads(_command_path(store, sweep_id).read_text())
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, list) and all(isinstance(a, str) for a in saved):
        return saved
    from runbase.capture.secrets import REDACTED  # lazy: the secret detectors

    if any(REDACTED in a for a in recorded):
        raise UsageError(
            f"sweep {sweep_id}'s command hides a secret ({' '.join(recorded)}) and this "
            f"store has no copy of it: give it again, runbase sweep {mode} {sweep_id} "
            "-- COMMAND"
        )
    return recorded


def _check_user(rec: dict[str, Any], yes: bool) -> None:
    """UsageError for a sweep another user recorded (pulled from a team server), unless
    ``yes``: its command would run here unread."""
    from runbase.capture.env import user_and_host  # lazy: capture

    me = user_and_host()[0]
    if rec.get("user") and me and rec["user"] != me and not yes:
        raise UsageError(
            f"sweep {rec['id']} is {rec['user']}'s: its command would run here as yours "
            f"({' '.join(rec['spec'].get('command') or [])}); add --yes to resume it"
        )


def execution_of(spec: dict[str, Any]) -> dict[str, Any]:
    """``make_executor`` arguments of a recorded sweep (its ``on``, ``jobs``,
    ``resources`` and ``retries``)."""
    res = spec.get("resources") or {}
    return {
        "on": spec.get("on") or "local",
        "jobs": _opt_int(spec.get("jobs")),
        "resources": Resources(
            cpus=float(res.get("cpus", 1.0)),
            gpus=float(res.get("gpus", 0.0)),
            memory=_opt_int(res.get("memory")),
        ),
        "retries": int(spec.get("retries") or 0),
    }


def _check_command(plan: SweepPlan) -> None:
    """UsageError before any trial: no command, or a remote the trials cannot publish to
    (every trial's ``runbase run`` would refuse it)."""
    argv = plan.command
    if not argv:
        raise UsageError("no command given: runbase sweep [OPTIONS] -- COMMAND [ARGS...]")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"command not found: {argv[0]}")
    if plan.publish:
        from runbase.remote.target import resolve_target  # lazy: the HTTP client

        resolve_target(plan.publish)


def _todo(plan: SweepPlan, indices: Iterable[int]) -> list[tuple[int, dict[str, Any] | None]]:
    """(index, overrides) of the trials to run: the grid/random point of each index, or
    None where the study chooses."""
    if plan.model:
        return [(i, None) for i in indices]
    points = plan.points()
    return [(i, points[i - 1]) for i in indices if 0 < i <= len(points)]


def _left(plan: SweepPlan, runs: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any] | None]]:
    """The trials a resumed sweep still runs: the points whose index has no done run
    (grid, random), or as many new indices as trials are missing (model searches)."""
    done = [_index(r) for r in runs if r.get("status") in DONE_STATUSES]
    if plan.model:
        after = max((_index(r) for r in runs), default=0)
        return _todo(plan, range(after + 1, after + 1 + max(0, plan.total() - len(done))))
    return _todo(plan, [i for i in range(1, plan.total() + 1) if i not in set(done)])


def _index(row: dict[str, Any]) -> int:
    """A run's trial index (its tag ``sweep_index``; 0 without a valid one)."""
    from runbase.records.sweeps import sweep_index  # lazy: records

    return sweep_index((row.get("tags") or {}).get(INDEX_TAG)) or 0


def _snapshot(store: Store, plan: SweepPlan) -> dict[str, Any]:
    """The code record every trial shares: the project snapshotted once, as ``runbase
    run`` would (config files that held a secret left out)."""
    # lazy: git and subprocess, for a run (the listing helpers here load none)
    from runbase.capture.code import snapshot
    from runbase.records.lifecycle import project_root

    root = project_root(Path.cwd())
    return dict(snapshot(store, root, (), _secret_configs(plan.command, root)).as_dict())


def _project_paths(paths: list[str], base: Path | None) -> list[str]:
    """``paths`` (relative to ``base``, default the project root, or absolute) relative
    to the project root; UsageError for one outside the project."""
    from runbase.records.lifecycle import project_root  # lazy: records, loaded late

    root = os.path.realpath(project_root(Path.cwd()))
    base = base or Path(root)
    out = []
    for p in paths:
        full = os.path.realpath(os.path.join(base, p))
        if not (full + "/").startswith(root + "/") or full == root:
            raise UsageError(f"--input {p}: not a file or directory under the project {root}")
        out.append(os.path.relpath(full, root))
    return out


def _store_inputs(store: Store, plan: SweepPlan, executor: Executor) -> list[dict[str, str]]:
    """The sweep's declared inputs hashed and stored once, as ``runbase run --input``
    stores them: ``[{"path", "oid", "kind"}]`` (what a node materializes). UsageError for
    one that does not exist, or (to a node) a credentials file, which is never stored."""
    # lazy: hashing and the secret detectors, for a sweep with inputs
    from runbase.capture.files import snapshot_path
    from runbase.capture.secretfiles import is_secret_file
    from runbase.records.lifecycle import project_root

    root = str(project_root(Path.cwd()))
    out = []
    for rel in plan.inputs:
        full = os.path.join(root, rel)
        if executor.kind != "local" and is_secret_file(rel, root) and os.path.isfile(full):
            raise UsageError(f"--input {rel} may hold credentials: never stored, so never sent")
        snap = snapshot_path(store, full, "store")
        if snap is None:
            raise UsageError(f"--input {rel}: no such file or directory in {root}")
        out.append({"path": rel, "oid": snap[0], "kind": "dir" if os.path.isdir(full) else "file"})
    return out


def _secret_configs(argv: list[str], root: Path) -> list[str]:
    """The config files on ``argv`` that hold a secret, relative to ``root``: their bytes
    are never stored (what ``runbase run`` withholds from its snapshot)."""
    # lazy: YAML/TOML parsers and the secret detectors, only for a sweep that runs
    from runbase.capture.configfiles import config_files
    from runbase.capture.params import encode_value

    held = []
    for path, values in config_files(argv, os.getcwd()):
        found: set[str] = set()
        for key, value in values.items():
            encode_value(key, value, found)
        if found:
            held.append(os.path.relpath(os.path.realpath(path), os.path.realpath(root)))
    return held


def _open_study(
    store: Store,
    sweep_id: str,
    plan: SweepPlan,
    url: str | None,
    say: Callable[[str], None],
    recorded: dict[str, Any] | None,
) -> tuple[Any, dict[str, Any] | None]:
    """The sweep's Optuna study (None when it needs none) and what its record keeps of it
    (``{"name", "storage"}``: ``local`` or the URL without its password). ``recorded``:
    that of a sweep resumed, whose study is loaded."""
    if not plan.needs_study:
        return None, recorded
    from runbase.tracking import search as se  # lazy: optuna

    where = (recorded or {}).get("storage") or ("local" if url is None else se.redact(url))
    if recorded is not None and where != "local" and url is None:
        raise UsageError(
            f"the study of sweep {sweep_id} is in {where}: give --study-storage URL again "
            "(its password is not kept)"
        )
    if recorded is not None and where != "local" and se.redact(url or "") != where:
        raise UsageError(f"--study-storage is not the sweep's study storage ({where})")
    if where == "local" and url is not None and recorded is not None:
        raise UsageError(f"the study of sweep {sweep_id} is in its store: no --study-storage")
    name = str((recorded or {}).get("name") or sweep_id)
    study = se.Study.open(
        se.space(plan.grid, plan.random),
        search=plan.search,
        direction=plan.direction or "max",
        name=name,
        url=se.local_storage(store.root, sweep_id) if where == "local" else url,
        seed=plan.seed,
        prune=plan.prune,
        prune_startup=plan.prune_startup,
        say=say,
        resume=recorded is not None,
    )
    if recorded is not None:  # a joined driver still running keeps its trials
        stale = study.fail_unfinished(_alive_in(study))
        if stale:
            say(f"runbase: {stale} trial(s) the study still had running were told failed")
    return study, {"name": name, "storage": where}


def beat_every() -> float:
    """Seconds between two heartbeats of a driver: BEAT_EVERY, or ``$RUNBASE_SWEEP_BEAT``."""
    raw = os.environ.get(BEAT_ENV)
    if raw is None or not raw.strip():
        return BEAT_EVERY
    try:
        every = float(raw)
    except ValueError:
        every = math.nan
    if not (math.isfinite(every) and every > 0):
        raise UsageError(f"${BEAT_ENV} must be a number of seconds above 0, got {raw!r}")
    return every


def _this_driver() -> dict[str, Any]:
    """What a trial's user attribute ``runbase_driver`` says of the driver asking it: its
    host and pid, and an id of its own (its heartbeat in the study: Study.beat)."""
    from runbase.capture.env import user_and_host  # lazy: capture

    return {"host": user_and_host()[1], "pid": os.getpid(), "id": secrets.token_hex(8)}


def _alive_in(study: Any, me: str | None = None) -> Callable[[Any], bool]:
    """``_driver_alive`` with the study's heartbeats read now; ``me``: the id of the
    driver asking (its own trials run)."""
    beats, now = study.beats(), time.time()
    return lambda driver: _driver_alive(driver, beats, now, me)


def _driver_alive(
    driver: Any,
    beats: dict[str, Any] | None = None,
    now: float | None = None,
    me: str | None = None,
) -> bool:
    """Whether the driver that asked a trial still runs it (a resume, a join and the
    drivers running leave its trials running). Its heartbeat in the study (``beats``,
    by driver id) when it ended says gone; on this host its process says (at once,
    without waiting for a beat to age); on another, its heartbeat: fresh (younger than
    STALE_BEATS intervals) is alive, stale or none (a driver from before heartbeats)
    is gone."""
    from runbase.capture.proc import is_alive  # lazy: capture
    from runbase.tracking.search import beat_fresh  # lazy: optuna's module

    if not isinstance(driver, dict):
        return False
    key = driver.get("id")
    if me is not None and key == me:
        return True
    beat = (beats or {}).get(key) if isinstance(key, str) else None
    if isinstance(beat, dict) and beat.get("ended"):
        return False
    if driver.get("host") == _this_driver()["host"]:
        pid = driver.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and is_alive(pid, None)
    return beat_fresh(beat, time.time() if now is None else now)


def _reap(study: Any, me: str | None, say: Callable[[str], None]) -> int:
    """The study's running trials of drivers that are gone (SIGKILLed, their machine
    down: their heartbeat stale) told failed, so that they stop holding the sweep's
    budget; how many. A trial whose driver is not yet written on it is left."""
    n = int(study.fail_unfinished(_alive_in(study, me), keep_unmarked=True))
    if n:
        say(f"runbase: {n} running trial(s) of a driver that is gone were told failed")
    return n


class _Driver:
    """One call of a sweep: asks for trials as slots free, tells the study as they end,
    prunes from a thread, keeps the sweep's record."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        plan: SweepPlan,
        executor: Executor,
        study: Any,
        code: dict[str, Any] | None,
        say: Callable[[str], None],
        inputs: list[dict[str, str]] | None = None,
        beats: bool = True,
    ) -> None:
        from runbase.records.lifecycle import project_root  # lazy: records, loaded late

        self.store, self.plan, self.executor, self.study = store, plan, executor, study
        self.code, self.say, self.inputs = code, say, list(inputs or [])
        self.root = str(project_root(Path.cwd()))
        self.result = SweepResult(sweep_id, str(store.root), plan=plan, slots=executor.slots)
        self._trial_of: dict[int, Trial] = {}  # id(job) -> its trial
        self._lock = threading.Lock()  # _trial_of: the pruner reads it
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._reported: dict[int, int] = {}  # trial number -> last step the study has
        self._beats = beats  # a joining driver of a store another driver has: no heartbeat
        # a model search's study may have other drivers (runbase sweep --join): trial
        # indices come from its trial numbers, the budget and the best run are the study's
        self.shared = plan.model and study is not None
        self._me = _this_driver()  # on each trial it asks (a resume spares a live one's)
        self._every = beat_every()
        base = ["--sweep-id", sweep_id, "--no-code", "--spec", SPEC_TOKEN]
        base += ["--publish", plan.publish] if plan.publish else []
        for item in self.inputs:  # relative: to the project root, here or on a node
            base += ["--input", item["path"]]
        self.base = runbase_run_argv(str(store.root), *base)

    # -- the loop

    def run(
        self,
        todo: list[tuple[int, dict[str, Any] | None]],
        total: int,
        on_start: Callable[[SweepResult], None] | None,
        on_done: Callable[[Trial, int, int], None] | None,
    ) -> SweepResult:
        self.result.total = total
        if on_start is not None:
            on_start(self.result)
        self._study_beat()  # before its first trial: the other drivers see it alive
        beating = self._beats or self.study is not None
        beat = self._start_thread(self._beat_loop, "heartbeat") if beating else None
        threads = [self._start_pruner(), beat]
        status, raised = "failed", True  # the executor raised: a job that could not start
        if self.shared:  # a joining driver's copy names the best run from its first push
            self._study_best()
        try:
            done = self._done_then(on_done)
            self.result.interrupted = self.executor.run(self._jobs(todo), done, total)
            status = "interrupted" if self.result.interrupted else self._final_status()
            raised = False
        finally:
            # a SIGTERM/Ctrl-C now (the executor gave its handler back) would lose the
            # sweep's end: it comes once recorded
            with held_signals():
                self._stop.set()
                for thread in threads:
                    if thread is not None:
                        thread.join()
                self._study_beat(ended=True)  # its trials all told: gone at once
                self._record_end(status, raised)
        return self.result

    def _record_end(self, status: str, raised: bool) -> None:
        """The sweep's status once this driver is done: its own, unless the study (a
        sweep other drivers share) still has trials running (``running``: the last
        driver to end says how it ended), or has a trial that finished where none of
        this driver's did (finished)."""
        if not self.shared:
            self._record(status=status)
            return
        for _ in range(3):  # another driver may end meanwhile: read again after writing
            try:
                running = self.study.running_count()
                found = self.study.best() is not None
            except Exception as e:  # noqa: BLE001  (the study is down: this driver's view)
                self._warn_once("study", f"could not read the study at the end: {e}")
                self._record(status=status)
                return
            shared = "running" if running else status
            if shared == "failed" and found and not raised:
                shared = "finished"
            self._record(status=shared)
            if shared != "running" or self.study.running_count() == running:
                break
        if shared == "running":  # goes on elsewhere: this store's copy reads running
            self._release()

    def _release(self) -> None:
        from runbase.records.sweeps import release  # lazy: records

        try:
            release(self.store, self.result.sweep_id)
        except Exception as e:  # noqa: BLE001  (the row then reads interrupted)
            self._warn_once("record", f"could not update the sweep's record: {e}")

    def _start_thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"runbase-{name}", daemon=True)
        thread.start()
        return thread

    def _beat_loop(self) -> None:
        """Every ``beat_every()`` s: the sweep's heartbeat in the store's record when
        this driver has its claim (what tells a resume elsewhere that it still runs
        it), and in the study (what tells every other driver, on any host); then the
        study's running trials of drivers that are gone told failed."""
        from runbase.records.sweeps import beat  # lazy: records

        store = None
        try:
            store = Store.open(self.result.store_root) if self._beats else None
        except Exception as e:  # noqa: BLE001  (the trials go on)
            self._warn_once("beat", f"the sweep's heartbeat stopped: {e}")
            if self.study is None:
                return
        try:
            while not self._stop.wait(self._every):
                if store is not None:
                    try:
                        beat(store, self.result.sweep_id)
                    except Exception as e:  # noqa: BLE001  (the next beat may land)
                        self._warn_once("beat", f"a heartbeat of the sweep failed: {e}")
                if self.study is not None and self._study_beat():
                    self._reap()
        finally:
            if store is not None:
                store.close()

    def _study_beat(self, ended: bool = False) -> bool:
        """This driver's heartbeat in the study (``ended``: its last); False when the
        study refused it (warned once)."""
        if self.study is None:
            return False
        try:
            self.study.beat(self._me["id"], self._every, ended)
        except Exception as e:  # noqa: BLE001  (the trials go on)
            self._warn_once("study-beat", f"a heartbeat in the sweep's study failed: {e}")
            return False
        return True

    def _reap(self) -> int:
        try:
            return _reap(self.study, self._me["id"], self.say)
        except Exception as e:  # noqa: BLE001  (a later beat tries again)
            self._warn_once("reap", f"could not check the study's other drivers: {e}")
            return 0

    def _final_status(self) -> str:
        ended = [t for t in self.result.trials if t.returncode is not None]
        return (
            "failed" if ended and not (self.result.finished or self.result.pruned) else "finished"
        )

    def _jobs(self, todo: list[tuple[int, dict[str, Any] | None]]) -> Iterator[Job]:
        """The trials' jobs, made as the executor pulls them: a model-based search asks
        its study for trial n+1 after it was told what the trials that ended gave."""
        for index, point in todo:
            trial = self._ask(index, point)
            if trial is None and self.shared:
                trial = self._ask_after_silent(index, point)
            if trial is None:  # the study has its budget: other drivers ran the rest
                return
            job = self._job(trial)
            with self._lock:
                self._trial_of[id(job)] = trial
            self.result.trials.append(trial)
            yield job

    def _ask_after_silent(self, index: int, point: dict[str, Any] | None) -> Trial | None:
        """The budget looks met, but trials holding it may be a dead driver's on another
        host (whose process cannot be seen): wait while such a driver's beat does not
        move; once it is stale its trials are told failed (_ask_shared) and this driver
        runs the trial it frees. A driver whose beat moves is alive: not waited for."""
        seen = self._other_beats()
        while seen:
            time.sleep(self._every)
            trial = self._ask(index, point)
            if trial is not None:
                return trial
            now = self._other_beats()
            seen = {k: at for k, at in now.items() if seen.get(k) == at}
        return None

    def _other_beats(self) -> dict[str, Any]:
        """The last beat time of each driver on another host that has a trial running in
        the study, by driver id (ended drivers and this host's left out: their beat or
        process says at once)."""
        from runbase.tracking.search import DRIVER_ATTR  # lazy: optuna's module

        try:
            beats = self.study.beats()
            trials = [t for t in self.study.trials() if t.state.name == "RUNNING"]
        except Exception as e:  # noqa: BLE001  (the study is down: this driver ends)
            self._warn_once("reap", f"could not check the study's other drivers: {e}")
            return {}
        out = {}
        for t in trials:
            driver = t.user_attrs.get(DRIVER_ATTR)
            if not isinstance(driver, dict) or driver.get("host") == self._me["host"]:
                continue
            beat = beats.get(str(driver.get("id")))
            if isinstance(beat, dict) and not beat.get("ended"):
                out[str(driver.get("id"))] = beat.get("at")
        return out

    def _ask(self, index: int, point: dict[str, Any] | None) -> Trial | None:
        run_id = new_run_id()
        if self.study is None:
            return Trial(index, dict(point or {}), run_id=run_id)
        if not self.shared:
            attrs = {"run_id": run_id, INDEX_TAG: index, "runbase_driver": self._me}
            number, params = self.study.ask(point, attrs)
            return Trial(index, params, run_id=run_id, number=number)
        return self._ask_shared(run_id)

    def _ask_shared(self, run_id: str) -> Trial | None:
        """A trial of a study several drivers may share: index its number + 1 (unique
        whoever asks), None once the study has the sweep's budget. Two drivers asking the
        last trial at once: the lower number runs, the other is told failed (it does not
        count, and never stays running) and this driver stops."""
        budget = self.plan.total()
        # a gone driver's running trials told failed first: they no longer hold the budget
        if self.study.taken() >= budget and (not self._reap() or self.study.taken() >= budget):
            return None
        number, params = self.study.ask(
            None, lambda n: {"run_id": run_id, INDEX_TAG: n + 1, "runbase_driver": self._me}
        )
        if self.study.taken(below=number) >= budget:
            self.study.tell(number, state="fail", status="over budget")
            return None
        return Trial(number + 1, params, run_id=run_id, number=number)

    def _job(self, trial: Trial) -> Job:
        spec: dict[str, Any] = {
            "run_id": trial.run_id,
            "tags": {**self.plan.tags, INDEX_TAG: str(trial.index)},
        }
        if self.plan.name:
            spec["name"] = f"{self.plan.name}-{trial.index}"
        argv = [*self.base, *_param_args(trial.overrides), "--", *self.plan.command]
        tree: dict[str, Any] | None = None
        code = self.code
        if code is not None and self.executor.kind == "local":  # runs here, in the project
            spec["code_record"], spec["project_root"] = code, self.root
        elif code is not None and isinstance(code.get("tree"), str):  # runs on a node
            rel = os.path.relpath(os.getcwd(), self.root)
            tree = {"store": self.result.store_root, "code": code, "cwd": rel}
            tree["inputs"] = [dict(i) for i in self.inputs]  # written next to the code
        # no tree on a node: the same path, which all nodes must share
        cwd = None if tree is not None or self.executor.kind == "local" else os.getcwd()
        return Job(argv, cwd=cwd, label=str(trial.index), spec=spec, tree=tree)

    def _done_then(
        self, on_done: Callable[[Trial, int, int], None] | None
    ) -> Callable[[Job, int, int], None]:
        def done(job: Job, n: int, total: int) -> None:
            with self._lock:
                trial = self._trial_of.pop(id(job))
            self._ended(trial, job)
            if on_done is not None and (trial.returncode is not None or trial.status):
                on_done(trial, n, total)

        return done

    def _ended(self, trial: Trial, job: Job) -> None:
        """A trial's job ended: its status (pruned when the pruner stopped it), the
        objective it reached, told to the study; the best run kept."""
        trial.returncode, trial.stderr_tail = job.returncode, job.stderr_tail
        trial.run_id = job.run_id or trial.run_id
        if job.returncode is None and not job.cancelled:  # never started: interrupted first
            self._tell(trial, "fail")
            return
        try:
            self._read_end(trial, job, str(trial.run_id))
        except Exception as e:  # noqa: BLE001  (a store hiccup: the exit status says)
            self._warn_once("end", f"could not read trial {trial.index}'s run: {e}")
            trial.status = trial.status or ("finished" if job.returncode == 0 else "failed")
        if trial.status == "finished" and (trial.value is not None or self.plan.objective is None):
            self._tell(trial, "complete", trial.value)
            if self.shared:  # the best of every driver's trials
                self._study_best()
            else:
                self._consider(trial)
        else:
            self._tell(trial, "pruned" if trial.status == "pruned" else "fail")

    def _read_end(self, trial: Trial, job: Job, run_id: str) -> None:
        """The status and objective of a trial's run, from the store; the rest of its
        series reported to the study (the pruner compares complete series)."""
        from runbase.records.read import load_metrics, run_status  # lazy: records

        if job.cancelled:  # marked when stopped; again for a run that had no row yet
            self._mark_pruned(self.store, run_id)
            self._unprune_if_done(trial, run_id)
        status = run_status(self.store, run_id)
        if status is None:  # no row: the command never ran (a Ray task cancelled early)
            status = "pruned" if job.cancelled else "finished" if job.returncode == 0 else "failed"
        trial.status = status
        if self.plan.prune is not None and trial.number is not None:
            self._report(self.store, trial, run_id)
        if status == "finished" and self.plan.objective is not None:
            metrics = load_metrics(self.store, [run_id]).get(run_id, {})
            metric = metrics.get(self.plan.objective)
            trial.value = _finite(metric.get("value") if metric else None)
            if trial.value is None:
                self._no_objective(trial, sorted(metrics))

    def _mark_pruned(self, store: Store, run_id: str) -> bool:
        from runbase.records.sweeps import set_run_status  # lazy: records

        return set_run_status(store, run_id, "pruned", self._prune_note)

    @property
    def _prune_note(self) -> str:
        return f"stopped by the sweep's {self.plan.prune} pruner"

    def _unprune_if_done(self, trial: Trial, run_id: str) -> None:
        """The mark/SIGTERM race: a trial whose command ended by itself just before the
        pruner marked its run (its supervisor was still recording it) finished, and its
        run says so (here, and on the remote it publishes to: pushed again). Only on
        this machine, where the run's end and the mark are read on one clock."""
        from runbase.records.sweeps import unprune_if_ended_before  # lazy: records

        if trial.pruned_at is None or self.executor.kind != "local":
            return
        if not unprune_if_ended_before(self.store, run_id, trial.pruned_at, self._prune_note):
            return
        self.say(f"runbase: trial {trial.index} had ended when the pruner stopped it: finished")
        if self.plan.publish:
            self._push_run(run_id)

    def _push_run(self, run_id: str) -> None:
        """The run sent again to the remote its trial publishes to (its status changed
        after its last live update)."""
        # lazy: the HTTP client
        from runbase.remote.client import get_remote
        from runbase.remote.sync import push

        try:
            push(self.store, get_remote(self.plan.publish), [run_id], retry_for=0.0)
        except Exception as e:  # noqa: BLE001  (the next runbase push sends it)
            self._warn_once("push-run", f"could not send run {run_id} again: {e}")

    def _no_objective(self, trial: Trial, metrics: list[str]) -> None:
        metrics = [m for m in metrics if not m.startswith("sys/")]  # the system's, not its own
        have = f" (its metrics: {', '.join(metrics)})" if metrics else " (it logged no metric)"
        self.say(
            f"runbase: warning: trial {trial.index} (run {trial.run_id}) finished without a "
            f"numeric metric {self.plan.objective!r}{have}: the search counts it failed"
        )

    def _tell(self, trial: Trial, state: str, value: float | None = None) -> None:
        if self.study is None or trial.number is None:
            return
        try:
            self.study.tell(trial.number, value, state, status=trial.status)
        except Exception as e:  # noqa: BLE001  (the runs are recorded: the sweep goes on)
            self._warn_once("tell", f"could not tell the study trial {trial.index}'s result: {e}")

    # -- the best run

    def best_of(self, runs: list[dict[str, Any]]) -> None:
        """The best run among those a resumed sweep already has."""
        objective = self.plan.objective
        for r in runs:
            metric = (r.get("metrics") or {}).get(objective) if objective else None
            value = _finite(metric.get("value") if metric else None)
            if r.get("status") == "finished" and value is not None:
                trial = Trial(_index(r), dict(r.get("params") or {}), run_id=r["id"])
                trial.status, trial.value = "finished", value
                self._consider(trial, record=False)

    def _study_best(self, record: bool = True) -> None:
        """The best run of the study's trials, whichever driver ran them (its run may be
        in another store: the team server has it when every driver publishes)."""
        try:
            best = self.study.best()
        except Exception as e:  # noqa: BLE001  (the study is down: the best stays)
            self._warn_once("best", f"could not read the study's best trial: {e}")
            return
        if best is None or best["run_id"] == self.result.best_run:
            return
        index = best["index"] if isinstance(best["index"], int) else best["number"] + 1
        trial = Trial(index, best["params"], run_id=best["run_id"], number=best["number"])
        trial.status, trial.value = "finished", best["value"]
        self.result.best, self.result.best_run = trial, trial.run_id
        if record:
            self._record()

    def _consider(self, trial: Trial, record: bool = True) -> None:
        best = self.result.best
        if trial.value is None:
            return
        if best is not None and best.value is not None:
            better = (
                trial.value > best.value
                if self.plan.direction == "max"
                else trial.value < best.value
            )
            if not better:
                return
        self.result.best, self.result.best_run = trial, trial.run_id
        if record:
            self._record()

    def _record(self, status: str | None = None) -> None:
        """The sweep's record updated (its best run; its status at the end), and sent to
        the remote its trials publish to: the team server's copy is never stale."""
        from runbase.records.sweeps import update_sweep  # lazy: records

        try:
            update_sweep(
                self.store, self.result.sweep_id, status=status, best_run=self.result.best_run
            )
        except Exception as e:  # noqa: BLE001  (a store hiccup must not stop the trials)
            self._warn_once("record", f"could not update the sweep's record: {e}")
            return
        if self.plan.publish:
            self._push()

    def _push(self) -> None:
        from runbase.remote.sweeps import push_sweep  # lazy: the HTTP client

        try:
            push_sweep(self.store, self.result.sweep_id, self.plan.publish)
        except Exception as e:  # noqa: BLE001  (the server catches up at the next push)
            self._warn_once(
                "push", f"could not send the sweep's record to {self.plan.publish}: {e}"
            )

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            self.say(f"runbase: warning: {message}")

    # -- pruning

    def _start_pruner(self) -> threading.Thread | None:
        if self.study is None or self.plan.prune is None:
            return None
        return self._start_thread(self._prune_loop, "pruner")

    def _prune_loop(self) -> None:
        """Every PRUNE_POLL s: the running trials' new objective points to the study,
        and a trial it says to prune stopped (SIGTERM, SIGKILL after the grace)."""
        try:
            store = Store.open(self.result.store_root)  # this thread's own connection
        except Exception as e:  # noqa: BLE001
            self._warn_once("prune", f"no pruning: cannot open the store: {e}")
            return
        try:
            while not self._stop.wait(PRUNE_POLL):
                for job in self.executor.running():
                    try:
                        self._prune_check(store, job)
                    except Exception as e:  # noqa: BLE001  (this trial unpruned; the next)
                        self._warn_once("prune", f"could not check a trial for pruning: {e}")
        finally:
            store.close()

    def _report(
        self, store: Store, trial: Trial, run_id: str, job: Job | None = None
    ) -> list[tuple[int, float]]:
        """The objective's points of the trial's run not yet reported to the study: told
        it, and returned (step, value). A running trial of a Ray node with a store of its
        own is not in ``store`` until it ended: its points come from the team server it
        publishes to."""
        from runbase.records.series import series_points  # lazy: records

        assert trial.number is not None
        objective = str(self.plan.objective)
        after = self._reported.get(trial.number)
        points = list(zip(*series_points(store, run_id, objective, after), strict=True))
        remote = self._points_remote(store, job, run_id) if not points else None
        if remote is not None:
            # lazy: the HTTP client
            from runbase.remote.client import get_remote
            from runbase.remote.fetch import series_after

            points = list(
                zip(*series_after(get_remote(remote), run_id, objective, after), strict=True)
            )
        if points:
            self._reported[trial.number] = max(step for step, _ in points)
            self.study.report(trial.number, points)
        return points

    def _points_remote(self, store: Store, job: Job | None, run_id: str) -> str | None:
        """The remote holding the points of ``job``'s running run when this store has no
        such run (its Ray node keeps its own store: RayExecutor.points_remote), else None."""
        from runbase.records.read import run_status  # lazy: records

        points_remote = getattr(self.executor, "points_remote", None)
        name = points_remote(job) if job is not None and points_remote is not None else None
        if name is None or run_status(store, run_id) is not None:
            return None
        return str(name)

    def _prune_check(self, store: Store, job: Job) -> None:
        with self._lock:
            trial = self._trial_of.get(id(job))
        if trial is None or trial.number is None or job.cancelled:
            return
        run_id = str(job.run_id or trial.run_id)
        points = self._report(store, trial, run_id, job)
        if not points or not self.study.should_prune(trial.number):
            return
        with self._lock:  # the job's end waits: it is told pruned, or not at all
            running = any(j is job for j in self.executor.running())
            if self._trial_of.get(id(job)) is not trial or not running:
                return  # ended meanwhile: what it reached stands
            step, value = points[-1]
            objective = self.plan.objective
            self.say(
                f"runbase: pruning trial {trial.index} at step {step} ({objective} {value:.6g})"
            )
            # marked while it runs: its end (killed, or whatever a command that catches
            # SIGTERM to save a checkpoint exits with) keeps it pruned; the time tells a
            # command that had ended already (_unprune_if_done)
            trial.pruned_at = time.time()
            self._mark_pruned(store, run_id)
            self.executor.cancel(job, self.plan.grace)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _param_args(overrides: dict[str, Any]) -> list[str]:
    out = []
    for k, v in overrides.items():
        # strings as JSON ("1e3" stays text); --param parses it back exactly
        out += ["--param", f"{k}={json.dumps(v) if isinstance(v, str) else format_value(v)}"]
    return out


def new_seed() -> int:
    """A fresh sampling seed, to print so that the sweep can be sampled again."""
    return random.SystemRandom().randrange(2**31)
