"""The search of ``runbase explain``: which factors move the metric, measured on as few
hybrids as the budget allows (pure computation; :mod:`runbase.analysis.explain` re-exports
it, the orchestrator in ``tracking/explain.py`` runs the hybrids).

A hybrid S is run A with the factors in S taken from run B; ``v(S)`` is its metric, so
``v(∅)`` is A re-run (``base``) and ``v(F)`` is B re-run (``full``). The search asks for
hybrids in batches (the orchestrator runs a batch in parallel) and counts each subset it
has not seen against the budget; the two baselines are outside it.

- **one at a time** (2 hybrids per factor fit the budget): every factor alone on A
  (``v({f}) - v(∅)``) and removed from B (``v(F) - v(F - {f})``). When these add up to
  the total they are the answer. When they do not, the factors whose two effects disagree
  interact: pairs of them are tested (``v({f,g}) - v({f}) - v({g}) + v(∅)``), then
  Shapley values are computed, exactly from all subsets when they fit the budget, else
  estimated from seeded random permutations (with their reverses) within what is left.
- **bisect** (too many factors): the factors, sorted by their group (kind, then
  directories), are split into two halves at the group boundary nearest the middle; each
  half is added to A on its own (2 hybrids per level, all nodes of a level in one
  batch), and only the halves that move the metric are split further, so one decisive
  file among n is found in about 2·log2(n) hybrids. When neither half moves the metric
  alone but the pair does, the halves interact: each is searched with the other present.
  The decisive factors found are then tested both ways, as above.

A hybrid that crashed or did not log a finite metric (value None) marks the factor it
added as breaking the run; a crashed group is searched like a significant one, so the
factor that breaks the run is found too. Every factor ends up measured or in ``untried``
with the reason. The result depends only on the values returned and ``seed``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runbase.errors import UsageError

Subset = frozenset[str]
Evaluate = Callable[[list[Subset]], list[float | None]]
MAX_PERMUTATIONS = 2000  # sampled Shapley: beyond this the estimate no longer improves much
EXACT_MAX_FACTORS = 12  # 4,096 subsets: exact Shapley values are computed up to here


class Grouped(Protocol):
    """What the search needs of a factor (:class:`runbase.analysis.explain.Factor`)."""

    @property
    def name(self) -> str: ...

    @property
    def group(self) -> tuple[str, ...]: ...


@dataclass
class SearchResult:
    method: str  # "one-at-a-time" | "bisect" | "shapley"
    values: dict[Subset, float | None]
    effect: dict[str, float | None] = field(default_factory=dict)
    effect_alone: dict[str, float | None] = field(default_factory=dict)
    effect_removed: dict[str, float | None] = field(default_factory=dict)
    breaks_run: dict[str, bool] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)
    untried: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used: int = 0
    budget: int = 0

    @property
    def tested(self) -> list[str]:
        """The factors with measured effects, in the order they were given."""
        return list(self.effect)


def min_budget(n: int) -> int:
    """The fewest hybrids that test anything among ``n`` factors: none for one factor
    (``v({f})`` is B re-run), else 2 (one bisection level, or both factors of a pair)."""
    return 0 if n <= 1 else 2


def search(
    factors: Sequence[Grouped],
    evaluate: Evaluate,
    *,
    budget: int,
    base: float,
    full: float,
    threshold: float,
    seed: int,
) -> SearchResult:
    """Rank ``factors`` by their effect on the metric (module docstring). ``evaluate``
    runs a batch of subsets and returns their metric values in order (None: the hybrid
    crashed or logged no value). Raises UsageError when ``budget`` is below
    :func:`min_budget`."""
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise ValueError("factor names must be unique")
    if budget < min_budget(len(names)):
        raise UsageError(
            f"a budget of {budget} hybrid(s) cannot test {len(names)} factors: "
            f"at least {min_budget(len(names))} are needed"
        )
    start = _number(base)
    if start is None:
        raise UsageError(f"A's re-run gave no finite value of the metric ({base}): no baseline")
    s = _Search(list(factors), evaluate, budget, start, _number(full), threshold, seed)
    return s.run()


def _number(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _signed(x: float) -> str:
    return f"{x:+.4g}"


class _Search:
    def __init__(
        self,
        factors: list[Grouped],
        evaluate: Evaluate,
        budget: int,
        base: float,
        full: float | None,
        threshold: float,
        seed: int,
    ) -> None:
        self.factors = factors
        self.names = [f.name for f in factors]
        self.everything: Subset = frozenset(self.names)
        self.evaluate = evaluate
        self.budget = budget
        self.threshold = threshold
        self.seed = seed
        self.base = base
        self.r = SearchResult("one-at-a-time", {frozenset(): base, self.everything: full})
        self.r.budget = budget
        # B's re-run failed (None): removal effects are unknown, the single effects stand
        self.total = None if full is None else full - base

    # -- asking for hybrids --------------------------------------------------------

    @property
    def left(self) -> int:
        return self.budget - self.r.used

    def unknown(self, subsets: Iterable[Subset]) -> list[Subset]:
        out: list[Subset] = []
        for s in subsets:
            if s not in self.r.values and s not in out:
                out.append(s)
        return out

    def ask(self, subsets: Iterable[Subset]) -> bool:
        """Run the subsets not yet measured as one batch; False (nothing run) when they
        do not fit in the budget left."""
        new = self.unknown(subsets)
        if len(new) > self.left:
            return False
        if new:
            got = list(self.evaluate(new))
            if len(got) != len(new):
                raise ValueError(f"evaluate returned {len(got)} values for {len(new)} subsets")
            for s, v in zip(new, got, strict=True):
                self.r.values[s] = _number(v)  # NaN/inf: no usable value, like a crash
            self.r.used += len(new)
        return True

    def v(self, s: Subset) -> float | None:
        return self.r.values.get(s)

    def diff(self, s: Subset, t: Subset) -> float | None:
        vs, vt = self.v(s), self.v(t)
        return None if vs is None or vt is None else vs - vt

    def significant(self, x: float | None) -> bool:
        return x is not None and abs(x) > self.threshold

    # -- the strategy --------------------------------------------------------------

    def run(self) -> SearchResult:
        n = len(self.names)
        if n == 0:
            self.r.notes.append("There are no testable factors: nothing was run.")
            return self.r
        both_ways = [frozenset([f]) for f in self.names] + [
            self.everything - {f} for f in self.names
        ]
        cost = len(self.unknown(both_ways))
        if cost <= self.budget:
            self.one_at_a_time(both_ways, cost)
        else:
            self.r.method = "bisect"
            self.r.notes.append(
                f"Testing each of the {n} factors both ways would take {cost} hybrids, more "
                f"than the budget of {self.budget}: the factors were grouped by kind and "
                "directory and bisected."
            )
            self.bisect()
        return self.r

    def one_at_a_time(self, both_ways: list[Subset], cost: int) -> None:
        self.ask(both_ways)
        n = len(self.names)
        self.r.notes.append(
            f"Each of the {n} factor(s) was tested alone on A and removed from B "
            f"({cost} hybrid(s))."
        )
        self.measure_both_ways(self.names)
        mixed = self.nonadditive(self.names)
        if not mixed:
            self.r.notes.append(
                f"The single effects add up to the measured total ({_signed(self.total or 0.0)}) "
                "within noise: each factor's effect is its effect alone."
            )
            return
        self.r.notes.append(self.mismatch_sentence(mixed))
        self.interactions_and_shapley(mixed)

    def measure_both_ways(self, names: Iterable[str]) -> None:
        empty = frozenset[str]()
        for f in names:
            one = frozenset([f])
            alone = self.diff(one, empty)
            removed = self.diff(self.everything, self.everything - {f})
            self.r.effect_alone[f] = alone
            self.r.effect_removed[f] = removed
            self.r.effect[f] = alone if alone is not None else removed
            self.r.breaks_run[f] = one in self.r.values and self.v(one) is None
            if self.r.breaks_run[f]:
                self.r.notes.append(f"A with {f} alone did not finish or log the metric.")
            if (self.everything - {f}) in self.r.values and self.v(self.everything - {f}) is None:
                self.r.notes.append(f"B without {f} did not finish or log the metric.")

    def gap(self, f: str) -> float | None:
        """|effect alone - effect removed| of ``f``; None unless both were measured."""
        alone, removed = self.r.effect_alone.get(f), self.r.effect_removed.get(f)
        return None if alone is None or removed is None else abs(alone - removed)

    def nonadditive(self, names: list[str]) -> list[str]:
        """The factors whose effect alone and effect removed disagree (or could not
        both be measured); all of ``names`` when their single effects do not sum to
        the total."""
        differ = [f for f in names if self.gap(f) is None or self.significant(self.gap(f))]
        total_alone = sum(a for f in names if (a := self.r.effect_alone.get(f)) is not None)
        off = None if self.total is None else total_alone - self.total
        if differ or self.significant(off):
            return differ or list(names)
        return []

    def mismatch_sentence(self, mixed: list[str]) -> str:
        unmeasured = [f for f in mixed if self.gap(f) is None]
        if unmeasured:
            return (
                f"{len(unmeasured)} factor(s) could not be measured both ways (a hybrid "
                "crashed, or B's re-run did): their effects cannot be assumed to add up."
            )
        total_alone = sum(a for a in self.r.effect_alone.values() if a is not None)
        return (
            f"The single effects do not add up: together alone {_signed(total_alone)}, "
            f"measured total {_signed(self.total or 0.0)}; the effects of {len(mixed)} factor(s) "
            "depend on the others."
        )

    def interactions_and_shapley(self, mixed: list[str]) -> None:
        n = len(self.names)
        if self.total is None:  # orders end at B: without its value they sum to nothing
            self.test_pairs(mixed, self.left)
            self.r.notes.append("Shapley values were not estimated: B's re-run gave no value.")
            return
        all_subsets = n <= EXACT_MAX_FACTORS and (1 << n) - len(self.r.values) <= self.left
        if all_subsets:
            self.ask(_all_subsets(self.names))
            self.r.notes.append(
                f"All {1 << n} subsets of the factors fit the budget: Shapley values were "
                "computed exactly."
            )
        self.test_pairs(mixed, self.left if all_subsets else self.left // 2)
        if all_subsets:
            self.exact_shapley()
        else:
            self.sampled_shapley()

    def test_pairs(self, mixed: list[str], budget: int) -> None:
        """Pairs of factors whose single effects disagree, largest disagreement first,
        as many as ``budget`` allows, in one batch."""
        gap = {f: d for f in mixed if (d := self.gap(f)) is not None}
        candidates = sorted(gap, key=lambda f: (-gap[f], self.names.index(f)))
        pairs = [(f, g) for i, f in enumerate(candidates) for g in candidates[i + 1 :] if f != g]
        if not pairs:
            return
        todo: list[tuple[str, str]] = []
        cost = 0
        for f, g in pairs:
            cost += frozenset([f, g]) not in self.r.values
            if cost > budget:
                break
            todo.append((f, g))
        self.ask(frozenset(p) for p in todo)
        for f, g in todo:
            effect = self.interaction(f, g)
            if effect is not None and self.significant(effect):
                self.r.interactions.append({"factors": sorted([f, g]), "effect": effect})
        self.r.interactions.sort(key=lambda i: -abs(i["effect"]))
        skipped = len(pairs) - len(todo)
        found = len(self.r.interactions)
        self.r.notes.append(
            f"{len(todo)} pair(s) of those factors were tested together; {found} "
            "interaction(s) beyond noise."
            + (f" {skipped} pair(s) were not tested (budget)." if skipped else "")
        )

    def interaction(self, f: str, g: str) -> float | None:
        fg, one_f, one_g = frozenset([f, g]), frozenset([f]), frozenset([g])
        both, vf, vg = self.v(fg), self.v(one_f), self.v(one_g)
        if both is None or vf is None or vg is None:
            return None
        return both - vf - vg + self.base

    def exact_shapley(self) -> None:
        n = len(self.names)
        weights = [
            math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)
        ]
        for f in self.names:
            num = den = 0.0
            for s in _all_subsets([g for g in self.names if g != f]):
                d = self.diff(s | {f}, s)
                if d is not None:
                    num += weights[len(s)] * d
                    den += weights[len(s)]
            self.r.effect[f] = num / den if den else self.r.effect[f]
        self.r.method = "shapley"

    def sampled_shapley(self) -> None:
        rng = random.Random(self.seed)
        samples: dict[str, list[float]] = {f: [] for f in self.names}
        perms = 0
        while perms < MAX_PERMUTATIONS:
            order = rng.sample(sorted(self.names), len(self.names))
            pair = [order, order[::-1]]  # antithetic: each factor early once, late once
            prefixes = [frozenset(p[:i]) for p in pair for i in range(1, len(p))]
            if not self.ask(prefixes):
                break
            for p in pair:
                for i, f in enumerate(p):
                    d = self.diff(frozenset(p[: i + 1]), frozenset(p[:i]))
                    if d is not None:
                        samples[f].append(d)
            perms += 2
        if perms == 0:
            self.r.notes.append(
                "No budget was left to estimate Shapley values: each factor's effect is "
                "its effect alone."
            )
            return
        for f in self.names:
            if samples[f]:
                self.r.effect[f] = sum(samples[f]) / len(samples[f])
        self.r.method = "shapley"
        self.r.notes.append(
            f"Shapley values were estimated from {perms} random orders of the factors "
            f"(seed {self.seed}); {self.r.used} hybrid(s) used in all."
        )

    # -- bisection ------------------------------------------------------------------

    def bisect(self) -> None:
        by_name = {f.name: f for f in self.factors}
        order = sorted(self.names, key=lambda f: (by_name[f].group, f))
        self.groups = {f: by_name[f].group for f in self.names}
        self.in_context: dict[str, float | None] = {}
        empty = frozenset[str]()
        frontier: list[tuple[tuple[str, ...], Subset]] = [(tuple(order), empty)]
        decisive: list[str] = []
        levels = 0
        while frontier:
            batch = self.fit_level(frontier)
            if not batch:
                break
            levels += 1
            frontier = self.expand(batch, decisive)
        self.r.notes.append(
            f"Bisection ran {levels} level(s) with {self.r.used} hybrid(s) and found "
            f"{len(decisive)} factor(s) that move the metric"
            + (f": {', '.join(decisive)}." if decisive else ".")
        )
        if self.r.untried:
            self.r.notes.append(
                f"{len(self.r.untried)} factor(s) were not tested one by one (listed as "
                "untried, with the reason)."
            )
        self.finish_bisect(decisive)

    def fit_level(
        self, frontier: list[tuple[tuple[str, ...], Subset]]
    ) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Subset]]:
        """The nodes of this level whose two halves fit in the budget, asked as one
        batch; the factors of the others are left untried."""
        batch: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Subset]] = []
        subsets: list[Subset] = []
        for items, context in frontier:
            left, right = self.split(items)
            more = [context | frozenset(left), context | frozenset(right)]
            if len(self.unknown([*subsets, *more])) > self.left:
                self.untry(items, "budget exhausted before its group was split further")
                continue
            subsets += more
            batch.append((items, left, right, context))
        self.ask(subsets)
        return batch

    def expand(
        self,
        batch: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Subset]],
        decisive: list[str],
    ) -> list[tuple[tuple[str, ...], Subset]]:
        nxt: list[tuple[tuple[str, ...], Subset]] = []
        for items, left, right, context in batch:
            whole = context | frozenset(items)
            sig = {}
            for half in (left, right):
                eff = self.diff(context | frozenset(half), context)
                crashed = self.v(context | frozenset(half)) is None
                sig[half] = crashed or self.significant(eff)
            together = self.diff(whole, context)
            # the two halves together crashed though neither did alone: as an interaction
            crashed_together = self.v(whole) is None
            for half, other in ((left, right), (right, left)):
                if sig[half]:
                    self.descend(half, context, nxt, decisive)
                    continue
                with_other = self.diff(whole, context | frozenset(other))
                if not sig[other] and (self.significant(with_other) or crashed_together):
                    self.r.notes.append(
                        f"Neither half of {self.label(items)} moved the metric alone, but "
                        f"together they did ({_signed(together or 0.0)}): an interaction "
                        f"across the split; {self.label(half)} was searched with "
                        f"{self.label(other)} present."
                    )
                    self.descend(half, context | frozenset(other), nxt, decisive)
                elif sig[other] and self.significant(with_other):
                    self.descend(half, context | frozenset(other), nxt, decisive)
                else:
                    eff = self.diff(context | frozenset(half), context) or 0.0
                    self.untry(
                        half,
                        f"in group {self.label(half)} whose combined effect "
                        f"({_signed(eff)}) is within noise",
                    )
        return nxt

    def descend(
        self,
        half: tuple[str, ...],
        context: Subset,
        nxt: list[tuple[tuple[str, ...], Subset]],
        decisive: list[str],
    ) -> None:
        if len(half) > 1:
            nxt.append((half, context))
        elif half[0] not in decisive:
            decisive.append(half[0])
            self.in_context[half[0]] = self.diff(context | frozenset(half), context)

    def finish_bisect(self, decisive: list[str]) -> None:
        """The decisive factors tested both ways (as many as the budget allows), then
        pairs of those whose two effects disagree."""
        todo: list[Subset] = []
        for f in decisive:
            more = [*todo, frozenset([f]), self.everything - {f}]
            if len(self.unknown(more)) > self.left:
                self.r.notes.append(f"{f} could not be tested both ways (budget exhausted).")
                continue
            todo = more
        self.ask(todo)
        done = list(decisive)
        self.measure_both_ways(done)
        for f in done:  # not measured both ways: its effect within its bisection context
            if self.r.effect[f] is None:
                self.r.effect[f] = self.in_context.get(f)
        mixed = self.nonadditive(done) if done else []
        if mixed and self.left >= 1:
            self.r.notes.append(self.mismatch_sentence(mixed))
            self.test_pairs(mixed, self.left)
        elif mixed:
            self.r.notes.append(
                "The single effects do not add up to the total, and no budget was left to "
                "test pairs of factors."
            )

    def split(self, items: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Two halves of ``items`` (sorted by group): between two kinds when the items
        have several; else at the shallowest directory boundary among the cut points
        in the middle half, nearest the middle (each half within 1:3 of the other); a
        directory is only cut when no boundary lies there."""
        m = len(items)
        lo, hi = m // 4, m - m // 4
        best: tuple[int, bool, int, float, int] | None = None
        for i in range(1, m):
            a, b = self.groups[items[i - 1]], self.groups[items[i]]
            depth = next((d for d, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            if depth is None:
                depth = min(len(a), len(b)) if a != b else 1 << 20
            key = (depth != 0, not lo <= i <= hi, depth, abs(i - m / 2), i)
            if best is None or key < best:
                best = key
        cut = best[-1] if best else m // 2
        return items[:cut], items[cut:]

    def label(self, items: Sequence[str]) -> str:
        if len(items) == 1:
            return items[0]
        groups = [self.groups[f] for f in items]
        common: list[str] = []
        for parts in zip(*groups, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        where = (
            common[0] + (" " + "/".join(common[1:]) + "/" if len(common) > 1 else "")
            if common
            else "mixed"
        )
        return f"{where} ({len(items)} factors)"

    def untry(self, items: Iterable[str], reason: str) -> None:
        for f in items:
            self.r.untried.append({"name": f, "reason": reason})


def _all_subsets(names: Sequence[str]) -> list[Subset]:
    return [
        frozenset(n for i, n in enumerate(names) if mask >> i & 1)
        for mask in range(1 << len(names))
    ]
