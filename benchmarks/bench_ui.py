"""The web UI's JSON API on a large store, side by side with ``mlflow server``.

runbase: a store of ``--runs`` runs (default 100,000) x 10 params x 5 metric summaries,
plus one run whose ``loss`` series has 1,000,000 points (logged through
``runbase.tracking.tracker`` and ingested as a real run is). The runs are written with the
inserts the library itself performs (``lifecycle.create_run``'s row, ``params`` rows
encoded by ``capture.params``, ``metrics`` summary rows as ``ingest`` leaves them),
in bulk: creating 100,000 runs one by one through the supervisor would take hours.
A real uvicorn serves ``runbase.web.app.create_app(store)``; each request is timed as
the wall time of one HTTP GET from this process (``http.client``, new connection per
request, body read), median of ``--n`` after one warm-up, interleaved.

Targets (issue P4): the runs page API (first page, sorted by a metric, filtered by a
param) <= 200 ms; the chart data of a 1,000,000-point series <= 200 ms and <= 200 KB.

MLflow 3.17.2 (``benchmarks/.venvs/mlflow``): ``mlflow server`` on a SQLite backend
holding ``--mlflow-runs`` runs (default 5,000: MLflow logs ~100-200 runs/s here, so
100,000 would take most of an hour) with the same 10 params and 5 metrics, and one run
with ``--mlflow-points`` points of ``loss``; timed: ``runs/search`` (max_results 50,
ordered by ``metrics.acc DESC``, filtered ``params.optimizer = 'adam'``: MLflow
compares params as strings only) and ``metrics/get-history`` of the long series (which
returns every point: MLflow has no server-side downsampling). runbase is measured on a
store of the same ``--mlflow-runs`` runs too, for a like-for-like row.

The chart panel (issue 18): ``/api/panel`` of ``--panel-runs`` runs (default 100) x 5
metrics x ``--panel-points`` points (default 10,000), 200 buckets per series: by step,
by wall time, and grouped by a param with an sd band by relative time; over HTTP and in
process (``chart_panel`` + its JSON encoding: the server's time). Target <= 300 ms. The
MLflow anchor: the MLflow UI's run comparison draws each metric's chart from
``metrics/get-history-bulk-interval`` (sampled on the server, ``max_results=200``), on
the same runs, metrics and points logged to ``mlflow server``: the 5 requests timed one
after the other.

    .venv/bin/python benchmarks/bench_ui.py [--runs 100000] [--n 15] [--mlflow-runs 5000]
                                            [--mlflow-points 200000] [--skip-mlflow]
                                            [--panel-runs 100] [--panel-points 10000]
                                            [--skip-panel] [--panel-only]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from _ui_browser import time_to_charts  # noqa: E402

MLFLOW_PIN = "mlflow==3.17.2"
PARAMS = {
    "lr": [0.1, 0.03, 0.01, 0.003, 0.001],
    "batch_size": [32, 64, 128, 256],
    "optimizer": ["adam", "sgd", "adamw"],
    "epochs": [5, 10, 20],
    "dropout": [0.0, 0.1, 0.2, 0.5],
    "weight_decay": [0.0, 1e-5, 1e-4],
    "layers": [2, 4, 8, 16],
    "warmup": [0, 100, 1000],
    "momentum": [0.8, 0.9, 0.99],
}  # + seed (unique): 10 params
METRICS = ("loss", "acc", "val_loss", "val_acc", "f1")


# -- filling ---------------------------------------------------------------------------


def _run_params(rnd: random.Random, i: int) -> dict[str, Any]:
    p = {k: rnd.choice(v) for k, v in PARAMS.items()}
    p["seed"] = i
    return p


def _run_metrics(rnd: random.Random, p: dict[str, Any]) -> dict[str, float]:
    acc = min(1.0, 0.5 + 0.4 * (1 - abs(p["lr"] - 0.01) * 5) + rnd.random() * 0.05)
    loss = 1.0 - acc + rnd.random() * 0.01
    return {
        "loss": loss,
        "acc": acc,
        "val_loss": loss * 1.1,
        "val_acc": acc * 0.97,
        "f1": acc * 0.95,
    }


def fill_runbase(store_path: Path, n: int, seed: int = 0) -> dict[str, Any]:
    from runbase.capture.params import encode_value, numeric
    from runbase.core import ids
    from runbase.store import Store

    rnd = random.Random(seed)
    store = Store.open(store_path, create=True)
    t0 = time.perf_counter()
    start = time.time() - n * 60
    batch = 5000
    for lo in range(0, n, batch):
        runs, params, metrics = [], [], []
        for i in range(lo, min(n, lo + batch)):
            started = start + i * 60
            run_id = ids.new_run_id(started)
            status = "finished" if rnd.random() < 0.9 else "failed"
            p = _run_params(rnd, i)
            runs.append(
                (
                    run_id,
                    ids.new_run_name(),
                    status,
                    0 if status == "finished" else 1,
                    started,
                    started + rnd.uniform(10, 3600),
                    started,
                    json.dumps(["python", "train.py", "--lr", str(p["lr"])]),
                    "/proj",
                    "bench",
                    "host",
                    "/proj",
                    "run",
                    None if rnd.random() < 0.5 else f"sweep{i // 100}",
                )
            )
            for k, v in p.items():
                text = encode_value(k, v)
                params.append((run_id, k, text, numeric(text), "argparse"))
            for k, v in _run_metrics(rnd, p).items():
                metrics.append((run_id, k, 100, v, v * 0.9, v * 1.1, 99, started, None, 0, v))
        with store.db.transaction() as cur:
            cur.executemany(
                "INSERT INTO runs (id, name, status, exit_code, started_at, ended_at, heartbeat_at, command, "
                "cwd, user_name, host, project_root, mode, sweep_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                runs,
            )
            cur.executemany(
                "INSERT INTO params (run_id, key, value, num, source) VALUES (?,?,?,?,?)", params
            )
            cur.executemany(
                "INSERT INTO metrics (run_id, key, count, last, min, max, last_step, last_time, "
                "summary, has_summary, value) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                metrics,
            )
    fill_s = time.perf_counter() - t0
    long_id, long_s = _long_series_run(store, 1_000_000)
    store.db.execute("ANALYZE")
    store.close()
    return {"runs": n, "fill_s": fill_s, "long_run": long_id, "long_fill_s": long_s}


def _long_series_run(store: Any, points: int) -> tuple[str, float]:
    """One real run with a ``points``-point series: tracker spool, then ingest."""
    from runbase.records import lifecycle
    from runbase.tracking import tracker

    t0 = time.perf_counter()
    run_id = lifecycle.create_run(
        store, command=["python", "long.py"], mode="run", name="long-series"
    )
    t = tracker.Tracker(run_id, str(store.root))
    tracker.activate(t)
    for step in range(points):
        tracker.log(loss=1.0 / (step + 1) + (step % 100) * 1e-4, step=step)
    t.close()
    tracker.deactivate()
    lifecycle.finalize(store, run_id, "finished", exit_code=0)
    return run_id, time.perf_counter() - t0


# -- the chart panel's store -------------------------------------------------------------

PANEL_METRICS = ("loss", "acc", "val_loss", "val_acc", "lr_schedule")


def fill_panel(store_path: Path, runs: int, points: int, seed: int = 0) -> dict[str, Any]:
    """``runs`` real runs (``lifecycle.create_run`` .. ``finalize``) of ``points`` points of
    each of 5 metrics: one ``metric_chunks`` row per run and metric, as a finished run's
    ingest and compaction leave it (logging 5,000,000 points through the tracker would
    time the tracker, not the panel), and its ``metrics`` summary row."""
    import math
    from array import array

    from runbase.capture.params import encode_value, numeric
    from runbase.records import lifecycle
    from runbase.store import Store

    rnd = random.Random(seed)
    store = Store.open(store_path, create=True)
    t0 = time.perf_counter()
    steps = array("q", range(points))
    if sys.byteorder == "big":
        steps.byteswap()
    for i in range(runs):
        run_id = lifecycle.create_run(store, command=["python", "train.py"], mode="run")
        lr, noise = rnd.choice(PARAMS["lr"]), rnd.random() * 0.05
        start = time.time()
        times = array("d", (start + s * 0.01 for s in range(points)))
        chunks, summaries = [], []
        for k, key in enumerate(PANEL_METRICS):
            vals = array(
                "d",
                (
                    math.exp(-lr * 100 * s / points) * (1 + k) + noise * rnd.random()
                    for s in range(points)
                ),
            )
            last = vals[-1]
            if sys.byteorder == "big":
                times.byteswap()
                vals.byteswap()
            chunks.append(
                (run_id, key, 0, points, steps.tobytes(), times.tobytes(), vals.tobytes())
            )
            summaries.append(
                (run_id, key, points, last, min(vals), max(vals), points - 1, times[-1], last)
            )
        with store.db.transaction() as cur:
            cur.executemany(
                "INSERT INTO params (run_id, key, value, num, source) VALUES (?,?,?,?,?)",
                [
                    (run_id, k, encode_value(k, v), numeric(encode_value(k, v)), "argparse")
                    for k, v in (("lr", lr), ("seed", i))
                ],
            )
            cur.executemany(
                "INSERT INTO metric_chunks (run_id, key, seq, n, steps, times, vals) "
                "VALUES (?,?,?,?,?,?,?)",
                chunks,
            )
            cur.executemany(
                "INSERT INTO metrics (run_id, key, count, last, min, max, last_step, last_time, "
                "summary, has_summary, value) VALUES (?,?,?,?,?,?,?,?,NULL,0,?)",
                summaries,
            )
        lifecycle.finalize(store, run_id, "finished", exit_code=0)
    store.db.execute("ANALYZE")
    store.close()
    return {"runs": runs, "metrics": len(PANEL_METRICS), "points": points,
            "fill_s": time.perf_counter() - t0}  # fmt: skip


def time_panel_in_process(store_path: Path, n: int, **kwargs: Any) -> dict[str, Any]:
    """``views.chart_panel`` + its JSON encoding in this process (the server's own time,
    no HTTP): median of ``n`` after one warm-up."""
    from runbase.render import views
    from runbase.store import Store
    from runbase.web.routes_panel import panel_body

    store = Store.open(store_path)
    try:
        times, size = [], 0
        for i in range(n + 1):
            t0 = time.perf_counter()
            body = panel_body(views.chart_panel(store, **kwargs))
            if i:
                times.append(time.perf_counter() - t0)
            size = len(body)
        return {**C.summarize(times), "bytes": size}
    finally:
        store.close()


# -- serving and timing ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            get(port, path)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not answer {path}")


def get(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[float, int, bytes]:
    """One request on a new connection: (seconds, status, body)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    if body is None:
        conn.request("GET", path)
    else:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return time.perf_counter() - t0, resp.status, data


def time_requests(port: int, cases: dict[str, Any], n: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {k: {"times": [], "bytes": 0} for k in cases}
    for name, spec in cases.items():  # warm-up, and check each answers 200
        _dt, status, data = get(port, *spec) if isinstance(spec, tuple) else get(port, spec)
        if status != 200:
            raise RuntimeError(f"{name}: HTTP {status}: {data[:500]!r}")
        out[name]["bytes"] = len(data)
    for _ in range(n):
        for name, spec in cases.items():
            dt, _s, _d = get(port, *spec) if isinstance(spec, tuple) else get(port, spec)
            out[name]["times"].append(dt)
    return {k: {**C.summarize(v["times"]), "bytes": v["bytes"]} for k, v in out.items()}


def serve_runbase(store: Path, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys, uvicorn\n"
        "from runbase.web.app import create_app\n"
        "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')\n"
    )
    return subprocess.Popen(
        [C.PYTHON, "-c", code, str(store), str(port)],
        env=C.clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def runbase_cases(long_run: str, runs: int) -> dict[str, str]:
    q = urllib.parse.quote
    return {
        "runs page: first page, default order": "/api/runs?limit=50",
        "runs page: sorted by metric, filtered by param": "/api/runs?limit=50&sort=-metrics.acc&where="
        + q("params.lr < 0.01"),
        "runs page: sorted by metric, filtered by string param": "/api/runs?limit=50&sort=-metrics.acc&where="
        + q('params.optimizer == "adam"'),
        f"runs page: sorted by a param, at offset {runs // 2:,}": "/api/runs?limit=50&sort=params.seed"
        + f"&offset={runs // 2}",
        # what the runs page asks besides the table: its chart panel (the first 100 runs
        # of the table's order; these runs have summaries only, the long run its series)
        # and the saved views
        "runs page: chart panel, sorted by metric, filtered by param": "/api/panel?runs=100&sort=-metrics.acc&where="
        + q("params.lr < 0.01"),
        "runs page: saved views": "/api/views",
        "1,000,000-point series, 1,000 buckets": f"/api/runs/{long_run}/series/loss?points=1000",
        "run record of that run": f"/api/runs/{long_run}",
    }


def bench_runbase(store: Path, n: int, label: str) -> dict[str, Any]:
    port = free_port()
    proc = serve_runbase(store, port)
    try:
        wait_http(port, "/api/health")
        info = json.loads(Path(store / "bench-info.json").read_text())
        return {
            "label": label,
            **info,
            "requests": time_requests(port, runbase_cases(info["long_run"], info["runs"]), n),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def panel_cases(runs: int, points: int) -> dict[str, str]:
    base = f"/api/panel?runs={runs}&points={points}"
    return {
        "panel: x=step": base,
        "panel: x=step, bounds=false (as the runs page asks)": base + "&bounds=false",
        "panel: x=time": base + "&x=time",
        "panel: grouped by params.lr, sd band, x=relative": base
        + "&group_by=params.lr&band=sd&x=relative",
    }


def bench_panel(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The chart panel of ``--panel-runs`` runs x 5 metrics x ``--panel-points`` points
    (points=200 per series): over a real uvicorn (one GET on a new connection, median of
    ``--n``) and in process (``chart_panel`` + its JSON, the server's own time)."""
    store = scratch / "store-panel"
    info = fill_panel(store, args.panel_runs, args.panel_points)
    print(
        f"panel: filled {args.panel_runs} runs x {len(PANEL_METRICS)} metrics x "
        f"{args.panel_points:,} points in {info['fill_s']:.1f} s",
        flush=True,
    )
    port = free_port()
    proc = serve_runbase(store, port)
    try:
        wait_http(port, "/api/health")
        cases = panel_cases(min(args.panel_runs, 500), 200)
        http = time_requests(port, cases, args.n)
        # the runs page as a user opens it (no saved view): one chart per metric
        browser = time_to_charts(
            f"http://127.0.0.1:{port}/?view=", "#workspace", len(PANEL_METRICS), args.n
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    in_process = {
        "panel: x=step": time_panel_in_process(store, args.n, points=200),
        "panel: grouped by params.lr, sd band, x=relative": time_panel_in_process(
            store, args.n, points=200, group_by="params.lr", band="sd", x="relative"
        ),
    }
    out = {**info, "requests": http, "in_process": in_process, "browser": browser}
    if not args.skip_mlflow:
        out["mlflow"] = bench_mlflow_panel(args, scratch)
    C.rmtree(store)
    return out


# -- MLflow ------------------------------------------------------------------------------

MLFLOW_FILL = r"""
import json, random, sys, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param
uri, n, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
params_spec = json.loads(sys.argv[4])
c = MlflowClient(tracking_uri=uri)
rnd = random.Random(0)
t0 = time.time()
for i in range(n):
    r = c.create_run("0")
    p = {k: rnd.choice(v) for k, v in params_spec.items()}; p["seed"] = i
    acc = min(1.0, 0.5 + 0.4 * (1 - abs(p["lr"] - 0.01) * 5) + rnd.random() * 0.05)
    loss = 1.0 - acc
    ms = {"loss": loss, "acc": acc, "val_loss": loss * 1.1, "val_acc": acc * 0.97, "f1": acc * 0.95}
    now = int(time.time() * 1000)
    c.log_batch(r.info.run_id, metrics=[Metric(k, v, now, 99) for k, v in ms.items()],
                params=[Param(k, str(v)) for k, v in p.items()])
    c.set_terminated(r.info.run_id)
fill = time.time() - t0
r = c.create_run("0")
t1 = time.time()
now = int(time.time() * 1000)
for lo in range(0, points, 1000):
    c.log_batch(r.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(lo, min(points, lo + 1000))])
c.set_terminated(r.info.run_id)
print(json.dumps({"fill_s": fill, "long_run": r.info.run_id, "long_fill_s": time.time() - t1}))
"""


def bench_mlflow(bin_dir: Path, scratch: Path, n_runs: int, points: int, n: int) -> dict[str, Any]:
    db = scratch / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = C.clean_env(MLFLOW_TRACKING_URI=uri)
    spec = {k: v for k, v in PARAMS.items()}
    t0 = time.perf_counter()
    p = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            MLFLOW_FILL,
            uri,
            str(n_runs),
            str(points),
            json.dumps(spec),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    info = json.loads(p.stdout.strip().splitlines()[-1])
    info["total_fill_s"] = time.perf_counter() - t0
    port = free_port()
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(port, "/health", timeout=120)
        search = "/api/2.0/mlflow/runs/search"
        cases: dict[str, Any] = {
            "runs/search: first page": (search, {"experiment_ids": ["0"], "max_results": 50}),
            "runs/search: sorted by metric, filtered by param": (
                search,
                {
                    "experiment_ids": ["0"],
                    "max_results": 50,
                    "order_by": ["metrics.acc DESC"],
                    "filter": "params.optimizer = 'adam'",
                },
            ),
            f"metrics/get-history of a {points:,}-point series": (
                f"/api/2.0/mlflow/metrics/get-history?run_id={info['long_run']}&metric_key=loss&max_results={points}"
            ),
        }
        return {"runs": n_runs, "points": points, **info, "requests": time_requests(port, cases, n)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


MLFLOW_PANEL_N = 3  # timed rounds of the MLflow anchor: each is ~200x runbase's panel


def bench_mlflow_panel(args: argparse.Namespace, scratch: Path) -> dict[str, Any] | None:
    """The MLflow UI's run comparison on the same runs (same metrics, points and lr,
    filled by ``_workers/mlflow_panel_worker.py``, which the browser benchmark shares):
    its charts call ``get-history-bulk-interval`` once per metric (at most 100 runs,
    ``max_results`` points per run, sampled on the server); timed as the 5 requests one
    after the other, as one panel, median of at most :data:`MLFLOW_PANEL_N`."""
    worker = C.WORKERS_DIR / "mlflow_panel_worker.py"
    bin_dir = C.ensure_venv("mlflow", MLFLOW_PIN, ["python", "-c", "import mlflow"])
    if bin_dir is None or not worker.exists():
        print("mlflow venv or its panel worker unavailable: panel anchor skipped", flush=True)
        return None
    db = scratch / "mlflow-panel.db"
    uri = f"sqlite:///{db}"
    env = C.clean_env(MLFLOW_TRACKING_URI=uri)
    runs = min(args.panel_runs, 100)  # the endpoint's limit per request
    p = subprocess.run(
        [str(bin_dir / "python"), str(worker), str(db), str(runs), str(args.panel_points),
         json.dumps(PANEL_METRICS)],
        env=env, capture_output=True, text=True, cwd=scratch,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    info = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"mlflow: filled the panel's {runs} runs in {info['fill_s']:.1f} s", flush=True)
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=env, cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(port, "/health", timeout=120)
        ids = "&".join(f"run_ids={r}" for r in info["run_ids"])
        urls = [
            f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{ids}"
            f"&metric_key={k}&max_results=200"
            for k in PANEL_METRICS
        ]
        for u in urls:  # warm-up, and check each answers 200
            _dt, status, data = get(port, u)
            if status != 200:
                raise RuntimeError(f"mlflow {u[:80]}: HTTP {status}: {data[:300]!r}")
        times, size = [], 0
        for _ in range(min(args.n, MLFLOW_PANEL_N)):  # ~50 s each at 100 runs
            total, size = 0.0, 0
            for u in urls:
                dt, _s, data = get(port, u)
                total += dt
                size += len(data)
            times.append(total)
        # the MLflow UI's chart view of the experiment, as a user opens it (its default
        # runs and charts); one cold load: each takes minutes at 10,000 points
        page = f"http://127.0.0.1:{port}/#/experiments/{info['experiment_id']}/runs?compareRunsMode=CHART"
        browser = time_to_charts(
            page, "body", len(PANEL_METRICS), 1, warmup=False, timeout_ms=900_000
        )
        return {"runs": runs, "points": args.panel_points, "fill_s": info["fill_s"],
                "panel": {**C.summarize(times), "bytes": size}, "browser": browser}  # fmt: skip
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--mlflow-runs", type=int, default=5000)
    ap.add_argument("--mlflow-points", type=int, default=200_000)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--quick", action="store_true", help="10,000 runs, 500 MLflow runs, n=5")
    ap.add_argument("--panel-runs", type=int, default=100, help="the chart panel's runs")
    ap.add_argument("--panel-points", type=int, default=10_000, help="points per series")
    ap.add_argument("--skip-panel", action="store_true")
    ap.add_argument("--panel-only", action="store_true", help="the chart panel alone")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.mlflow_runs, args.mlflow_points, args.n = 10_000, 500, 50_000, 5
        args.panel_points = 2000
    C.header(
        f"bench_ui: the web API on {args.runs:,} runs, vs mlflow server on {args.mlflow_runs:,}"
    )
    scratch = C.scratch_dir("rb-bench-ui-")
    result: dict[str, Any] = {
        "machine": C.machine_info(),
        "args": vars(args),
        "runbase": [],
        "mlflow": None,
        "panel": None,
    }
    try:
        if not args.skip_panel:
            result["panel"] = bench_panel(args, scratch)
        sizes = [args.runs] + (
            [args.mlflow_runs] if not args.skip_mlflow and args.mlflow_runs != args.runs else []
        )
        if args.panel_only:
            sizes = []
        for size in sizes:
            store = scratch / f"store-{size}"
            info = fill_runbase(store, size)
            (store / "bench-info.json").write_text(json.dumps(info))
            print(
                f"runbase: filled {size:,} runs in {info['fill_s']:.1f} s; 1M-point run in {info['long_fill_s']:.1f} s",
                flush=True,
            )
            result["runbase"].append(bench_runbase(store, args.n, f"{size:,} runs"))
            C.rmtree(store)
        if not args.skip_mlflow and not args.panel_only:
            bin_dir = C.ensure_venv("mlflow", MLFLOW_PIN, ["python", "-c", "import mlflow"])
            if bin_dir is None:
                print("mlflow venv unavailable: skipped", flush=True)
            else:
                result["mlflow"] = bench_mlflow(
                    bin_dir, scratch, args.mlflow_runs, args.mlflow_points, args.n
                )
                print(
                    f"mlflow: filled {args.mlflow_runs:,} runs in {result['mlflow']['fill_s']:.1f} s",
                    flush=True,
                )
    finally:
        C.rmtree(scratch)
    try:  # the sections skipped this time: as the last run measured them
        last = json.loads((C.RESULTS_DIR / "ui.json").read_text())
    except (OSError, ValueError):
        last = {}
    if args.panel_only:
        result = {**last, "panel": result["panel"], "panel_machine": result["machine"]}
    else:
        if args.skip_panel and last.get("panel"):
            result["panel"] = last["panel"]
            result["panel_machine"] = last.get("panel_machine", last.get("machine"))
        if args.skip_mlflow and last.get("mlflow"):
            result["mlflow"] = last["mlflow"]
    report(result)
    C.write_result("ui", result)


def report(result: dict[str, Any]) -> None:
    rows = []
    for rb in result.get("runbase") or []:
        for name, r in rb["requests"].items():
            goal = "-"
            if "filtered by param" in name and "string" not in name:
                goal = C.target(r["median"], 0.2)
            elif "series" in name:
                goal = C.target(r["median"], 0.2) + (
                    ", <= 200 KB: " + ("ok" if r["bytes"] <= 200_000 else "MISSED")
                )
            rows.append(
                [
                    "runbase",
                    rb["label"],
                    name,
                    C.ms(r["median"]),
                    f"{r['bytes'] / 1024:.1f} KiB",
                    goal,
                ]
            )
    ml = result.get("mlflow")
    if ml:
        for name, r in ml["requests"].items():
            rows.append(
                [
                    "mlflow",
                    f"{ml['runs']:,} runs",
                    name,
                    C.ms(r["median"]),
                    f"{r['bytes'] / 1024:.1f} KiB",
                    "-",
                ]
            )
    if rows:
        C.print_table(
            ["tool", "store", "request", "median", "response", "goal"],
            rows,
            title="web API, one HTTP GET each (median)",
        )
    if result.get("panel"):
        report_panel(result["panel"])


def report_panel(panel: dict[str, Any]) -> None:
    store = f"{panel['runs']} runs x {panel['metrics']} metrics x {panel['points']:,} points"
    rows = []
    for name, r in panel["requests"].items():
        rows.append(["runbase", store, name + " (HTTP)", C.ms(r["median"]),
                     f"{r['bytes'] / 1024:.0f} KiB", C.target(r["median"], 0.3)])  # fmt: skip
    for name, r in panel["in_process"].items():
        rows.append(["runbase", store, name + " (in process)", C.ms(r["median"]),
                     f"{r['bytes'] / 1024:.0f} KiB", C.target(r["median"], 0.3)])  # fmt: skip
    ml = panel.get("mlflow")
    if ml:
        rows.append(["mlflow", f"{ml['runs']} runs x {len(PANEL_METRICS)} metrics x "
                     f"{ml['points']:,} points", "get-history-bulk-interval x 5 (HTTP)",
                     C.ms(ml["panel"]["median"]), f"{ml['panel']['bytes'] / 1024:.0f} KiB",
                     "-"])  # fmt: skip
    C.print_table(
        ["tool", "store", "request", "median", "response", "goal"],
        rows,
        title="the chart panel (points=200 per series), median",
    )
    pages = [("runbase", "runs page (/?view=)", panel.get("browser"), 1.0)]
    if ml:
        pages.append(("mlflow", "experiment, chart view", ml.get("browser"), None))
    rows = [
        [tool, page, C.ms(b["first_chart"]["median"]), C.ms(b["all_charts"]["median"]),
         str(b["traces"]), C.target(b["all_charts"]["median"], goal) if goal else "-"]
        for tool, page, b, goal in pages
        if b
    ]  # fmt: skip
    C.print_table(
        ["tool", "page", "first chart", "all 5 charts", "traces drawn", "goal"],
        rows,
        title="time to the charts in Chromium (navigation to drawn), median",
    )


if __name__ == "__main__":
    main()
