"""Hyperparameter search with Ray Tune, in the style of Tune's ASHA quickstart: a
function trainable that trains for some epochs and reports its validation loss after
each one (``tune.report``), an ASHA scheduler that stops the worst trials early, and
runbase's callback in the run config — the only line runbase adds."""

import argparse
import json
import math
import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from runbase.integrations.ray import RunbaseLoggerCallback  # noqa: E402


def train_fn(config):
    """A toy regression: the loss shrinks each epoch, faster with a smaller lr (so the
    trials rank the same at every epoch and ASHA's decisions do not depend on timing)."""
    for epoch in range(config["epochs"]):
        val_loss = config["lr"] * 10 * math.exp(-0.1 * epoch)
        tune.report({"val_loss": val_loss, "epoch": epoch, "train": {"acc": 1 - val_loss / 10}})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--storage", required=True)
    args = parser.parse_args()

    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=78643200)
    tuner = tune.Tuner(
        train_fn,
        param_space={
            "lr": tune.grid_search([0.1, 0.2, 0.3, 0.4]),
            "epochs": args.max_epochs,
            "model": {"width": 16, "act": "relu"},
        },
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            scheduler=ASHAScheduler(max_t=args.max_epochs, grace_period=1, reduction_factor=2),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name="asha_search",
            storage_path=args.storage,
            callbacks=[RunbaseLoggerCallback()],
            verbose=0,
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(json.dumps({"best_lr": best.config["lr"], "trials": len(results)}))
    ray.shutdown()


if __name__ == "__main__":
    main()
