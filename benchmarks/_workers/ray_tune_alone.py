"""Worker of bench_ray.py: the 32 trials of the sweep under Ray Tune alone (no runbase):
a function trainable doing the same work as ``train.py``, one CPU a trial, on the
cluster at RAY_ADDRESS. Prints one JSON line: the in-process times and trial count.

    RAY_ADDRESS=127.0.0.1:PORT python ray_tune_alone.py TRIALS STEPS WORK STORAGE
"""

from __future__ import annotations

import json
import sys
import time

t_proc = time.perf_counter()
import ray  # noqa: E402
from ray import tune  # noqa: E402

TRIALS, STEPS, WORK, STORAGE = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def trainable(config: dict[str, float]) -> None:
    """The same work as bench_ray's train.py: STEPS busy steps, each reporting a loss."""
    x = config["x"]
    for step in range(STEPS):
        acc = 0
        for i in range(WORK):
            acc += i % 7
        tune.report({"loss": (x - 10) ** 2 / (step + 1) + acc * 1e-12, "step": step})


def main() -> None:
    t_import = time.perf_counter() - t_proc
    t0 = time.perf_counter()
    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    t_init = time.perf_counter() - t0
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"x": tune.grid_search(list(range(TRIALS)))},
        run_config=tune.RunConfig(storage_path=STORAGE, name="tune-alone", verbose=0),
    )
    t1 = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - t1
    ok = sum(1 for r in results if r.error is None and r.metrics.get("step") == STEPS - 1)
    print(
        json.dumps(
            {
                "import_s": t_import,
                "init_s": t_init,
                "fit_s": fit_s,
                "trials_ok": ok,
                "trials": len(results),
            }
        ),  # fmt: skip
        flush=True,
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
