"""One framework's training loop, timed in-process (bench_integrations.py runs it).

    python integrations_worker.py FRAMEWORK MODE REPS OUT

MODE: ``none`` (the framework alone), ``runbase`` (the same script: run it under
``runbase run``, whose automatic integration does the mirroring), ``wandb`` (W&B's
own integration for the framework, offline) or ``ab`` (under ``runbase run
--no-integrations``: loops without and with runbase's integration object passed
explicitly — the same object the automatic mode adds — alternating in one process). The data and model are built, and one
untimed warm-up loop runs, before the REPS timed loops; only the framework's training
call is timed (``Trainer.fit``, ``Model.fit``, ``Trainer.train``, ``xgboost.train``,
``lightgbm.train``, a scikit-learn ``fit`` + ``cross_val_score``). Every loop logs at
every step/batch/round, the worst case for a tracker on a small model.
"""

from __future__ import annotations

import json
import os
import sys
import time

FRAMEWORK, MODE, REPS, OUT = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.environ.setdefault("KERAS_BACKEND", "torch")
SEED = 0


def lightning_loop() -> object:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Net(pl.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 64) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(32, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )

        def training_step(self, batch, i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(SEED)
    data = TensorDataset(torch.randn(4096, 32), torch.randn(4096, 1))
    train = DataLoader(data, batch_size=64)  # 64 steps an epoch
    val = DataLoader(data, batch_size=512)

    def loop(run_dir: str, ours: bool = False) -> float:
        loggers: list[object] = [CSVLogger(run_dir)]
        if ours:
            from runbase.integrations.lightning import RunbaseLogger

            loggers.append(RunbaseLogger())
        if MODE == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(WandbLogger(project="bench", log_model=False))
        trainer = pl.Trainer(
            max_epochs=5,
            log_every_n_steps=1,
            logger=loggers,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        model = Net()
        t0 = time.perf_counter()
        trainer.fit(model, train, val)
        return time.perf_counter() - t0

    return loop


def keras_loop() -> object:
    import keras
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = rng.random((4096, 32)).astype("float32")
    y = (x.sum(axis=1) > 16).astype("float32")

    def loop(run_dir: str, ours: bool = False) -> float:
        keras.utils.set_random_seed(SEED)
        model = keras.Sequential(
            [
                keras.Input((32,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        callbacks: list[object] = []
        if ours:
            from runbase.integrations.keras import RunbaseCallback

            callbacks.append(RunbaseCallback())
        if MODE == "wandb":
            from wandb.integration.keras import WandbMetricsLogger

            callbacks.append(WandbMetricsLogger(log_freq="batch"))
        t0 = time.perf_counter()
        model.fit(
            x, y, epochs=4, batch_size=64, validation_split=0.2, verbose=0, callbacks=callbacks
        )
        return time.perf_counter() - t0

    return loop


def transformers_loop() -> object:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    class Data(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            g = torch.Generator().manual_seed(SEED)
            self.x = torch.randint(0, 100, (n, 16), generator=g)
            self.y = torch.randint(0, 2, (n,), generator=g)

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, object]:
            return {"input_ids": self.x[i], "labels": self.y[i]}

    train = Data(512)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )

    def loop(run_dir: str, ours: bool = False) -> float:
        torch.manual_seed(SEED)
        callbacks = []
        if ours:
            from runbase.integrations.transformers import RunbaseCallback

            callbacks.append(RunbaseCallback())
        args = TrainingArguments(
            output_dir=os.path.join(run_dir, "out"),
            num_train_epochs=2,
            per_device_train_batch_size=8,  # 128 steps
            logging_steps=1,
            save_strategy="no",
            report_to="wandb" if MODE == "wandb" else "none",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=train,
            callbacks=callbacks,
        )
        t0 = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t0

    return loop


def _gbm_data():
    import numpy as np

    rng = np.random.default_rng(SEED)
    X = rng.random((20000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + 0.1 * rng.random(20000) > 0.8).astype(int)
    return X[:16000], y[:16000], X[16000:], y[16000:]


def xgboost_loop() -> object:
    import xgboost as xgb

    Xt, yt, Xv, yv = _gbm_data()
    dtrain, dvalid = xgb.DMatrix(Xt, label=yt), xgb.DMatrix(Xv, label=yv)
    params = {
        "max_depth": 4,
        "eta": 0.1,
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "error"],
        "nthread": 1,
    }

    def loop(run_dir: str, ours: bool = False) -> float:
        callbacks: list[object] = []
        if ours:
            from runbase.integrations.xgboost import RunbaseCallback

            callbacks.append(RunbaseCallback(params))
        if MODE == "wandb":
            from wandb.integration.xgboost import WandbCallback

            callbacks.append(WandbCallback(log_model=False))
        t0 = time.perf_counter()
        xgb.train(
            params,
            dtrain,
            200,
            evals=[(dtrain, "train"), (dvalid, "valid")],
            verbose_eval=False,
            callbacks=callbacks,
        )
        return time.perf_counter() - t0

    return loop


def lightgbm_loop() -> object:
    import lightgbm as lgb

    Xt, yt, Xv, yv = _gbm_data()
    params = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "num_leaves": 15,
        "verbose": -1,
        "num_threads": 1,
    }

    def loop(run_dir: str, ours: bool = False) -> float:
        dtrain = lgb.Dataset(Xt, label=yt)
        dvalid = lgb.Dataset(Xv, label=yv, reference=dtrain)
        callbacks: list[object] = []
        if ours:
            from runbase.integrations.lightgbm import RunbaseCallback

            callbacks.append(RunbaseCallback())
        if MODE == "wandb":
            from wandb.integration.lightgbm import wandb_callback

            callbacks.append(wandb_callback())
        t0 = time.perf_counter()
        lgb.train(
            params,
            dtrain,
            200,
            valid_sets=[dtrain, dvalid],
            valid_names=["train", "valid"],
            callbacks=callbacks,
        )
        return time.perf_counter() - t0

    return loop


def sklearn_loop() -> object:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=20000, n_features=20, random_state=SEED)

    def loop(run_dir: str, ours: bool = False) -> float:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        t0 = time.perf_counter()
        pipe.fit(X, y)
        pipe.score(X, y)
        cross_val_score(pipe, X, y, cv=5)
        return time.perf_counter() - t0

    return loop


LOOPS = {
    "lightning": lightning_loop,
    "keras": keras_loop,
    "transformers": transformers_loop,
    "xgboost": xgboost_loop,
    "lightgbm": lightgbm_loop,
    "sklearn": sklearn_loop,
}


def main() -> None:
    import tempfile

    loop = LOOPS[FRAMEWORK]()
    run = None
    if MODE == "wandb":
        import wandb

        run = wandb.init(project="bench", mode="offline", config={"framework": FRAMEWORK})
    times: list[float] = []
    with_ours: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rb-bench-int-") as scratch:
        if MODE == "ab":
            # in one process, loops without and with runbase's object, alternating
            # (the first pair warms up; which goes first alternates too, so that a
            # drift within the process — memory, caches — favours neither): the
            # integration's own cost, free of the process-to-process variance
            for i in range(REPS + 1):
                if i % 2:
                    on = loop(os.path.join(scratch, f"{i}-on"), ours=True)
                    off = loop(os.path.join(scratch, f"{i}-off"))
                else:
                    off = loop(os.path.join(scratch, f"{i}-off"))
                    on = loop(os.path.join(scratch, f"{i}-on"), ours=True)
                if i:
                    times.append(off)
                    with_ours.append(on)
        else:
            for i in range(REPS + 1):
                dt = loop(os.path.join(scratch, str(i)))
                if i:  # the first loop warms up (lazy imports, allocator, caches)
                    times.append(dt)
    if run is not None:
        run.finish()
    with open(OUT, "w") as f:
        json.dump({"loop_s": times, "loop_with_runbase_s": with_ours}, f)


if __name__ == "__main__":
    main()
