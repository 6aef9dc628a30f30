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


class _Budget:
    """Chunks of at most ``check_every`` iterations until ``points`` or ``budget`` s.

    The loop under test is written out in each case (no per-call indirection); the
    clock is read once per chunk, so it costs nothing measurable."""

    def __init__(self, res: dict, points: int, budget: float, check_every: int) -> None:
        self.res, self.points, self.budget, self.every = res, points, budget, check_every

    def __iter__(self):
        t0 = time.perf_counter()
        deadline = t0 + self.budget
        i = 0
        while i < self.points:
            end = min(i + self.every, self.points)
            yield range(i, end)
            i = end
            if time.perf_counter() > deadline:
                break
        dt = time.perf_counter() - t0
        self.res["t_loop_end"] = time.time()
        self.res["points"] = i
        self.res["loop_s"] = dt
        self.res["rate"] = i / dt if dt > 0 else None


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
        for chunk in _Budget(res, a.points, a.budget, 100_000):
            for i in chunk:
                runbase.log(loss=i * 1e-6, step=i)
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
        for chunk in _Budget(res, a.points, a.budget, 50):
            for i in chunk:
                mlflow.log_metric("loss", i * 1e-6, step=i)
    elif a.case == "log_async":
        for chunk in _Budget(res, a.points, a.budget, 500):
            for i in chunk:
                mlflow.log_metric("loss", i * 1e-6, step=i, synchronous=False)
    elif a.case == "log_batch":
        from mlflow.entities import Metric

        client = mlflow.MlflowClient()
        rid = run.info.run_id
        batch = 1000  # MLflow's limit of metrics per log_batch call

        for chunk in _Budget(res, max(1, a.points // batch), a.budget, 1):
            for k in chunk:
                ts = int(time.time() * 1000)
                base = k * batch
                client.log_batch(
                    rid,
                    metrics=[Metric("loss", (base + j) * 1e-6, ts, base + j) for j in range(batch)],
                )
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
        for chunk in _Budget(res, a.points, a.budget, 1000):
            for i in chunk:
                run.log({"loss": i * 1e-6}, step=i)
    else:
        raise SystemExit(f"unknown case {a.case}")
    t = time.perf_counter()
    run.finish()
    res["finish_s"] = time.perf_counter() - t


if __name__ == "__main__":
    main()
