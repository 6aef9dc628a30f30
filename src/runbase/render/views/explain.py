"""The explanation of two runs (``runbase explain A B``, docs/explain.md) as the web UI's
explain page and ``runbase report A B`` show it: the saved report, re-shaped for
drawing — a waterfall from A's value to B's, the factor table with the hybrid runs
that measured each factor, noise, what could not be tested and what the search did.

    view = explanation(store, "0bq3k5x7", "0bq3k9aa", metric="acc")
    view["explained"]            # False: nothing saved yet (view["command"] says what to run)
    view["waterfall"]["steps"]   # [{label, name, kind, measure, value}, ...]

The saved report is a file in the store: nothing in it is trusted. It is validated
when read (``tracking.explain.saved``) and every value is read here by its type again,
so a hand-edited or damaged file is a message on the page (``problem``), never an
error page; strings are text (the pages insert them as text, never as markup).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable
from typing import Any

from runbase.capture.params import jsonable
from runbase.errors import RunbaseError
from runbase.records.read import load_runs, resolve
from runbase.store import Store

__all__ = ["KIND_SECTION", "WATERFALL_FACTORS", "explanation", "waterfall"]

# the section of the diff (docs/diff-format.md) where each kind of factor is shown
KIND_SECTION = {"param": "params", "code": "code", "data": "data", "env": "env", "command": "run"}
WATERFALL_FACTORS = 8  # drawn one bar each; the smaller effects fold into one "other" bar
MAX_ROWS = 2_000  # factors, hybrids ... shown from one report (the file is not trusted)
MAX_TEXT = 4_000  # characters of one description, reason or note


def explanation(store: Store, a: str, b: str, metric: str | None = None) -> dict[str, Any]:
    """The saved explanation of runs ``a`` → ``b`` (refs), for ``metric`` (None: the
    newest explained metric). ``{"explained": False, "a", "b", "metric", "command",
    "problem"}`` when none is saved (``problem`` null) or the saved one cannot be read
    (``problem``: why); else ``explained`` True and the keys of :func:`_shape`."""
    ida, idb = resolve(store, a), resolve(store, b)
    names = {r["id"]: r.get("name") for r in load_runs(store, [ida, idb])}
    head: dict[str, Any] = {
        "a": {"id": ida, "name": names.get(ida)},
        "b": {"id": idb, "name": names.get(idb)},
        "metric": metric,
        "command": shlex.join(
            ["runbase", "explain", ida, idb, *(["--metric", metric] if metric else [])]
        ),
    }
    # lazy: the orchestrator loads the executor, hybrids and env builder; every page
    # and `runbase report` load the views, and only this one reads a saved report
    from runbase.tracking.explain import saved

    try:
        report = saved(store, ida, idb, metric)
    except RunbaseError as e:  # a malformed or unreadable file: say so, on the page
        return {**head, "explained": False, "problem": str(e)}
    if report is None:
        return {**head, "explained": False, "problem": None}
    if _text(report.get("a")) != ida or _text(report.get("b")) != idb:
        return {
            **head,
            "explained": False,
            "problem": f"the saved explanation of {ida} → {idb} names other runs "
            f"({_text(report.get('a'))} → {_text(report.get('b'))}); run "
            f"`{head['command']}` again",
        }
    head["metric"] = _text(report.get("metric"))
    return jsonable({**head, "explained": True, "problem": None, **_shape(store, report, head)})


def _shape(store: Store, report: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """``{id, a_value, b_value, total, unexplained, measured, noise, waterfall, factors,
    interactions, untestable, untried, search, hybrids}``."""
    hybrids = _dict(report.get("hybrids"))
    runs = [_hybrid_run(r) for r in _dicts(hybrids.get("runs"))]
    known = {r["id"] for r in load_runs(store, [r["run"] for r in runs if r["run"]])}
    for r in runs:
        r["exists"] = r["run"] in known  # a hybrid deleted since (gc): no link to follow
    factors = [_factor(f) for f in _dicts(report.get("factors"))]
    _link_hybrids(factors, runs)
    measured = _dict(report.get("measured"))
    noise = _dict(report.get("noise"))
    a_value, b_value = _num(report.get("a_value")), _num(report.get("b_value"))
    measured_a, measured_b = _num(measured.get("a")), _num(measured.get("b"))
    out: dict[str, Any] = {
        "id": _text(report.get("id")),
        "a_value": a_value,
        "b_value": b_value,
        "total": _num(report.get("total")),
        "unexplained": _num(report.get("unexplained")),
        "measured": {"a": measured_a, "b": measured_b, "total": _num(measured.get("total"))},
        "noise": {
            "repeats": _num(noise.get("repeats")),
            "a": [_num(v) for v in _rows(noise.get("a"))],
            "b": [_num(v) for v in _rows(noise.get("b"))],
            "spread": _num(noise.get("spread")),
            "threshold": _num(noise.get("threshold")),
            "a_reproduces": _flag(noise.get("a_reproduces")),
            "b_reproduces": _flag(noise.get("b_reproduces")),
        },
        "factors": factors,
        "interactions": [
            {
                "factors": [_text(n) for n in _rows(i.get("factors"))],
                "effect": _num(i.get("effect")),
            }
            for i in _dicts(report.get("interactions"))
        ],
        "untestable": [
            {
                "kind": _text(u.get("kind")),
                "name": _text(u.get("name")),
                "reason": _text(u.get("reason")),
            }
            for u in _dicts(report.get("untestable"))
        ],
        "untried": [
            {"name": _text(u.get("name")), "reason": _text(u.get("reason"))}
            for u in _dicts(report.get("untried"))
        ],
        "search": _search(_dict(report.get("search"))),
        "hybrids": {
            **{k: _num(hybrids.get(k)) for k in ("run", "cached", "failed", "seconds")},
            "runs": runs,
        },
    }
    out["waterfall"] = waterfall(
        a_value,
        b_value,
        measured_a,
        measured_b,
        [(f["name"], f["effect"]) for f in factors],
        a_label=f"A {head['a']['name'] or head['a']['id']}",
        b_label=f"B {head['b']['name'] or head['b']['id']}",
    )
    return out


def _factor(f: dict[str, Any]) -> dict[str, Any]:
    kind = _text(f.get("kind"))
    return {
        "kind": kind,
        "name": _text(f.get("name")),
        "description": _text(f.get("description")),
        **{k: _num(f.get(k)) for k in ("effect", "effect_alone", "effect_removed", "share")},
        "significant": _flag(f.get("significant")),
        "breaks_run": _flag(f.get("breaks_run")),
        "section": KIND_SECTION.get(kind),
        "hybrids": [],
    }


def _hybrid_run(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": _text(r.get("run")),
        "role": _text(r.get("role")),
        "factors": [_text(n) for n in _rows(r.get("factors"))],
        "value": _num(r.get("value")),
        "status": _text(r.get("status")),
        "cached": _flag(r.get("cached")),
    }


def _link_hybrids(factors: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    """Each factor's hybrids: A with it alone (``alone``), and B without it
    (``removed``: every testable factor but it, as in the re-run of B)."""
    full = next((r["factors"] for r in runs if r["role"] == "b"), None)
    names = set(full) if full is not None else {f["name"] for f in factors}
    by_set: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in runs:
        by_set.setdefault(tuple(sorted(r["factors"])), []).append(r)
    for f in factors:
        alone = (f["name"],)
        removed = tuple(sorted(names - {f["name"]}))
        for how, key in (("alone", alone), ("removed", removed)):
            for r in by_set.get(key, []) if key else []:
                if r["role"] == "hybrid":
                    f["hybrids"].append(
                        {"how": how, **{k: r[k] for k in ("run", "value", "status", "exists")}}
                    )


def _search(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": _text(s.get("method")),
        "budget": _num(s.get("budget")),
        "used": _num(s.get("used")),
        "notes": [_text(n) for n in _rows(s.get("notes"))],
    }


def waterfall(
    a_value: float | None,
    b_value: float | None,
    measured_a: float | None,
    measured_b: float | None,
    effects: Iterable[tuple[str, float | None]],
    *,
    a_label: str = "A",
    b_label: str = "B",
    top: int = WATERFALL_FACTORS,
) -> dict[str, Any] | None:
    """The bars from A's value to B's: ``{"steps": [{label, name, kind, measure, value}],
    "low", "high"}`` (``measure`` as plotly's waterfall trace: absolute, relative,
    total; ``low``/``high`` the range the bars span), or None without finite values.

    A's recorded value, the shift to its re-run (when it does not reproduce), the
    ``top`` largest effects, the rest as one "other" bar, the part of the measured
    change the effects do not add up to ("unexplained"), the shift from B's re-run to
    its recorded value, B. Computed here so that the bars always close on B's value,
    whatever the file says.
    """
    start = a_value if _finite(a_value) else measured_a
    end = b_value if _finite(b_value) else measured_b
    if not (_finite(start) and _finite(end)):
        return None
    assert start is not None and end is not None  # for mypy: _finite checked both
    base = measured_a if _finite(measured_a) else start
    full = measured_b if _finite(measured_b) else end
    assert base is not None and full is not None
    tiny = 1e-12 * max(1.0, abs(start), abs(end))
    known = sorted(
        ((n, e) for n, e in effects if e is not None and _finite(e)), key=lambda x: -abs(x[1])
    )
    steps = [_step(a_label, "", "start", "absolute", start)]

    def shift(label: str, kind: str, value: float) -> None:
        if abs(value) > tiny:
            steps.append(_step(label, "", kind, "relative", value))

    shift("A re-run", "rerun", base - start)
    for name, effect in known[:top]:
        steps.append(_step(name, name, "factor", "relative", effect))
    rest = known[top:]
    if rest:
        steps.append(
            _step(f"{len(rest)} other factors", "", "other", "relative", sum(e for _, e in rest))
        )
    shift("unexplained", "unexplained", (full - base) - sum(e for _, e in known))
    shift("B as recorded", "rerun", end - full)
    steps.append(_step(b_label, "", "end", "total", end))
    _unique_labels(steps)
    level, path = 0.0, []
    for s in steps:
        level = s["value"] if s["measure"] != "relative" else level + s["value"]
        path.append(level)
    return {"steps": steps, "low": min(path), "high": max(path)}


def _step(label: str, name: str, kind: str, measure: str, value: float) -> dict[str, Any]:
    return {"label": label, "name": name, "kind": kind, "measure": measure, "value": value}


def _unique_labels(steps: list[dict[str, Any]]) -> None:
    """plotly merges bars of one category: a factor named like another bar stays apart."""
    seen: set[str] = set()
    for s in steps:
        label, n = s["label"], 1
        while label in seen:
            n += 1
            label = f"{s['label']} ({n})"
        seen.add(label)
        s["label"] = label


# -- reading the untrusted file by its types ---------------------------------------------


def _num(v: Any) -> float | None:
    """A number of the report (NaN/inf as the record's strings), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v)
    return None


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _text(v: Any) -> str:
    if v is None:
        return ""
    s = v if isinstance(v, str) else str(jsonable(v))
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _flag(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _rows(v: Any) -> list[Any]:
    return v[:MAX_ROWS] if isinstance(v, list) else []


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in _rows(v) if isinstance(x, dict)]
