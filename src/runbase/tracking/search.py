"""The Optuna side of ``runbase sweep``: the search space, the sampler, the pruner and the
study, behind one thread-safe handle (:class:`Study`).

    study = Study.open(space(grid, dists), search="tpe", direction="max", seed=0,
                       url=local_storage(store_root, sweep_id), name=sweep_id)
    number, params = study.ask()         # fixed distributions: trials run in parallel
    study.report(number, step, value)    # intermediate values, from the run's series
    study.should_prune(number)
    study.tell(number, value)            # or state="fail" / "pruned"

The space is written with ``--grid`` / ``--random`` (tracking.sweep): grid values and
``choice()`` are categorical, ``uniform`` a float, ``loguniform`` a float on a log scale,
``int``/``randint`` an integer. ``grid`` and ``random`` searches keep runbase's own
order and sampling (tracking.sweep.combinations): their trials are enqueued in the study
as they are, which then only serves the pruner. Optuna is imported lazily (the ``ray``
extra carries it): ``import runbase`` and grid/random sweeps without pruning never load
it.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbase.errors import RunbaseError, UsageError

SEARCHES = ("grid", "random", "tpe", "cmaes")
MODEL_SEARCHES = ("tpe", "cmaes")  # the searches a study's sampler chooses the trials of
PRUNERS = ("median", "asha")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
INSTALL = "pip install 'runbase[ray]'"
# completed trials before the median pruner stops any (Optuna's default)
PRUNE_STARTUP = 5
STATES = ("complete", "fail", "pruned")
# user attributes runbase keeps: the study's sweep (its definition), a trial's run status
SWEEP_ATTR = "runbase_sweep"
STATUS_ATTR = "runbase_status"
DRIVER_ATTR = "runbase_driver"  # the driver that asked a trial: {"host", "pid", "id"}
# a study attribute per driver, BEAT_ATTR + its id: {"at", "every", "ended"}, its last beat
# (time.time() on its host), its interval, whether it ended (Study.beat)
BEAT_ATTR = "runbase_beat:"
# a driver silent for this many of its intervals is gone (120 s at the default 10 s: the
# sweep record's claim waits as long), whatever its host; room for clocks that differ
STALE_BEATS = 12
# a trial told failed still counts against the budget when its run failed by itself
COUNTED_FAILURES = ("failed", "finished")  # finished: without the objective

_SCALARS = (type(None), bool, int, float, str)
_JSON_MARK = "json:"  # a categorical choice Optuna cannot hold (a list), as JSON text


def optuna_module() -> Any:
    """Optuna, or a UsageError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError(
            f"this sweep needs Optuna (model-based search, pruning): {INSTALL}"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial on stderr
    return optuna


def check_choices(
    search: str, prune: str | None, objective: str | None, direction: str | None
) -> None:
    """UsageError for a search, pruner or direction runbase does not know, or a model
    search or pruner without an objective to optimize."""
    if search not in SEARCHES:
        raise UsageError(f"unknown --search {search!r}; one of {', '.join(SEARCHES)}")
    if prune is not None and prune not in PRUNERS:
        raise UsageError(f"unknown --prune {prune!r}; one of {', '.join(PRUNERS)}")
    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"--direction is max or min, not {direction!r}")
    if objective is None:
        if search in MODEL_SEARCHES:
            raise UsageError(f"--search {search} needs --objective METRIC (what it optimizes)")
        if prune is not None:
            raise UsageError(f"--prune {prune} needs --objective METRIC (what it compares)")
        if direction is not None:
            raise UsageError("--direction needs --objective METRIC")


# -- the space ------------------------------------------------------------------------


def space(grid: dict[str, list[Any]], dists: dict[str, Any]) -> dict[str, Any]:
    """Optuna distributions of the ``--grid`` values and ``--random`` distributions
    (tracking.sweep.Distribution), in that order."""
    d = optuna_module().distributions
    out: dict[str, Any] = {k: d.CategoricalDistribution(_encode_all(v)) for k, v in grid.items()}
    for key, dist in dists.items():
        if dist.kind == "choice":
            out[key] = d.CategoricalDistribution(_encode_all(list(dist.args)))
        elif dist.kind in ("int", "randint"):
            out[key] = d.IntDistribution(int(dist.args[0]), int(dist.args[1]))
        else:
            low, high = (float(a) for a in dist.args)
            out[key] = d.FloatDistribution(low, high, log=dist.kind == "loguniform")
    return out


def _encode_all(values: list[Any]) -> tuple[Any, ...]:
    # Optuna's categorical choices are scalars; a list or object value goes as JSON text
    return tuple(dict.fromkeys(_encode(v) for v in values))


def _encode(value: Any) -> Any:
    return value if isinstance(value, _SCALARS) else _JSON_MARK + json.dumps(value)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_JSON_MARK):
        return json.loads(value[len(_JSON_MARK) :])
    return value


def categorical(space_: dict[str, Any]) -> list[str]:
    """The categorical parameters of a space (CMA-ES samples them independently)."""
    d = optuna_module().distributions
    return [k for k, v in space_.items() if isinstance(v, d.CategoricalDistribution)]


# -- sampler, pruner, storage -----------------------------------------------------------


def sampler(
    search: str, seed: int | None, space_: dict[str, Any], say: Callable[[str], None]
) -> Any:
    """The sampler of ``search``: TPE or CMA-ES (seeded); for grid and random, whose
    trials are enqueued, a random sampler that never has to choose."""
    optuna = optuna_module()
    if search == "tpe":
        # constant liar: trials running in parallel count as bad results meanwhile, so
        # that parallel asks spread out (explicit: Optuna's default only from 5)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if search == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES needs it; say so before a trial)
        except ImportError:
            raise UsageError(f"--search cmaes needs the cmaes package: {INSTALL}") from None
        cats = categorical(space_)
        if cats:  # Optuna warns at every trial: once is enough
            say(
                f"runbase: CMA-ES samples {', '.join(cats)} independently (at random): it "
                "models numeric parameters only"
            )
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


def resumed_seed(seed: int | None, trials: int) -> int | None:
    """The sampler's seed of a study resumed with ``trials`` trials: derived from the
    sweep's seed (reproducible) and different from the first call's."""
    if seed is None or trials == 0:
        return seed
    return random.Random(f"{seed}:{trials}").randrange(2**31)


def pruner(prune: str | None, startup: int = PRUNE_STARTUP) -> Any:
    """``median``: MedianPruner (a trial whose best value so far is worse than the median
    of the completed trials' at the same step stops, once ``startup`` trials completed);
    ``asha``: SuccessiveHalvingPruner (asynchronous successive halving); None: none."""
    optuna = optuna_module()
    if prune is None:
        return optuna.pruners.NopPruner()
    if prune == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup)
    if prune == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    raise UsageError(f"unknown --prune {prune!r}; one of {', '.join(PRUNERS)}")


def local_storage(store_root: str | Path, sweep_id: str) -> str:
    """The SQLite URL of a sweep's study in the store: ``sweeps/<id>/study.db`` (built,
    not formatted: a ``?`` or ``%`` in the store's path stays in the path)."""
    directory = Path(store_root).absolute() / "sweeps" / sweep_id
    directory.mkdir(parents=True, exist_ok=True)
    url = _sqlalchemy_url().create("sqlite", database=str(directory / "study.db"))
    return str(url.render_as_string(hide_password=False))


def _sqlalchemy_url() -> Any:
    """SQLAlchemy's URL class (Optuna's dependency: there whenever a study is)."""
    try:
        from sqlalchemy.engine import URL
    except ImportError:
        raise UsageError(f"this sweep needs Optuna and SQLAlchemy: {INSTALL}") from None
    return URL


def parse_url(url: str) -> Any:
    """``--study-storage`` as SQLAlchemy reads it (a relative SQLite path made absolute,
    so that the record names the database wherever it is read); UsageError, which never
    repeats the URL (it may hold a password), when it is not one."""
    from sqlalchemy.engine import make_url  # lazy: Optuna's dependency, for a study only

    _sqlalchemy_url()
    try:
        parsed = make_url(url)
    except Exception as e:  # noqa: BLE001  (ArgumentError, a port that is not a number)
        what = "its port is not a number" if isinstance(e, ValueError) else "not a URL"
        raise UsageError(
            f"bad --study-storage ({what}): give DIALECT://USER@HOST[:PORT]/DB, "
            "e.g. postgresql://me@db.example/optuna"
        ) from None
    db = parsed.database or ""
    relative = db not in ("", ":memory:") and not db.startswith("file:")
    if parsed.drivername.startswith("sqlite") and relative and not Path(db).is_absolute():
        parsed = parsed.set(database=str(Path(db).absolute()))
    return parsed


def redact(url: str) -> str:
    """``url`` as the sweep record keeps it: without its password (the userinfo's, as
    SQLAlchemy parses it, and any ``password`` query parameter)."""
    parsed = parse_url(url)
    query = {k: v for k, v in parsed.query.items() if "password" not in k.lower()}
    return str(parsed.set(query=query).render_as_string(hide_password=True))


def rdb_url(url: str) -> str:
    """``--study-storage`` as SQLAlchemy takes it: PostgreSQL through psycopg 3 (the
    driver runbase's own PostgreSQL uses) unless a driver is named."""
    parsed = parse_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return str(parsed.render_as_string(hide_password=False))


def _hide(text: str, url: str) -> str:
    """``text`` (an error from the storage) without ``url``'s password."""
    parsed = parse_url(url)
    secrets = [parsed.password] if parsed.password else []
    secrets += [str(v) for k, v in parsed.query.items() if "password" in k.lower()]
    for secret in secrets:
        text = text.replace(str(secret), "***")
    return text


# -- the study ----------------------------------------------------------------------------


class Study:
    """An Optuna study asked and told by trial number, from any thread (one lock: the
    executor's thread tells, the pruner's thread reports)."""

    def __init__(self, study: Any, space_: dict[str, Any]) -> None:
        self.study = study
        self.space = space_
        self._lock = threading.Lock()
        self._trials: dict[int, Any] = {}
        self._reported: dict[int, int] = {}  # trial number -> last step reported

    @classmethod
    def open(
        cls,
        space_: dict[str, Any],
        *,
        search: str,
        direction: str,
        name: str | None = None,
        url: str | None = None,
        seed: int | None = None,
        prune: str | None = None,
        prune_startup: int = PRUNE_STARTUP,
        say: Callable[[str], None] = lambda _line: None,
        resume: bool = False,
    ) -> Study:
        """Create (``resume``: load) the study ``name`` at ``url`` (None: in memory)."""
        optuna = optuna_module()
        storage = None if url is None else _storage(optuna, url)
        kwargs = {
            "storage": storage,
            "study_name": name,
            # a resumed study's sampler is replaced once loaded: this one says nothing
            "sampler": sampler(search, seed, space_, (lambda _line: None) if resume else say),
            "pruner": pruner(prune, prune_startup),
        }
        try:
            if resume:
                study = optuna.load_study(**kwargs)
                # the same seed would replay its start-up points: seeded on from the
                # trials the study has
                study.sampler = sampler(search, resumed_seed(seed, len(study.trials)), space_, say)
            else:
                study = optuna.create_study(direction=DIRECTIONS[direction], **kwargs)
        except KeyError:  # load_study of a name the storage does not hold
            raise UsageError(f"the study {name} is not in its storage") from None
        except optuna.exceptions.DuplicatedStudyError:
            raise UsageError(f"a study {name} exists already in its storage") from None
        return cls(study, space_)

    def ask(
        self,
        params: dict[str, Any] | None = None,
        attrs: dict[str, Any] | Callable[[int], dict[str, Any]] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """A new trial: its number and parameters (``params``: exactly these, a grid
        point or a random sample, enqueued; else the sampler's choice). ``attrs``: user
        attributes of the trial (its run id: what links the study to the runs), or a
        function of its number giving them (its index, from the number)."""
        with self._lock:
            try:
                if params is not None:
                    self.study.enqueue_trial({k: _encode(v) for k, v in params.items()})
                trial = self.study.ask(self.space)
                given = attrs(trial.number) if callable(attrs) else attrs
                for key, value in (given or {}).items():
                    trial.set_user_attr(key, value)
            except Exception as e:  # noqa: BLE001  (a storage down, a damaged study)
                raise RunbaseError(f"the study could not give a trial: {e}") from None
            self._trials[trial.number] = trial
            return trial.number, {k: _decode(v) for k, v in trial.params.items()}

    def report(self, number: int, points: list[tuple[int, float]]) -> None:
        """The trial's new intermediate values (step, value): steps after the last one
        reported, finite values (Optuna keeps one value per step)."""
        with self._lock:
            trial = self._trials.get(number)
            last = self._reported.get(number, -1)
            if trial is None:
                return
            for step, value in points:
                if step > last and math.isfinite(value):
                    trial.report(float(value), int(step))
                    last = step
            self._reported[number] = last

    def should_prune(self, number: int) -> bool:
        with self._lock:
            trial = self._trials.get(number)
            return bool(trial is not None and number in self._reported and trial.should_prune())

    def tell(
        self,
        number: int,
        value: float | None = None,
        state: str = "complete",
        status: str | None = None,
    ) -> None:
        """Trial ``number`` ended: ``complete`` with ``value``, ``fail`` or ``pruned``
        (a trial already told stays as it was). ``status``: its run's status, kept as
        the user attribute ``runbase_status``: a failed trial whose run ``failed``
        counts against the budget, one ``killed`` or never run does not (:meth:`taken`)."""
        optuna = optuna_module()
        states = {"fail": optuna.trial.TrialState.FAIL, "pruned": optuna.trial.TrialState.PRUNED}
        with self._lock:
            trial = self._trials.pop(number, None)
            if trial is not None and status is not None:
                trial.set_user_attr(STATUS_ATTR, status)
            if state == "complete":
                self.study.tell(number, value, skip_if_finished=True)
            else:
                self.study.tell(number, state=states[state], skip_if_finished=True)

    def fail_unfinished(
        self, alive: Callable[[Any], bool] | None = None, keep_unmarked: bool = False
    ) -> int:
        """Tell every trial still running in the study failed (a sweep that died before
        telling them); how many. ``alive(driver)``: whether the driver that asked a
        trial (its user attribute ``runbase_driver``, ``{"host", "pid", "id"}``; None
        when it has none) still runs it: such a trial (another driver's, joined) is left
        running. ``keep_unmarked``: a trial without the attribute is left too (a driver
        sets it just after asking: a driver running beside it must not fail it then)."""
        optuna = optuna_module()
        running = optuna.trial.TrialState.RUNNING
        with self._lock:
            trials = self.study.get_trials(deepcopy=False, states=(running,))
        if keep_unmarked:
            trials = [t for t in trials if DRIVER_ATTR in t.user_attrs]
        stale = [
            t.number for t in trials if alive is None or not alive(t.user_attrs.get(DRIVER_ATTR))
        ]
        for number in stale:
            self.tell(number, state="fail")
        return len(stale)

    def trials(self) -> list[Any]:
        with self._lock:
            return list(self.study.get_trials(deepcopy=False))

    # -- a study several drivers share (runbase sweep --join)

    def taken(self, below: int | None = None) -> int:
        """How many of the study's trials (numbered below ``below``: all when None) count
        against a sweep's budget, whichever driver asked them: running, complete, pruned,
        or failed with a run that failed. A trial told failed without that (killed, never
        run, asked past the budget, left running by a dead driver) does not."""
        optuna = optuna_module()
        state = optuna.trial.TrialState
        counted = (state.RUNNING, state.COMPLETE, state.PRUNED, state.WAITING)
        n = 0
        for t in self.trials():
            if below is not None and t.number >= below:
                continue
            if t.state in counted or t.user_attrs.get(STATUS_ATTR) in COUNTED_FAILURES:
                n += 1
        return n

    def running_count(self) -> int:
        """The study's trials still running (this driver's, and any other's)."""
        optuna = optuna_module()
        return sum(1 for t in self.trials() if t.state == optuna.trial.TrialState.RUNNING)

    def best(self) -> dict[str, Any] | None:
        """The study's best complete trial that names its run (None: none yet):
        ``{"number", "value", "params", "run_id", "index"}``."""
        optuna = optuna_module()
        done = [
            t
            for t in self.trials()
            if t.state == optuna.trial.TrialState.COMPLETE
            and t.value is not None
            and isinstance(t.user_attrs.get("run_id"), str)
        ]
        if not done:
            return None
        maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE
        # the first trial among equals: the one the sweep found first
        key = (lambda t: (-t.value, t.number)) if maximize else (lambda t: (t.value, t.number))
        best = min(done, key=key)
        return {
            "number": best.number,
            "value": float(best.value),
            "params": {k: _decode(v) for k, v in best.params.items()},
            "run_id": best.user_attrs["run_id"],
            "index": best.user_attrs.get("sweep_index"),
        }

    def beat(self, driver_id: str, every: float, ended: bool = False) -> None:
        """Driver ``driver_id`` is alive (it beats every ``every`` s), or ``ended``: what
        tells the other drivers, on any host, whether its running trials still run."""
        value = {"at": time.time(), "every": every, "ended": ended}
        with self._lock:
            self.study.set_user_attr(BEAT_ATTR + driver_id, value)

    def beats(self) -> dict[str, dict[str, Any]]:
        """Every driver's last beat, by its id (:meth:`beat`)."""
        with self._lock:
            attrs = dict(self.study.user_attrs)
        n = len(BEAT_ATTR)
        return {
            k[n:]: v for k, v in attrs.items() if k.startswith(BEAT_ATTR) and isinstance(v, dict)
        }

    def sweep_info(self) -> dict[str, Any] | None:
        """The sweep the study belongs to, as its first driver wrote it (``{"id",
        "spec", "user", "host", "created_at"}``); None in a study runbase did not make."""
        with self._lock:
            info = self.study.user_attrs.get(SWEEP_ATTR)
        return info if isinstance(info, dict) else None

    def set_sweep_info(self, info: dict[str, Any]) -> None:
        """Keep the sweep's definition in the study (what ``runbase sweep --join``
        reads: the joining machine needs only the sweep's id and the storage)."""
        with self._lock:
            self.study.set_user_attr(SWEEP_ATTR, info)


def beat_fresh(beat: Any, now: float) -> bool:
    """Whether a driver's last beat (:meth:`Study.beat`) says it still runs: not ended,
    and younger than STALE_BEATS of its intervals. No beat: False."""
    age = beat_age(beat, now)
    return age is not None and age < STALE_BEATS


def beat_age(beat: Any, now: float) -> float | None:
    """How many of its intervals ago a driver beat last; None when it has no beat or
    ended."""
    if not isinstance(beat, dict) or beat.get("ended"):
        return None
    at, every = _number(beat.get("at")), _number(beat.get("every"))
    if at is None or every is None or every <= 0:
        return None
    return (now - at) / every


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None


def shared_sweep(url: str, name: str) -> dict[str, Any]:
    """The sweep kept in study ``name`` at ``url`` (Study.sweep_info), read before its
    space is known (``runbase sweep --join``); UsageError when the storage cannot be
    opened, has no such study, or holds one runbase did not make."""
    optuna = optuna_module()
    storage, shown = _storage(optuna, url), redact(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UsageError(f"no sweep {name} in the study storage {shown}") from None
    info = study.user_attrs.get(SWEEP_ATTR)
    if not isinstance(info, dict) or not isinstance(info.get("spec"), dict):
        raise UsageError(
            f"the study {name} in {shown} does not hold its sweep's plan (a study runbase "
            "did not make, or made before --join): --resume it where it was started"
        )
    return info


def _storage(optuna: Any, url: str) -> Any:
    """Optuna's RDB storage at ``url``; UsageError (without the password) when it cannot
    be opened."""
    target, shown = rdb_url(url), redact(url)  # UsageError for a URL that is none
    try:
        return optuna.storages.RDBStorage(target)
    except ImportError as e:
        raise UsageError(f"the study storage {shown} needs a driver: {e}") from None
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's errors: a bad URL, a server down)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        reason = _hide(reason.replace(target, shown).replace(url, shown), url)
        raise UsageError(f"cannot open the study storage {shown}: {reason}") from None
