"""``runbase trace``: where bytes came from, as text and as JSON (docs/trace.md).

The lineage graph (records.lineage.trace) is the same for every target. A model
reference (``churn@production``) adds the chain a deployed model is audited by: the
version (who registered it, which stages hold it), the run that produced it (its commit
and uncommitted change, params, final metrics, environment), and then the graph of its
inputs and their producers. A file whose bytes are registered versions says which.
"""

from __future__ import annotations

import os
from typing import Any

from runbase.capture.params import jsonable
from runbase.errors import RunNotFound
from runbase.records import registry
from runbase.records.lineage import registered_as, render_tree
from runbase.records.lineage import trace as lineage_trace
from runbase.records.record import build_record
from runbase.render.show import patch_summary
from runbase.render.table import fmt_bytes, fmt_value
from runbase.store import Store

# the packages whose versions decide what a model computes: shown by name and version
# (``--json`` and ``runbase show RUN`` have every installed package)
KEY_PACKAGES = (
    "torch",
    "tensorflow",
    "jax",
    "keras",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "transformers",
    "numpy",
    "pandas",
    "polars",
    "scipy",
)
MAX_CHANGED_FILES = 20  # files of the uncommitted change listed in the text view


def trace_view(store: Store, target: str, max_depth: int = 50) -> dict[str, Any]:
    """The JSON of ``runbase trace TARGET --json``: the lineage graph (``root``,
    ``nodes``, ``edges``) plus ``model`` (the version a model reference names, else
    null), ``run`` (that version's run, see :func:`run_details`; null for a file, an
    external version or a run not in this store) and ``versions`` (every registered
    version that is exactly the root's bytes)."""
    # a path on disk wins over a reference, as records.lineage.oid_of reads it; the
    # graph is then traced from that exact version, even if the stage moves meanwhile
    version = None if os.path.exists(target) else registry.lookup(store, target)
    graph = lineage_trace(store, version.ref if version is not None else target, max_depth)
    root = next(n for n in graph["nodes"] if n["id"] == graph["root"])
    models = dict.fromkeys(name for name, _ in registered_as(store, root["hash"]))
    same = [v for m in models for v in registry.versions(store, m) if v.oid == root["hash"]]
    run = None
    if version is not None and version.run_id is not None:
        run = run_details(store, version.run_id)
    return jsonable(
        {
            **graph,
            "model": version.to_json() if version is not None else None,
            "run": run,
            "versions": [v.to_json() for v in same],
        }
    )


def run_details(store: Store, run_id: str) -> dict[str, Any] | None:
    """What produced a version, from its run record (docs/run-record.md): ``{id, name,
    status, started_at, ended_at, user, host, command, code, params, metrics, env}``;
    None when the run is not in this store (a version pushed without its run)."""
    try:
        rec = build_record(store, run_id)
    except RunNotFound:
        return None
    return {
        "id": rec["id"],
        "name": rec["name"],
        "status": rec["status"],
        "started_at": rec["started_at"],
        "ended_at": rec["ended_at"],
        "user": rec["user"],
        "host": rec["host"],
        "command": rec["command"],
        "code": _code(rec.get("code")),
        "params": rec["params"],
        "metrics": {
            k: m.get("value") for k, m in sorted(rec["metrics"].items()) if not k.startswith("sys/")
        },
        "env": _env(rec.get("env")),
    }


def _code(code: dict[str, Any] | None) -> dict[str, Any] | None:
    """The code section, its patch summarized: ``changed_files`` per file of the
    uncommitted change (``added`` null for a binary file); the patch itself is
    ``runbase diff RUN``'s."""
    if not code:
        return None
    patch = code.get("patch")
    changed = patch_summary(patch) if isinstance(patch, str) and patch else []
    return {
        "kind": code.get("kind"),
        "commit": code.get("commit"),
        "branch": code.get("branch"),
        "remote": code.get("remote"),
        "dirty": bool(code.get("dirty")),
        "tree": code.get("tree"),
        "patch_id": code.get("patch_id"),
        "patch_bytes": code.get("patch_bytes"),
        "changed_files": [
            {"path": p, "added": None if a < 0 else a, "removed": r} for p, a, r in changed
        ],
    }


def _env(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """The environment in brief: Python, OS, the key packages' versions, GPUs."""
    if not env:
        return None
    py = env.get("python") or {}
    os_ = env.get("os") or {}
    installed = {
        str(p.get("name", "")).lower().replace("_", "-"): p.get("version")
        for p in env.get("packages") or []
        if isinstance(p, dict)
    }
    cont = env.get("container") or {}
    return {
        "python": py.get("version"),
        "os": os_.get("distro") or _joined(os_.get("system"), os_.get("release")),
        "packages": {k: installed[k] for k in KEY_PACKAGES if k in installed},
        "packages_count": len(installed),
        "gpus": [g.get("name") for g in env.get("gpus") or [] if isinstance(g, dict)],
        "container": _joined(cont.get("type"), cont.get("image")),
    }


def _joined(*parts: Any) -> str | None:
    """The parts that are there, space-separated; None when none is."""
    return " ".join(str(p) for p in parts if p) or None


# -- text ------------------------------------------------------------------------------


def render_trace(view: dict[str, Any]) -> str:
    """``runbase trace``'s text: the version and its run when the target is a model
    reference, which versions the bytes are, then the lineage tree."""
    lines: list[str] = []
    model = view.get("model")
    if model is not None:
        lines += _model_lines(model, view.get("run"))
    elif view.get("versions"):
        lines.append("these bytes are " + ", ".join(_ref(v) for v in view["versions"]))
    if lines:
        lines += ["", "lineage:"]
    lines.append(render_tree(view))
    return "\n".join(lines)


def _ref(v: dict[str, Any]) -> str:
    stages = v.get("stages") or []
    return v["ref"] + (f" ({', '.join(stages)})" if stages else "")


def _model_lines(model: dict[str, Any], run: dict[str, Any] | None) -> list[str]:
    size = model.get("size")
    what = model["kind"] + (f", {fmt_bytes(size)}" if isinstance(size, int) else "")
    registered = f"{model.get('created_at')} by {model.get('user') or '?'}"
    if model.get("message"):
        registered += f": {model['message']}"
    lines = [f"model {_ref(model)}"]
    lines += _kv(
        [
            ("hash", f"{model['oid']}  ({what})"),
            ("path", model.get("path") or ""),
            ("registered", registered),
        ],
        indent=2,
    )
    if model.get("external"):
        lines.append("  no provenance: registered --external, no recorded run produced it")
        return lines
    if run is None:
        lines.append(
            f"  run {model.get('run')} is not in this store (runbase pull it to see its record)"
        )
        return lines
    return lines + ["", *_run_lines(run)]


def _run_lines(run: dict[str, Any]) -> list[str]:
    lines = [f"run {run['id']}  {run['name']}  [{run['status']}]"]
    lines += _kv(
        [
            ("started", run.get("started_at") or ""),
            ("ended", run.get("ended_at") or ""),
            ("user@host", f"{run.get('user') or '?'}@{run.get('host') or '?'}"),
            ("command", " ".join(str(c) for c in run.get("command") or [])),
            *_code_pairs(run.get("code")),
        ],
        indent=2,
    )
    lines += _changed_lines((run.get("code") or {}).get("changed_files") or [])
    for title, values in (("params", run["params"]), ("metrics", run["metrics"])):
        if values:
            lines.append(f"  {title}:")
            lines += _kv([(k, fmt_value(v)) for k, v in sorted(values.items())], indent=4)
    env = run.get("env")
    if env:
        lines.append("  environment:")
        packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
        lines += _kv(
            [
                ("python", env.get("python") or "(no Python process)"),
                ("os", env.get("os") or ""),
                ("packages", f"{packages}{'; ' if packages else ''}{env['packages_count']} in all"),
                ("gpus", ", ".join(str(g) for g in env["gpus"]) or "none"),
                ("container", env.get("container") or ""),
            ],
            indent=4,
        )
    return lines


def _code_pairs(code: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not code:
        return [("code", "(not recorded)")]
    if code.get("kind") != "git":
        where = "(not a git repository)"
    else:
        where = code.get("commit") or "(no commit)"
        if code.get("branch"):
            where += f" on {code['branch']}"
    if code.get("dirty"):
        changed = code.get("changed_files") or []
        plus = sum(f["added"] or 0 for f in changed)
        minus = sum(f["removed"] for f in changed)
        where += (
            f"  + uncommitted changes: {len(changed)} file{'' if len(changed) == 1 else 's'}, "
            f"+{plus} -{minus} lines, "
            f"{code.get('patch_bytes') or 0} bytes of patch"
        )
    else:
        where += "  (no uncommitted changes)"
    return [("commit", where), ("remote", code.get("remote") or "")]


def _changed_lines(changed: list[dict[str, Any]]) -> list[str]:
    out = []
    for f in changed[:MAX_CHANGED_FILES]:
        counts = "binary" if f["added"] is None else f"+{f['added']} -{f['removed']}"
        out.append(f"      {counts:<12}{f['path']}")
    if len(changed) > MAX_CHANGED_FILES:
        out.append(f"      … {len(changed) - MAX_CHANGED_FILES} more files (runbase diff RUN)")
    return out


def _kv(pairs: list[tuple[str, str]], indent: int) -> list[str]:
    pairs = [(k, v) for k, v in pairs if v]
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{' ' * indent}{k:<{width}}  {v}" for k, v in pairs]
