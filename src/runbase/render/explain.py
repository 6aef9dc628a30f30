"""``runbase explain`` as text: the report :mod:`runbase.tracking.explain` makes
(docs/explain.md), in the order a reader needs it: whether the runs reproduce at all,
the total change, the factors that made it (largest effect first), what interacts,
what could not be tested, what the search did and left out, and what it cost."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import click

from runbase.capture.params import as_number
from runbase.core.text import printable

_Paint = Callable[..., str]
_MAX_SHOWN_RUNS = 6  # repeats listed in the noise line before "..."
_MAX_FAILED_SHOWN = 5  # hybrids that did not finish, named with the command to see why


def render(report: dict[str, Any], color: bool = False) -> str:
    """The report as text; ``color``: styled for a terminal."""

    def paint(text: str, **style: Any) -> str:
        return click.style(text, **style) if color else text

    metric = str(report["metric"])
    lines = _not_reproducing(report, metric, paint)
    lines += _total(report, metric, paint)
    lines += _noise(report.get("noise") or {})
    for section in (_factors, _interactions, _untestable, _search, _hybrids):
        part = section(report, paint)
        if part:
            lines += ["", *part]
    return "\n".join(lines)


def report_number(v: Any) -> float | None:
    """A value of a report as a float: the JSON form writes NaN/inf as strings."""
    v = as_number(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _val(v: Any) -> str:
    x = report_number(v)
    if x is None:
        return "(none)"
    return f"{x:.6g}" if math.isfinite(x) else non_finite(x)


def signed(v: Any, missing: str = "—") -> str:
    """A change as ``+0.0123`` (four significant digits), ``missing`` when there is none."""
    x = report_number(v)
    if x is None:
        return missing
    return f"{x:+.4g}" if math.isfinite(x) else non_finite(x)


def non_finite(x: float) -> str:
    return "NaN" if math.isnan(x) else ("+inf" if x > 0 else "-inf")


def _who(run: Any) -> str:
    return str(run)[:10]


def _not_reproducing(report: dict[str, Any], metric: str, paint: _Paint) -> list[str]:
    """First of all: a run that does not give its own recorded value again. Every
    effect below is measured on the re-runs, so the reader must know they differ."""
    noise = report.get("noise") or {}
    lines = []
    for side in ("a", "b"):
        if noise.get(f"{side}_reproduces", True):
            continue
        runs = noise.get(side) or []
        again = ", ".join(_val(v) for v in runs[:_MAX_SHOWN_RUNS]) or "(none)"
        label = f"{side.upper()} ({_who(report[side])})"
        lines.append(
            paint(
                f"{label} does not reproduce its recorded {metric}: recorded "
                f"{_val(report.get(f'{side}_value'))}, re-run{'s' if len(runs) != 1 else ''} "
                f"gave {again}",
                fg="yellow",
                bold=True,
            )
        )
    if lines:
        lines += ["  (the effects below are measured on the re-runs, not the recorded values)", ""]
    return lines


def _total(report: dict[str, Any], metric: str, paint: _Paint) -> list[str]:
    head = (
        f"explain {metric}: {_val(report.get('a_value'))} → {_val(report.get('b_value'))} "
        f"({signed(report.get('total'))}) from A {_who(report['a'])} to B {_who(report['b'])}"
    )
    lines = [paint(head, bold=True)]
    measured = report.get("measured") or {}
    if report_number(measured.get("total")) is not None and _differs(
        measured.get("total"), report.get("total")
    ):
        lines.append(
            f"  measured on the re-runs: {_val(measured.get('a'))} → {_val(measured.get('b'))} "
            f"({signed(measured.get('total'))})"
        )
    return lines


def _differs(x: Any, y: Any) -> bool:
    a, b = report_number(x), report_number(y)
    if a is None or b is None:
        return a is not b
    return not (a == b or (math.isnan(a) and math.isnan(b)))


def _noise(noise: dict[str, Any]) -> list[str]:
    line = noise_line(noise, _val, "--repeats K")
    return [f"  {line}"] if line else []


def noise_line(noise: dict[str, Any], value: Callable[[Any], str], flag: str) -> str:
    """What the repeats of A and B say of the metric's noise, one line ("" when A and B
    were not re-run); ``value`` formats the spread, ``flag`` is how the option is shown."""
    repeats = noise.get("repeats")
    spread = report_number(noise.get("spread"))
    threshold = report_number(noise.get("threshold"))
    if not repeats:
        return ""
    if repeats == 1 and not spread:
        line = f"noise: A and B each re-run once ({flag} measures the spread)"
    elif not spread:
        line = f"noise: A and B each re-run {repeats}×, the same value each time"
    else:
        line = f"noise: A and B each re-run {repeats}×, spread {value(spread)}"
    if threshold is not None and math.isfinite(threshold):
        line += f"; effects within ±{threshold:.3g} are not significant"
    return line


def _factors(report: dict[str, Any], paint: _Paint) -> list[str]:
    factors = report.get("factors") or []
    if not factors:
        return ["no factor could be tested"]
    width = max(len(printable(f.get("kind", ""))) for f in factors)
    lines = [
        paint("factors, largest effect first:", bold=True),
        f"  #     effect   share  {'kind':<{width}}  change",
    ]
    indent = " " * (26 + width)  # under the change
    for i, f in enumerate(factors, 1):
        share = report_number(f.get("share"))
        share_text = "      " if share is None or not math.isfinite(share) else f"{share:5.1f}%"
        head = (
            f"{i:3d}  {signed(f.get('effect')):>9}  {share_text}  "
            f"{printable(f.get('kind', '')):<{width}}  {printable(f.get('description') or f.get('name'))}"
        )
        if f.get("breaks_run"):
            lines.append(paint(head, fg="red"))
        elif f.get("significant"):
            lines.append(paint(head, bold=True))
        else:
            lines.append(paint(head, dim=True))
        lines.append(indent + _factor_detail(f))
    return lines


def _factor_detail(f: dict[str, Any]) -> str:
    parts = [
        f"alone {signed(f.get('effect_alone'))}",
        f"removed from B {signed(f.get('effect_removed'))}",
    ]
    if f.get("breaks_run"):
        parts.append("breaks the run (a hybrid with it crashed or did not log the metric)")
    elif not f.get("significant"):
        parts.append("not significant")
    return ", ".join(parts)


def _interactions(report: dict[str, Any], paint: _Paint) -> list[str]:
    found = report.get("interactions") or []
    if not found:
        return []
    lines = [paint("interactions (together they move it beyond their effects alone):", bold=True)]
    for item in found:
        names = " + ".join(printable(n) for n in item.get("factors") or [])
        lines.append(f"  {names}: {signed(item.get('effect'))}")
    return lines


def _untestable(report: dict[str, Any], paint: _Paint) -> list[str]:
    items = report.get("untestable") or []
    if not items:
        return []
    lines = [paint("not tested:", bold=True)]
    width = max(len(printable(u.get("kind", ""))) for u in items)
    for u in items:
        kind, name, reason = (printable(u.get(k, "")) for k in ("kind", "name", "reason"))
        lines.append(f"  {kind:<{width}}  {name}: {reason}")
    return lines


def _search(report: dict[str, Any], paint: _Paint) -> list[str]:
    search = report.get("search") or {}
    if not search:
        return []
    lines = [
        paint("search: ", bold=True)
        + f"{printable(search.get('method'))}, {search.get('used')} of a budget of "
        f"{search.get('budget')} hybrids"
    ]
    lines += [f"  {printable(note)}" for note in search.get("notes") or []]
    for item in report.get("untried") or []:
        lines.append(f"  not tried: {printable(item.get('name'))}: {printable(item.get('reason'))}")
    unexplained = report_number(report.get("unexplained"))
    threshold = report_number((report.get("noise") or {}).get("threshold")) or 0.0
    if unexplained is not None and not abs(unexplained) <= threshold:  # NaN: shown
        lines.append(f"  unexplained by the factors above: {unexplained:+.4g}")
    return lines


def _hybrids(report: dict[str, Any], paint: _Paint) -> list[str]:
    h = report.get("hybrids") or {}
    if not h:
        return []
    seconds = report_number(h.get("seconds"))
    line = f"hybrids: {h.get('run', 0)} run, {h.get('cached', 0)} cached"
    if h.get("failed"):
        line += ", " + paint(f"{h['failed']} failed", fg="red")
    if seconds is not None:
        line += f", {seconds:.1f} s"
    lines = [line]
    failed = [r for r in h.get("runs") or [] if r.get("status") != "finished"]
    for r in failed[:_MAX_FAILED_SHOWN]:
        run = printable(r.get("run"))
        what = {"a": "re-run of A", "b": "re-run of B"}.get(str(r.get("role")))
        what = what or " + ".join(printable(n) for n in r.get("factors") or [])
        lines.append(f"  {printable(r.get('status'))}: {what} - runbase logs {run[:10]}")
    if len(failed) > _MAX_FAILED_SHOWN:
        lines.append(f"  ... {len(failed) - _MAX_FAILED_SHOWN} more did not finish")
    if report.get("id"):
        where = f"tags.explain == {printable(json.dumps(str(report['id'])))}"
        lines.append(f"  runbase ls --all --where '{where}' lists them")
    return lines
