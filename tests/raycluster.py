"""A real local Ray cluster for tests: a head node and a worker node, 1 CPU each
(``RayCluster(nodes=1)``: the head alone; ``node_env``: variables the nodes, so their
Ray workers, run with, as ``RUNBASE_WORKER_STORE`` on a machine of its own;
``worker_env``: the worker node's, over ``node_env``).

    pytest_plugins = ["tests.raycluster"]     # or: from tests.raycluster import ray_cluster

    def test_x(ray_cluster):
        ray_cluster.address          # "IP:PORT" of the head's GCS
        ray_cluster.nodes()          # the alive nodes (id, ip, resources)
        ray_cluster.kill_worker_node()  # SIGKILL the second node: its tasks are lost

Each node is a ``ray start --block`` child in its own process group (its own session),
so the cluster is stopped by killing those groups: SIGTERM, then SIGKILL. Never ``ray
stop``, which kills every Ray process on the machine (other tests', other users').
Every port is chosen free (the dashboard's and its agent's default ports are fixed
numbers two clusters would fight over); token authentication is off for this cluster
and its drivers (``RAY_AUTH_MODE=disabled``): a shared ``~/.ray/auth_token`` that
another cluster writes must not decide whether this one can be reached.

Ray may ignore ``--node-ip-address=127.0.0.1`` and register the nodes under the
machine's address; :attr:`RayCluster.address` is the address the head reports.
"""

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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = 78643200  # 75 MiB: the least Ray accepts
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
START_TIMEOUT = 120.0  # a loaded 2-core machine starts a node in 10-30 s
_STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayCluster:
    """``nodes`` (1 or 2) nodes of a real Ray cluster, started by :meth:`start`, gone
    after :meth:`stop`; ``node_env`` added to each node's environment."""

    def __init__(
        self,
        nodes: int = 2,
        node_env: dict[str, str] | None = None,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.nodes_wanted = nodes
        self.node_env = dict(node_env or {})
        self.worker_env = {**self.node_env, **(worker_env or {})}
        # short: Ray's unix sockets live below it (a path may not exceed 107 bytes)
        self.temp_dir = tempfile.mkdtemp(prefix="rbray-")
        self.port = free_port()
        self.client_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []

    def start(self) -> RayCluster:
        self._node(
            "head",
            "--head",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            f"--ray-client-server-port={self.client_port}",
            f"--dashboard-port={free_port()}",
            f"--temp-dir={self.temp_dir}",
        )
        ip = self._wait_started(0)
        self.address = f"{ip}:{self.port}"
        if self.nodes_wanted > 1:
            self._node("worker", f"--address={self.address}", env=self.worker_env)
            self._wait_started(1)
        return self

    @property
    def client_address(self) -> str:
        """The Ray Client address (``ray://``) of the head."""
        return f"ray://{self.address.rsplit(':', 1)[0]}:{self.client_port}"

    def _node(self, name: str, *options: str, env: dict[str, str] | None = None) -> None:
        log = Path(self.temp_dir) / f"{name}.log"
        argv = [
            RAY,
            "start",
            "--block",
            "--num-cpus=1",
            f"--object-store-memory={OBJECT_STORE}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
            *options,
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **ENV, **(self.node_env if env is None else env)},
                start_new_session=True,  # its own group: stopped without `ray stop`
            )
        self._procs.append(proc)
        self._logs.append(log)

    def _wait_started(self, i: int) -> str:
        """Wait for node ``i`` to say it started; the node IP it reports."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = re.sub(r"\x1b\[[0-9;]*m", "", self._logs[i].read_text(errors="replace"))
            if _STARTED in text:
                found = re.search(r"Local node IP: ([0-9a-f.:]+)", text)
                return found.group(1) if found else "127.0.0.1"
            if self._procs[i].poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"Ray node {i} did not start:\n{text[-3000:]}")

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes (``NodeID``, ``NodeManagerAddress``, ``Resources``), asked by
        a driver of its own (this process never connects)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', "
            "log_to_driver=False); print(json.dumps([n for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, **ENV},
            check=True,
            timeout=120,
        )
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    def kill_worker_node(self) -> None:
        """SIGKILL the worker node's processes as a dead machine would lose them: the
        raylet, its Ray workers and what they run, though these have sessions of their
        own (a worker left alive would still hand its result to the driver)."""
        doomed = _descendants(self._procs[1].pid)
        _kill_group(self._procs[1], signal.SIGKILL)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._procs[1].wait()

    def stop(self) -> None:
        """Kill this cluster's process groups (SIGTERM, SIGKILL after 10 s) and remove
        its temp dir; nothing of another cluster is touched."""
        for proc in self._procs:
            _kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self._procs:  # the group outlives its leader: kill what is left
            _kill_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _disconnect() -> None:
    """A test that drove Ray in this process leaves before its cluster goes (a driver
    whose cluster vanished may end the process)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: children, their children...)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found, todo = [], [pid]
    while todo:
        above = todo.pop()
        below = [p for p, pp in parent.items() if pp == above]
        found += below
        todo += below
    return found


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """A started two-node cluster for the module, at ``RAY_ADDRESS`` meanwhile; the
    drivers the tests start (in this process or as subprocesses) get
    ``RAY_AUTH_MODE=disabled`` like the cluster."""
    with running(RayCluster()) as cluster:
        yield cluster


@contextlib.contextmanager
def running(cluster: RayCluster) -> Iterator[RayCluster]:
    """``cluster`` started, at ``RAY_ADDRESS`` (and ``RAY_AUTH_MODE=disabled``) while the
    block runs; stopped after it (a module fixture of a cluster of its own uses it)."""
    saved = {k: os.environ.get(k) for k in (*ENV, "RAY_ADDRESS")}
    os.environ.update(ENV)
    try:
        cluster.start()
        os.environ["RAY_ADDRESS"] = cluster.address  # what `--on ray` connects to
        yield cluster
    finally:
        _disconnect()
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
