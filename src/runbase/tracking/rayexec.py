"""Jobs as Ray tasks (``--on ray``): the :class:`~runbase.tracking.executor.Executor`
interface over a Ray cluster.

    ex = RayExecutor("ray://head:10001", jobs=None, resources=Resources(cpus=2), retries=1)
    ex.check(store="/shared/store")     # UsageError before any job: no Ray, no cluster,
                                        # a node that cannot reach the store or the remote
    ex.run(jobs, on_done, total)

Each job is one Ray task (its CPUs, GPUs and memory from :class:`Resources`, Ray's
``max_retries`` from ``retries``) running :func:`run_job` on a worker: the job's code tree
is materialized there from the store (every node must see the store at the same path),
its spec written there, and its ``runbase run`` started as a subprocess with
``RUNBASE_EXECUTOR`` saying the node, the host and the attempt.

A task that Ray re-runs because its node died finds its spec's run id already in the
store: it marks that run (and any earlier attempt's) ``lost``, pushes it to the team
server when the job publishes (so the server does not show it running forever), and
makes a new run that records ``retry_of``. A job lost with no retry left is marked
``lost`` here, on the driver.

Ray is imported lazily: ``import runbase`` and local runs never load it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from runbase.errors import UsageError
from runbase.tracking.launch import (
    Job,
    OnDone,
    Resources,
    prepare,
    signal_job,
    sigterm_interrupts,
    start,
    stderr_tail,
)

INSTALL = "pip install 'runbase[ray]'"
CANCEL_GRACE = 10.0  # s between SIGTERM and SIGKILL when a task is cancelled (Ctrl-C)
CONNECT_TIMEOUT = 10.0  # s to reach the cluster's address before ray.init
PROBE_TIMEOUT = 120.0  # s for every node to answer the probe (a busy node starts a worker)
_POLL = 0.5  # s: how often a waiting loop looks for Ctrl-C
# the driver's settings a job's `runbase run` needs on a worker: where the config (the
# remotes, the login) is, where to publish, the token (sent with the task: docs/ray.md)
PASSED_ENV = ("RUNBASE_CONFIG", "RUNBASE_PUBLISH", "RUNBASE_TOKEN")


def import_ray() -> Any:
    """The ``ray`` module, or UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--on ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


class RayExecutor:
    """Jobs as tasks on the Ray cluster at ``address`` (None: RAY_ADDRESS, else the
    local cluster, ``"auto"``; ``"ray://HOST:PORT"``: Ray Client)."""

    kind = "ray"

    def __init__(
        self,
        address: str | None = None,
        jobs: int | None = None,
        resources: Resources | None = None,
        retries: int = 0,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or "auto"
        self.jobs = jobs
        self.resources = resources or Resources()
        self.retries = retries
        self.slots = jobs or 1  # set from the cluster's size by check()
        self._ray: Any = None
        self._probed: set[tuple[str, str | None, str]] = set()
        self._lock = threading.Lock()
        self._refs: dict[Any, Job] = {}  # ObjectRef -> its job, while it runs

    # -- before any job ------------------------------------------------------------------

    def check(self, store: str | None = None, publish: str | None = None) -> None:
        """Connect to the cluster and size the slots; with ``store``, make sure every
        alive node reaches it (and the remote the jobs publish to). UsageError naming
        what is wrong."""
        self._connect()
        if store is not None:
            self._probe(store, publish, _passed_env())

    def _connect(self) -> None:
        if self._ray is not None:
            return
        ray = import_ray()
        if ray.is_initialized():
            _same_cluster(ray, self.address)
        else:
            _reachable(self.address)
            try:
                ray.init(
                    address=self.address,
                    ignore_reinit_error=True,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                )
            except Exception as e:  # noqa: BLE001 - Ray raises many kinds; all say "no cluster"
                raise UsageError(
                    f"cannot connect to the Ray cluster at {self.address}: {_first_line(e)}"
                ) from None
        self._ray = ray
        if self.jobs is None:
            self.slots = self._cluster_slots()

    def _cluster_slots(self) -> int:
        """How many trials of ``resources`` the cluster holds at once (at least 1)."""
        total = self._ray.cluster_resources()
        fits = []
        if self.resources.cpus > 0:
            fits.append(int(total.get("CPU", 0) // self.resources.cpus))
        if self.resources.gpus > 0:
            fits.append(int(total.get("GPU", 0) // self.resources.gpus))
        return max(1, min(fits) if fits else 1)

    def _probe(self, store: str, publish: str | None, env: dict[str, str]) -> None:
        """One task per alive node: can it import runbase, reach ``store`` and the
        remote (with the job's ``env``)? UsageError naming the first node that cannot."""
        key = (store, publish, json.dumps(env, sort_keys=True))
        if key in self._probed:
            return
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(probe_node)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {
            task.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(store, publish, env): n
            for n in nodes
        }
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT)
        for ref in late:
            raise UsageError(f"Ray node {_node_name(refs[ref])} did not answer in time")
        for ref in ready:
            try:
                problem = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the probe itself failed on that node
                problem = f"cannot run runbase ({_error_line(e)}): is runbase installed there?"
            if problem:
                raise UsageError(f"Ray node {_node_name(refs[ref])} {problem}")
        self._probed.add(key)

    # -- running ---------------------------------------------------------------------------

    def run(
        self, items: Iterable[Job], on_done: OnDone | None = None, total: int | None = None
    ) -> bool:
        """Run every job as a Ray task, ``slots`` at a time, pulled lazily;
        ``on_done(job, done, total)`` on this thread as each ends. True when interrupted
        (Ctrl-C, SIGTERM): every task is cancelled, its ``runbase run`` gets SIGTERM."""
        self._connect()
        if total is None and isinstance(items, (list, tuple)):
            total = len(items)
        pending = iter(items)
        untold: deque[Job] = deque()
        done = 0
        old = sigterm_interrupts()
        try:
            while True:
                while len(self._refs) < self.slots:
                    job = next(pending, None)
                    if job is None:
                        break
                    self._submit(job)
                if not self._refs and not untold:
                    return False
                untold.extend(self._ended(wait=True))
                while untold:  # every ended job is told before the next is pulled
                    done += 1
                    if on_done is not None:
                        on_done(untold.popleft(), done, total or 0)
                    else:
                        untold.popleft()
        except KeyboardInterrupt:
            self._interrupt()
            while untold or self._refs:
                untold.extend(self._ended_after_interrupt())
                while untold:
                    job = untold.popleft()
                    if job.returncode is not None and on_done is not None:
                        done += 1
                        with contextlib.suppress(Exception):
                            on_done(job, done, total or 0)
            return True
        except BaseException:  # on_done or the items failed: no task is left behind
            self._interrupt()
            with contextlib.suppress(BaseException):
                while self._refs:
                    self._ended_after_interrupt()
            raise
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)

    def _submit(self, job: Job) -> None:
        passed = _passed_env()
        if passed:  # a worker's own environment is the raylet's, not this shell's
            job.env = {**passed, **(job.env or {})}
        store = job_store(job)
        if store is not None:
            self._probe(store, job_publish(job), job.env or {})
        if job.spec is not None:
            # lazy: ids load only for a job with a spec
            from runbase.core.ids import new_run_id, new_run_name

            # a run id known before it runs, and a name a retry keeps: how a retry finds
            # the runs its dead node took (_attempts)
            job.spec = {"run_id": new_run_id(), "name": new_run_name(), **job.spec}
            job.run_id = job.spec["run_id"]
        r = self.resources
        options: dict[str, Any] = {
            "num_cpus": r.cpus,
            "num_gpus": r.gpus,
            "max_retries": self.retries,
            "retry_exceptions": False,  # a failing command is not retried: a lost node is
        }
        if r.memory is not None:
            options["memory"] = r.memory
        ref = self._ray.remote(run_job).options(**options).remote(job, CANCEL_GRACE)
        with self._lock:
            self._refs[ref] = job

    def _ended(self, wait: bool) -> list[Job]:
        """The jobs whose tasks ended (their results set); waits up to _POLL s for one."""
        with self._lock:
            refs = list(self._refs)
        if not refs:
            return []
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=_POLL if wait else 0)
        ended = []
        for ref in ready:
            with self._lock:
                job = self._refs.pop(ref)
            self._result(job, ref)
            ended.append(job)
        return ended

    def _result(self, job: Job, ref: Any) -> None:
        ray = self._ray
        try:
            out = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return  # cancelled before it started: returncode stays None
        except ray.exceptions.RayTaskError as e:  # run_job raised: the job could not start
            job.returncode = 1
            job.stderr_tail = _error_line(e)
            return
        except Exception as e:  # noqa: BLE001 - its node or worker died, no retry left
            job.returncode = -1
            job.stderr_tail = f"lost: {_error_line(e)}"
            if job.run_id is not None:
                mark_lost(job, job.run_id, "its Ray node or worker died", chain=True)
            return
        job.returncode = out["returncode"]
        job.stderr_tail = out["stderr_tail"]
        job.run_id = out["run_id"]
        job.executor = out["executor"]

    def _interrupt(self) -> None:
        """Cancel every task: Ray raises KeyboardInterrupt in it, which SIGTERMs its
        ``runbase run`` (the run ends killed)."""
        with self._lock:
            refs = list(self._refs)
        for ref in refs:
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=False)

    def _ended_after_interrupt(self) -> list[Job]:
        """Wait for the cancelled tasks; a second Ctrl-C kills their workers."""
        try:
            return self._ended(wait=True)
        except KeyboardInterrupt:
            with self._lock:
                refs = list(self._refs)
            for ref in refs:
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)
            return []

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._refs.values())

    def cancel(self, job: Job, grace: float = CANCEL_GRACE) -> None:
        """Stop one job (a pruned trial): its task gets KeyboardInterrupt, which SIGTERMs
        its ``runbase run`` and SIGKILLs it :data:`CANCEL_GRACE` s later (the task's
        grace: a task cannot be told another one once it runs)."""
        with self._lock:
            refs = [ref for ref, j in self._refs.items() if j is job]
        if not refs:
            return
        job.cancelled = True
        with contextlib.suppress(Exception):
            self._ray.cancel(refs[0], force=False, recursive=True)


def _passed_env() -> dict[str, str]:
    return {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


def _same_cluster(ray: Any, address: str) -> None:
    """This process is connected already (a notebook's ``ray.init()``, Tune): fine for
    ``auto``; UsageError when ``address`` (HOST:PORT) names another cluster's GCS port
    (Ray holds one connection per process). A ``ray://`` address names a client port
    that cannot be compared: the connection is used."""
    if address in ("auto", "local") or "://" in address:
        return
    try:
        current = str(ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - nothing to compare with
        return
    if address.rsplit(":", 1)[-1] != current.rsplit(":", 1)[-1]:
        raise UsageError(
            f"this process is already connected to the Ray cluster at {current}, not "
            f"{address}: one process talks to one cluster (ray.shutdown() first)"
        )


def _reachable(address: str) -> None:
    """UsageError at once when ``address`` (HOST:PORT, ray://HOST:PORT) does not answer
    (ray.init would retry for a minute first)."""
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UsageError(f"bad Ray address {address!r}: use HOST:PORT or ray://HOST:PORT") from None
    if not host or not port:
        raise UsageError(f"bad Ray address {address!r}: use HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise UsageError(
            f"cannot reach the Ray cluster at {address}: {e.strerror or e} "
            "(is it running? RAY_ADDRESS or --on ray://HOST:PORT say where)"
        ) from None


def _node_name(node: dict[str, Any]) -> str:
    return f"{str(node.get('NodeID', ''))[:8]} ({node.get('NodeManagerAddress', '?')})"


def _first_line(e: BaseException) -> str:
    """The message's first line; with its last too when the first only introduces it
    ("Initialization failure from server:" and a server's traceback)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return f"{lines[0]} {lines[-1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _error_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(e).__name__


# -- what a job says about itself ------------------------------------------------------------


def job_store(job: Job) -> str | None:
    """The store root a job writes: its tree's, else its argv's ``--store``."""
    if job.tree is not None and isinstance(job.tree.get("store"), str):
        return str(job.tree["store"])
    return _option(job.argv, "--store")


def job_publish(job: Job) -> str | None:
    """The remote named by the job's ``--publish`` or its ``RUNBASE_PUBLISH`` (None: the
    node's own default, if any)."""
    return _option(job.argv, "--publish") or (job.env or {}).get("RUNBASE_PUBLISH")


def _option(argv: list[str], name: str) -> str | None:
    """The value of ``name`` in argv before the command (``--``)."""
    for i, a in enumerate(argv):
        if a == "--":
            return None
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1 :]
    return None


# -- on the worker -------------------------------------------------------------------------


def probe_node(store: str, publish: str | None, env: dict[str, str]) -> str | None:
    """On one node: why it cannot run jobs of ``store`` with environment ``env`` (None:
    it can). The worker process is Ray's, re-used: ``env`` is set for the probe only."""
    with _environ(env):
        return _probe_here(store, publish)


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in this (Ray worker's, re-used) process for a while."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _probe_here(store: str, publish: str | None) -> str | None:
    host = socket.gethostname()
    if not os.path.isfile(os.path.join(store, "FORMAT")):
        return f"on {host} cannot reach the store at {store}: every node must see it at that path"
    if not os.access(store, os.W_OK):
        return f"on {host} cannot write the store at {store}"
    try:
        # lazy: the remote client loads only where a probe checks publishing
        from runbase.remote.client import get_remote
        from runbase.remote.target import resolve_target

        name = resolve_target(publish)
        if name is None:
            return None
        url = get_remote(name).url
    except UsageError as e:
        return f"on {host} cannot publish: {e}"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        return f"on {host} cannot reach the remote {name} at {url}: {e.strerror or e}"
    return None


def run_job(job: Job, grace: float = CANCEL_GRACE) -> dict[str, Any]:
    """The Ray task of one job: on this node, claim its run id (a retry marks the run its
    lost node took ``lost``), materialize and start it, wait. Ray's cancel (a
    KeyboardInterrupt here) SIGTERMs its ``runbase run``, SIGKILLs it ``grace`` s later."""
    import ray

    info: dict[str, Any] = {
        "kind": "ray",
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "attempt": 0,
    }
    spec = dict(job.spec) if job.spec is not None else None
    if spec is not None and spec.get("run_id"):
        with _environ(job.env or {}):  # its config and login: the lost run is pushed
            _claim(job, spec, info)
    launch = prepare(job, info, spec)
    if launch.argv[1:3] == ["-m", "runbase"]:  # the driver's Python: this node's has runbase
        launch.argv[0] = sys.executable
    cancelled = False
    try:
        with tempfile.TemporaryFile() as err:
            proc = start(launch, err)
            try:
                returncode = _wait(proc)
            except KeyboardInterrupt:  # ray.cancel: stop the run as Ctrl-C would
                cancelled = True
                returncode = _stop(proc, grace)
            tail = stderr_tail(err) if returncode else ""
    finally:
        launch.cleanup()
    return {
        "returncode": returncode,
        "stderr_tail": tail,
        "run_id": spec.get("run_id") if spec else None,
        "executor": info,
        "cancelled": cancelled,
    }


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """proc.wait in short steps: a blocking wait would not see Ray's KeyboardInterrupt."""
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(timeout=_POLL)


def _stop(proc: subprocess.Popen[bytes], grace: float) -> int:
    signal_job(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            return proc.wait(timeout=_POLL)
    signal_job(proc, signal.SIGKILL)
    return proc.wait()


def _claim(job: Job, spec: dict[str, Any], info: dict[str, Any]) -> None:
    """When the spec's run id is already in the store, this task is Ray's retry of one
    whose node died: mark that run and every earlier attempt's ``lost``, take a new run
    id, and say which run this one retries."""
    # lazy: a Ray task loads the store only to claim its run id
    from runbase.core.ids import new_run_id
    from runbase.store import Store

    root = job_store(job)
    if root is None:
        return
    store = Store.open(root)
    try:
        attempts = _attempts(store, str(spec["run_id"]))
    finally:
        store.close()
    if not attempts:
        return
    new = new_run_id()
    mark_lost(job, attempts, f"its Ray node died; retried as run {new}")
    spec["run_id"] = new
    info["attempt"] = len(attempts)
    info["retry_of"] = attempts[-1]


def _attempts(store: Any, first: str) -> list[str]:
    """Run ``first`` and the retries that followed it (each's ``executor.retry_of`` the
    one before), when ``first`` exists. A retry keeps its spec's name and starts later:
    only those runs are read."""
    # lazy: the records load only on a retry, on the node that retries
    from runbase.records.read import list_runs, load_row, run_status
    from runbase.records.record import run_executor

    if run_status(store, first) is None:
        return []
    row = load_row(store, first)
    where = f"started_at >= {float(row['started_at'] or 0)!r}"
    if row.get("name"):
        where += f" and name == {json.dumps(row['name'])}"
    later = [r["id"] for r in list_runs(store, where, "started_at", None) if r["id"] != first]
    retry_of = {rid: _retry_of(run_executor(store, rid)) for rid in later}  # one column
    chain = [first]
    while True:
        nxt = [rid for rid, of in retry_of.items() if of == chain[-1] and rid not in chain]
        if not nxt:
            return chain
        chain.append(nxt[0])


def _retry_of(executor: Any) -> str | None:
    value = executor.get("retry_of") if isinstance(executor, dict) else None
    return value if isinstance(value, str) else None


def mark_lost(job: Job, runs: str | list[str], note: str, chain: bool = False) -> None:
    """Mark ``runs`` ``lost`` in the job's store (``chain``: run ``runs`` and every retry
    that followed it), and push them to the remote the job publishes to (the server
    showed them running). Warns, never raises: the sweep goes on."""
    # lazy: the store and records load only when a run is lost
    from runbase.records.sweeps import set_run_status
    from runbase.store import Store

    root = job_store(job)
    ids = [runs] if isinstance(runs, str) else list(runs)
    if root is None or not ids:
        return
    try:
        store = Store.open(root)
    except Exception as e:  # noqa: BLE001 - a warning, the sweep goes on
        _warn(f"cannot mark run {ids[-1]} lost: {e}")
        return
    try:
        if chain:
            ids = _attempts(store, ids[0]) or ids
        changed = [r for r in ids if _set_lost(store, r, note, set_run_status)]
        if changed:
            _push_lost(store, job, changed)
    finally:
        store.close()


def _set_lost(store: Any, run_id: str, note: str, set_run_status: Any) -> bool:
    try:
        return bool(set_run_status(store, run_id, "lost", note))
    except Exception as e:  # noqa: BLE001 - a warning, the sweep goes on
        _warn(f"cannot mark run {run_id} lost: {e}")
        return False


def _push_lost(store: Any, job: Job, runs: list[str]) -> None:
    try:
        # lazy: the remote client loads only to push a lost run
        from runbase.remote.client import get_remote
        from runbase.remote.sync import push
        from runbase.remote.target import resolve_target

        name = resolve_target(job_publish(job))
        if name is not None:
            push(store, get_remote(name), runs, retry_for=10.0)
    except Exception as e:  # noqa: BLE001 - the server catches up at the next push
        _warn(f"cannot push the lost run(s) {', '.join(runs)}: {e}")


def _warn(message: str) -> None:
    print(f"runbase: warning: {message}", file=sys.stderr)
