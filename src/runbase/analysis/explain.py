"""``runbase explain A B``: the pure computation (docs/explain.md).

The differences between two runs become **factors** (:func:`find_factors`): params,
code files (or hunks), input files, package versions, the command. A **hybrid** is run
A with a chosen subset of the factors taken from B; :func:`plan_hybrid` says what to
materialize and run for one (the orchestrator, ``runbase.tracking.explain``, does it).
:func:`search` (from :mod:`runbase.analysis.explainsearch`) decides which hybrids to
run, and :func:`build_report` writes the ``--json`` document.

Everything is read from the store, and nothing read from it is trusted: paths come
from validated manifests, bytes are read back by their ids, and a data file whose
content cannot be compared only loses that part of its description.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import posixpath
import shlex
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from runbase.analysis.datadiff import content_diff, describe_content
from runbase.analysis.diff import (
    canonical_json,
    norm_name,
    only_params,
    package_changes,
    unpinnable,
)
from runbase.analysis.explainsearch import SearchResult, min_budget, search
from runbase.analysis.metrickinds import is_timing_metric
from runbase.capture.manifest import load_manifest
from runbase.capture.overrides import apply_to_argv
from runbase.capture.params import INTEGRATION_SOURCES, as_number, jsonable
from runbase.core.shapes import AnyJSON, Bool, Int, ListOf, Num, Obj, OneOf, Shape, Str
from runbase.errors import RunbaseError, ShapeError, UsageError
from runbase.store import Store

__all__ = [
    "EXPLAIN_VERSION",
    "KINDS",
    "TAG",
    "TAG_A",
    "TAG_B",
    "TAG_FACTORS",
    "TAG_KEY",
    "TAG_ROLE",
    "Factor",
    "HybridPlan",
    "SearchResult",
    "Untestable",
    "baseline",
    "build_report",
    "check_report",
    "choose_metric",
    "explain_id",
    "find_factors",
    "hybrid_key",
    "metric_value",
    "min_budget",
    "noise_summary",
    "plan_hybrid",
    "search",
]

EXPLAIN_VERSION = 1
KINDS = ("param", "code", "data", "env", "command")
TAG = "explain"
TAG_A = "explain.a"
TAG_B = "explain.b"
TAG_FACTORS = "explain.factors"
TAG_KEY = "explain.key"
TAG_ROLE = "explain.role"
ROLES = ("a", "b", "hybrid")
HUNK_CONTEXT = 3  # lines of context around a hunk, as `diff -u`
# never pinned into a rebuilt environment (as reproduce --env venv): the installer
# itself, and runbase (the bootstrap attaches any Python to the run without it)


@dataclass(frozen=True)
class Factor:
    kind: str  # one of KINDS
    name: str  # "params.lr" | "src/f.py" | "src/f.py:L12-L18" | "data/x.csv" | "numpy" | "command"
    description: str
    group: tuple[str, ...]  # for bisection: (kind, *directory parts)
    change: dict[str, Any]  # kind-specific, JSON-able (docs/explain.md)


@dataclass(frozen=True)
class Untestable:
    kind: str
    name: str
    reason: str


@dataclass
class HybridPlan:
    chosen: frozenset[str]
    command: list[str]  # A's recorded argv, or B's with the command factor chosen
    overrides: dict[str, Any]  # param key -> value (the `reproduce -p` mechanism)
    code: dict[str, dict[str, Any] | None]  # relpath -> manifest entry over A's tree; None: delete
    data: dict[str, dict[str, Any] | None]  # relpath -> {"type", "oid"} per file; None: delete
    pins: list[str] | None  # "name==version" for the whole env; None: the current env
    python_version: str | None


# -- identity -----------------------------------------------------------------------


def explain_id(a: str, b: str) -> str:
    """The explanation's id: the same pair always gets the same id (its hybrids are
    found again by it)."""
    return "x" + hashlib.sha256(f"{a}:{b}".encode()).hexdigest()[:11]


def hybrid_key(a: str, b: str, names: Iterable[str], env_mode: str, repeat: int = 0) -> str:
    """The cache key of a hybrid: the pair, the chosen factors, the environment (the
    env mode; with ``current``, which Python and packages) and the repeat (0..K-1 for
    the baselines). Not the metric: a hybrid measures them all."""
    text = json.dumps([a, b, sorted(names), env_mode, repeat])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the metric -----------------------------------------------------------------------


def metric_value(rec: dict[str, Any], metric: str) -> float | None:
    """The run's summary value of ``metric`` as a float (NaN and the infinities from
    the record's strings), None when absent or not a number."""
    m = (rec.get("metrics") or {}).get(metric)
    v = as_number(m.get("value")) if isinstance(m, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def choose_metric(ra: dict[str, Any], rb: dict[str, Any], metric: str | None) -> str:
    """``metric`` checked against both runs, or (None) the result metric both logged
    with the largest relative change. Timing and system metrics are never chosen."""
    ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
    if metric is not None:
        for rec, mine, other, side in ((ra, ma, mb, "A"), (rb, mb, ma, "B")):
            if metric not in mine and metric in other:
                raise UsageError(
                    f"metric {metric} is missing in run {side} ({rec.get('id')}; it logged: "
                    f"{_listed(mine)})"
                )
        if metric not in ma:
            raise UsageError(f"unknown metric {metric}: the runs logged {_listed(ma | mb)}")
        return metric
    common = sorted(k for k in ma.keys() & mb.keys() if not is_timing_metric(k))
    if not common:
        raise UsageError(
            "runs A and B log no result metric in common (A logged: "
            f"{_listed(ma)}; B logged: {_listed(mb)}); name one with --metric"
        )
    sizes = [(_change_size(metric_value(ra, k), metric_value(rb, k)), k) for k in common]
    moved = [(size, k) for size, k in sizes if size is not None]
    if not moved:
        raise UsageError(f"no metric differs between A and B (compared: {_listed(common)})")
    return min(moved, key=lambda t: (-t[0], t[1]))[1]


def _listed(keys: Iterable[str]) -> str:
    names = sorted(keys)
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return shown or "nothing"


def _change_size(old: float | None, new: float | None) -> float | None:
    """The relative size of a change (a change from 0 is infinitely large); None when
    the values are the same; -1 for a change between non-numbers or non-finite values
    (it counts, after every measurable one)."""
    if old is None and new is None:
        return None
    if old is not None and new is not None:
        if (math.isnan(old) and math.isnan(new)) or old == new:
            return None
        if math.isfinite(old) and math.isfinite(new):
            return abs(new - old) / abs(old) if old else math.inf
    return -1.0


# -- factors ----------------------------------------------------------------------------


def find_factors(
    store: Store,
    ra: dict[str, Any],
    rb: dict[str, Any],
    *,
    hunks: bool = False,
    env_mode: str = "current",
) -> tuple[list[Factor], list[Untestable]]:
    """The differences from run record ``ra`` to ``rb`` (``build_record(...,
    include_patch=False)``) as factors, and those that cannot be tested with the reason."""
    factors: list[Factor] = []
    untestable: list[Untestable] = []
    _param_factors(ra, rb, factors, untestable)
    inputs = _input_paths(ra, rb)
    _code_factors(store, ra, rb, hunks, inputs, factors, untestable)
    _data_factors(store, ra, rb, inputs, factors, untestable)
    _env_factors(ra, rb, env_mode, factors, untestable)
    _command_factor(ra, rb, factors)
    return _unique(factors), untestable


def _unique(factors: list[Factor]) -> list[Factor]:
    """Names are the search's keys: a package or the command named like a file at the
    project's root (``command``, ``numpy``) is called ``env:numpy``, ``command:command``."""
    files = {f.name for f in factors if f.kind in ("code", "data")}
    return [
        f
        if f.kind in ("code", "data") or f.name not in files
        else Factor(f.kind, f"{f.kind}:{f.name}", f.description, f.group, f.change)
        for f in factors
    ]


def _input_paths(ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, bool]:
    """The input paths of either run -> whether it is a directory."""
    out: dict[str, bool] = {}
    for rec in (ra, rb):
        for f in rec.get("inputs") or []:
            out[f["path"]] = out.get(f["path"], False) or bool(f.get("directory"))
    return out


def _covered(path: str, inputs: dict[str, bool], itself: bool) -> bool:
    """Whether ``path`` lies below an input directory (or, ``itself``, is an input):
    the workspace restores inputs over the code tree, so such a path is data, and a
    file below an input directory changes with that directory's factor."""
    if itself and path in inputs:
        return True
    parts = path.split("/")
    return any(inputs.get("/".join(parts[:i])) for i in range(1, len(parts)))


def _param_factors(
    ra: dict[str, Any], rb: dict[str, Any], out: list[Factor], untestable: list[Untestable]
) -> None:
    pa, pb = ra.get("params") or {}, rb.get("params") or {}
    for key in sorted(pa.keys() | pb.keys()):
        name = f"params.{key}"
        if key not in pb:
            untestable.append(
                Untestable(
                    "param", name, "B has no value for it: an override cannot unset a parameter"
                )
            )
            continue
        added = key not in pa
        if not added and canonical_json(pa[key]) == canonical_json(pb[key]):
            continue  # same value (perhaps from another source): not a change
        old = None if added else pa[key]
        text = (
            f"{name} = {_short(pb[key])} (added)"
            if added
            else (f"{name} {_short(old)} → {_short(pb[key])}")
        )
        why = _not_overridable(ra, rb, key)
        if why is not None:
            untestable.append(Untestable("param", name, why))
            continue
        change = {"key": key, "old": old, "new": pb[key], "added": added}
        out.append(Factor("param", name, text, ("param",), change))


def _not_overridable(ra: dict[str, Any], rb: dict[str, Any], key: str) -> str | None:
    """Why an override of ``key`` cannot reach the script, or None. Overrides reach the
    command-line parsers (argv rewritten, or their hooks) and ``runbase.param``; a value
    read from a config file or reported by a framework comes from elsewhere — the file
    or the code that sets it is a factor of its own when it changed."""
    for rec in (rb, ra):
        source = (rec.get("param_sources") or {}).get(key)
        if source == "config" or source in INTEGRATION_SOURCES:
            where = "a config file" if source == "config" else f"{source}'s own configuration"
            return (
                f"its value comes from {where}: an override cannot reach it (the file or "
                "code that sets it is a factor of its own when it changed)"
            )
    if (rb.get("param_sources") or {}).get(key) == "argv":
        _, rest = apply_to_argv(list(ra.get("command") or []), {key: rb["params"][key]})
        if key in rest:  # not an option of A's command line: nothing would read it
            return "it is read from the command line, where A's command has no such option"
    return None


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entries(store: Store, tree: str) -> dict[str, dict[str, Any]]:
    try:
        return {e["path"]: e for e in load_manifest(store, tree)}
    except (OSError, ValueError) as e:
        raise RunbaseError(f"cannot read the tree {tree}: {e} (see `runbase fsck`)") from None


def _code_factors(
    store: Store,
    ra: dict[str, Any],
    rb: dict[str, Any],
    hunks: bool,
    inputs: dict[str, bool],
    out: list[Factor],
    untestable: list[Untestable],
) -> None:
    ca, cb = ra.get("code") or {}, rb.get("code") or {}
    ta, tb = ca.get("tree"), cb.get("tree")
    if not ta or not tb:
        sides = [s for s, t in (("A", ta), ("B", tb)) if not t]
        who = "neither run has a" if len(sides) == 2 else f"run {sides[0]} has no"
        untestable.append(
            Untestable("code", "code", f"{who} code snapshot: code changes cannot be tested")
        )
        return
    if ta == tb:
        return
    skipped = {s.get("path") for c in (ca, cb) for s in c.get("skipped") or []}
    ea, eb = _entries(store, ta), _entries(store, tb)
    for path in sorted((ea.keys() | eb.keys()) - skipped):
        old, new = ea.get(path), eb.get(path)
        if old == new or _covered(path, inputs, itself=True):
            continue
        split = _hunk_factors(store, path, old, new) if hunks else None
        out.extend(split or [_file_factor(store, path, old, new)])


def _dir_group(kind: str, path: str) -> tuple[str, ...]:
    return (kind, *[p for p in posixpath.dirname(path).split("/") if p])


def _file_factor(
    store: Store, path: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> Factor:
    return Factor(
        "code",
        path,
        f"{path} {_code_change(store, old, new)}",
        _dir_group("code", path),
        {"path": path, "old": old, "new": new},
    )


def _code_change(store: Store, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    ta, tb = _lines(store, old), _lines(store, new)
    if old and new and old.get("type") != new.get("type"):
        mode = f"type {old.get('type')} → {new.get('type')}"
        return mode if old.get("oid") == new.get("oid") else f"{mode}, content changed"
    if ta is None or tb is None:
        if old is None or new is None:
            return "added (binary)" if old is None else "removed (binary)"
        return f"binary, {old.get('size', '?')} → {new.get('size', '?')} bytes"
    plus, minus = _counts(ta, tb)
    state = "added " if old is None else "removed " if new is None else ""
    return f"{state}+{plus} −{minus}"


def _counts(a: list[str], b: list[str]) -> tuple[int, int]:
    plus = minus = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            minus += i2 - i1
            plus += j2 - j1
    return plus, minus


def _lines(store: Store, entry: dict[str, Any] | None) -> list[str] | None:
    """The entry's lines (kept ends); [] when absent; None for binary or a symlink."""
    if entry is None:
        return []
    if entry.get("type") not in ("f", "x"):
        return None
    try:
        data = store.objects.get_bytes(entry["oid"])
    except OSError as e:
        raise RunbaseError(f"cannot read {entry['path']} ({entry['oid']}): {e}") from None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _hunks(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """The hunks from ``a`` to ``b`` as ``(i1, i2, j1, j2)``: A's lines i1:i2 become B's
    lines j1:j2 (context included, as `diff -u` groups them; they never overlap)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [
        (g[0][1], g[-1][2], g[0][3], g[-1][4]) for g in matcher.get_grouped_opcodes(HUNK_CONTEXT)
    ]


def _hunk_factors(
    store: Store, path: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[Factor] | None:
    """One factor per hunk of a text file changed in place; None when the change is
    not hunks (added, removed, binary, symlink, type change): a whole-file factor."""
    if old is None or new is None or old.get("type") != new.get("type"):
        return None
    ta, tb = _lines(store, old), _lines(store, new)
    if ta is None or tb is None:
        return None
    found = _hunks(ta, tb)
    if len(found) < 2:
        return None  # one hunk is the whole file's change
    group = (*_dir_group("code", path), posixpath.basename(path))
    out = []
    for i, (i1, i2, j1, j2) in enumerate(found):
        plus, minus = _counts(ta[i1:i2], tb[j1:j2])
        name = f"{path}:L{i1 + 1}-L{max(i2, i1 + 1)}"
        change = {"path": path, "hunk": i, "hunks": len(found), "old": old, "new": new}
        out.append(Factor("code", name, f"{name} +{plus} −{minus}", group, change))
    return out


def _side(f: dict[str, Any] | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "oid": f.get("hash"),
        "kind": "dir" if f.get("directory") else "file",
        "size": f.get("size"),
    }


def _data_factors(
    store: Store,
    ra: dict[str, Any],
    rb: dict[str, Any],
    inputs: dict[str, bool],
    out: list[Factor],
    untestable: list[Untestable],
) -> None:
    ia = {f["path"]: f for f in ra.get("inputs") or []}
    ib = {f["path"]: f for f in rb.get("inputs") or []}
    for path in sorted(ia.keys() | ib.keys()):
        fa, fb = ia.get(path), ib.get(path)
        same = fa is not None and fb is not None and fa.get("hash") == fb.get("hash")
        if same or _covered(path, inputs, itself=False):
            continue
        why = _not_restorable(store, fa, "A") or _not_restorable(store, fb, "B")
        if why:
            untestable.append(Untestable("data", path, why))
            continue
        old, new = _side(fa), _side(fb)
        out.append(
            Factor(
                "data",
                path,
                _data_description(store, path, old, new),
                _dir_group("data", path),
                {"path": path, "old": old, "new": new},
            )
        )


def _not_restorable(store: Store, f: dict[str, Any] | None, side: str) -> str | None:
    """Why run ``side``'s version of an input cannot be restored (as records.checkout
    words it), or None."""
    if f is None:
        return None
    oid = f.get("hash")
    if f.get("url"):
        why = "remote data is recorded, not stored"
    elif str(f.get("path", "")).startswith("/"):
        why = "outside the project"
    elif oid and not f.get("stored"):
        why = "hashed only (not stored)"
    elif not isinstance(oid, str) or not store.objects.exists(oid):
        why = "not in the store"
    else:
        return None
    return f"run {side}'s version: {why}"


def _data_description(
    store: Store, path: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> str:
    if old is None or new is None:
        side = new if old is None else old
        text = f"{path} {'added' if old is None else 'removed'} ({_size(side)})"
    else:
        text = f"{path} {_hash(old)} → {_hash(new)}"
    try:
        content = content_diff(store, path, old, new)
        inside = describe_content(content) if content else None
    except Exception:  # unexpected bytes only lose the "rows differ" part, never the factor
        inside = None
    return f"{text}, {inside}" if inside else text


def _hash(side: dict[str, Any]) -> str:
    oid = str(side.get("oid") or "")
    return oid.split(":", 1)[-1][:6] + "…"


def _size(side: dict[str, Any] | None) -> str:
    size = (side or {}).get("size")
    return f"{size:,} bytes" if isinstance(size, int) else "size unknown"


def _env_factors(
    ra: dict[str, Any],
    rb: dict[str, Any],
    env_mode: str,
    out: list[Factor],
    untestable: list[Untestable],
) -> None:
    ea, eb = ra.get("env") or {}, rb.get("env") or {}
    va = (ea.get("python") or {}).get("version")
    vb = (eb.get("python") or {}).get("version")
    if va and vb and va != vb:
        untestable.append(
            Untestable(
                "env", "python", f"the Python version is not changed by explain: {va} → {vb}"
            )
        )
    pa = {norm_name(p["name"]): p for p in ea.get("packages") or []}
    pb = {norm_name(p["name"]): p for p in eb.get("packages") or []}
    changes = package_changes(list(pa.values()), list(pb.values()))
    items = [(c["name"], None, c["version"]) for c in changes["added"]]
    items += [(c["name"], c["version"], None) for c in changes["removed"]]
    items += [
        (c["name"], c["old"], c["new"])
        for k in ("upgraded", "downgraded", "changed")
        for c in changes[k]
    ]
    for name, old, new in sorted(items, key=lambda t: norm_name(t[0])):
        recorded = [p for p in (pa.get(norm_name(name)), pb.get(norm_name(name))) if p is not None]
        why = next((w for p in recorded if (w := unpinnable(p))), None)
        if why is None and env_mode != "venv":
            why = "package versions are tested only with --env venv"
        if why is not None:
            untestable.append(Untestable("env", name, why))
            continue
        text = (
            f"{name} {old} → {new}"
            if old and new
            else f"{name} {new} added"
            if new
            else f"{name} {old} removed"
        )
        change = {"name": name, "old": old, "new": new}
        out.append(Factor("env", name, text, ("env",), change))


def _command_factor(ra: dict[str, Any], rb: dict[str, Any], out: list[Factor]) -> None:
    old, new = list(ra.get("command") or []), list(rb.get("command") or [])
    if old == new or not new or only_params(ra, rb):
        return
    text = f"{shlex.join(old) or '(none)'} → {shlex.join(new)}"
    out.append(Factor("command", "command", text, ("command",), {"old": old, "new": new}))


# -- hybrid plans ---------------------------------------------------------------------------


def plan_hybrid(
    store: Store,
    ra: dict[str, Any],
    rb: dict[str, Any],
    factors: list[Factor],
    chosen: Collection[str],
) -> HybridPlan:
    """What hybrid ``chosen`` is: A's recorded state with the chosen factors from B."""
    by_name = {f.name: f for f in factors}
    unknown = sorted(set(chosen) - by_name.keys())
    if unknown:
        raise UsageError(f"unknown factor(s): {', '.join(unknown)}")
    picked = [by_name[n] for n in sorted(set(chosen))]
    kinds = {k: [f for f in picked if f.kind == k] for k in KINDS}
    with_command = bool(kinds["command"])
    overrides = {f.change["key"]: f.change["new"] for f in kinds["param"]}
    if with_command:  # B's argv carries B's values: A's back for the params not chosen
        for f in factors:
            if f.kind == "param" and f.name not in chosen and not f.change["added"]:
                overrides[f.change["key"]] = f.change["old"]
    pins, python = _pins(ra, [f for f in factors if f.kind == "env"], kinds["env"])
    return HybridPlan(
        chosen=frozenset(chosen),
        command=list((rb if with_command else ra).get("command") or []),
        overrides=overrides,
        code=_code_overlay(store, kinds["code"]),
        data=_data_overlay(store, kinds["data"]),
        pins=pins,
        python_version=python,
    )


def _code_overlay(store: Store, picked: list[Factor]) -> dict[str, dict[str, Any] | None]:
    overlay: dict[str, dict[str, Any] | None] = {}
    by_file: dict[str, list[int]] = {}
    for f in picked:
        if "hunk" in f.change:
            by_file.setdefault(f.change["path"], []).append(f.change["hunk"])
        else:
            overlay[f.change["path"]] = f.change["new"]
    for f in picked:
        path = f.change["path"]
        if "hunk" in f.change and path not in overlay:
            overlay[path] = _mixed(store, f.change, sorted(set(by_file[path])))
    return overlay


def _mixed(store: Store, change: dict[str, Any], chosen: list[int]) -> dict[str, Any]:
    """A's file with the chosen hunks of B's applied (each replaces its own A lines),
    stored so the overlay has an object id like any other entry."""
    old, new = change["old"], change["new"]
    if len(chosen) == change["hunks"]:
        return dict(new)  # every hunk: B's file
    ta, tb = _lines(store, old), _lines(store, new)
    found = _hunks(ta or [], tb or []) if ta is not None and tb is not None else []
    if len(found) != change["hunks"]:
        raise RunbaseError(f"the hunks of {change['path']} do not match its stored versions")
    text = list(ta or [])
    for i in sorted(chosen, reverse=True):  # from the end: earlier line numbers stay valid
        i1, i2, j1, j2 = found[i]
        text[i1:i2] = (tb or [])[j1:j2]
    data = "".join(text).encode("utf-8")
    oid = store.objects.put_bytes(data)
    return {"path": old["path"], "type": old["type"], "oid": oid, "size": len(data)}


def _data_overlay(store: Store, picked: list[Factor]) -> dict[str, dict[str, Any] | None]:
    """Per-file entries: directories expanded from their manifests; what A has and B's
    version lacks is deleted (None entries come first, so a file may replace a
    directory and the other way round)."""
    deletes: dict[str, dict[str, Any] | None] = {}
    writes: dict[str, dict[str, Any] | None] = {}
    for f in picked:
        path, old, new = f.change["path"], f.change["old"], f.change["new"]
        gone = set(_files_of(store, path, old)) - set(_files_of(store, path, new))
        deletes.update((p, None) for p in sorted(gone))
        writes.update(_files_of(store, path, new))
    for p in writes:
        deletes.pop(p, None)
    return {**deletes, **writes}


def _files_of(
    store: Store, path: str, side: dict[str, Any] | None
) -> dict[str, dict[str, Any] | None]:
    if side is None:
        return {}
    if side.get("kind") != "dir":
        return {path: {"type": "f", "oid": side["oid"]}}
    return {
        f"{path}/{e['path']}": {k: v for k, v in e.items() if k != "path"}
        for e in _entries(store, side["oid"]).values()
    }


def _pins(
    ra: dict[str, Any], env_factors: list[Factor], chosen: list[Factor]
) -> tuple[list[str] | None, str | None]:
    """A's pinned packages with the chosen ones at B's version (removed when B lacks
    them); None when no package factor is tested (the current environment)."""
    if not env_factors:
        return None, None
    env = ra.get("env") or {}
    versions = {
        norm_name(p["name"]): (p["name"], p["version"])
        for p in env.get("packages") or []
        if unpinnable(p) is None
    }
    for f in chosen:
        key = norm_name(f.change["name"])
        if f.change["new"] is None:
            versions.pop(key, None)
        else:
            versions[key] = (f.change["name"], f.change["new"])
    pins = sorted(f"{name}=={version}" for name, version in versions.values())
    return pins, (env.get("python") or {}).get("version")


# -- noise and the report -----------------------------------------------------------------


def baseline(runs: list[float | None]) -> float | None:
    """The mean of the finite values of repeated runs (None when there is none): what
    the search takes as ``v(∅)`` from A's re-runs and ``v(F)`` from B's."""
    ok = [v for v in runs if v is not None and math.isfinite(v)]
    return sum(ok) / len(ok) if ok else None


def noise_summary(
    a_value: float | None,
    b_value: float | None,
    a_runs: list[float | None],
    b_runs: list[float | None],
) -> dict[str, Any]:
    """The run-to-run spread of A's and B's re-runs, the threshold below which an
    effect is not significant (the spread, at least the rounding of the values), and
    whether every re-run gave its run's recorded value (up to rounding)."""
    spreads = []
    for recorded, runs in ((a_value, a_runs), (b_value, b_runs)):
        ok = [v for v in runs if v is not None and math.isfinite(v)]
        if len(runs) == 1 and recorded is not None and math.isfinite(recorded):
            # one re-run measures no spread: the recorded value is the only other
            # sample (a deterministic run gives it again: 0; a nondeterministic one
            # its variation, or the drift of its environment — either way an effect
            # that small cannot be told from it)
            ok.append(recorded)
        spreads.append(max(ok) - min(ok) if len(ok) > 1 else 0.0)
    spread = max(spreads)
    scale = max([abs(v) for v in (a_value, b_value) if v is not None and math.isfinite(v)] or [1.0])
    rounding = 1e-9 * max(scale, 1.0)  # below it: the arithmetic, not the metric
    return {
        "repeats": max(len(a_runs), len(b_runs)),
        "a": list(a_runs),
        "b": list(b_runs),
        "spread": spread,
        "threshold": max(spread, rounding),
        # as `runbase reproduce` judges by default: the recorded value again, exactly
        # (up to rounding); a nondeterministic run does not reproduce, whatever its spread
        "a_reproduces": _reproduces(a_value, a_runs, rounding),
        "b_reproduces": _reproduces(b_value, b_runs, rounding),
    }


def _reproduces(recorded: float | None, runs: list[float | None], threshold: float) -> bool:
    if recorded is None or not runs:
        return False
    for v in runs:
        if v is None:
            return False
        same = (math.isnan(v) and math.isnan(recorded)) or v == recorded
        if not same and not abs(v - recorded) <= threshold:
            return False
    return True


def build_report(
    *,
    a: str,
    b: str,
    metric: str,
    a_value: float | None,
    b_value: float | None,
    noise: dict[str, Any],
    factors: list[Factor],
    untestable: list[Untestable],
    result: SearchResult,
    hybrids: dict[str, Any],
    budget: int | None = None,
) -> dict[str, Any]:
    """The ``--json`` document (docs/explain.md) from the parts of one explanation."""
    base, full = baseline(noise["a"]), baseline(noise["b"])
    measured_total = full - base if base is not None and full is not None else None
    threshold = noise["threshold"]
    rows = [
        _factor_row(f, result, measured_total, threshold)
        for f in factors
        if f.name in result.effect
    ]
    rows.sort(key=lambda r: (r["effect"] is None, -abs(r["effect"] or 0.0), r["name"]))
    explained = sum(r["effect"] for r in rows if r["effect"] is not None)
    doc = {
        "explain_version": EXPLAIN_VERSION,
        "id": explain_id(a, b),
        "a": a,
        "b": b,
        "metric": metric,
        "a_value": a_value,
        "b_value": b_value,
        "total": _minus(b_value, a_value),
        "measured": {"a": base, "b": full, "total": measured_total},
        "noise": noise,
        "factors": rows,
        "interactions": [dict(i) for i in result.interactions],
        "untestable": [{"kind": u.kind, "name": u.name, "reason": u.reason} for u in untestable],
        "untried": [dict(u) for u in result.untried],
        "search": {
            "method": result.method,
            "budget": result.budget if budget is None else budget,
            "used": result.used,
            "notes": list(result.notes),
        },
        "hybrids": hybrids,
        "unexplained": None if measured_total is None else measured_total - explained,
    }
    return jsonable(doc)


def _minus(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else x - y


def _factor_row(
    f: Factor, result: SearchResult, total: float | None, threshold: float
) -> dict[str, Any]:
    effect = result.effect.get(f.name)
    share = effect / total * 100 if effect is not None and total and math.isfinite(total) else None
    return {
        "kind": f.kind,
        "name": f.name,
        "description": f.description,
        "effect": effect,
        "effect_alone": result.effect_alone.get(f.name),
        "effect_removed": result.effect_removed.get(f.name),
        "share": share,
        "significant": effect is not None and abs(effect) > threshold,
        "breaks_run": bool(result.breaks_run.get(f.name)),
    }


class _Value(Shape):
    """A number of the report: finite, or "NaN"/"Infinity"/"-Infinity" (strict JSON)."""

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or value in ("NaN", "Infinity", "-Infinity"):
            return value
        if type(value) in (int, float) and math.isfinite(value):
            return value
        return self.misfit(where, "must be a number, NaN or ±Infinity", strict)


_NUM, _TEXT, _NAMES = _Value(), Str(), ListOf(Str())
_COUNT = Int(0)
REPORT = Obj(
    {
        "explain_version": OneOf(EXPLAIN_VERSION),
        "id": Str(16),
        "a": Str(256),
        "b": Str(256),
        "metric": Str(4096),
        "a_value": _NUM,
        "b_value": _NUM,
        "total": _NUM,
        "measured": Obj({"a": _NUM, "b": _NUM, "total": _NUM}),
        "noise": Obj(
            {
                "repeats": _COUNT,
                "a": ListOf(_NUM),
                "b": ListOf(_NUM),
                "spread": _NUM,
                "threshold": _NUM,
                "a_reproduces": Bool(),
                "b_reproduces": Bool(),
            },
            ("repeats", "threshold"),
        ),
        "factors": ListOf(
            Obj(
                {
                    "kind": OneOf(*KINDS),
                    "name": _TEXT,
                    "description": _TEXT,
                    "effect": _NUM,
                    "effect_alone": _NUM,
                    "effect_removed": _NUM,
                    "share": _NUM,
                    "significant": Bool(),
                    "breaks_run": Bool(),
                },
                ("kind", "name", "significant"),
            )
        ),
        "interactions": ListOf(Obj({"factors": _NAMES, "effect": _NUM}, ("factors",))),
        "untestable": ListOf(Obj({"kind": _TEXT, "name": _TEXT, "reason": _TEXT}, ("name",))),
        "untried": ListOf(Obj({"name": _TEXT, "reason": _TEXT}, ("name",))),
        "search": Obj(
            {"method": _TEXT, "budget": _COUNT, "used": _COUNT, "notes": _NAMES},
            ("method",),
        ),
        "hybrids": Obj(
            {
                "run": _COUNT,
                "cached": _COUNT,
                "failed": _COUNT,
                "seconds": Num(0),
                "runs": ListOf(
                    Obj(
                        {
                            "run": _TEXT,
                            "role": OneOf(*ROLES),
                            "factors": _NAMES,
                            "value": _NUM,
                            "status": _TEXT,
                            "cached": Bool(),
                        }
                    )
                ),
            }
        ),
        "unexplained": _NUM,
    },
    ("explain_version", "id", "a", "b", "metric", "noise", "factors", "search", "hybrids"),
    others=AnyJSON(),
)


def check_report(doc: Any) -> dict[str, Any]:
    """A report read back from disk, validated (types, keys); ShapeError (a ValueError)
    names the first field that is not as documented."""
    try:
        REPORT.check(doc, "report")
    except ShapeError:
        raise
    except (TypeError, ValueError, RecursionError) as e:  # what the shapes did not expect
        raise ShapeError("report", str(e)) from None
    return dict(doc)
