"""Run inside the MLflow venv: the unmodified MLflow client against whatever tracking
server ``MLFLOW_TRACKING_URI`` names (a runbase server's ``/p/PROJECT/mlflow`` with
``MLFLOW_TRACKING_TOKEN``, or ``mlflow server``). Prints one JSON line. Three modes:

``client CONFIG_JSON``: one round of the client measurements (sizes in the config):

1. per call, ``n_calls`` times each: ``create_run`` + ``set_terminated``, ``log_param``,
   ``log_metric`` (synchronous, one point), ``set_tag``;
2. ``log_batch`` of 1,000 metrics (10 keys x 100 steps), ``batches`` times;
3. ``get_metric_history`` of a ``history_points`` series, ``reps`` times;
4. ``search_runs`` over ``search_runs`` runs with a filter + order_by, max_results 100,
   ``reps`` times;
5. ``log_artifact`` of ``artifact_mib`` MiB of fresh random bytes and
   ``download_artifacts`` back, bytes compared by SHA-256;
6. ``mlflow.sklearn.log_model`` of a small LogisticRegression + ``load_model``
   (predictions compared), ``model_reps`` times.

The history series and the runs searched are made once per server (experiment
``compat-fixtures``, untimed) and found again by later rounds.

``warm``: each of those once with tiny sizes, untimed (a separate experiment).

``make-mlruns DIR RUNS STEPS``: an MLflow FILE store at DIR made by the client (RUNS runs
of 3 metrics x STEPS steps, 3 params, 2 tags, one small artifact each), untimed.

``read-mlruns DIR``: the bare read of that store through ``MlflowClient``: every run
(``search_runs``) and ``get_metric_history`` of every key of every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

FIXTURES = "compat-fixtures"
HISTORY_KEY = "series"
FILTER = "metrics.acc > 0.5 and params.lr = '0.01'"
ORDER = ["metrics.acc DESC"]
LRS = ("0.01", "0.1", "0.001")


def _acc(i: int) -> float:
    """A spread of accuracies, the same on every server."""
    return ((i * 37) % 100) / 100


def _timed(fn: Any, *a: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t0, out


def _experiment(c: MlflowClient, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp else c.create_experiment(name)


def fixtures(c: MlflowClient, cfg: dict[str, Any]) -> dict[str, Any]:
    """The series and the runs to search: made by the first round, found by the next."""
    exp = _experiment(c, FIXTURES)
    t0 = time.perf_counter()
    found = c.search_runs([exp], "tags.fixture = 'history'", max_results=1)
    if found:
        history_run = found[0].info.run_id
    else:
        history_run = c.create_run(exp, tags={"fixture": "history"}).info.run_id
        now = int(time.time() * 1000)
        n = cfg["history_points"]
        for lo in range(0, n, 1000):
            c.log_batch(
                history_run,
                metrics=[Metric(HISTORY_KEY, i * 0.5, now + i, i) for i in range(lo, min(n, lo + 1000))],
            )  # fmt: skip
        c.set_terminated(history_run)
    have = len(c.search_runs([exp], "tags.fixture = 'search'", max_results=50_000))
    for i in range(have, cfg["search_runs"]):
        rid = c.create_run(exp, tags={"fixture": "search"}).info.run_id
        c.log_batch(
            rid,
            metrics=[Metric("acc", _acc(i), int(time.time() * 1000), 0)],
            params=[Param("lr", LRS[i % 3]), Param("batch", str(32 << (i % 4)))],
        )
        c.set_terminated(rid)
    return {"experiment": exp, "history_run": history_run, "setup_s": time.perf_counter() - t0}


def per_call(c: MlflowClient, exp: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"create_run_end": [], "log_param": [], "log_metric": [], "set_tag": []}  # fmt: skip
    rid = c.create_run(exp).info.run_id
    for i in range(n):
        t0 = time.perf_counter()
        r = c.create_run(exp).info.run_id
        c.set_terminated(r)
        t1 = time.perf_counter()
        c.log_param(rid, f"p{i}", i)
        t2 = time.perf_counter()
        c.log_metric(rid, "m", i * 0.1, step=i, synchronous=True)
        t3 = time.perf_counter()
        c.set_tag(rid, f"t{i}", "v")
        t4 = time.perf_counter()
        for k, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            out[k].append(dt)
    c.set_terminated(rid)
    return out


def log_batch(c: MlflowClient, exp: str, batches: int) -> dict[str, Any]:
    rid = c.create_run(exp).info.run_id
    now = int(time.time() * 1000)
    times = []
    for b in range(batches):
        ms = [
            Metric(f"k{k}", (b * 100 + s) * 0.001, now + b * 100 + s, b * 100 + s)
            for k in range(10)
            for s in range(100)
        ]
        times.append(_timed(c.log_batch, rid, metrics=ms)[0])
    got = len(c.get_metric_history(rid, "k0"))
    c.set_terminated(rid)
    return {"batch_s": times, "points": 1000 * batches, "stored_k0": got, "expected_k0": 100 * batches}  # fmt: skip


def history(c: MlflowClient, run_id: str, reps: int, n: int) -> dict[str, Any]:
    times = []
    for _ in range(reps):
        dt, pts = _timed(c.get_metric_history, run_id, HISTORY_KEY)
        if len(pts) != n:
            raise SystemExit(f"history: {len(pts)} points, expected {n}")
        times.append(dt)
    return {"s": times, "points": n}


def search(c: MlflowClient, exp: str, reps: int) -> dict[str, Any]:
    times, accs = [], []
    for _ in range(reps):
        dt, runs = _timed(c.search_runs, [exp], FILTER, order_by=ORDER, max_results=100)
        times.append(dt)
        accs = [r.data.metrics["acc"] for r in runs]
    return {"s": times, "found": len(accs), "accs": accs}


def artifact(c: MlflowClient, exp: str, mib: int, tmp: Path) -> dict[str, Any]:
    src = tmp / "blob.bin"
    with open(src, "wb") as f:  # fresh bytes every round: nothing deduplicated
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    rid = c.create_run(exp).info.run_id
    up, _ = _timed(c.log_artifact, rid, str(src))
    dest = tmp / "down"
    down, path = _timed(
        mlflow.artifacts.download_artifacts, run_id=rid, artifact_path="blob.bin", dst_path=str(dest)
    )  # fmt: skip
    got = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if got != want:
        raise SystemExit("artifact: downloaded bytes differ from the uploaded ones")
    c.set_terminated(rid)
    src.unlink()
    return {"bytes": mib << 20, "upload_s": up, "download_s": down, "equal": True}


def model(exp: str, reps: int) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(x, y)
    log_s, load_s = [], []
    for _ in range(reps):
        with mlflow.start_run(experiment_id=exp):
            # pip requirements given: no inference subprocess, which would time pip, not the server
            dt, info = _timed(mlflow.sklearn.log_model, clf, name="model", pip_requirements=["scikit-learn"])  # fmt: skip
        log_s.append(dt)
        dt, back = _timed(mlflow.sklearn.load_model, info.model_uri)
        load_s.append(dt)
        if not (back.predict(x) == clf.predict(x)).all():
            raise SystemExit("model: the loaded model predicts differently")
    return {"log_s": log_s, "load_s": load_s}


def client_round(cfg: dict[str, Any]) -> dict[str, Any]:
    c = MlflowClient()
    fx = fixtures(c, cfg)
    exp = _experiment(c, f"compat-round-{cfg['round']}")
    out: dict[str, Any] = {"mlflow": mlflow.__version__, "setup_s": fx["setup_s"]}
    out["per_call"] = per_call(c, exp, cfg["n_calls"])
    out["log_batch"] = log_batch(c, exp, cfg["batches"])
    out["history"] = history(c, fx["history_run"], cfg["reps"], cfg["history_points"])
    out["search"] = search(c, fx["experiment"], cfg["reps"])
    with tempfile.TemporaryDirectory() as tmp:
        out["artifact"] = artifact(c, exp, cfg["artifact_mib"], Path(tmp))
    out["model"] = model(exp, cfg["model_reps"])
    return out


def warm() -> dict[str, Any]:
    """Untimed: every code path of a round once (bytecode cached, the server's lazy imports
    and first connections made), in an experiment of its own, with tiny sizes."""
    c = MlflowClient()
    exp = _experiment(c, "compat-warm")
    per_call(c, exp, 2)
    log_batch(c, exp, 1)
    c.search_runs([exp], FILTER, order_by=ORDER, max_results=100)
    with tempfile.TemporaryDirectory() as tmp:
        artifact(c, exp, 1, Path(tmp))
    model(exp, 1)
    return {"warm": True}


def make_mlruns(base: Path, runs: int, steps: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    c = MlflowClient(tracking_uri=base.resolve().as_uri())
    exp = c.create_experiment("imported")
    art = base.parent / "artifact.txt"
    for i in range(runs):
        rid = c.create_run(exp, run_name=f"run-{i}", tags={"team": "vision"}).info.run_id
        c.log_batch(
            rid,
            params=[Param("lr", LRS[i % 3]), Param("batch", "64"), Param("seed", str(i))],
            tags=[RunTag("stage", "bench")],
        )
        now = int(time.time() * 1000)
        for lo in range(0, steps, 300):  # 3 keys x 300 steps: under log_batch's 1,000
            c.log_batch(
                rid,
                metrics=[
                    Metric(k, s * 0.001 + j, now + s, s)
                    for j, k in enumerate(("loss", "acc", "lr"))
                    for s in range(lo, min(steps, lo + 300))
                ],
            )
        art.write_text(f"run {i}\n" * 20)
        c.log_artifact(rid, str(art))
        c.set_terminated(rid)
    return {"runs": runs, "points": runs * 3 * steps, "make_s": time.perf_counter() - t0}


def read_mlruns(base: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    c = MlflowClient(tracking_uri=base.resolve().as_uri())
    exps = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ALL)]
    runs = c.search_runs(exps, run_view_type=ViewType.ALL, max_results=50_000)
    points = 0
    for r in runs:
        for key in r.data.metrics:
            points += len(c.get_metric_history(r.info.run_id, key))
    return {"runs": len(runs), "points": points, "read_s": time.perf_counter() - t0}


def main() -> None:
    mode = sys.argv[1]
    if mode == "client":
        out = client_round(json.loads(sys.argv[2]))
    elif mode == "warm":
        out = warm()
    elif mode == "make-mlruns":
        out = make_mlruns(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "read-mlruns":
        out = read_mlruns(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
