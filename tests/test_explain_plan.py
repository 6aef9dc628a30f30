"""`runbase explain`'s own logic: the search over plain-Python value functions (our
pure computation, so the expected effects are known exactly), and the factors and
hybrid plans of two real runs made with `runbase run` in a git project."""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import commit, runbase_cmd, write
from runbase.analysis.diff import only_params
from runbase.analysis.explain import (
    Factor,
    SearchResult,
    Untestable,
    baseline,
    build_report,
    check_report,
    choose_metric,
    explain_id,
    find_factors,
    hybrid_key,
    metric_value,
    min_budget,
    noise_summary,
    plan_hybrid,
    search,
)
from runbase.errors import ShapeError, UsageError
from runbase.records.record import build_record
from runbase.store import Store

PY = sys.executable
Value = Callable[[frozenset[str]], float | None]


@dataclass(frozen=True)
class F:
    name: str
    group: tuple[str, ...]


class Recorder:
    """An ``evaluate`` over a value function that records each batch it was asked."""

    def __init__(self, fn: Value) -> None:
        self.fn = fn
        self.batches: list[list[frozenset[str]]] = []

    def __call__(self, subsets: list[frozenset[str]]) -> list[float | None]:
        self.batches.append(list(subsets))
        return [self.fn(s) for s in subsets]


def explain(
    factors: list[F], fn: Value, budget: int, threshold: float = 1e-9, seed: int = 0
) -> tuple[SearchResult, Recorder]:
    rec = Recorder(fn)
    everything = frozenset(f.name for f in factors)
    base, full = fn(frozenset()), fn(everything)
    assert base is not None and full is not None
    result = search(
        factors, rec, budget=budget, base=base, full=full, threshold=threshold, seed=seed
    )
    asked = [s for batch in rec.batches for s in batch]
    assert len(asked) == len(set(asked)) == result.used <= budget  # no subset run twice
    assert frozenset() not in asked and everything not in asked  # baselines are given
    accounted(factors, result)
    return result, rec


def accounted(factors: list[F], result: SearchResult) -> None:
    """Every factor is measured or untried with a reason, never both, never dropped."""
    tried = set(result.effect)
    untried = [u["name"] for u in result.untried]
    assert len(untried) == len(set(untried))
    assert tried.isdisjoint(untried)
    assert tried | set(untried) == {f.name for f in factors}
    assert all(u["reason"] for u in result.untried)


def additive(weights: dict[str, float]) -> Value:
    return lambda s: sum(weights[f] for f in s)


def test_additive_factors_one_at_a_time_in_one_batch() -> None:
    factors = [F("params.lr", ("param",)), F("src/a.py", ("code", "src")), F("data/x", ("data",))]
    weights = {"params.lr": 0.02, "src/a.py": 0.0, "data/x": -0.3}
    result, rec = explain(factors, additive(weights), budget=50)
    assert result.method == "one-at-a-time"
    assert len(rec.batches) == 1 and result.used == 6  # A+f and B-f for each, at once
    for name, w in weights.items():
        assert result.effect_alone[name] == pytest.approx(w)
        assert result.effect_removed[name] == pytest.approx(w)
        assert result.effect[name] == pytest.approx(w)
    assert result.interactions == [] and result.untried == []
    assert any("add up to the measured total" in n for n in result.notes)


def test_two_params_harmless_alone_harmful_together_are_an_interaction() -> None:
    factors = [F("params.a", ("param",)), F("params.b", ("param",)), F("data/x", ("data",))]

    def fn(s: frozenset[str]) -> float:
        return (-0.4 if {"params.a", "params.b"} <= s else 0.0) + (0.01 if "data/x" in s else 0.0)

    result, _ = explain(factors, fn, budget=50)
    assert result.method == "shapley"
    assert result.effect_alone["params.a"] == 0.0 and result.effect_removed["params.a"] == -0.4
    assert result.interactions == [
        {"factors": ["params.a", "params.b"], "effect": pytest.approx(-0.4)}
    ]
    # exact Shapley values: the pair's effect is shared, the data factor keeps its own
    assert result.effect["params.a"] == pytest.approx(-0.2)
    assert result.effect["params.b"] == pytest.approx(-0.2)
    assert result.effect["data/x"] == pytest.approx(0.01)
    assert sum(result.effect.values()) == pytest.approx(fn(frozenset(f.name for f in factors)))


def files(n: int) -> list[F]:
    return [F(f"src/d{i % 4}/f{i:02d}.py", ("code", "src", f"d{i % 4}")) for i in range(n)]


def test_one_decisive_file_among_40_found_by_bisection() -> None:
    factors = files(40)
    decisive = "src/d2/f22.py"
    result, rec = explain(factors, lambda s: 0.9 - (0.2 if decisive in s else 0.0), budget=20)
    assert result.method == "bisect"
    assert list(result.effect) == [decisive]
    assert result.effect[decisive] == pytest.approx(-0.2)
    assert result.effect_alone[decisive] == result.effect_removed[decisive] == pytest.approx(-0.2)
    # about 2·log2(n) hybrids, far fewer than the 40 files; 2 per level
    assert result.used <= 2 * math.ceil(math.log2(40)) + 2
    assert all(len(b) == 2 for b in rec.batches[:-1])
    assert all("within noise" in u["reason"] for u in result.untried)
    assert any("bisected" in n for n in result.notes)


def test_bisection_keeps_kinds_apart_before_splitting_directories() -> None:
    factors = [F("params.a", ("param",)), *files(7)]
    result, rec = explain(factors, additive({f.name: 0.0 for f in factors}), budget=4)
    first = rec.batches[0]
    assert {"params.a"} in [set(s) for s in first]  # the split falls between the kinds
    assert result.untried and all("within noise" in u["reason"] for u in result.untried)


def test_an_interaction_across_the_split_is_said_and_searched() -> None:
    factors = files(40)
    pair = {"src/d0/f00.py", "src/d3/f39.py"}  # far apart: in different halves
    result, _ = explain(factors, lambda s: -1.0 if pair <= s else 0.0, budget=40)
    assert set(result.effect) == pair
    assert any("interaction across the split" in n for n in result.notes)
    assert result.interactions == [{"factors": sorted(pair), "effect": pytest.approx(-1.0)}]


def test_small_factors_inside_the_noise_threshold() -> None:
    factors = [F("data/x", ("data",)), F("params.seed", ("param",))]

    def fn(s: frozenset[str]) -> float:
        # a deterministic "noise" of up to ±0.002 per subset around an additive truth
        jitter = int(hashlib.sha256(",".join(sorted(s)).encode()).hexdigest()[:4], 16)
        return (-0.5 if "data/x" in s else 0.0) + 0.001 + (jitter / 0xFFFF - 0.5) * 0.004

    result, _ = explain(factors, fn, budget=10, threshold=0.01)
    assert result.method == "one-at-a-time"  # differences within the threshold add up
    assert abs(result.effect["params.seed"] or 0.0) <= 0.01
    assert result.effect["data/x"] == pytest.approx(-0.5, abs=0.01)


def test_a_crashing_factor_breaks_the_run_and_never_the_search() -> None:
    factors = [F("params.a", ("param",)), F("params.bad", ("param",)), F("data/x", ("data",))]

    def fn(s: frozenset[str]) -> float | None:
        if "params.bad" in s and len(s) < 3:
            return None
        return -0.3 if "data/x" in s else 0.0

    result, _ = explain(factors, fn, budget=50)
    assert result.breaks_run == {"params.a": False, "params.bad": True, "data/x": False}
    assert result.effect_alone["params.bad"] is None
    assert any("params.bad alone did not finish" in n for n in result.notes)
    assert result.effect_alone["data/x"] == pytest.approx(-0.3)


def test_bisection_finds_the_factor_that_crashes() -> None:
    factors = files(24)
    bad = "src/d1/f05.py"
    result, _ = explain(factors, lambda s: None if bad in s and len(s) < 24 else 0.0, budget=20)
    assert result.breaks_run.get(bad) is True
    assert bad in result.effect


def test_nan_is_no_value() -> None:
    factors = [F("a", ("param",)), F("b", ("param",))]
    result, _ = explain(factors, lambda s: math.nan if s == {"a"} else 0.0, budget=10)
    assert result.breaks_run["a"] is True


def test_a_tiny_budget() -> None:
    factors = files(40)
    with pytest.raises(UsageError, match="at least 2"):
        explain(factors, lambda s: 0.0, budget=1)
    assert min_budget(1) == 0 and min_budget(2) == 2
    result, _ = explain(factors, lambda s: 1.0 if "src/d2/f22.py" in s else 0.0, budget=2)
    assert result.used == 2 and result.effect == {}
    reasons = {u["reason"] for u in result.untried}
    assert any("budget exhausted" in r for r in reasons)
    # one factor: v({f}) is B itself, nothing to run
    result, rec = explain([F("a", ("param",))], lambda s: len(s) * 1.0, budget=0)
    assert rec.batches == [] and result.effect == {"a": 1.0}


def test_sampled_shapley_is_deterministic_and_within_budget() -> None:
    factors = [F(f"params.p{i}", ("param",)) for i in range(8)]

    def fn(s: frozenset[str]) -> float:
        return len(s) * 0.1 - (0.5 if {"params.p1", "params.p6"} <= s else 0.0)

    first, _ = explain(factors, fn, budget=40, seed=7)
    again, _ = explain(factors, fn, budget=40, seed=7)
    assert first.method == "shapley" and first.used <= 40
    assert first.effect == again.effect and first.notes == again.notes
    assert any("random orders" in n for n in first.notes)
    # antithetic orders sum exactly: the estimates add up to the total
    assert sum(v for v in first.effect.values() if v is not None) == pytest.approx(0.3)
    assert first.interactions == [
        {"factors": ["params.p1", "params.p6"], "effect": pytest.approx(-0.5)}
    ]


# -- the metric, noise, the report ---------------------------------------------------


def rec(metrics: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"id": rest.get("id", "r"), "metrics": {k: {"value": v} for k, v in metrics.items()}}


def test_choose_metric() -> None:
    a = rec({"acc": 0.9, "loss": 0.30, "train_runtime": 10.0, "sys/cpu_seconds": 3.0})
    b = rec({"acc": 0.8, "loss": 0.31, "train_runtime": 99.0, "sys/cpu_seconds": 9.0})
    assert choose_metric(a, b, None) == "acc"  # the runtime moved more, but it is timing
    assert choose_metric(a, b, "loss") == "loss"
    with pytest.raises(UsageError, match="unknown metric nope"):
        choose_metric(a, b, "nope")
    with pytest.raises(UsageError, match=r"metric f1 is missing in run B \(r; it logged: acc"):
        choose_metric(rec({**{"acc": 1}, "f1": 1.0}), rec({"acc": 1}), "f1")
    with pytest.raises(UsageError, match="no metric differs"):
        choose_metric(rec({"acc": 1.0}), rec({"acc": 1.0}), None)
    assert metric_value(rec({"acc": "NaN"}), "acc") != metric_value(rec({"acc": 1}), "acc")
    assert math.isnan(metric_value(rec({"acc": "NaN"}), "acc") or 0.0)
    assert metric_value(rec({}), "acc") is None


def test_ids_and_keys_are_deterministic() -> None:
    assert explain_id("a", "b") == explain_id("a", "b") != explain_id("b", "a")
    assert len(explain_id("a", "b")) == 12 and explain_id("a", "b").startswith("x")
    assert hybrid_key("a", "b", ["y", "x"], "current") == hybrid_key(
        "a", "b", ["x", "y"], "current"
    )
    assert hybrid_key("a", "b", [], "current", 0) != hybrid_key("a", "b", [], "current", 1)


def test_noise_and_report_round_trip() -> None:
    noise = noise_summary(0.9, 0.8, [0.9, 0.92], [0.8, None])
    assert noise["spread"] == pytest.approx(0.02) and noise["threshold"] == pytest.approx(0.02)
    # reproducing is giving the recorded value again, not a value within the spread
    assert noise["a_reproduces"] is False and noise["b_reproduces"] is False
    exact = noise_summary(0.9, 0.8, [0.9, 0.9 + 1e-12], [0.8])
    assert exact["a_reproduces"] and exact["b_reproduces"] and exact["threshold"] == 1e-9
    assert baseline([0.9, 0.92]) == pytest.approx(0.91) and baseline([None]) is None
    factors = [
        Factor("param", "params.a", "params.a 1 → 2", ("param",), {}),
        Factor("data", "data/x", "data/x …", ("data",), {}),
    ]
    result = SearchResult("one-at-a-time", {})
    result.effect = {"params.a": -0.005, "data/x": -0.1}
    result.effect_alone, result.effect_removed = dict(result.effect), dict(result.effect)
    result.untried = []
    hybrids = {"run": 4, "cached": 0, "failed": 0, "seconds": 1.5, "runs": []}
    doc = build_report(
        a="A", b="B", metric="acc", a_value=0.9, b_value=0.8, noise=noise, factors=factors,
        untestable=[], result=result, budget=10, hybrids=hybrids,
    )  # fmt: skip
    assert [f["name"] for f in doc["factors"]] == ["data/x", "params.a"]
    assert doc["factors"][0]["significant"] and not doc["factors"][1]["significant"]
    assert doc["factors"][0]["share"] == pytest.approx(-0.1 / (0.8 - 0.91) * 100)
    assert doc["unexplained"] == pytest.approx((0.8 - 0.91) - (-0.105))
    assert check_report(json.loads(json.dumps(doc))) == doc
    for bad in ({**doc, "factors": [{"kind": "weird", "name": "x"}]}, [1], {**doc, "a_value": "x"}):
        with pytest.raises(ShapeError):
            check_report(bad)
    nan = build_report(
        a="A", b="B", metric="acc", a_value=math.nan, b_value=0.8, noise=noise, factors=[],
        untestable=[], result=result, budget=10, hybrids=hybrids,
    )  # fmt: skip
    assert nan["a_value"] == "NaN" and check_report(nan)["total"] == "NaN"


# -- factors and plans of two real runs ---------------------------------------------------

TRAIN = """
import argparse, json, pathlib
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--fast", action="store_true")
args = p.parse_args()
from src.model import score
rows = open("data.csv").read().splitlines()
extra = sorted(pathlib.Path("shards").iterdir())
acc = score(args.lr, len(rows)) + sum(len(open(s).read()) for s in extra) * 0.0
runbase.log({"acc": acc, "epoch_time": 1.0})
"""

MODEL_A = "".join(f"line{i} = {i}\n" for i in range(30)) + "def score(lr, n):\n    return lr * n\n"


def last_run(project: Path) -> str:
    return json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]


def two_runs(project: Path) -> tuple[Store, dict[str, Any], dict[str, Any]]:
    write(project, "train.py", TRAIN)
    write(project, "src/__init__.py", "")
    write(project, "src/model.py", MODEL_A)
    write(project, "shards/a.txt", "a\n")
    write(project, "shards/b.txt", "b\n")
    (project / "data.csv").write_text("x,y\n1,2\n3,4\n")
    commit(project, "train")
    runbase_cmd(
        "run", "--input", "shards", "--", PY, "train.py", "--lr", "0.1", cwd=project, check=True
    )
    a = last_run(project)
    # B: another lr, two hunks of src/model.py, data.csv edited, a shard replaced, --fast
    model_b = MODEL_A.replace("line1 = 1\n", "line1 = 100\n").replace("lr * n", "lr * n * 2")
    write(project, "src/model.py", model_b)
    (project / "data.csv").write_text("x,y\n1,2\n3,5\n")
    (project / "shards/a.txt").unlink()
    write(project, "shards/c.txt", "c\n")
    commit(project, "b")
    runbase_cmd(
        "run", "--input", "shards", "--", PY, "train.py", "--lr", "0.2", "--fast",
        cwd=project, check=True,
    )  # fmt: skip
    b = last_run(project)
    store = Store.open(str(project / ".runbase"))
    ra, rb = (build_record(store, r, include_patch=False) for r in (a, b))
    return store, ra, rb


def test_factors_and_plans_of_real_runs(project: Path) -> None:
    store, ra, rb = two_runs(project)
    assert choose_metric(ra, rb, None) == "acc"
    factors, untestable = find_factors(store, ra, rb, hunks=True)
    names = {f.name: f for f in factors}
    # files read from the input directory "shards" (and committed, so in the code
    # tree too) change with that directory: one data factor, not three
    assert set(names) - set(hunks := sorted(n for n in names if n.startswith("src/model.py:"))) == {
        "params.lr",
        "params.fast",
        "data.csv",
        "shards",
        "command",
    }
    assert len(hunks) == 2 and hunks[0] == "src/model.py:L1-L5"
    assert names["params.lr"].description == "params.lr 0.1 → 0.2"
    assert names["params.fast"].change == {"key": "fast", "old": False, "new": True, "added": False}
    assert names["data.csv"].description.startswith("data.csv ")
    assert "1 of 2 rows differ" in names["data.csv"].description
    assert "1 file added, 1 file removed" in names["shards"].description
    assert names["command"].change["new"][-1] == "--fast"
    assert untestable == []
    # the hunk plan: A's file with only the first hunk of B's change
    first = next(f for f in factors if f.name == hunks[0])
    plan = plan_hybrid(store, ra, rb, factors, [first.name, "shards", "params.lr"])
    entry = plan.code["src/model.py"]
    assert entry is not None
    mixed = store.objects.get_bytes(entry["oid"]).decode()
    assert mixed == MODEL_A.replace("line1 = 1\n", "line1 = 100\n")
    assert plan.command == ra["command"] and plan.overrides == {"lr": 0.2}
    assert plan.data["shards/a.txt"] is None and plan.data["shards/c.txt"]["type"] == "f"
    assert set(plan.data) == {"shards/a.txt", "shards/b.txt", "shards/c.txt"}
    assert plan.pins is None and plan.python_version is None
    # both hunks: B's file itself; the command from B with A's values for the rest
    plan = plan_hybrid(store, ra, rb, factors, [*hunks, "command"])
    assert plan.code["src/model.py"] == first.change["new"]
    assert plan.command == rb["command"]
    assert plan.overrides == {"lr": 0.1, "fast": False}
    with pytest.raises(UsageError, match="unknown factor"):
        plan_hybrid(store, ra, rb, factors, ["nope"])
    # whole files without --hunks; env factors only with --env venv (same env here)
    whole, _ = find_factors(store, ra, rb)
    assert "src/model.py" in {f.name for f in whole}


def test_untestable_differences(project: Path) -> None:
    store, ra, rb = two_runs(project)
    rb = {**rb, "params": {k: v for k, v in rb["params"].items() if k != "fast"}}
    ra = {**ra, "env": {**(ra["env"] or {}), "python": {"version": "3.0.1"}}}
    rb["env"] = {
        **(rb["env"] or {}),
        "packages": [
            *rb["env"]["packages"],
            {"name": "zzz", "version": "1"},
            {"name": "shards", "version": "2"},
        ],
    }
    inputs = [{**f, "stored": False} if f["path"] == "data.csv" else f for f in rb["inputs"]]
    rb["inputs"] = inputs
    factors, untestable = find_factors(store, ra, rb)
    why = {u.name: u.reason for u in untestable}
    assert why["params.fast"].startswith("B has no value for it")
    assert why["python"].startswith("the Python version is not changed by explain: 3.0.1 → ")
    assert why["zzz"] == "package versions are tested only with --env venv"
    assert why["data.csv"] == "run B's version: hashed only (not stored)"
    venv, _ = find_factors(store, ra, rb, env_mode="venv")
    zzz = next(f for f in venv if f.name == "zzz")
    # a package named like a changed file keeps a name of its own
    assert {f.name for f in venv if f.kind == "env"} == {"zzz", "env:shards"}
    plan = plan_hybrid(store, ra, rb, venv, ["zzz"])
    assert plan.pins is not None and "zzz==1" in plan.pins
    assert not any(p.startswith(("pip==", "runbase==")) for p in plan.pins)
    assert zzz.description == "zzz 1 added"
    code_less = {**ra, "code": None}
    _, untestable = find_factors(store, code_less, rb)
    assert (
        Untestable("code", "code", "run A has no code snapshot: code changes cannot be tested")
        in untestable
    )


def test_a_failed_rerun_of_b_leaves_the_single_effects() -> None:
    factors = [F("a", ("param",)), F("b", ("param",))]
    rec_ = Recorder(lambda s: 0.5 * len(s))
    result = search(factors, rec_, budget=10, base=0.0, full=math.nan, threshold=1e-9, seed=0)
    accounted(factors, result)
    assert result.effect_alone == {"a": 0.5, "b": 0.5} == result.effect
    assert result.effect_removed == {"a": None, "b": None} and result.budget == 10
    assert any("could not be measured both ways" in n for n in result.notes)
    assert result.method == "one-at-a-time" and "B's re-run gave no value" in result.notes[-1]
    with pytest.raises(UsageError, match="no baseline"):
        search(factors, rec_, budget=10, base=math.nan, full=1.0, threshold=1e-9, seed=0)


@pytest.mark.parametrize("case", range(40))
def test_invariants_over_mixed_scenarios(case: int) -> None:
    """Whatever the values (effects, pair interactions, crashes) and the budget: no
    crash, nothing run twice or over budget, every factor accounted for, and the same
    result again for the same seed."""
    rng = random.Random(case)
    n = rng.choice([1, 2, 3, 5, 9, 17, 33])
    factors = [F(f"k{i % 3}/d{i % 5}/f{i}", (f"k{i % 3}", f"d{i % 5}")) for i in range(n)]
    weights = {f.name: rng.choice([0.0, 0.0, 0.0, rng.uniform(-1, 1)]) for f in factors}
    pairs = (
        [tuple(rng.sample(sorted(weights), 2)) for _ in range(rng.randint(0, 2))] if n > 1 else []
    )
    crash = {f.name for f in factors if rng.random() < 0.05}
    everything = frozenset(weights)

    def fn(s: frozenset[str]) -> float | None:
        if s & crash and s != everything:
            return None
        return sum(weights[f] for f in s) + sum(-0.5 for p in pairs if set(p) <= s)

    budget = max(min_budget(n), rng.choice([2, 5, 12, 40, 100]))
    first, _ = explain(factors, fn, budget=budget, threshold=0.01, seed=case)
    again, _ = explain(factors, fn, budget=budget, threshold=0.01, seed=case)
    assert (first.effect, first.untried, first.notes) == (again.effect, again.untried, again.notes)
    assert first.notes and first.method in ("one-at-a-time", "bisect", "shapley")


def test_a_command_that_differs_only_by_param_values_is_no_factor() -> None:
    # `--wd 1` is recorded as 1.0 and written back as `--wd 1.0`: still only the params
    ra = {
        "command": ["python", "t.py", "--lr", "1e-3", "--wd", "0"],
        "params": {"lr": 0.001, "wd": 0.0},
        "param_sources": {"lr": "argparse", "wd": "argparse"},
    }
    rb = {**ra, "command": ["python", "t.py", "--lr", "3e-3", "--wd", "1"]}
    rb["params"] = {"lr": 0.003, "wd": 1.0}
    assert only_params(ra, rb)
    rb["command"] = [*rb["command"], "--fast"]
    assert not only_params(ra, rb)


def test_one_rerun_measures_its_spread_against_the_recorded_value() -> None:
    noise = noise_summary(1.0, 2.0, [1.1], [2.0])
    assert abs(noise["spread"] - 0.1) < 1e-12 and noise["threshold"] >= noise["spread"]
    assert not noise["a_reproduces"] and noise["b_reproduces"]
    # with repeats, the re-runs alone: the recorded value may come from another environment
    noise = noise_summary(1.0, 2.0, [1.5, 1.5], [2.0, 2.0])
    assert noise["spread"] == 0 and not noise["a_reproduces"]
