"""Worker of bench_compare.py; runs inside the venv of the library it measures.

    python compare_worker.py --lib {runbase,mlflow,wandb} --case CASE --out result.json
        [--points N] [--budget SECONDS] [--uri TRACKING_URI] [--dir SCRATCH]

Cases:
  startup            import, start a run, log 1 point, finish (the parent times the
                     whole process; phases are reported too)
  log                one metric per call in a loop (runbase.log / mlflow.log_metric /
                     wandb.log), up to N points or the time budget, then finish (timed)
  log_async          MLflow only: log_metric(..., synchronous=False)
  log_batch          MLflow only: MlflowClient.log_batch, 1,000 metrics per call
  attached_startup   runbase only: no init(), the script runs under `runbase run`
"""

from __future__ import annotations

import argparse
import json
import os
import time

T_PROC = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, choices=("runbase", "mlflow", "wandb"))
    ap.add_argument("--case", required=True)
    ap.add_argument("--points", type=int, default=1)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--uri", default=None)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = {"lib": a.lib, "case": a.case}
    fn = {"runbase": run_runbase, "mlflow": run_mlflow, "wandb": run_wandb}[a.lib]
    fn(a, res)
    res["in_process_s"] = time.perf_counter() - T_PROC
    with open(a.out, "w") as f:
        json.dump(res, f)


def _loop(res: dict, log_one, points: int, budget: float, check_every: int) -> None:
    """Call ``log_one(i)`` up to ``points`` times or until ``budget`` seconds passed."""
    t0 = time.perf_counter()
    deadline = t0 + budget
    i = 0
    while i < points:
        end = min(i + check_every, points)
        for j in range(i, end):
            log_one(j)
        i = end
        if time.perf_counter() > deadline:
            break
    dt = time.perf_counter() - t0
    res["points"] = i
    res["loop_s"] = dt
    res["rate"] = i / dt if dt > 0 else None


# -- runbase --------------------------------------------------------------------------

def run_runbase(a, res):
    t = time.perf_counter()
    import runbase

    res["import_s"] = time.perf_counter() - t
    if a.case == "attached_startup":
        runbase.log(loss=0.5, step=0)
        return
    t = time.perf_counter()
    runbase.init(name=f"bench-{a.case}")
    res["start_s"] = time.perf_counter() - t
    if a.case == "startup":
        t = time.perf_counter()
        runbase.log(loss=0.5, step=0)
        res["log_s"] = time.perf_counter() - t
    elif a.case == "log":
        _loop(res, lambda i: runbase.log(loss=i * 1e-6, step=i), a.points, a.budget, 100_000)
    else:
        raise SystemExit(f"unknown case {a.case}")
    t = time.perf_counter()
    runbase.finish()
    res["finish_s"] = time.perf_counter() - t


# -- MLflow -----------------------------------------------------------------------------

def run_mlflow(a, res):
    t = time.perf_counter()
    import mlflow

    res["import_s"] = time.perf_counter() - t
    res["version"] = mlflow.__version__
    t = time.perf_counter()
    mlflow.set_tracking_uri(a.uri)
    mlflow.set_experiment("bench")
    run = mlflow.start_run()
    res["start_s"] = time.perf_counter() - t
    if a.case == "startup":
        t = time.perf_counter()
        mlflow.log_metric("loss", 0.5, step=0)
        res["log_s"] = time.perf_counter() - t
    elif a.case == "log":
        _loop(res, lambda i: mlflow.log_metric("loss", i * 1e-6, step=i), a.points, a.budget, 50)
    elif a.case == "log_async":
        _loop(res, lambda i: mlflow.log_metric("loss", i * 1e-6, step=i, synchronous=False), a.points, a.budget, 500)
    elif a.case == "log_batch":
        from mlflow.entities import Metric

        client = mlflow.MlflowClient()
        rid = run.info.run_id
        batch = 1000  # MLflow's limit of metrics per log_batch call

        def one_batch(k):
            ts = int(time.time() * 1000)
            base = k * batch
            client.log_batch(rid, metrics=[Metric("loss", (base + j) * 1e-6, ts, base + j) for j in range(batch)])

        _loop(res, one_batch, max(1, a.points // batch), a.budget, 1)
        res["points"] *= batch
        res["rate"] = res["points"] / res["loop_s"]
    else:
        raise SystemExit(f"unknown case {a.case}")
    t = time.perf_counter()
    mlflow.end_run()
    res["finish_s"] = time.perf_counter() - t


# -- W&B ---------------------------------------------------------------------------------

def run_wandb(a, res):
    t = time.perf_counter()
    import wandb

    res["import_s"] = time.perf_counter() - t
    res["version"] = wandb.__version__
    t = time.perf_counter()
    run = wandb.init(project="bench", mode="offline", dir=a.dir)
    res["start_s"] = time.perf_counter() - t
    if a.case == "startup":
        t = time.perf_counter()
        run.log({"loss": 0.5}, step=0)
        res["log_s"] = time.perf_counter() - t
    elif a.case == "log":
        _loop(res, lambda i: run.log({"loss": i * 1e-6}, step=i), a.points, a.budget, 1000)
    else:
        raise SystemExit(f"unknown case {a.case}")
    t = time.perf_counter()
    run.finish()
    res["finish_s"] = time.perf_counter() - t


if __name__ == "__main__":
    main()
