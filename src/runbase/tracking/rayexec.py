"""Jobs as Ray tasks (``--on ray``): the :class:`~runbase.tracking.executor.Executor`
interface over a Ray cluster.

    ex = RayExecutor("ray://head:10001", jobs=None, resources=Resources(cpus=2), retries=1)
    ex.check(store="/shared/store")     # UsageError before any job: no Ray, no cluster,
                                        # a node that cannot reach the store or the remote
    ex.run(jobs, on_done, total)

Each job is one Ray task (its CPUs, GPUs and memory from :class:`Resources`, Ray's
``max_retries`` from ``retries``) running :func:`run_job` on a worker: the job's code tree
is materialized there by hash, its spec written there, and its ``runbase run`` started
as a subprocess with ``RUNBASE_EXECUTOR`` saying the node, the host and the attempt.

Where a node gets the code and inputs (:func:`node_store`): from the driver's store when
it sees that store at the same path (a shared file system) and ``RUNBASE_WORKER_STORE``
is not set there; else it keeps a store of its own (``$RUNBASE_WORKER_STORE``, else
``~/.cache/runbase/worker-store``): the driver uploads the tree's objects to the team
server the jobs publish to (once), the node fetches those it lacks by hash (each
re-hashed), the run lands in its store and publishes live, the task makes sure the
server has the run's end (a run SIGKILLed past its grace, or whose final push failed,
is pushed from the node), and the driver pulls the ended run back into its own store
(no data) before it is told the job ended.

A task that Ray re-runs because its node died finds its spec's run id already in the
store, or (when some node keeps its own store) on the team server, where a lost
attempt on such a node published live: it marks that run (and any earlier attempt's)
``lost``, tells the team server when the job publishes (a status change: the server's
files of the run stay as they are), and makes a new run that records ``retry_of``. A
job lost with no retry left is marked ``lost`` here, on the driver.

Ray is imported lazily: ``import runbase`` and local runs never load it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runbase.core.executorinfo import retry_chain, retry_of
from runbase.core.heldsignals import held_signals
from runbase.errors import RunbaseError, UsageError
from runbase.tracking.launch import (
    Job,
    OnDone,
    Resources,
    check_inputs,
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
# a node's own store (docs/ray.md): set on a node, the node never uses the driver's
WORKER_STORE_ENV = "RUNBASE_WORKER_STORE"
WORKER_STORE_DEFAULT = "~/.cache/runbase/worker-store"
# a file the driver writes in its store's tmp/ and names to every task: a node sees the
# driver's store only if it sees that file (another disk's store at the same path is not it)
STORE_MARK_ENV = "RUNBASE_STORE_MARK"
_MARK = re.compile(r"ray-node-check-[0-9a-f]{32}")
PULL_WAIT = 10.0  # s a pull waits for the server to say an ended run's end
PUSH_RETRY = 30.0  # s a node retries the push of a run whose end the server lacks
# Ray's key-value store namespace of the runs a pruner stopped on nodes with their own
# stores (the driver cannot mark those runs: the node does, as it is cancelled)
PRUNED_KV = "runbase-pruned"
PRUNE_NOTE = "stopped by its sweep's pruner"
NO_SERVER = (
    "and has no team server to fetch the code from: publish the sweep (--publish NAME) "
    "or share the store at that path on every node"
)


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
        self.own_store = False  # a node probed keeps its own store (no shared path)
        self._sent: set[str] = set()  # the trees uploaded to the team server already
        self._marks: dict[str, str] = {}  # store root -> the mark file in its tmp/
        self._warned: set[str] = set()
        # jobs taken off _refs whose result an interrupt cut short: told all the same
        self._orphans: list[Job] = []

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
        env = {**env, STORE_MARK_ENV: self._mark(store)}
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
                answer = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the probe itself failed on that node
                problem = f"cannot run runbase ({_error_line(e)}): is runbase installed there?"
                answer = {"problem": problem}
            if answer.get("problem"):
                raise UsageError(f"Ray node {_node_name(refs[ref])} {answer['problem']}")
            if answer.get("store") == "own":
                self.own_store = True
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
                # a SIGTERM/Ctrl-C mid on_done would leave that job untold: it comes after
                with held_signals():
                    while untold:  # every ended job is told before the next is pulled
                        done += 1
                        if on_done is not None:
                            on_done(untold.popleft(), done, total or 0)
                        else:
                            untold.popleft()
        except KeyboardInterrupt:
            self._interrupt()
            untold.extend(self._orphans)
            self._orphans = []
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
            self._orphans = []
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
            job.env = {**(job.env or {}), STORE_MARK_ENV: self._mark(store)}
            if self.own_store:
                self._send_tree(job, store)
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

    def _mark(self, store: str) -> str:
        """The name of a new file in ``store``'s tmp/ (made once per store, removed when
        this process exits): a node that sees it sees this very store."""
        if store not in self._marks:
            name = f"ray-node-check-{secrets.token_hex(16)}"
            path = Path(store, "tmp", name)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
            except OSError as e:
                raise UsageError(f"cannot write in the store at {store}: {e}") from None
            atexit.register(_unlink, path)
            self._marks[store] = name
        return self._marks[store]

    def _send_tree(self, job: Job, store: str) -> None:
        """Some node keeps its own store: the job's tree goes to the team server the job
        publishes to (what the server lacks; once per tree), and the job says which."""
        # lazy: the remote client and the store load only for a cluster without a shared store
        from runbase.remote.client import get_remote
        from runbase.remote.fetch import send_tree
        from runbase.remote.target import resolve_target
        from runbase.store import Store

        if job.tree is None:
            raise UsageError(
                f"a Ray node keeps a store of its own ({WORKER_STORE_ENV}, or it cannot "
                f"reach {store}) and this job runs in {job.cwd or 'a directory'} of this "
                "machine: share the store and that directory on every node"
            )
        name = resolve_target(job_publish(job))
        if name is None:
            raise UsageError(f"a Ray node cannot reach the store at {store} {NO_SERVER}")
        code, inputs = job.tree.get("code"), check_inputs(job.tree.get("inputs"))
        key = json.dumps([name, code, inputs], sort_keys=True)
        if key not in self._sent:
            s = Store.open(store)
            try:
                send_tree(s, get_remote(name), code, inputs)
            except RunbaseError as e:
                raise RunbaseError(
                    f"cannot send the job's code and inputs to {name} (the Ray nodes with "
                    f"a store of their own fetch them there): {e}"
                ) from None
            finally:
                s.close()
            self._sent.add(key)
        job.tree = {**job.tree, "remote": name}

    def points_remote(self, job: Job) -> str | None:
        """The remote whose team server holds a running job's metric points when its
        node may keep a store of its own (a pruner reads them there:
        :func:`runbase.remote.fetch.series_after`); None: the driver's store has them."""
        name = (job.tree or {}).get("remote")
        return name if isinstance(name, str) else None

    def _ended(self, wait: bool) -> list[Job]:
        """The jobs whose tasks ended (their results set); waits up to _POLL s for one."""
        ended, self._orphans = self._orphans, []
        with self._lock:
            refs = list(self._refs)
        if not refs:
            return ended
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=_POLL if wait else 0)
        for ref in ready:
            with self._lock:
                job = self._refs.pop(ref)
            try:
                self._result(job, ref)
            except BaseException:  # Ctrl-C in a pull: the job is still told (run())
                self._orphans = [*ended, job]
                raise
            ended.append(job)
        return ended

    def _result(self, job: Job, ref: Any) -> None:
        if job.cancelled and job.run_id is not None and self.points_remote(job) is not None:
            _unsay_pruned(job.run_id)  # the node read it, or never will
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
        if out.get("store") == "own" and job.run_id is not None:
            if out.get("pushed") is False:
                _warn(
                    f"run {job.run_id} did not reach {self.points_remote(job)} from Ray node "
                    f"{out['executor'].get('host')}: `runbase push` there (store "
                    f"{out.get('root')}) sends it; the server shows its last live state"
                )
            patient = not out["cancelled"] and out.get("pushed") is None
            self._pull(job, [*out.get("lost", []), job.run_id], patient=patient)

    def _pull(self, job: Job, run_ids: list[str], patient: bool) -> None:
        """The runs a node with its own store made, from the team server into the
        driver's store (no data), the job's own last: once the server has its end
        (``runbase run`` pushed it as it exited; waited for :data:`PULL_WAIT` s). Warns
        once, never raises: the job keeps its exit status."""
        # lazy: the remote client and the records load only for such a node's job
        from runbase.records.read import run_status
        from runbase.remote.client import get_remote
        from runbase.remote.sync import pull
        from runbase.store import Store

        name = self.points_remote(job)
        root = job_store(job)
        if name is None or root is None:
            return
        try:
            remote, store = get_remote(name), Store.open(root)
            try:
                for rid in run_ids:
                    pull(store, remote, rid)
                deadline = time.monotonic() + (PULL_WAIT if patient else 0.0)
                while run_status(store, run_ids[-1]) == "running" and time.monotonic() < deadline:
                    time.sleep(_POLL)
                    pull(store, remote, run_ids[-1])
            finally:
                store.close()
        except Exception as e:  # noqa: BLE001 - a warning: the job's result stands
            if "pull" not in self._warned:
                self._warned.add("pull")
                _warn(
                    f"cannot bring run {run_ids[-1]} from {name} into {root}: {e} "
                    f"(`runbase pull {name}:{run_ids[-1]}` does later)"
                )

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
            ended, self._orphans = self._orphans, []  # those whose result it cut short
            return ended

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
        if self.points_remote(job) is not None and job.run_id is not None:
            _say_pruned(job.run_id)
        with contextlib.suppress(Exception):
            self._ray.cancel(refs[0], force=False, recursive=True)


def _say_pruned(run_id: str) -> None:
    """Tell the node of run ``run_id`` (whose store the driver cannot write) that it is
    cancelled as pruned: it marks the run ``pruned`` before stopping it, so its end
    (killed, or exit 0 of a command that catches SIGTERM) keeps that status, as the
    sweep's mark in a shared store does. Said before the cancel that makes it look."""
    with contextlib.suppress(Exception):  # no key-value store (Ray Client): ends killed
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(run_id, PRUNE_NOTE, namespace=PRUNED_KV)


def _unsay_pruned(run_id: str) -> None:
    """The note of :func:`_say_pruned` gone once its task ended (else the cluster's
    key-value store keeps one per pruned trial for its lifetime)."""
    with contextlib.suppress(Exception):
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(run_id, namespace=PRUNED_KV)


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


def probe_node(store: str, publish: str | None, env: dict[str, str]) -> dict[str, Any]:
    """On one node: ``{"store": "shared"|"own", "problem": why it cannot run jobs of
    ``store`` with environment ``env`` (None: it can)}``. The worker process is Ray's,
    re-used: ``env`` is set for the probe only."""
    with _environ(env):
        try:
            mode, root = node_store(store, env.get(STORE_MARK_ENV))
        except UsageError as e:
            return {"store": "own", "problem": f"cannot keep its own store: {e}"}
        return {"store": mode, "problem": _probe_here(store, publish, mode, root)}


def node_store(shared: str, mark: str | None = None) -> tuple[str, str]:
    """Which store jobs of the driver's store ``shared`` use on this node: ``("shared",
    shared)`` when the node sees it (:func:`sees_store`) and ``RUNBASE_WORKER_STORE`` is
    not set; else ``("own", the node's store)``."""
    own = os.environ.get(WORKER_STORE_ENV)
    if not own and sees_store(shared, mark):
        return "shared", shared
    path = Path(own or WORKER_STORE_DEFAULT).expanduser()
    if not path.is_absolute():  # a Ray worker's cwd is a per-job directory Ray deletes
        raise UsageError(
            f"{WORKER_STORE_ENV}={own} on {socket.gethostname()} is a relative path: set "
            "an absolute one (a Ray worker's directory changes from job to job)"
        )
    return "own", str(path)


def sees_store(shared: str, mark: str | None) -> bool:
    """Whether this node sees the driver's store at ``shared``: a store there (its FORMAT
    file), writable, holding the driver's ``mark`` file in its tmp/ (when the driver named
    one: a store at the same path on this node's own disk is another store)."""
    if not os.path.isfile(os.path.join(shared, "FORMAT")) or not os.access(shared, os.W_OK):
        return False
    if mark is None:
        return True
    return bool(_MARK.fullmatch(mark)) and os.path.isfile(os.path.join(shared, "tmp", mark))


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def open_node_store(mode: str, root: str) -> Any:
    """The store ``node_store`` named, opened; a node's own store is made on first use,
    under a lock: two tasks starting at once on one node make it once."""
    from runbase.store import Store  # lazy: a Ray task loads the store only here

    path = Path(root)
    if mode == "own" and not (path / "FORMAT").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            Store.open(path, create=True).close()
    return Store.open(path)


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


def _probe_here(store: str, publish: str | None, mode: str, root: str) -> str | None:
    host = socket.gethostname()
    if mode == "own":
        try:
            open_node_store(mode, root).close()
        except (OSError, RunbaseError) as e:
            return f"on {host} cannot make its own store at {root}: {e}"
    try:
        # lazy: the remote client loads only where a probe checks publishing
        from runbase.remote.client import get_remote
        from runbase.remote.target import resolve_target

        name = resolve_target(publish)
        if name is None:
            return None if mode == "shared" else _no_server(host, store)
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


def _no_server(host: str, store: str) -> str:
    if os.environ.get(WORKER_STORE_ENV):
        why = f"keeps its own store ({WORKER_STORE_ENV}) instead of the one at {store}"
    elif os.path.isfile(os.path.join(store, "FORMAT")):
        why = f"has a store at {store} that is not the driver's (not a shared file system)"
    else:
        why = f"cannot reach the store at {store}"
    return f"on {host} {why} {NO_SERVER}"


def run_job(job: Job, grace: float = CANCEL_GRACE) -> dict[str, Any]:
    """The Ray task of one job: on this node, claim its run id (a retry marks the run its
    lost node took ``lost``), get its tree (a node with its own store: from the team
    server), materialize and start it, wait. Ray's cancel (a KeyboardInterrupt here)
    SIGTERMs its ``runbase run``, SIGKILLs it ``grace`` s later. On a node with its own
    store the run's end is then made sure of on the team server (:func:`_finish_own`)."""
    import ray

    info: dict[str, Any] = {
        "kind": "ray",
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "attempt": 0,
    }
    spec = dict(job.spec) if job.spec is not None else None
    shared = job_store(job)
    mark = (job.env or {}).get(STORE_MARK_ENV)
    mode, root = node_store(shared, mark) if shared is not None else ("shared", None)
    own = root if mode == "own" else None
    if own is not None and not isinstance((job.tree or {}).get("remote"), str):
        # a node that joined after the probe: the same refusal the probe gives
        raise UsageError(f"Ray node {_no_server(info['host'], str(shared))}")
    lost: list[str] = []
    with _environ(job.env or {}):  # its config and login: the lost run is pushed
        if spec is not None and spec.get("run_id") and root is not None:
            lost = _claim(job, spec, info, mode, root)
        if own is not None:
            _fetch_tree(job, own)
    launch = prepare(job, info, spec, own)
    cancelled = False
    run_id = str(spec["run_id"]) if spec and spec.get("run_id") else None
    try:
        if launch.argv[1:3] == ["-m", "runbase"]:  # the driver's Python: this node's has it
            launch.argv[0] = sys.executable
        if own is not None:  # the run lands in this node's store
            launch.argv = _with_option(launch.argv, "--store", own)
        with tempfile.TemporaryFile() as err:
            proc = start(launch, err)
            try:
                returncode = _wait(proc)
            except KeyboardInterrupt:  # ray.cancel: stop the run as Ctrl-C would
                cancelled = True
                if own is not None and run_id is not None:
                    _mark_if_pruned(job, run_id, own)
                returncode = _stop(proc, grace)
            tail = stderr_tail(err) if returncode else ""
    finally:
        launch.cleanup()
    pushed = None
    if own is not None and run_id is not None:
        with _environ(job.env or {}):
            pushed = _finish_own(job, run_id, own)
    return {
        "returncode": returncode,
        "stderr_tail": tail,
        "run_id": run_id,
        "executor": info,
        "cancelled": cancelled,
        "store": mode,  # which store the run is in: "shared" (the driver's) or "own"
        "root": root,
        "lost": lost,  # the earlier attempts this retry marked lost
        "pushed": pushed,  # own store: whether the server has the run's end (None: no run)
    }


def _finish_own(job: Job, run_id: str, root: str) -> bool | None:
    """After ``runbase run`` exited on a node with its own store: a run it left
    ``running`` (SIGKILLed past the grace) ends ``killed`` there, and the run goes to the
    team server unless its final push landed as it is now (nothing else on this node
    would ever send it). Whether the server has it; None when there is no such run."""
    # lazy: the store, records and remote client load only on a node with its own store
    from runbase.records.outbox import mark_pending
    from runbase.records.read import run_status
    from runbase.records.sweeps import end_if_running
    from runbase.remote.client import get_remote
    from runbase.remote.sync import push

    name = str((job.tree or {}).get("remote"))
    try:
        store = open_node_store("own", root)
    except Exception as e:  # noqa: BLE001 - the driver warns and pulls what there is
        _warn(f"cannot open this node's store {root} to finish run {run_id}: {e}")
        return False
    try:
        if run_status(store, run_id) is None:
            return None
        end_if_running(store, run_id, "killed")
        try:
            # a push unchanged since the last one (the run's own final push) sends nothing
            push(store, get_remote(name), [run_id], retry_for=PUSH_RETRY)
            return True
        except Exception as e:  # noqa: BLE001 - kept pending here: `runbase push` sends it
            mark_pending(store, name, run_id)
            _warn(f"cannot push run {run_id} to {name}: {e}")
            return False
    finally:
        store.close()


def _mark_if_pruned(job: Job, run_id: str, root: str) -> None:
    """A cancelled task on a node with its own store: when the driver said the job is
    pruned (:func:`_say_pruned`), its run is marked so in this store before it stops."""
    try:
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

        note = _internal_kv_get(str(job.run_id), namespace=PRUNED_KV)
        if not note:
            return
        _internal_kv_del(str(job.run_id), namespace=PRUNED_KV)
        from runbase.records.sweeps import set_run_status  # lazy: records, only here

        store = open_node_store("own", root)
        try:
            set_run_status(store, run_id, "pruned", note.decode("utf-8", "replace"))
        finally:
            store.close()
    except Exception as e:  # noqa: BLE001 - the run then ends killed; the driver marks it
        _warn(f"cannot mark run {run_id} pruned: {e}")


def _fetch_tree(job: Job, root: str) -> None:
    """The objects of the job's tree this node's store lacks, from the team server the
    driver sent them to (each re-hashed as it arrives)."""
    # lazy: only on a node with its own store
    from runbase.remote.client import get_remote
    from runbase.remote.fetch import fetch_tree

    name = (job.tree or {}).get("remote")
    if job.tree is None or not isinstance(name, str):
        return
    store = open_node_store("own", root)
    try:
        fetch_tree(
            store, get_remote(name), job.tree.get("code"), check_inputs(job.tree.get("inputs"))
        )
    finally:
        store.close()


def _with_option(argv: list[str], name: str, value: str) -> list[str]:
    """``argv`` with the value of option ``name`` (before the command) set to ``value``;
    added after ``-m runbase`` when it has none."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--":
            break
        if a == name and i + 1 < len(out):
            out[i + 1] = value
            return out
        if a.startswith(name + "="):
            out[i] = f"{name}={value}"
            return out
    if out[1:3] == ["-m", "runbase"]:
        return [*out[:3], name, value, *out[3:]]
    raise UsageError(f"a job's argv has no {name} option before its command")


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


def _claim(job: Job, spec: dict[str, Any], info: dict[str, Any], mode: str, root: str) -> list[str]:
    """When the spec's run id is already in the store or, when some node keeps its own
    store (the job's tree names a team server), on that server (where the lost attempt
    published live; pulled into this node's store, the driver's on a node that shares
    it: a mixed cluster), this task is Ray's retry of
    one whose node died: mark that run and every earlier attempt's ``lost``, take a new
    run id, and say which run this one retries. The runs marked lost."""
    from runbase.core.ids import new_run_id  # lazy: a Ray task loads ids only here

    store = open_node_store(mode, root)
    try:
        attempts = _attempts(store, str(spec["run_id"]))
        pulled = not attempts
        if pulled:  # a lost attempt on a node with its own store: on the server
            attempts = _server_attempts(store, job, str(spec["run_id"]), mode)
    finally:
        store.close()
    if not attempts:
        return []
    new = new_run_id()
    note = f"its Ray node died; retried as run {new}"
    mark_lost(job, attempts, note, root=root, pulled=pulled or mode == "own")
    spec["run_id"] = new
    info["attempt"] = len(attempts)
    info["retry_of"] = attempts[-1]
    return attempts


def _server_attempts(store: Any, job: Job, first: str, mode: str) -> list[str]:
    """:func:`_pull_attempts`; on a node that shares the driver's store a server that
    does not answer only warns (the run is most likely a first attempt, and the store it
    writes is the driver's): a node with its own store has no other way to know."""
    if mode == "own":
        return _pull_attempts(store, job, first)
    try:
        return _pull_attempts(store, job, first)
    except Exception as e:  # noqa: BLE001 - a warning: the job runs as a first attempt
        _warn(f"cannot ask the team server for earlier attempts of run {first}: {e}")
        return []


def _pull_attempts(store: Any, job: Job, first: str) -> list[str]:
    """Run ``first`` and its retries from the team server the job's tree came from,
    pulled into ``store`` (no data): the attempts lost nodes with their own stores
    published live. Empty when the job has no such server or it has no ``first``."""
    # lazy: the remote client loads only for a retry on a node with its own store
    from runbase.remote.client import get_remote
    from runbase.remote.fetch import remote_attempts
    from runbase.remote.sync import pull

    name = (job.tree or {}).get("remote")
    if not isinstance(name, str):
        return []
    remote = get_remote(name)
    ids = remote_attempts(remote, first)
    for rid in ids:
        pull(store, remote, rid)
    return ids


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
    retries = {rid: retry_of(run_executor(store, rid)) for rid in later}  # one column
    return retry_chain(first, retries)


def mark_lost(
    job: Job,
    runs: str | list[str],
    note: str,
    chain: bool = False,
    root: str | None = None,
    pulled: bool = False,
) -> None:
    """Mark ``runs`` ``lost`` in store ``root`` (None: the job's; ``chain``: run ``runs``
    and every retry that followed it), and push them to the remote the job publishes to
    (the server showed them running). Runs of nodes with their own stores are pulled
    from that server first. Warns, never raises: the sweep goes on."""
    # lazy: the store and records load only when a run is lost
    from runbase.records.read import run_status
    from runbase.records.sweeps import set_run_status
    from runbase.store import Store

    root = root or job_store(job)
    ids = [runs] if isinstance(runs, str) else list(runs)
    if root is None or not ids:
        return
    try:
        store = Store.open(root)
    except Exception as e:  # noqa: BLE001 - a warning, the sweep goes on
        _warn(f"cannot mark run {ids[-1]} lost: {e}")
        return
    # a run pulled from the server (``pulled``, or any run of a cluster where nodes keep
    # their own stores: the driver's copy may be pulled) may lack its data here: the
    # server is told its status only; a run of a shared store is pushed whole
    data = root == job_store(job) and not pulled and not (job.tree or {}).get("remote")
    try:
        if run_status(store, ids[0]) is None and (job.tree or {}).get("remote"):
            data = False
            ids = (_pull_attempts(store, job, ids[0]) if chain else ids) or ids
        elif chain:
            ids = _attempts(store, ids[0]) or ids
        changed = [r for r in ids if _set_lost(store, r, note, set_run_status)]
        if changed:
            _push_lost(store, job, changed, data)
    except Exception as e:  # noqa: BLE001 - a warning, the sweep goes on
        _warn(f"cannot mark run {ids[-1]} lost: {e}")
    finally:
        store.close()


def _set_lost(store: Any, run_id: str, note: str, set_run_status: Any) -> bool:
    try:
        return bool(set_run_status(store, run_id, "lost", note))
    except Exception as e:  # noqa: BLE001 - a warning, the sweep goes on
        _warn(f"cannot mark run {run_id} lost: {e}")
        return False


def _push_lost(store: Any, job: Job, runs: list[str], data: bool = True) -> None:
    """Tell the remote the job publishes to that ``runs`` are lost: pushed whole when
    ``data`` (this store holds them, their data included); else (copies pulled from the
    server, without data) a status change only, a live delta of each runs row: a whole
    push of such a copy would tell the server their data files are not stored."""
    try:
        # lazy: the remote client loads only to push a lost run
        from runbase.remote.client import get_remote
        from runbase.remote.sync import push
        from runbase.remote.target import resolve_target

        name = (job.tree or {}).get("remote") or resolve_target(job_publish(job))
        if name is None:
            return
        remote = get_remote(name)
        if data:  # this store holds the runs whole
            push(store, remote, runs, data=True, retry_for=10.0)
            return
        kept = [r for r in runs if not _send_status(store, remote, r)]
        if kept:
            _warn(f"the server {name} keeps its status of run(s) {', '.join(kept)}")
    except Exception as e:  # noqa: BLE001 - the server catches up at the next push
        _warn(f"cannot push the lost run(s) {', '.join(runs)}: {e}")


def _send_status(store: Any, remote: Any, run_id: str) -> bool:
    """Run ``run_id``'s row (its status) as a live delta without metric points; whether
    the server took it (it takes one for a run it shows running, pruned or lost)."""
    import urllib.parse

    # lazy: the records and the HTTP client load only where a lost run is told
    from runbase.errors import RemoteError
    from runbase.records.bundle import status_delta
    from runbase.remote.client import Client

    delta = status_delta(store, run_id)
    client = Client(remote.url, remote.token, retry_for=10.0, timeout=10.0)
    path = f"{remote.api}/runs/{urllib.parse.quote(run_id, safe='')}/live"
    try:
        client.send_json("POST", path, delta)
    except RemoteError as e:
        if e.status in (404, 409):  # not there, or ended there: a whole push instead
            return False
        raise
    return True


def _warn(message: str) -> None:
    print(f"runbase: warning: {message}", file=sys.stderr)
