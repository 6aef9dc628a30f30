"""``runbase explain A B``: which of the changes from run A to run B moved the metric,
found by experiment (the execution; the computation is :mod:`runbase.analysis.explain`).

    report = explain(store, "0bq3k5x7", "0bq3k9aa", metric="acc")
    report["factors"][0]    # the change with the largest effect on acc

1. The differences between A and B become **factors** (``find_factors``); the ones that
   cannot be tested are listed with the reason.
2. A **hybrid** is A's recorded state with a subset of B's changes: A's code tree and
   inputs materialized once from the store (``tracking.hybrid.Workspace``), each hybrid
   a clone of that base (reflinks where the file system has them, else copies, never
   hard links) with B's chosen files written over it, params overridden as ``reproduce
   -p`` does, in an environment rebuilt from the recorded package versions when
   ``env="venv"``. It runs as a tracked run (``runbase run`` in a process of its own,
   through the executor ``runbase sweep`` uses), tagged with the explanation id and
   linked to A and B (the tags of ``analysis.explain``); ``runbase ls`` hides them.
3. **Noise first:** A and B are re-run ``repeats`` times (B as A + every testable
   change), so effects inside the run-to-run spread are "not significant".
4. The **search** (``analysis.explain.search``) asks for batches of hybrids within the
   budget; finished hybrids are found again by their key (``--fresh`` re-runs them).
5. The report (docs/explain.md) is saved under ``<store>/explain/<id>/`` for the web
   UI and ``runbase report A B``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbase.analysis import explain as ax
from runbase.analysis.diff import canonical_json, norm_name
from runbase.capture.env import packages
from runbase.capture.manifest import load_manifest
from runbase.core.statuses import is_terminal
from runbase.core.text import printable
from runbase.errors import RunbaseError, UsageError
from runbase.records.read import list_runs, resolve
from runbase.records.record import build_record
from runbase.store import Store
from runbase.tracking.envbuild import activation, build_env
from runbase.tracking.executor import SPEC_TOKEN, Executor, Job, LocalExecutor, runbase_run_argv
from runbase.tracking.hybrid import Workspace, hybrid_tree
from runbase.tracking.reproduce import ENV_MODES, command_for, python_of, recorded_overrides

DEFAULT_BUDGET = 50  # hybrids beyond the re-runs of A and B
MAX_REPORT_BYTES = 16 << 20  # a saved report read back: never trusted to be small


def explain(
    store: Store,
    a: str,
    b: str,
    *,
    metric: str | None = None,
    jobs: int | None = None,
    budget: int | None = None,
    repeats: int = 1,
    hunks: bool = False,
    env: str = "current",
    fresh: bool = False,
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Explain the change of ``metric`` from run ``a`` to run ``b`` (refs: id, prefix or
    name) by running hybrids; returns the report of docs/explain.md and saves it.
    ``log`` (a callable taking a line) hears about each step. ``executor`` (``--on``)
    runs the hybrids (default: this machine, ``jobs`` at a time); a Ray task runs its
    hybrid in its workspace under the store, which every node sees at the same path."""
    _check_options(jobs, budget, repeats, env)
    if executor is not None:  # no cluster, a node without the store: before any work
        executor.check(store=str(store.root))
    say = log or (lambda _line: None)
    ra, rb = _records(store, a, b)
    name = ax.choose_metric(ra, rb, metric)
    factors, untestable = ax.find_factors(store, ra, rb, hunks=hunks, env_mode=env)
    if not factors:
        raise UsageError(_nothing_testable(ra, rb, untestable))
    _check_budget(budget or DEFAULT_BUDGET, len(factors))
    xid = ax.explain_id(ra["id"], rb["id"])
    say(
        f"runbase: explain {xid}: {name} {_fmt(ax.metric_value(ra, name))} -> "
        f"{_fmt(ax.metric_value(rb, name))}; {len(factors)} testable change(s)"
        + (f", {len(untestable)} untestable" if untestable else "")
    )
    with _Lab(store, ra, rb, factors, name, env, jobs, fresh, say, executor) as lab:
        report = _investigate(lab, factors, untestable, budget or DEFAULT_BUDGET, repeats)
    _save(store, report)
    return report


def explain_runs(
    a: str, b: str, *, metric: str | None = None, store: str | None = None, **options: Any
) -> dict[str, Any]:
    """``runbase.explain(a, b, metric="acc")``: :func:`explain` on the store ``store``
    (default: the one ``runbase ls`` uses). ``options``: those of :func:`explain`."""
    s = Store.open(store)
    try:
        return explain(s, a, b, metric=metric, **options)
    finally:
        s.close()


def _check_options(jobs: int | None, budget: int | None, repeats: int, env: str) -> None:
    if env not in ENV_MODES:
        raise UsageError(f"--env must be one of {', '.join(ENV_MODES)}, not {env!r}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"-j must be at least 1, got {jobs}")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    if budget is not None and budget < 1:
        raise UsageError(
            f"--budget {budget} is too small to test anything: each change needs at least "
            "one hybrid run (the re-runs of A and B are not counted)"
        )


def _check_budget(budget: int, n: int) -> None:
    """Before A and B are re-run (which may take hours): can the search test anything?"""
    if budget < ax.min_budget(n):
        raise UsageError(
            f"--budget {budget} is too small to test {n} changes: at least "
            f"{ax.min_budget(n)} hybrids are needed (the re-runs of A and B are not counted)"
        )


def _records(store: Store, a: str, b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ida, idb = resolve(store, a), resolve(store, b)
    if ida == idb:
        raise UsageError(f"{a} and {b} are the same run ({ida}): nothing to explain")
    ra, rb = (build_record(store, i, include_patch=False) for i in (ida, idb))
    for rec in (ra, rb):
        if not is_terminal(rec.get("status")):
            raise UsageError(f"run {rec['id']} is still running; explain it once it has ended")
    _same_project(store, ra, rb)
    return ra, rb


def _same_project(store: Store, ra: dict[str, Any], rb: dict[str, Any]) -> None:
    """Runs of different projects have nothing to swap between them: their git remotes
    differ, or (without remotes) their code trees share no file."""
    ca, cb = ra.get("code") or {}, rb.get("code") or {}
    if ca.get("remote") and cb.get("remote"):
        if ca["remote"] != cb["remote"]:
            raise UsageError(
                f"runs {ra['id']} and {rb['id']} belong to different projects "
                f"({ca['remote']} and {cb['remote']}): explain compares two runs of one project"
            )
        return
    if ra.get("project_root") == rb.get("project_root") or not (ca.get("tree") and cb.get("tree")):
        return
    paths_a = {e["path"] for e in load_manifest(store, ca["tree"])}
    if not any(e["path"] in paths_a for e in load_manifest(store, cb["tree"])):
        raise UsageError(
            f"runs {ra['id']} and {rb['id']} belong to different projects (no file in common "
            f"between {ra.get('project_root')} and {rb.get('project_root')})"
        )


def _nothing_testable(ra: dict[str, Any], rb: dict[str, Any], untestable: list[Any]) -> str:
    if not untestable:
        return (
            f"runs {ra['id']} and {rb['id']} do not differ in params, code, data inputs, "
            "packages or command: nothing to explain (the metric moved by chance: try "
            "`runbase reproduce` on each)"
        )
    reasons = "; ".join(f"{u.name}: {u.reason}" for u in untestable[:10])
    return f"none of the differences between {ra['id']} and {rb['id']} can be tested: {reasons}"


def _fmt(v: float | None) -> str:
    return "(none)" if v is None else f"{v:.6g}"


# -- running hybrids ------------------------------------------------------------------


class _Lab:
    """Materializes, runs and reads back hybrids of one explanation; finished ones
    (found by their key, unless ``fresh``) are re-used."""

    def __init__(
        self,
        store: Store,
        ra: dict[str, Any],
        rb: dict[str, Any],
        factors: list[ax.Factor],
        metric: str,
        env_mode: str,
        jobs: int | None,
        fresh: bool,
        say: Callable[[str], None],
        executor: Executor | None = None,
    ) -> None:
        self.store, self.ra, self.rb, self.factors = store, ra, rb, factors
        self.metric, self.env_mode, self.fresh, self.say = metric, env_mode, fresh, say
        self.executor = executor or LocalExecutor(jobs or os.cpu_count() or 1)
        self.jobs = self.executor.slots
        self.xid = ax.explain_id(ra["id"], rb["id"])
        self.all_names = frozenset(f.name for f in factors)
        self._full_alias: tuple[frozenset[str], frozenset[str]] | None = None
        # the environment hybrids run in is part of their key: with --env current, a
        # hybrid from before a library upgrade is not this environment's
        self.env_key = env_mode if env_mode != "current" else _current_env(ra)
        self.runs: list[dict[str, Any]] = []  # every hybrid used, in the order asked
        self.seconds = 0.0
        self._cache = {} if fresh else self._finished_hybrids()
        self._ws: Workspace | None = None
        self._root = Path(tempfile.mkdtemp(prefix="work-", dir=self._explain_dir()))

    def __enter__(self) -> _Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def _explain_dir(self) -> Path:
        d = self.store.root / "explain" / self.xid
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _finished_hybrids(self, keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The newest ended run of each hybrid key of this explanation (of ``keys`` only,
        when given: the hybrids just run, not every one again after each batch)."""
        where = f"tags.{ax.TAG} == {json.dumps(self.xid)}"
        if keys:
            where += f" and tags.`{ax.TAG_KEY}` in ({', '.join(map(json.dumps, keys))})"
        rows = list_runs(self.store, where, limit=None)
        found: dict[str, dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: r.get("started_at") or 0):
            key = (row.get("tags") or {}).get(ax.TAG_KEY)
            if key and _a_result(row):
                found[key] = row
        return found

    @property
    def workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace(self.store, self.ra["id"], self._root)
            for missing in self._ws.not_restorable:
                self.say(f"runbase: not restored: {printable(missing['path'])} ({missing['why']})")
        return self._ws

    def evaluate(self, subsets: list[frozenset[str]], repeat: int = 0) -> list[float | None]:
        """The metric of each hybrid (None: it failed or did not log the metric)."""
        wanted: list[tuple[frozenset[str], str]] = []
        for s in subsets:
            names = sorted(self._key_names(s))
            key = ax.hybrid_key(self.ra["id"], self.rb["id"], names, self.env_key, repeat)
            wanted.append((s, key))
        todo = {key: s for s, key in wanted if key not in self._cache}
        if todo:
            self._run(todo, repeat)
        out = []
        for s, key in wanted:
            row = self._cache.get(key)
            out.append(self._note(s, row, key in todo))
        return out

    def _note(self, subset: frozenset[str], row: dict[str, Any] | None, new: bool) -> float | None:
        if row is None:  # interrupted, or the run could not even start
            return None
        # the listing's row has the status and metric summaries: no record to build
        value = ax.metric_value(row, self.metric) if row["status"] == "finished" else None
        if not any(r["run"] == row["id"] for r in self.runs):
            self.runs.append(
                {
                    "run": row["id"],
                    "role": self._role(subset),
                    "factors": sorted(subset),
                    "value": value,
                    "status": row["status"],
                    "cached": not new,
                }
            )
        return value

    def narrow(self, names: frozenset[str]) -> None:
        """The testable factors are now ``names`` (overrides that did nothing were
        dropped): the re-runs of B made with them are the re-runs of the new full set."""
        self._full_alias = (names, self.all_names)
        self.all_names = names

    def _key_names(self, subset: frozenset[str]) -> frozenset[str]:
        alias = self._full_alias
        return alias[1] if alias is not None and subset == alias[0] else subset

    def _role(self, subset: frozenset[str]) -> str:
        return "a" if not subset else "b" if subset == self.all_names else "hybrid"

    def _run(self, todo: dict[str, frozenset[str]], repeat: int) -> None:
        items = list(todo.items())
        self.say(f"runbase: running {len(items)} hybrid(s), {min(self.jobs, len(items))} at a time")
        # materialize at most `jobs` at a time: 40 copies of 1 GiB of inputs at once
        # would fill a disk that holds the few that run
        for i in range(0, len(items), self.jobs):
            self._run_batch(items[i : i + self.jobs], repeat)
        self._cache.update(self._finished_hybrids([key for key, _ in items]))

    def _run_batch(self, batch: list[tuple[str, frozenset[str]]], repeat: int) -> None:
        prepared = [self._prepare(key, subset, repeat) for key, subset in batch]
        started = time.monotonic()
        try:
            jobs = [job for job, _ in prepared]
            interrupted = self.executor.run(jobs, self._done, total=len(jobs))
        except OSError as e:  # the executor could not start `runbase run` at all
            raise RunbaseError(f"cannot start a hybrid: {e.strerror or e}") from None
        finally:
            self.seconds += time.monotonic() - started
            for _, name in prepared:
                self.workspace.remove(name)
        if interrupted:  # the finished hybrids are kept: the next explain re-uses them
            raise KeyboardInterrupt

    def _done(self, job: Job, done: int, total: int) -> None:
        state = "ok" if job.returncode == 0 else f"exit {job.returncode}"
        self.say(f"runbase: [{done}/{total}] {printable(job.label)}: {state}")

    def _prepare(self, key: str, subset: frozenset[str], repeat: int) -> tuple[Job, str]:
        plan = ax.plan_hybrid(self.store, self.ra, self.rb, self.factors, subset)
        directory = self.workspace.make(key, plan.code, plan.data)
        python, extra_env = self._environment(plan)
        rec = {**self.ra, "command": self._from_a_root(plan.command)}
        argv, workdir = command_for(rec, directory, python)
        role = self._role(subset)
        spec = {
            "name": self._name(role, subset, repeat),
            "project_root": str(directory),
            "code_record": self._code_record(plan.code),
            "param_sources": dict(self.ra.get("param_sources") or {}),
            "overrides": {**recorded_overrides(self.ra), **plan.overrides},
            "extra_env": extra_env,
            "tags": {
                ax.TAG: self.xid,
                ax.TAG_A: self.ra["id"],
                ax.TAG_B: self.rb["id"],
                ax.TAG_FACTORS: "\n".join(sorted(subset)),
                ax.TAG_KEY: key,
                ax.TAG_ROLE: role,
            },
        }
        # the executor writes the spec where the hybrid runs (SPEC_TOKEN: its path)
        cmd = runbase_run_argv(str(self.store.root), "--no-code", "--spec", SPEC_TOKEN, "--", *argv)
        label = {"a": "re-run of A", "b": "re-run of B"}.get(role) or " + ".join(sorted(subset))
        return Job(cmd, cwd=str(workdir), label=label, spec=spec), key

    def _from_a_root(self, argv: list[str]) -> list[str]:
        """B's command (the command factor) with paths into B's project written into
        A's, which ``command_for`` then moves into the hybrid: never B's live tree."""
        root_a = str(self.ra.get("project_root") or "").rstrip("/")
        root_b = str(self.rb.get("project_root") or "").rstrip("/")
        if argv == self.ra.get("command") or not root_a or not root_b or root_a == root_b:
            return argv
        return [
            root_a + a[len(root_b) :] if a == root_b or a.startswith(root_b + "/") else a
            for a in argv
        ]

    def _name(self, role: str, subset: frozenset[str], repeat: int) -> str:
        """``<id>-a1`` (A's first re-run), ``<id>-b1``, ``<id>-h<hash of the subset>``."""
        if role in ("a", "b"):
            return f"{self.xid}-{role}{repeat + 1}"
        return (
            f"{self.xid}-h{hashlib.sha256(chr(10).join(sorted(subset)).encode()).hexdigest()[:6]}"
        )

    def _environment(self, plan: ax.HybridPlan) -> tuple[str | None, dict[str, str]]:
        if plan.pins is None:
            return None, {}
        venv, unresolvable = build_env(self.store, plan.pins, plan.python_version, self.say)
        for why in unresolvable:
            self.say(f"runbase: unresolvable: {printable(why)}")
        return str(venv / "bin" / "python"), activation(venv)

    def _code_record(self, code: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        """A's code record with the hybrid's tree: the code that ran (A's commit plus a
        tree no commit has; no patch, which would describe A's tree)."""
        ca = self.ra.get("code")
        if not ca:
            return None
        tree = hybrid_tree(self.store, ca.get("tree"), code) if code else ca.get("tree")
        entries = load_manifest(self.store, tree) if tree else []
        return {
            **{k: ca.get(k) for k in ("kind", "commit", "branch", "remote", "skipped")},
            "dirty": bool(code) or bool(ca.get("dirty")),
            "patch": None,
            "tree": tree,
            "files": len(entries),
            "bytes": sum(int(e.get("size") or 0) for e in entries),
        }


def _current_env(ra: dict[str, Any]) -> str:
    """``current@<hash>`` of the Python that A's command names (its executable, version
    and installed packages); ``current`` when the command is not Python."""
    argv0 = str((ra.get("command") or [""])[0])
    python = python_of(argv0) if argv0 else None
    if python is None:
        return "current"
    found = sorted((p["name"], p["version"]) for p in packages(python["path"]))
    body = json.dumps([python.get("executable"), python.get("version"), found])
    return f"current@{hashlib.sha256(body.encode()).hexdigest()[:12]}"


# A hybrid ended by one of these was stopped (explain's Ctrl-C, an operator, the OOM
# killer): it says nothing about its changes and runs again. One that died of its own
# signal (SIGSEGV, SIGABRT, ...) is a result: its changes break the run.
_STOPPED = {signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGHUP}


def _a_result(row: dict[str, Any]) -> bool:
    status = row.get("status")
    if status == "killed":
        return row.get("exit_signal") not in _STOPPED
    return status in ("finished", "failed")


# -- the investigation -----------------------------------------------------------------


def _investigate(
    lab: _Lab, factors: list[ax.Factor], untestable: list[ax.Untestable], budget: int, repeats: int
) -> dict[str, Any]:
    a_value = ax.metric_value(lab.ra, lab.metric)
    b_value = ax.metric_value(lab.rb, lab.metric)
    factors = _installable(lab, factors, untestable)
    lab.say(f"runbase: noise: re-running A and B ({repeats} time(s) each)")
    a_runs: list[float | None] = []
    b_runs: list[float | None] = []
    for r in range(repeats):
        va, vb = lab.evaluate([frozenset(), lab.all_names], repeat=r)
        a_runs.append(va)
        b_runs.append(vb)
    noise = ax.noise_summary(a_value, b_value, a_runs, b_runs)
    base = ax.baseline(a_runs)
    if base is None:
        raise UsageError(_baseline_failed(lab, "a"))
    full = ax.baseline(b_runs)
    factors = _unconsumed_params(lab, factors, untestable)
    result = ax.search(
        factors,
        lab.evaluate,
        budget=budget,
        base=base,
        full=full if full is not None else float("nan"),
        threshold=noise["threshold"],
        seed=int(lab.xid[1:], 16),
    )
    return ax.build_report(
        a=lab.ra["id"],
        b=lab.rb["id"],
        metric=lab.metric,
        a_value=a_value,
        b_value=b_value,
        noise=noise,
        factors=factors,
        untestable=untestable,
        result=result,
        hybrids={
            "run": sum(not r["cached"] for r in lab.runs),
            "cached": sum(r["cached"] for r in lab.runs),
            "failed": sum(r["status"] != "finished" for r in lab.runs),
            "seconds": round(lab.seconds, 3),
            "runs": lab.runs,
        },
    )


def _installable(
    lab: _Lab, factors: list[ax.Factor], untestable: list[ax.Untestable]
) -> list[ax.Factor]:
    """The factors left once the package versions the installer cannot provide are
    untestable: a hybrid "with numpy 2.1" built without it would measure something else.
    Every hybrid's environment is A's pins with some of B's versions, so building A's
    and B's side (cached, re-used by the hybrids) tries every version once."""
    if not any(f.kind == "env" for f in factors):
        return factors
    failed: dict[str, str] = {}
    for chosen in (frozenset(), lab.all_names):
        plan = ax.plan_hybrid(lab.store, lab.ra, lab.rb, factors, chosen)
        if plan.pins is None:
            return factors
        _, unresolvable = build_env(lab.store, plan.pins, plan.python_version, lab.say)
        for why in unresolvable:
            failed.setdefault(norm_name(why.split("==", 1)[0]), why)
    kept: list[ax.Factor] = []
    for f in factors:
        reason = failed.get(norm_name(f.change["name"])) if f.kind == "env" else None
        if reason is None:
            kept.append(f)
        else:
            untestable.append(ax.Untestable("env", f.name, f"cannot be installed: {reason}"))
    if not kept:
        raise UsageError(_nothing_testable(lab.ra, lab.rb, untestable))
    lab.factors, lab.all_names = kept, frozenset(f.name for f in kept)
    return kept


def _unconsumed_params(
    lab: _Lab, factors: list[ax.Factor], untestable: list[ax.Untestable]
) -> list[ax.Factor]:
    """The factors left once the params whose override did not reach the script are
    untestable: the re-run of B (every override set) recorded another value for them
    (read from a config file, set by a framework, a param A's code does not have). A
    hybrid "with" such a param ran without it: its effect would be a false zero."""
    b_run = next((r for r in lab.runs if r["role"] == "b"), None)
    if b_run is None:
        return factors
    ran = build_record(lab.store, b_run["run"], include_patch=False).get("params") or {}
    kept = []
    for f in factors:
        key = f.change.get("key") if f.kind == "param" else None
        if key is None or canonical_json(ran.get(key)) == canonical_json(f.change["new"]):
            kept.append(f)
            continue
        got = "no value" if key not in ran else f"{key} = {_short(ran[key])}"
        untestable.append(
            ax.Untestable(
                "param",
                f.name,
                f"the override did not reach the script (B's re-run recorded {got}): its "
                "value comes from elsewhere, e.g. a config file (a factor of its own when "
                "it changed) or a framework",
            )
        )
    if len(kept) < len(factors):
        lab.narrow(frozenset(f.name for f in kept))
    return kept


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return printable(text if len(text) <= 40 else text[:37] + "...")


def _baseline_failed(lab: _Lab, role: str) -> str:
    runs = [r for r in lab.runs if r["role"] == role]
    where = ", ".join(f"{r['run']} ({r['status']})" for r in runs) or "no run started"
    return (
        f"the re-run of A ({lab.ra['id']}) did not give {lab.metric}: {where}; "
        "see `runbase logs RUN`: a hybrid is compared with A, so A must re-run first"
    )


# -- saved reports --------------------------------------------------------------------


def report_path(store: Store, xid: str, metric: str) -> Path:
    # a metric name may hold "/" and anything else: the file name is a readable part
    # and a hash, so two metrics never share a file
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", metric)[:60]
    digest = hashlib.sha256(metric.encode()).hexdigest()[:8]
    return store.root / "explain" / xid / f"{safe}-{digest}.json"


def _save(store: Store, report: dict[str, Any]) -> None:
    path = report_path(store, report["id"], report["metric"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False))
    os.replace(tmp, path)  # a reader never sees half a report


def saved(store: Store, a: str, b: str, metric: str | None = None) -> dict[str, Any] | None:
    """The last report of ``explain(a, b, metric=...)`` (any metric's, the newest, when
    ``metric`` is None), validated; None when there is none. A malformed file raises
    RunbaseError naming it."""
    xid = ax.explain_id(resolve(store, a), resolve(store, b))
    if metric is not None:
        path = report_path(store, xid, metric)
        return _load(path) if path.is_file() else None
    folder = store.root / "explain" / xid
    found = (
        sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    )
    if not found:
        return None
    path = found[-1]
    return _load(path)


def _load(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ValueError(f"larger than {MAX_REPORT_BYTES} bytes")
        return ax.check_report(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, RunbaseError) as e:
        raise RunbaseError(f"the saved explanation {path} cannot be read: {e}") from None
