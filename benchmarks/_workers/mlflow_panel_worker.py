"""Run inside the MLflow venv: an experiment of RUNS runs x METRICS x POINTS points each
in the SQLite backend at PATH. Prints one JSON line.

The runs, their params and the last point of each metric go through MLflow's own
client (``create_run``, ``log_batch``), so ``runs``, ``params`` and ``latest_metrics``
are what MLflow writes; the rest of each history is inserted into MLflow's ``metrics``
table in bulk, in the rows MLflow's SQL store writes (key, value, timestamp, run_uuid,
step, is_nan): ``log_batch`` stores ~2,000 points/s here, which would take ~40 minutes
for the 5,000,000 points of the benchmark, and only the reading side is timed.

    python mlflow_panel_worker.py PATH RUNS POINTS METRICS_JSON
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import sys
import time

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient


def main() -> None:
    path, runs, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    metrics: list[str] = json.loads(sys.argv[4])
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    exp = client.create_experiment("panel")
    rnd = random.Random(0)
    t0 = time.perf_counter()
    ids, rows = [], []
    for i in range(runs):
        run = client.create_run(exp, run_name=f"run-{i}")
        rid = run.info.run_id
        lr, noise = rnd.choice([0.1, 0.03, 0.01, 0.003, 0.001]), rnd.random() * 0.05
        start = int(time.time() * 1000)
        last = []
        for k, key in enumerate(metrics):
            for s in range(points):
                v = math.exp(-lr * 100 * s / points) * (1 + k) + noise * rnd.random()
                if s == points - 1:
                    last.append(Metric(key, v, start + s * 10, s))
                else:
                    rows.append((key, v, start + s * 10, rid, s, 0))
        client.log_batch(rid, metrics=last, params=[Param("lr", str(lr)), Param("seed", str(i))])
        client.set_terminated(rid)
        ids.append(rid)
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()
    print(json.dumps({"experiment_id": exp, "run_ids": ids, "fill_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
