"""One job of an executor (:mod:`runbase.tracking.executor`): what it is (:class:`Job`,
its :class:`Resources`, its ``runbase run --spec`` fields) and how it starts where it
runs (:func:`prepare`: its spec file written, its code tree materialized by hash) —
shared by the local executor and the Ray tasks (:mod:`runbase.tracking.rayexec`), which
import it without importing each other."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbase.core.executorinfo import ENV_VAR as EXECUTOR_ENV  # what `runbase run` records
from runbase.errors import UnsafePathError, UsageError

TAIL_BYTES = 2000  # of a failed job's stderr: enough for a traceback's last frames


@dataclass
class Job:
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None  # added to os.environ
    label: str = ""
    returncode: int | None = None  # None: never started (the executor was interrupted)
    stderr_tail: str = ""  # the end of stderr when returncode is not 0
    # the `runbase run --spec` fields: written to a file on the node that runs the job,
    # whose path replaces the argv token SPEC_TOKEN
    spec: dict[str, Any] | None = None
    # {"store": root, "code": code record, "cwd": path relative to the project root,
    # "inputs": [...]}: the code tree materialized by hash where the job runs (spec
    # project_root/code_record set); a Ray executor adds "remote", the team server a
    # node without the store fetches it from (tracking.rayexec)
    tree: dict[str, Any] | None = None
    run_id: str | None = None  # the run this job made (spec run_id; a retry's new id)
    executor: dict[str, Any] | None = None  # what ran it (the run record's `executor`)
    cancelled: bool = False  # stopped by cancel() (a pruned trial)


def runbase_run_argv(store_root: str, *options: str) -> list[str]:
    """``runbase run`` on ``store_root`` in this Python, quiet: its closing line would
    hide the failing run's last stderr line. ``options`` go on after ``run`` (the
    command last, after ``--``)."""
    return [sys.executable, "-m", "runbase", "--store", store_root, "run", "--quiet", *options]


# `runbase run --spec FILE` (hidden): the RunOptions a caller sets that have no option of
# their own (explain's hybrids: the tree they run, their project root, the overrides, the
# explanation's tags), each with the JSON type it must have
RUN_SPEC_FIELDS: dict[str, str] = {
    "code_record": "object",
    "project_root": "string",
    "param_sources": "object of strings",
    "reproduces": "string",
    "overrides": "object",
    "tags": "object of strings",
    "name": "string",
    "extra_env": "object of strings",
    "run_id": "string",  # pre-assigned (a sweep's trial): must not exist yet
}

SPEC_TOKEN = "{spec}"  # in a Job's argv: replaced by the path of its written spec file


def write_run_spec(path: str | os.PathLike[str], **fields: Any) -> None:
    """Write a ``runbase run --spec`` file (checked: the reader refuses a bad one)."""
    check_run_spec(fields)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fields, f)


def read_run_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The RunOptions fields of a ``runbase run --spec`` file; UsageError when it is not
    JSON or not a spec."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read the run spec {os.fspath(path)}: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"the run spec {os.fspath(path)} is not JSON: {e}") from None
    return check_run_spec(doc)


def check_run_spec(doc: Any) -> dict[str, Any]:
    """``doc`` if it is a run spec: an object of :data:`RUN_SPEC_FIELDS` keys, each of
    its type (``code_record`` may be null); UsageError naming the first bad key."""
    if not isinstance(doc, dict):
        raise UsageError("a run spec must be a JSON object")
    for key, value in doc.items():
        want = RUN_SPEC_FIELDS.get(key)
        if want is None:
            known = ", ".join(RUN_SPEC_FIELDS)
            raise UsageError(f"unknown key {key!r} in the run spec; known: {known}")
        if not _is(value, want) and not (key == "code_record" and value is None):
            raise UsageError(f"{key!r} in the run spec must be a JSON {want}")
    return dict(doc)


def _is(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    return want == "object" or all(isinstance(v, str) for v in value.values())


@dataclass
class Resources:
    """What one job needs (Ray task resources; the local executor runs ``slots`` jobs
    whatever they ask)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes

    def __post_init__(self) -> None:
        if not self.cpus >= 0 or not self.gpus >= 0 or self.cpus + self.gpus <= 0:
            raise UsageError(
                f"a trial needs some CPUs or GPUs, at least 0 of each (got --cpus "
                f"{self.cpus:g} --gpus {self.gpus:g})"
            )
        if self.memory is not None and self.memory <= 0:
            raise UsageError(f"--memory must be more than 0 bytes, got {self.memory}")


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(i?)(b?)\s*", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes of ``"4G"``, ``"512MiB"``, ``"1.5GB"``, ``"2000000"``: K/M/G/T are powers of
    1000, KiB/MiB/GiB/TiB (and Ki, Mi...) of 1024. UsageError on anything else."""
    m = _MEMORY.fullmatch(text)
    if m is None or (m.group(3) and not m.group(2)):
        raise UsageError(f"bad memory size {text!r}: a number with K, M, G or T (4G, 512MiB)")
    unit = m.group(2).lower()
    scale = 1024 ** "_kmgt".index(unit) if m.group(3) else _UNITS[unit]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise UsageError(f"bad memory size {text!r}: must be more than 0 bytes")
    return value


OnDone = Callable[[Job, int, int], None]


def local_info() -> dict[str, Any]:
    return {"kind": "local", "host": socket.gethostname()}


# -- one job where it runs (this machine, or a Ray worker) --------------------------------


@dataclass
class Launch:
    """A job ready to start where it runs: its argv, directory and environment, and the
    temp directory (its spec file, its materialized tree) to remove when it ended."""

    argv: list[str]
    cwd: str | None
    env: dict[str, str]
    scratch: str | None = None

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def prepare(
    job: Job,
    executor: dict[str, Any],
    spec: dict[str, Any] | None = None,
    store: str | None = None,
) -> Launch:
    """Write the job's spec (``spec`` replaces ``job.spec``: a retry's new run id) and
    materialize its tree on this machine from ``store`` (None: the tree's own, the
    driver's; a Ray node with a store of its own passes that one); the environment
    says ``executor``."""
    spec = dict(spec if spec is not None else job.spec or {})
    env = {**os.environ, **(job.env or {}), EXECUTOR_ENV: json.dumps(executor)}
    if job.spec is None and job.tree is None:
        return Launch(list(job.argv), job.cwd, env)
    scratch = tempfile.mkdtemp(prefix="runbase-job-")
    try:
        cwd = job.cwd
        if job.tree is not None:
            cwd = _materialize(job.tree, Path(scratch) / "tree", spec, store)
        argv = list(job.argv)
        if job.spec is not None:
            path = os.path.join(scratch, "spec.json")
            write_run_spec(path, **spec)
            argv = [path if a == SPEC_TOKEN else a for a in argv]
        return Launch(argv, cwd, env, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _materialize(
    tree: dict[str, Any], into: Path, spec: dict[str, Any], store_root: str | None = None
) -> str:
    """The code tree of ``tree["code"]`` from store ``store_root`` (None:
    ``tree["store"]``) under ``into`` (every object verified); sets the spec's
    project_root and code_record; returns the working directory (``tree["cwd"]`` below
    it)."""
    # lazy: the store loads only for a job with a tree, on the node that runs it
    from runbase.store import Store

    code = tree.get("code")
    oid = code.get("tree") if isinstance(code, dict) else None
    if not isinstance(oid, str):
        raise UsageError("a job's tree has no code record with a tree")
    inputs = check_inputs(tree.get("inputs"))
    store = Store.open(store_root or str(tree["store"]))
    try:
        write_tree(store, oid, into)
        write_inputs(store, inputs, into)
    finally:
        store.close()
    spec["project_root"] = str(into)
    spec["code_record"] = code
    rel = str(tree.get("cwd") or ".")
    cwd = (into / rel).resolve()
    if not cwd.is_relative_to(into.resolve()):
        raise UsageError(f"a job's working directory {rel!r} is outside its tree")
    cwd.mkdir(parents=True, exist_ok=True)  # it may hold no file of the snapshot
    return str(cwd)


def write_tree(store: Any, oid: str, into: Path) -> None:
    """Write code tree manifest ``oid`` under ``into`` (made, must be new): files
    copied out of the store and verified, symlinks that stay inside the tree re-created,
    every path checked (:class:`~runbase.core.safepath.SafeRoot`)."""
    from runbase.core.safepath import SafeRoot  # lazy: only for a job with a tree

    into.mkdir(parents=True)
    _write_manifest(store, oid, SafeRoot(into), "")


def _write_manifest(store: Any, oid: str, root: Any, prefix: str) -> None:
    """The files of manifest ``oid`` under ``prefix`` of ``root`` (a SafeRoot)."""
    # lazy: what materializing needs loads only for a job with a tree
    from runbase.capture.manifest import load_manifest
    from runbase.core.safepath import link_escapes

    for e in load_manifest(store, oid):
        path = f"{prefix}{e['path']}"
        if e["type"] == "link":
            if not link_escapes(path, e["target"]):
                root.symlink(path, e["target"])
            continue
        with root.create(path, 0o755 if e["type"] == "x" else 0o644) as fd:
            store.objects.copy_to(e["oid"], fd)


INPUT_KINDS = ("file", "dir")


def check_inputs(value: Any) -> list[dict[str, str]]:
    """A job tree's ``inputs``: ``[{"path": rel, "oid": id, "kind": "file"|"dir"}]``,
    each path relative and safe, each id an object id; UsageError naming a bad one."""
    # lazy: loaded only for a job with a tree
    from runbase.core.ids import split_id
    from runbase.core.safepath import check_relpath

    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError("a job's tree inputs must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict) or item.get("kind") not in INPUT_KINDS:
            raise UsageError(f"a job's tree input is not one: {item!r}")
        try:
            path = check_relpath(item.get("path"))
            split_id(str(item.get("oid")))
        except (ValueError, UnsafePathError) as e:
            raise UsageError(f"a job's tree input is not one ({e}): {item!r}") from None
        out.append({"path": path, "oid": str(item["oid"]), "kind": item["kind"]})
    return out


def write_inputs(store: Any, inputs: list[dict[str, str]], into: Path) -> None:
    """The declared inputs (:func:`check_inputs`) under ``into`` at their paths, copied
    out of the store and verified, next to the code tree written there."""
    from runbase.core.safepath import SafeRoot  # lazy: as write_tree

    root = SafeRoot(into)
    for item in inputs:
        if item["kind"] == "dir":
            _write_manifest(store, item["oid"], root, item["path"] + "/")
        else:
            with root.create(item["path"], 0o644) as fd:
                store.objects.copy_to(item["oid"], fd)


def stderr_tail(f: Any) -> str:
    f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
    return str(f.read().decode("utf-8", "replace"))


def signal_job(proc: subprocess.Popen[bytes], sig: int) -> None:
    """SIGTERM to the job's leader (``runbase run`` forwards it to its command); SIGKILL
    to its whole process group (its own session), so nothing of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)


# -- this machine ----------------------------------------------------------------------


def start(launch: Launch, err: Any) -> subprocess.Popen[bytes]:
    """The job's ``runbase run``, its stderr into ``err``: in a session of its own, so
    cancelling it signals its whole process group."""
    return subprocess.Popen(
        launch.argv,
        cwd=launch.cwd,
        env=launch.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
    )


def sigterm_interrupts() -> Any:
    """Make SIGTERM stop an executor like Ctrl-C (the runs then end as ``killed``, and
    the caller still reports); returns the previous handler (None off the main thread)."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
