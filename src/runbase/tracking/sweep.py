"""``runbase sweep``: run a command over parameter combinations, as tracked runs of one sweep.

    grid = parse_grid(["lr=0.1,0.01", "batch=16,32"])
    dists = parse_random(["wd=loguniform(1e-5,1e-2)"])
    trials = combinations(grid, dists, n=3, seed=0)     # 2 x 2 grid points x 3 samples
    result = run_sweep(["python", "train.py"], trials, jobs=4)
    runbase.runs(sweep=result.sweep_id)

Each trial is ``runbase run --param k=v ... -- COMMAND`` in a process of its own (so it
is exactly what ``runbase run`` records, and a crash of one run cannot touch another),
at most ``jobs`` at a time, every run carrying the sweep's id (``sweep_id``) and its
trial's index (the tag ``sweep_index``, 1-based, in the order of ``combinations()``).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runbase.capture.overrides import INDEX_TAG, format_value, parse_assignment, parse_value
from runbase.core.ids import new_run_id
from runbase.errors import UsageError
from runbase.store import Store
from runbase.tracking.executor import Job, LocalExecutor, runbase_run_argv

DISTRIBUTIONS = ("uniform", "loguniform", "int", "randint", "choice")
_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)
DEFAULT_SAMPLES = 10  # per grid point, with --random and no -n


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


@dataclass
class Trial:
    index: int  # 1-based, in the order of combinations()
    overrides: dict[str, Any]
    returncode: int | None = None  # of `runbase run`: the command's exit status
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.overrides.items())


@dataclass
class SweepResult:
    sweep_id: str
    store_root: str
    trials: list[Trial] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.returncode not in (0, None)]

    @property
    def not_run(self) -> list[Trial]:
        """Trials never started (the sweep was interrupted first)."""
        return [t for t in self.trials if t.returncode is None]


def in_trial_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of a sweep (``read.list_runs`` rows) by trial index (the tag
    ``sweep_index``), whatever order they started in; runs without one last."""

    def index(row: dict[str, Any]) -> tuple[int, int]:
        text = str((row.get("tags") or {}).get(INDEX_TAG, ""))
        return (0, int(text)) if text.lstrip("-").isdigit() else (1, 0)

    return sorted(rows, key=index)  # stable: the listing's order among equals


def new_sweep_id() -> str:
    return new_run_id()


def run_sweep(
    argv: list[str],
    trials: list[dict[str, Any]],
    *,
    jobs: int = 1,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    store: str | None = None,
    capture_code: bool = True,
    on_start: Callable[[SweepResult], None] | None = None,
    on_done: Callable[[Trial, int, int], None] | None = None,
) -> SweepResult:
    """Run ``argv`` once per trial (its overrides), ``jobs`` at a time, as tracked runs of
    one new sweep. ``on_start(result)`` is called once the sweep has its id and
    ``on_done(trial, done, total)`` as each run ends (``done``: how many have ended,
    this one included; runs end in any order with ``jobs`` > 1)."""
    if not argv:
        raise UsageError("no command given: runbase sweep [OPTIONS] -- COMMAND [ARGS...]")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"command not found: {argv[0]}")
    if jobs < 1:
        raise UsageError(f"-j must be at least 1, got {jobs}")
    s = Store.open(store, create=True)  # here, not racing in the first runs
    result = SweepResult(new_sweep_id(), str(s.root))
    s.close()
    result.trials = [Trial(i + 1, dict(t)) for i, t in enumerate(trials)]
    base = runbase_run_argv(result.store_root, "--sweep-id", result.sweep_id)
    base += [] if capture_code else ["--no-code"]
    for k, v in (tags or {}).items():
        base += ["--tag", f"{k}={v}"]
    if on_start is not None:
        on_start(result)
    jobs_of = [Job(_trial_argv(base, argv, name, t), label=str(t.index)) for t in result.trials]
    trial_of = {id(job): t for job, t in zip(jobs_of, result.trials, strict=True)}

    def done(job: Job, n: int, total: int) -> None:
        trial = trial_of[id(job)]
        trial.returncode, trial.stderr_tail = job.returncode, job.stderr_tail
        if on_done is not None:
            on_done(trial, n, total)

    result.interrupted = LocalExecutor(jobs).run(jobs_of, done)
    return result


def _trial_argv(base: list[str], argv: list[str], name: str | None, trial: Trial) -> list[str]:
    cmd = [*base, "--tag", f"{INDEX_TAG}={trial.index}"]
    if name:
        cmd += ["--name", f"{name}-{trial.index}"]
    for k, v in trial.overrides.items():
        # strings as JSON ("1e3" stays text); --param parses it back exactly
        cmd += ["--param", f"{k}={json.dumps(v) if isinstance(v, str) else format_value(v)}"]
    return [*cmd, "--", *argv]


def new_seed() -> int:
    """A fresh sampling seed, to print so that the sweep can be sampled again."""
    return random.SystemRandom().randrange(2**31)
