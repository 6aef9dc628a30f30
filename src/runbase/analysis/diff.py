"""``runbase diff``: what differs between two runs, section by section (computation).

:func:`diff_runs` and :func:`diff_head` return the documented JSON structure
(docs/diff-format.md); :func:`runbase.render.diff.render` turns it into text. Everything
is read from the store: the code comes from the two stored source trees, not from the
work tree, so a diff stays exact after the files on disk moved on.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from runbase.analysis.datadiff import content_diff, describe_content
from runbase.capture.manifest import load_manifest
from runbase.capture.overrides import apply_to_argv
from runbase.capture.params import as_number
from runbase.capture.sysmetrics import is_system_metric
from runbase.errors import RunbaseError, UsageError
from runbase.records.read import resolve
from runbase.records.record import build_record
from runbase.store import Store

DIFF_VERSION = 1
# the order of the report; "run" (command and exit status) has no CLI flag of its own
SECTIONS = ("params", "metrics", "code", "data", "env", "run")
BINARY_SNIFF = 8192  # like git: a NUL byte near the start means binary


def diff_runs(
    store: Store, a: str, b: str, sections: Iterable[str] | None = None
) -> dict[str, Any]:
    """What differs from run ``a`` to run ``b`` (refs: id, unique prefix or name).
    ``sections`` picks among :data:`SECTIONS`; None means all."""
    chosen = _sections(sections)
    ra, rb = (build_record(store, resolve(store, ref), include_patch=False) for ref in (a, b))
    report: dict[str, Any] = {"diff_version": DIFF_VERSION, "a": _header(ra), "b": _header(rb)}
    for name in chosen:
        report[name] = _SECTION_DIFFS[name](store, ra, rb)
    return report


def diff_head(store: Store, a: str) -> dict[str, Any]:
    """Run ``a``'s code against its git commit: the stored patch, i.e. the uncommitted
    change that actually ran."""
    rec = build_record(store, resolve(store, a), include_patch=True)
    code = rec["code"]
    head = None
    if code is not None:
        keys = ("kind", "commit", "branch", "dirty", "patch", "patch_id", "patch_bytes")
        head = {k: code.get(k) for k in keys}
    return {"diff_version": DIFF_VERSION, "a": _header(rec), "b": None, "head": head}


def _sections(sections: Iterable[str] | None) -> list[str]:
    if sections is None:
        return list(SECTIONS)
    wanted = set(sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise UsageError(f"unknown diff section(s) {sorted(unknown)}; choose from {SECTIONS}")
    return [s for s in SECTIONS if s in wanted] or list(SECTIONS)


def _header(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec[k] for k in ("id", "name", "status", "started_at")}


def canonical_json(v: Any) -> str:
    """Compare JSON values exactly: in Python ``1 == 1.0 == True``."""
    return json.dumps(v, sort_keys=True)


def _change(old: Any, new: Any) -> dict[str, Any] | None:
    return None if canonical_json(old) == canonical_json(new) else {"old": old, "new": new}


# -- params ------------------------------------------------------------------------


def _params(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    pa, pb = ra["params"], rb["params"]
    sa, sb = ra["param_sources"], rb["param_sources"]
    added = [{"key": k, "value": pb[k], "source": sb.get(k)} for k in sorted(pb.keys() - pa.keys())]
    removed = [
        {"key": k, "value": pa[k], "source": sa.get(k)} for k in sorted(pa.keys() - pb.keys())
    ]
    changed = [
        {"key": k, "old": pa[k], "new": pb[k], "old_source": sa.get(k), "new_source": sb.get(k)}
        for k in sorted(pa.keys() & pb.keys())
        if canonical_json(pa[k]) != canonical_json(pb[k]) or sa.get(k) != sb.get(k)
    ]
    unchanged = not (added or removed or changed)
    return {"unchanged": unchanged, "added": added, "removed": removed, "changed": changed}


# -- metrics -----------------------------------------------------------------------


def _metrics(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    # system metrics (sys/*) describe the machine's load, not the result: left out
    ma = {k: as_number(m["value"]) for k, m in ra["metrics"].items() if not is_system_metric(k)}
    mb = {k: as_number(m["value"]) for k, m in rb["metrics"].items() if not is_system_metric(k)}
    added = [{"key": k, "value": mb[k]} for k in sorted(mb.keys() - ma.keys())]
    removed = [{"key": k, "value": ma[k]} for k in sorted(ma.keys() - mb.keys())]
    changed = [
        _delta(k, ma[k], mb[k]) for k in ma.keys() & mb.keys() if not _same_number(ma[k], mb[k])
    ]
    changed.sort(key=_change_size)
    unchanged = not (added or removed or changed)
    return {"unchanged": unchanged, "added": added, "removed": removed, "changed": changed}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _same_number(x: Any, y: Any) -> bool:
    both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    return both_nan or x == y


def _delta(key: str, old: Any, new: Any) -> dict[str, Any]:
    delta = new - old if _finite(old) and _finite(new) else None
    relative = delta / abs(old) if delta is not None and old != 0 else None
    return {"key": key, "old": old, "new": new, "delta": delta, "relative": relative}


def _change_size(c: dict[str, Any]) -> tuple[float, float, str]:
    """Largest relative change first, then largest absolute; a change from 0 is
    infinitely large relatively; NaN/inf values have no size and come last."""
    if c["relative"] is not None:
        size = abs(c["relative"])
    else:
        size = math.inf if c["delta"] is not None else -1.0
    return (-size, -abs(c["delta"] or 0.0), c["key"])


# -- code --------------------------------------------------------------------------


def _code(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    ca, cb = ra["code"], rb["code"]
    files: list[dict[str, Any]] = []
    not_diffed: list[str] = []
    if ca and cb:
        # skipped files (data, secrets, > 1 MiB) are not in the trees: never diffed
        skipped = {s["path"] for c in (ca, cb) for s in c.get("skipped") or []}
        not_diffed = sorted(skipped)
        if ca.get("tree") != cb.get("tree"):
            files = _tree_diff(store, ca.get("tree"), cb.get("tree"), skipped)
    # the code that ran is its commit plus its tree; `dirty` alone can flip when only
    # unsnapshotted files (data, secrets) appear, which is not a code change
    return {
        "unchanged": _code_key(ca) == _code_key(cb),
        "a": _code_state(ca),
        "b": _code_state(cb),
        "files": files,
        "not_diffed": not_diffed,
    }


def _code_key(code: dict[str, Any] | None) -> tuple[Any, ...]:
    code = code or {}
    return (code.get("kind"), code.get("commit"), code.get("tree"))


def _code_state(code: dict[str, Any] | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {k: code.get(k) for k in ("kind", "commit", "branch", "dirty", "patch_id", "tree")}


def _tree_diff(
    store: Store, tree_a: str | None, tree_b: str | None, skipped: set[str]
) -> list[dict[str, Any]]:
    ea, eb = _entries(store, tree_a), _entries(store, tree_b)
    return [
        _file_diff(store, path, ea.get(path), eb.get(path))
        for path in sorted((ea.keys() | eb.keys()) - skipped)
        if ea.get(path) != eb.get(path)
    ]


def _entries(store: Store, tree: str | None) -> dict[str, dict[str, Any]]:
    if not tree:
        return {}
    try:
        return {e["path"]: e for e in load_manifest(store, tree)}
    except (OSError, ValueError) as e:
        raise RunbaseError(f"cannot read the code snapshot {tree}: {e} (see `runbase fsck`)")


def _file_diff(
    store: Store, path: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any]:
    status = "added" if old is None else "removed" if new is None else "changed"
    item: dict[str, Any] = {"path": path, "status": status, "mode": None, "binary": False}
    if old and new and old.get("type") != new.get("type"):
        item["mode"] = {"old": old.get("type"), "new": new.get("type")}
    ta, tb = _text(store, old), _text(store, new)
    if ta is _BINARY or tb is _BINARY:
        item["binary"], item["diff"] = True, None
    else:
        item["diff"] = _unified(path, old, new, ta or "", tb or "") if ta != tb else None
    return item


_BINARY = object()


def _text(store: Store, entry: dict[str, Any] | None) -> Any:
    """The file's text, None when absent, or ``_BINARY``."""
    if entry is None:
        return None
    if entry.get("type") == "link":
        return f"symlink to {entry.get('target')}\n"
    try:
        data = store.objects.get_bytes(entry["oid"])
    except OSError as e:
        raise RunbaseError(
            f"cannot read {entry['path']} ({entry['oid']}): {e} (see `runbase fsck`)"
        )
    if b"\0" in data[:BINARY_SNIFF]:
        return _BINARY
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _BINARY


def _unified(path: str, old: Any, new: Any, a: str, b: str) -> str:
    lines = difflib.unified_diff(
        a.splitlines(keepends=True),
        b.splitlines(keepends=True),
        fromfile=f"a/{path}" if old else "/dev/null",
        tofile=f"b/{path}" if new else "/dev/null",
    )
    # as git writes it, so the output is a patch `git apply` understands
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


# -- data --------------------------------------------------------------------------


def _data(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    inputs = _files(store, ra["inputs"], rb["inputs"])
    outputs = _files(store, ra["outputs"], rb["outputs"])
    unchanged = not any(v for part in (inputs, outputs) for v in part.values())
    return {"unchanged": unchanged, "inputs": inputs, "outputs": outputs}


def _files(
    store: Store, fa: list[dict[str, Any]], fb: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    a, b = {f["path"]: f for f in fa}, {f["path"]: f for f in fb}
    changed = [
        {
            "path": p,
            "old_hash": a[p]["hash"],
            "new_hash": b[p]["hash"],
            "old_size": a[p]["size"],
            "new_size": b[p]["size"],
            # what changed inside, from the stored bytes (null: a format not read)
            "content": _content(store, p, a[p], b[p]),
        }
        for p in sorted(a.keys() & b.keys())
        if a[p]["hash"] != b[p]["hash"]
    ]
    return {
        "added": [_file_ref(b[p]) for p in sorted(b.keys() - a.keys())],
        "removed": [_file_ref(a[p]) for p in sorted(a.keys() - b.keys())],
        "changed": changed,
    }


def _content(store: Store, path: str, a: dict[str, Any], b: dict[str, Any]) -> Any:
    sa, sb = data_side(a), data_side(b)
    # an unhashed side (overwritten before runbase could hash it) is unknown, not absent
    content = content_diff(store, path, sa, sb) if sa and sb else None
    # the line the text output shows, for readers with no copy of describe_content (web)
    return {**content, "summary": describe_content(content)} if content else None


def data_side(f: dict[str, Any]) -> dict[str, Any] | None:
    """A run record's input or output entry as :func:`content_diff` takes one side:
    ``{"oid", "kind": "file"|"dir", "size"}`` (None when it was never hashed)."""
    if not f.get("hash"):
        return None
    return {"oid": f["hash"], "kind": "dir" if f.get("directory") else "file", "size": f["size"]}


def _file_ref(f: dict[str, Any]) -> dict[str, Any]:
    return {"path": f["path"], "hash": f["hash"], "size": f["size"]}


# -- env ---------------------------------------------------------------------------


def _env(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    ea, eb = ra["env"] or {}, rb["env"] or {}
    fields = {
        "python": _change(_python(ea), _python(eb)),
        **{k: _change(ea.get(k), eb.get(k)) for k in ("os", "cpu", "gpus", "container")},
    }
    packages = package_changes(ea.get("packages") or [], eb.get("packages") or [])
    unchanged = all(v is None for v in fields.values()) and not any(packages.values())
    return {"unchanged": unchanged, **fields, "packages": packages}


def _python(env: dict[str, Any]) -> dict[str, Any] | None:
    py = env.get("python")
    return {k: py.get(k) for k in ("version", "implementation", "executable")} if py else None


def norm_name(name: str) -> str:
    """A package name as PEP 503 compares them (``Foo_Bar.baz`` is ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# never pinned into a rebuilt environment: the installer itself, and runbase (the
# bootstrap attaches any Python to the run without runbase installed)
NOT_PINNED = {"pip", "setuptools", "wheel", "runbase", "distribute"}


def unpinnable(p: dict[str, Any]) -> str | None:
    """Why recorded package ``p`` is not pinned into a rebuilt environment, or None:
    the one rule of ``reproduce --env venv`` and explain's package factors."""
    if p.get("editable") or p.get("url") or p.get("vcs"):
        return "installed from a local directory, a URL or version control: not on an index"
    if norm_name(p["name"]) in NOT_PINNED:
        return "the installer and runbase are not pinned in a rebuilt environment"
    return None


def package_changes(pa: list[dict[str, Any]], pb: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``{added, removed, upgraded, downgraded, changed}`` from package list ``pa`` to
    ``pb`` (the run record's ``env.packages``); all lists empty when they match."""
    a, b = {norm_name(p["name"]): p for p in pa}, {norm_name(p["name"]): p for p in pb}
    out: dict[str, list[Any]] = {
        "added": [
            {"name": b[n]["name"], "version": b[n]["version"]} for n in sorted(b.keys() - a.keys())
        ],
        "removed": [
            {"name": a[n]["name"], "version": a[n]["version"]} for n in sorted(a.keys() - b.keys())
        ],
        "upgraded": [],
        "downgraded": [],
        "changed": [],
    }
    for n in sorted(a.keys() & b.keys()):
        old, new = a[n], b[n]
        if canonical_json(old) != canonical_json(new):
            kind = {-1: "upgraded", 1: "downgraded"}.get(
                _cmp_versions(old["version"], new["version"]), "changed"
            )
            out[kind].append({"name": new["name"], "old": old["version"], "new": new["version"]})
    return out


def _cmp_versions(a: str, b: str) -> int:
    """-1, 0 or 1. PEP 440 when ``packaging`` can parse both; else a numeric-aware key
    (local builds such as ``2023.1-custom`` are not PEP 440)."""
    try:  # lazy: an optional third-party package, needed only when packages changed
        from packaging.version import InvalidVersion, Version
    except ImportError:
        pass
    else:
        try:
            va, vb = Version(a), Version(b)
            return (va > vb) - (va < vb)
        except InvalidVersion:
            pass
    ka, kb = _version_key(a), _version_key(b)
    return (ka > kb) - (ka < kb)


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    # tagged parts so that numbers and words never compare with each other directly
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_+!]", v) if p)


# -- command and exit status -------------------------------------------------------


def _run(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    fields = {k: _change(ra[k], rb[k]) for k in ("command", "status", "exit_code")}
    command = fields["command"]
    explained = command is not None and only_params(ra, rb)
    if command is not None and explained:
        fields["command"] = {**command, "explained_by_params": True}
    unchanged = all(v is None for k, v in fields.items() if not (k == "command" and explained))
    return {"unchanged": unchanged, **fields}


def only_params(ra: dict[str, Any], rb: dict[str, Any]) -> bool:
    """Does B's command equal A's with B's changed params written in? (Then the params
    section already says it all: ``--lr 0.1`` -> ``--lr 0.2`` is one change, not two.)"""
    pa, pb = ra.get("params") or {}, rb.get("params") or {}
    changed = {
        k: v for k, v in pb.items() if k in pa and canonical_json(pa[k]) != canonical_json(v)
    }
    if not changed:
        return False
    # both sides rewritten with B's values: `--wd 1` is recorded as 1.0 and written back
    # as `--wd 1.0`, so B's own argv must go through the same formatting to compare
    argv, rest = apply_to_argv(list(ra["command"]), changed, ra.get("param_sources"))
    theirs, _ = apply_to_argv(list(rb["command"]), changed, rb.get("param_sources"))
    return argv == theirs


_SECTION_DIFFS: dict[str, Callable[[Store, dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "params": _params,
    "metrics": _metrics,
    "code": _code,
    "data": _data,
    "env": _env,
    "run": _run,
}
