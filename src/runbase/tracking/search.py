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
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runbase.errors import RunbaseError, UsageError

SEARCHES = ("grid", "random", "tpe", "cmaes")
MODEL_SEARCHES = ("tpe", "cmaes")  # the searches a study's sampler chooses the trials of
PRUNERS = ("median", "asha")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
INSTALL = "pip install 'runbase[ray]'"
# completed trials before the median pruner stops any (Optuna's default)
PRUNE_STARTUP = 5
STATES = ("complete", "fail", "pruned")

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
        return optuna.samplers.TPESampler(seed=seed)
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
    """The SQLite URL of a sweep's study in the store: ``sweeps/<id>/study.db``."""
    directory = Path(store_root) / "sweeps" / sweep_id
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'study.db'}"


def redact(url: str) -> str:
    """``url`` without its password (what the sweep record keeps)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def rdb_url(url: str) -> str:
    """``--study-storage`` as SQLAlchemy takes it: PostgreSQL through psycopg 3 (the
    driver runbase's own PostgreSQL uses) unless a driver is named."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise UsageError(f"bad --study-storage {redact(url)!r}: a URL, postgresql://USER@HOST/DB")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


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
            "sampler": sampler(search, seed, space_, say),
            "pruner": pruner(prune, prune_startup),
        }
        try:
            if resume:
                study = optuna.load_study(**kwargs)
            else:
                study = optuna.create_study(direction=DIRECTIONS[direction], **kwargs)
        except KeyError:  # load_study of a name the storage does not hold
            raise UsageError(f"the study {name} is not in its storage") from None
        except optuna.exceptions.DuplicatedStudyError:
            raise UsageError(f"a study {name} exists already in its storage") from None
        return cls(study, space_)

    def ask(
        self, params: dict[str, Any] | None = None, attrs: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A new trial: its number and parameters (``params``: exactly these, a grid
        point or a random sample, enqueued; else the sampler's choice). ``attrs``: user
        attributes of the trial (its run id: what links the study to the runs)."""
        with self._lock:
            try:
                if params is not None:
                    self.study.enqueue_trial({k: _encode(v) for k, v in params.items()})
                trial = self.study.ask(self.space)
                for key, value in (attrs or {}).items():
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

    def tell(self, number: int, value: float | None = None, state: str = "complete") -> None:
        """Trial ``number`` ended: ``complete`` with ``value``, ``fail`` or ``pruned``
        (a trial already told stays as it was)."""
        optuna = optuna_module()
        states = {"fail": optuna.trial.TrialState.FAIL, "pruned": optuna.trial.TrialState.PRUNED}
        with self._lock:
            self._trials.pop(number, None)
            if state == "complete":
                self.study.tell(number, value, skip_if_finished=True)
            else:
                self.study.tell(number, state=states[state], skip_if_finished=True)

    def fail_unfinished(self) -> int:
        """Tell every trial still running in the study failed (a sweep that died before
        telling them); how many."""
        optuna = optuna_module()
        running = optuna.trial.TrialState.RUNNING
        with self._lock:
            stale = [t.number for t in self.study.get_trials(deepcopy=False, states=(running,))]
        for number in stale:
            self.tell(number, state="fail")
        return len(stale)

    def trials(self) -> list[Any]:
        with self._lock:
            return list(self.study.get_trials(deepcopy=False))


def _storage(optuna: Any, url: str) -> Any:
    """Optuna's RDB storage at ``url``; UsageError (without the password) when it cannot
    be opened."""
    try:
        return optuna.storages.RDBStorage(rdb_url(url))
    except ImportError as e:
        raise UsageError(f"the study storage {redact(url)} needs a driver: {e}") from None
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's errors: a bad URL, a server down)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(
            f"cannot open the study storage {redact(url)}: {reason.replace(url, redact(url))}"
        ) from None
