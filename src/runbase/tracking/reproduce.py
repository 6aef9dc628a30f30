"""``runbase reproduce``: re-run a recorded run from its record and say whether it
reproduced.

1. The run's code tree and its stored inputs are materialized into a fresh directory
   (default ``.runbase/reproduce/<run id>-<n>``), so later edits to the working copy or
   the data do not matter.
2. The environment the command will run in is compared with the recorded one (Python
   version, packages); with ``env="venv"`` a virtual environment with the recorded
   package versions is built (cached under ``.runbase/envs/<hash>``) and used.
3. The recorded command runs again under tracking, as a new run whose ``reproduces``
   names the original, with parameter overrides applied (``runbase.capture.overrides``).
4. The verdict: **reproduced** when every recorded metric summary that measures the
   result (not timing: ``is_timing_metric``) is equal within
   ``|new - old| <= atol + rtol * |old|`` (default exact; NaN equals NaN) and the exit
   status matches; else **diverged**, with the metrics that moved and the diff of
   everything else. A re-run with overrides is **changed by request** and one with no
   metric to compare **nothing to compare**: neither is ever called reproduced.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.analysis.diff import diff_runs, package_changes, unpinnable
from runbase.analysis.metrickinds import is_timing_metric  # re-exported: callers import it here
from runbase.capture import overrides as ov
from runbase.capture.env import packages
from runbase.core import fsname
from runbase.core.ids import new_run_id
from runbase.core.shapes import loads
from runbase.errors import RunbaseError, UsageError
from runbase.records.checkout import checkout, describe
from runbase.records.read import reproduction_count, resolve, run_status
from runbase.records.record import build_record
from runbase.store import Store
from runbase.tracking.envbuild import activation, build_env
from runbase.tracking.executor import SPEC_TOKEN, Executor, Job, runbase_run_argv
from runbase.tracking.supervisor import RunOptions, run
from runbase.tracking.supervisor import unused_overrides as supervisor_unused

ENV_MODES = ("current", "venv")


@dataclass
class MetricCheck:
    key: str
    original: float | None
    new: float | None
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "original": _j(self.original), "new": _j(self.new)}
        if self.original is not None and self.new is not None:
            d["abs"] = _j(self.new - self.original)
            d["rel"] = _j(_rel(self.original, self.new))
        d["ok"] = self.ok
        return d


# The verdicts, and the exit status of `runbase reproduce` for each (docs/reproduce.md);
# 2 is "could not be attempted" (a usage error).
REPRODUCED = "reproduced"
DIVERGED = "diverged"
NOTHING_TO_COMPARE = "nothing to compare"
CHANGED_BY_REQUEST = "changed by request"
EXIT_CODES = {REPRODUCED: 0, DIVERGED: 1, NOTHING_TO_COMPARE: 3, CHANGED_BY_REQUEST: 4}


@dataclass
class Verdict:
    """``outcome``: one of the verdicts above. ``metrics``: the compared ones; ``timing``:
    wall-clock figures, shown beside the verdict but never part of it; ``requested``:
    the overrides that changed the re-run."""

    outcome: str
    metrics: list[MetricCheck] = field(default_factory=list)
    status: tuple[str, str] = ("", "")
    exit_code: tuple[int | None, int | None] = (None, None)
    timing: list[MetricCheck] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return self.outcome == REPRODUCED

    @property
    def diverged(self) -> list[MetricCheck]:
        return [m for m in self.metrics if not m.ok]


@dataclass
class Reproduction:
    original: str
    run_id: str
    directory: str
    verdict: Verdict
    drift: dict[str, Any]
    unresolvable: list[str]
    not_restorable: list[dict[str, str]]
    unused_overrides: list[str]
    diff: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "verdict": v.outcome,
            "original": self.original,
            "run": self.run_id,
            "directory": self.directory,
            "status": {"original": v.status[0], "new": v.status[1]},
            "exit_code": {"original": v.exit_code[0], "new": v.exit_code[1]},
            "metrics": [m.as_dict() for m in v.metrics],
            "timing_metrics": [m.as_dict() for m in v.timing],
            "changed_by_request": v.requested,
            "env_drift": self.drift,
            "unresolvable_packages": self.unresolvable,
            "not_restorable": self.not_restorable,
            "unused_overrides": self.unused_overrides,
            "diff": self.diff,
        }


def _j(x: float | None) -> Any:
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _rel(old: float, new: float) -> float | None:
    return (new - old) / abs(old) if old else None


# -- the verdict ------------------------------------------------------------------------


def close(old: float | None, new: float | None, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """``|new - old| <= atol + rtol * |old|``; NaN equals NaN, infinities equal themselves."""
    if old is None or new is None:
        return old is new
    if math.isnan(old) or math.isnan(new):
        return math.isnan(old) and math.isnan(new)
    if math.isinf(old) or math.isinf(new):
        return old == new
    return abs(new - old) <= atol + rtol * abs(old)


def judge(
    original: dict[str, Any],
    new: dict[str, Any],
    rtol: float = 0.0,
    atol: float = 0.0,
    requested: list[str] | None = None,
) -> Verdict:
    """Compare two run records (``build_record`` shape): every metric summary of the
    original that measures the result must be in the new run, equal within tolerance,
    and the exit status the same. Timing metrics (``is_timing_metric``) are listed
    apart and never decide. ``requested``: the overrides that changed the re-run (then
    the outcome is "changed by request", whatever the numbers)."""
    checks: list[MetricCheck] = []
    timing: list[MetricCheck] = []
    for key in sorted(original.get("metrics") or {}):
        old = _value(original["metrics"][key])
        got = (new.get("metrics") or {}).get(key)
        val = _value(got) if got is not None else None
        check = MetricCheck(key, old, val, got is not None and close(old, val, rtol, atol))
        (timing if is_timing_metric(key) else checks).append(check)
    status = (original.get("status") or "", new.get("status") or "")
    codes = (original.get("exit_code"), new.get("exit_code"))
    same_end = status[0] == status[1] and codes[0] == codes[1]
    if requested:
        outcome = CHANGED_BY_REQUEST
    elif not same_end or not all(c.ok for c in checks):
        outcome = DIVERGED
    elif not checks:
        outcome = NOTHING_TO_COMPARE
    else:
        outcome = REPRODUCED
    return Verdict(outcome, checks, status, codes, timing, list(requested or []))


def _value(m: dict[str, Any]) -> float | None:
    v = m.get("value")
    if isinstance(v, str):  # the record's strict-JSON spelling of NaN / infinities
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v)
    return float(v) if isinstance(v, (int, float)) else None


# -- materializing ------------------------------------------------------------------------


def default_directory(store: Store, run_id: str) -> Path:
    base = store.root / "reproduce"
    n = 1
    while (base / f"{run_id}-{n}").exists():
        n += 1
    return base / f"{run_id}-{n}"


def reproduction_name(store: Store, run_id: str, name: str) -> str:
    """``<original name>-repro-N``: the Nth reproduction of ``run_id`` (so a listing
    shows what each re-run repeats, where a generated name would say nothing)."""
    return f"{name}-repro-{reproduction_count(store, run_id) + 1}"


def materialize(store: Store, run_id: str, into: Path) -> list[dict[str, str]]:
    """Write the run's code tree and stored inputs under ``into`` (which must be empty
    or hold exactly those files); returns what could not be restored."""
    into.mkdir(parents=True, exist_ok=True)
    report = checkout(store, run_id, into, code=True, data=True, outputs=False)
    return list(describe(report)["not_restorable"])


def command_for(rec: dict[str, Any], into: Path, python: str | None) -> tuple[list[str], Path]:
    """The recorded argv and working directory, moved into ``into``: paths inside the
    original project are rewritten, and ``python`` (a rebuilt environment's interpreter)
    replaces a Python executable in front."""
    # stored argv is text; a byte argument that is not UTF-8 goes back as those bytes
    argv = [fsname.decode(a) for a in rec.get("command") or []]
    if not argv:
        raise UsageError(f"run {rec['id']} has no recorded command to re-run")
    redacted = [a for a in argv if "***" in a]
    if redacted:
        raise UsageError(
            f"the recorded command of run {rec['id']} had secrets removed ({redacted[0]}); "
            "it cannot be re-run as recorded"
        )
    root = (rec.get("project_root") or rec.get("cwd") or "").rstrip("/")
    if root:
        argv = [
            str(into) + a[len(root) :] if a == root or a.startswith(root + "/") else a for a in argv
        ]
    if python and _is_python(argv[0]):
        argv[0] = python
    cwd = rec.get("cwd") or root
    rel = os.path.relpath(cwd, root) if root and cwd else "."
    workdir = into if rel.startswith("..") else (into / rel).resolve()
    if workdir.is_relative_to(into.resolve()):
        # where the run started may hold no file of the snapshot (an ignored out/):
        # it existed when the run started, so it exists again
        workdir.mkdir(parents=True, exist_ok=True)
    return argv, workdir


def _is_python(arg: str) -> bool:
    name = os.path.basename(arg)
    return name.startswith("python") or name == os.path.basename(sys.executable)


# -- the environment ------------------------------------------------------------------------


def python_of(argv0: str, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Version and ``sys.path`` of the Python that ``argv0`` names (None if not Python)."""
    if not _is_python(argv0):
        return None
    exe = shutil.which(argv0, path=(env or os.environ).get("PATH"))
    if exe is None:
        return None
    code = "import sys, json, platform; print(json.dumps({'version': platform.python_version(), 'path': sys.path, 'executable': sys.executable}))"
    try:
        out = subprocess.run(
            [exe, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True
        ).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def drift(rec: dict[str, Any], python: dict[str, Any] | None) -> dict[str, Any]:
    """How the environment the command would run in differs from the recorded one."""
    recorded = (rec.get("env") or {}).get("python") or {}
    out: dict[str, Any] = {"python": None, "packages": None}
    if python is None:
        return out
    if recorded.get("version") and recorded["version"] != python["version"]:
        out["python"] = {"old": recorded["version"], "new": python["version"]}
    changes = package_changes(
        (rec.get("env") or {}).get("packages") or [], packages(python["path"])
    )
    if any(changes.values()):
        out["packages"] = changes
    return out


def _recorded_python(rec: dict[str, Any]) -> str | None:
    version = ((rec.get("env") or {}).get("python") or {}).get("version")
    return version if isinstance(version, str) and version else None


def pin_list(rec: dict[str, Any]) -> list[str]:
    """``name==version`` for every recorded package that an index can provide."""
    packages = (rec.get("env") or {}).get("packages") or []
    return [f"{p['name']}=={p['version']}" for p in packages if unpinnable(p) is None]


# -- the whole thing ------------------------------------------------------------------------


def reproduce(
    store: Store,
    ref: str,
    overrides: dict[str, Any] | None = None,
    into: str | os.PathLike[str] | None = None,
    env: str = "current",
    rtol: float = 0.0,
    atol: float = 0.0,
    log: Any = None,
    executor: Executor | None = None,
) -> Reproduction:
    """Re-run ``ref`` from its record and judge the result (see the module docstring).
    ``log`` (a callable taking a line) hears about each step before the command runs.
    ``executor`` (``--on``): the re-run is one job of it (a Ray task: the materialized
    directory, under the store by default, must be at the same path on every node),
    else it runs here, under this process."""
    if env not in ENV_MODES:
        raise UsageError(f"--env must be one of {', '.join(ENV_MODES)}, not {env!r}")
    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must not be negative")
    if executor is not None:  # no cluster, a node without the store: before any work
        executor.check(store=str(store.root))
    say = log or (lambda _line: None)
    orig = resolve(store, ref)
    rec = build_record(store, orig, include_patch=False)
    if rec["status"] == "running":
        raise UsageError(f"run {orig} is still running; reproduce it once it has ended")
    directory = Path(into).absolute() if into else default_directory(store, orig)
    not_restorable = materialize(store, orig, directory)
    say(f"runbase: materialized run {orig} in {directory}")
    for missing in not_restorable:
        say(f"runbase: not restored: {missing['path']} ({missing['why']})")

    extra_env: dict[str, str] = {}
    python_exe = None
    unresolvable: list[str] = []
    if env == "venv":
        venv, unresolvable = build_env(store, pin_list(rec), _recorded_python(rec), say)
        python_exe = str(venv / "bin" / "python")
        extra_env = activation(venv)
        for why in unresolvable:
            say(f"runbase: unresolvable: {why}")
    argv, workdir = command_for(rec, directory, python_exe)
    changes = drift(rec, python_of(argv[0], {**os.environ, **extra_env}))
    for line in render_drift(changes):
        say(line)

    # a run that had overrides (a sweep's) is repeated with them; -p goes on top
    recorded = recorded_overrides(rec)
    opts = RunOptions(
        name=reproduction_name(store, orig, str(rec.get("name") or orig[:10])),
        store=str(store.root),
        reproduces=orig,
        capture_code=False,
        code_record=rec.get("code"),
        cwd=str(workdir),
        project_root=str(directory),
        extra_env=extra_env,
        overrides={**recorded, **(overrides or {})},
        param_sources=dict(rec.get("param_sources") or {}),
    )
    if executor is None:
        outcome = run(argv, opts)
        new_id, unused_overrides = outcome.run_id, outcome.unused_overrides
    else:
        new_id = run_as_job(store, executor, argv, opts)
        unused_overrides = supervisor_unused(store, new_id, opts.overrides)
    new = build_record(store, new_id, include_patch=False)
    used = set(overrides or {}) - set(unused_overrides)
    verdict = judge(rec, new, rtol, atol, requested=sorted(used))
    result = Reproduction(
        original=orig,
        run_id=new_id,
        directory=str(directory),
        verdict=verdict,
        drift=changes,
        unresolvable=unresolvable,
        not_restorable=not_restorable,
        unused_overrides=unused_overrides,
    )
    if not verdict.reproduced:
        result.diff = diff_runs(store, orig, new_id)
    return result


def run_as_job(store: Store, executor: Executor, argv: list[str], opts: RunOptions) -> str:
    """The re-run as one ``runbase run`` job of ``executor`` (its spec carries what
    ``opts`` says); the new run's id. Ctrl-C: KeyboardInterrupt once the job stopped."""
    spec = {
        "run_id": new_run_id(),
        "name": opts.name,
        "reproduces": opts.reproduces,
        "code_record": opts.code_record,
        "project_root": opts.project_root,
        "param_sources": opts.param_sources,
        "overrides": opts.overrides,
        "extra_env": opts.extra_env,
    }
    cmd = runbase_run_argv(str(store.root), "--no-code", "--spec", SPEC_TOKEN, "--", *argv)
    job = Job(cmd, cwd=opts.cwd, label="re-run", spec={k: v for k, v in spec.items() if v})
    if executor.run([job], total=1):
        raise KeyboardInterrupt
    rid = job.run_id or str(spec["run_id"])
    if run_status(store, rid) is None:
        why = job.stderr_tail.strip().splitlines()[-1:] or [f"exit {job.returncode}"]
        raise RunbaseError(f"the re-run did not start on the {executor.kind} executor: {why[0]}")
    return rid


def render_drift(changes: dict[str, Any]) -> list[str]:
    lines = []
    if changes.get("python"):
        p = changes["python"]
        lines.append(f"runbase: environment drift: Python {p['old']} -> {p['new']}")
    pk = changes.get("packages") or {}
    for kind in ("added", "removed", "upgraded", "downgraded", "changed"):
        for item in pk.get(kind) or []:
            lines.append(f"runbase: environment drift: {kind} {_pkg(item)}")
    return lines


def _pkg(item: Any) -> str:
    if isinstance(item, dict):
        if "old" in item and "new" in item:
            return f"{item.get('name')} {item['old']} -> {item['new']}"
        return f"{item.get('name')} {item.get('version', '')}".strip()
    return str(item)


def render(result: Reproduction, color: bool = False) -> str:
    """The verdict as text. The diff (``result.diff``, when it diverged) is rendered by
    the caller (runbase.render.diff): tracking sits below render."""
    v = result.verdict
    lines = [f"{v.outcome}: run {result.run_id} vs {result.original}"]
    if v.requested:
        lines.append(f"  overridden: {', '.join(v.requested)} (the metrics below show the effect)")
    if v.status[0] != v.status[1] or v.exit_code[0] != v.exit_code[1]:
        lines.append(
            f"  exit: {v.status[0]} ({v.exit_code[0]}) -> {v.status[1]} ({v.exit_code[1]})"
        )
    for m in v.metrics:
        if m.ok:
            continue
        if m.new is None:
            lines.append(f"  {m.key}: {m.original} -> (not logged)")
        else:
            rel = _rel(m.original, m.new) if m.original is not None else None
            extra = f", {rel:+.3%}" if rel is not None and math.isfinite(rel) else ""
            delta = m.new - m.original if m.original is not None else math.nan
            lines.append(f"  {m.key}: {m.original!r} -> {m.new!r} ({delta:+.6g}{extra})")
    same = sum(m.ok for m in v.metrics)
    if v.metrics:
        lines.append(f"  {same} of {len(v.metrics)} metrics equal within tolerance")
    else:
        lines.append("  no metric of the original measures the result: only the exit was compared")
    if v.timing:
        keys = ", ".join(m.key for m in v.timing[:8]) + (" ..." if len(v.timing) > 8 else "")
        lines.append(f"  timing, not compared: {keys}")
    if result.unused_overrides:
        lines.append(f"  overrides nothing used: {', '.join(result.unused_overrides)}")
    return "\n".join(lines)


def recorded_overrides(rec: dict[str, Any]) -> dict[str, Any]:
    """The overrides a run was started with (its tag), or none when the tag is not a
    JSON object: a pulled record is not trusted to be well formed."""
    try:  # nesting bounded as where overrides are read back (overrides._from_env)
        recorded = loads((rec.get("tags") or {}).get(ov.TAG) or "{}")
    except (TypeError, ValueError):  # shapes.TooDeep is a ValueError
        return {}
    return recorded if isinstance(recorded, dict) else {}
