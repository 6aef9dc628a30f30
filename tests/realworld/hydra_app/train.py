"""Fit y = w*x + b by mini-batch gradient descent: a Hydra app in the style of the
Hydra tutorials (config groups, @hydra.main, the job's output directory)."""

import json
import logging
import math
import random
from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

import runbase

log = logging.getLogger(__name__)


def load(path: str) -> list[tuple[float, float]]:
    lines = Path(to_absolute_path(path)).read_text().splitlines()[1:]
    return [(float(a), float(b)) for a, b in (line.split(",") for line in lines)]


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    rng = random.Random(cfg.seed)
    data = load(cfg.data.path)
    w, b = 0.0, 0.0
    lr = cfg.optimizer.lr * cfg.model.scale
    history = []
    for epoch in range(cfg.epochs):
        rng.shuffle(data)
        for i in range(0, len(data), cfg.data.batch_size):
            batch = data[i : i + cfg.data.batch_size]
            gw = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
            gb = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
            w, b = w - lr * gw, b - lr * gb
        loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        if not math.isfinite(loss) or loss > 1e6:
            raise FloatingPointError(f"loss diverged at epoch {epoch}: {loss}")
        history.append(loss)
        runbase.log(loss=loss, step=epoch)
        log.info("epoch %d loss %.5f", epoch, loss)
    runbase.summary(final_loss=history[-1])
    Path("model.json").write_text(json.dumps({"w": w, "b": b, "experiment": cfg.experiment}))
    Path("history.json").write_text(json.dumps(history))
    return history[-1]


if __name__ == "__main__":
    main()
