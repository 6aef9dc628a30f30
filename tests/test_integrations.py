"""Framework integrations with the real libraries: small real training loops.

Each framework is tested in automatic mode (a script with no runbase code, under
``runbase run``) and, where the integration has an object to pass, in explicit use.
What lands in the store is read back through ``runbase show --json`` and
``runbase metrics --json``. Models are tiny and run on the CPU; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require, runbase_cmd, write

PY = sys.executable
pytestmark = pytest.mark.timeout(600)

# quiet, offline, CPU-only, Keras on PyTorch (no TensorFlow needed)
ENV = {
    "KERAS_BACKEND": "torch",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "TOKENIZERS_PARALLELISM": "false",
}


def run_script(project: Path, script: str, *run_args: str) -> dict:
    """``runbase run [run_args] -- python script``; returns the run record."""
    proc = runbase_cmd("run", *run_args, "--", PY, script, cwd=project, env=ENV, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return record(project)


def run_api_script(project: Path, script: str) -> dict:
    """``python script`` (the script calls ``runbase.init()`` itself); the run record."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env.update(ENV)
    proc = subprocess.run(
        [PY, script], cwd=project, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return record(project)


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)


def steps(project: Path, key: str) -> list[int]:
    out = runbase_cmd("metrics", "latest", key, "--json", cwd=project, check=True).stdout
    return json.loads(out)["steps"]


def outputs(rec: dict) -> dict[str, dict]:
    return {o["path"]: o for o in rec["outputs"]}


def sources(rec: dict, prefix: str = "") -> set[str]:
    return {s for k, s in rec["param_sources"].items() if k.startswith(prefix)}


# -- PyTorch Lightning ----------------------------------------------------------------

LIGHTNING_MODULE = """
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl


class Net(pl.LightningModule):
    def __init__(self, lr=0.05, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
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


torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
train = DataLoader(data, batch_size=16)  # 4 batches an epoch
val = DataLoader(data, batch_size=32)
QUIET = dict(enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
"""


def test_lightning_auto(project: Path) -> None:
    require("lightning")
    write(project, "net.py", LIGHTNING_MODULE)
    write(
        project,
        "train.py",
        """
        from lightning.pytorch.loggers import CSVLogger
        from net import *

        trainer = pl.Trainer(max_epochs=3, log_every_n_steps=1, logger=CSVLogger("logs"), **QUIET)
        trainer.fit(Net(lr=0.05, hidden=8), train, val)
        """,
    )
    rec = run_script(project, "train.py")
    assert rec["params"]["lr"] == 0.05 and rec["params"]["hidden"] == 8
    assert rec["param_sources"]["lr"] == "lightning"
    m = rec["metrics"]
    assert steps(project, "train_loss") == list(range(12))  # 3 epochs x 4 batches
    assert m["val_loss"]["count"] == 3 and m["val_loss"]["step"] == 11
    assert m["epoch"]["last"] == 2.0
    outs = outputs(rec)
    # the user's logger stays (and stays first: the checkpoint goes under its directory)
    assert "logs/lightning_logs/version_0/metrics.csv" in outs
    ckpt = "logs/lightning_logs/version_0/checkpoints/epoch=2-step=12.ckpt"
    assert outs[ckpt]["source"] == "declared" and outs[ckpt]["hash"]


def test_lightning_explicit_logger_and_logger_false(project: Path) -> None:
    require("lightning")
    write(project, "net.py", LIGHTNING_MODULE)
    write(
        project,
        "train.py",
        """
        import runbase
        from runbase.integrations.lightning import RunbaseLogger
        from net import *

        runbase.init(name="explicit")
        ours = RunbaseLogger()
        trainer = pl.Trainer(
            max_epochs=3, log_every_n_steps=1, logger=ours,
            default_root_dir="out", **QUIET,
        )
        assert trainer.loggers == [ours], trainer.loggers  # not added a second time
        trainer.fit(Net(lr=0.1), train, val)
        # logging switched off: the automatic mode adds nothing
        off = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, **QUIET)
        assert off.loggers == []
        off.fit(Net(lr=0.2), train)
        """,
    )
    rec = run_api_script(project, "train.py")
    assert rec["mode"] == "api" and rec["name"] == "explicit"
    assert rec["params"]["lr"] == 0.1  # the logger=False fit logged no hyperparameters
    assert rec["metrics"]["train_loss"]["count"] == 12
    # with only our logger, Lightning puts checkpoints under <root>/runbase/<run id>/
    ckpt = f"out/runbase/{rec['id']}/checkpoints/epoch=2-step=12.ckpt"
    assert outputs(rec)[ckpt]["source"] == "declared"


# -- Keras ----------------------------------------------------------------------------

KERAS_MODEL = """
import numpy as np
import keras

keras.utils.set_random_seed(0)
x = np.random.rand(64, 4).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
)
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
"""


def test_keras_auto(project: Path) -> None:
    require("keras")
    write(
        project,
        "train.py",
        KERAS_MODEL
        + """
model.fit(
    x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,  # 3 batches an epoch
    callbacks=[keras.callbacks.ModelCheckpoint("ckpt/best.keras")],
)
model.save("model.keras")
""",
    )
    rec = run_script(project, "train.py")
    p = rec["params"]
    assert p["model.class"] == "Sequential" and p["model.params"] == 49
    assert p["model.layers.dense.units"] == 8 and p["model.layers.dense.activation"] == "relu"
    assert p["optimizer.name"] == "adam" and abs(p["optimizer.learning_rate"] - 0.01) < 1e-6
    assert p["fit.epochs"] == 3 and p["model.loss"] == "binary_crossentropy"
    assert sources(rec, "model.") == {"keras"}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert steps(project, key) == [0, 1, 2], key
    assert steps(project, "batch/loss") == list(range(9))
    outs = outputs(rec)
    assert outs["ckpt/best.keras"]["source"] == "declared" and outs["ckpt/best.keras"]["hash"]
    assert outs["model.keras"]["source"] == "declared"


def test_keras_explicit_callback(project: Path) -> None:
    require("keras")
    write(
        project,
        "train.py",
        "import runbase\nfrom runbase.integrations.keras import RunbaseCallback\n"
        + KERAS_MODEL
        + """
runbase.init()
model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[RunbaseCallback(log_batches=False)])
""",
    )
    rec = run_api_script(project, "train.py")
    assert rec["mode"] == "api"
    assert rec["metrics"]["loss"]["count"] == 3  # the automatic mode saw ours: no second one
    assert not any(k.startswith("batch/") for k in rec["metrics"])
    assert rec["params"]["model.layers.dense_1.units"] == 1


# -- Hugging Face Transformers --------------------------------------------------------

HF_SETUP = """
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=16, num_labels=2,
)
model = BertForSequenceClassification(config)


class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        self.x = torch.randint(0, 50, (n, 8))
        self.y = torch.randint(0, 2, (n,))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i]}


QUIET = dict(use_cpu=True, disable_tqdm=True, logging_steps=1, learning_rate=1e-3)
"""


def test_transformers_auto(project: Path) -> None:
    require("transformers")
    require("accelerate")
    write(
        project,
        "train.py",
        HF_SETUP
        + """
args = TrainingArguments(
    output_dir="out", num_train_epochs=2, per_device_train_batch_size=8,  # 4 steps an epoch
    eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, report_to="none", **QUIET,
)
trainer = Trainer(model=model, args=args, train_dataset=Data(32), eval_dataset=Data(16))
trainer.train()
trainer.save_model("final")
""",
    )
    rec = run_script(project, "train.py")
    p = rec["params"]
    assert p["learning_rate"] == 1e-3 and p["num_train_epochs"] == 2
    assert p["per_device_train_batch_size"] == 8 and rec["param_sources"]["learning_rate"] == (
        "transformers"
    )
    assert p["model.hidden_size"] == 16 and p["model.model_type"] == "bert"
    assert p["model.class"] == "BertForSequenceClassification"
    assert "hub_model_id" not in p  # unset arguments are left out
    assert steps(project, "loss") == list(range(1, 9))
    assert steps(project, "eval_loss") == [4, 8]
    m = rec["metrics"]
    assert m["grad_norm"]["count"] == 8 and m["learning_rate"]["count"] == 8
    assert m["train_runtime"]["count"] == 0 and m["train_runtime"]["value"] > 0  # summaries
    assert m["train_loss"]["count"] == 0
    outs = outputs(rec)
    assert (
        outs["out/checkpoint-8"]["directory"] and outs["out/checkpoint-8"]["source"] == "declared"
    )
    assert not any(k.startswith("out/checkpoint-4") for k in outs)  # rotated away: dropped
    assert outs["final"]["directory"] and outs["final"]["source"] == "declared"
    assert "final/model.safetensors" in outs


def test_transformers_report_to_without_auto(project: Path) -> None:
    require("transformers")
    require("accelerate")
    write(
        project,
        "train.py",
        "import runbase.integrations.transformers  # registers report_to='runbase'\n"
        + HF_SETUP
        + """
args = TrainingArguments(output_dir="out", max_steps=3, save_strategy="no", report_to="runbase", **QUIET)
trainer = Trainer(model=model, args=args, train_dataset=Data(32))
n = sum(type(cb).__name__ == "RunbaseCallback" for cb in trainer.callback_handler.callbacks)
assert n == 1, trainer.callback_handler.callbacks
trainer.train()
""",
    )
    rec = run_script(project, "train.py", "--no-integrations")
    assert steps(project, "loss") == [1, 2, 3]
    assert rec["params"]["max_steps"] == 3


# -- scikit-learn ---------------------------------------------------------------------


def test_sklearn_auto_outermost_fit_score_and_cv(project: Path) -> None:
    require("sklearn")
    write(
        project,
        "train.py",
        """
        import json
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score, cross_validate
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = make_classification(n_samples=120, n_features=5, random_state=0)
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=200))
        pipe.fit(X, y)
        score = pipe.score(X, y)
        folds = cross_val_score(pipe, X, y, cv=3, n_jobs=2)  # fits in joblib workers
        cv = cross_validate(pipe, X, y, cv=4, scoring=["accuracy", "f1"], return_train_score=True)
        with open("scores.json", "w") as f:
            json.dump({"score": score, "folds": list(folds), "f1": list(cv["test_f1"])}, f)
        """,
    )
    rec = run_script(project, "train.py")
    expected = json.loads((project / "scores.json").read_text())
    p = rec["params"]
    assert p["estimator_class"] == "Pipeline"
    assert p["logisticregression.C"] == 0.5 and p["logisticregression.max_iter"] == 200
    assert p["standardscaler.with_mean"] is True and p["logisticregression"] == "LogisticRegression"
    assert p["steps"] == [
        ["standardscaler", "StandardScaler"],
        ["logisticregression", "LogisticRegression"],
    ]
    assert "C" not in p and "with_mean" not in p  # the steps' own fits are not recorded
    assert rec["param_sources"]["logisticregression.C"] == "sklearn"
    m = rec["metrics"]
    assert m["score"]["count"] == 0 and m["score"]["value"] == pytest.approx(expected["score"])
    assert steps(project, "cv/test_score") == [0, 1, 2]
    mean = sum(expected["folds"]) / 3
    assert m["cv/test_score"]["value"] == pytest.approx(mean)
    assert m["cv/test_score_std"]["count"] == 0
    assert steps(project, "cv/test_f1") == [0, 1, 2, 3]
    assert m["cv/test_f1"]["value"] == pytest.approx(sum(expected["f1"]) / 4)
    assert {"cv/test_accuracy", "cv/train_accuracy", "cv/train_f1"} <= set(m)
    assert "cv/fit_time" not in m


def test_sklearn_search_records_the_search_not_its_candidates(project: Path) -> None:
    require("sklearn")
    write(
        project,
        "train.py",
        """
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV

        X, y = make_classification(n_samples=80, n_features=4, random_state=0)
        search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.1, 1.0]}, cv=2)
        search.fit(X, y)
        print("SCORE", search.score(X, y))
        """,
    )
    rec = run_script(project, "train.py")
    p = rec["params"]
    assert p["estimator_class"] == "GridSearchCV" and p["estimator"] == "LogisticRegression"
    assert p["param_grid.C"] == [0.1, 1.0] and p["cv"] == 2 and p["estimator.max_iter"] == 100
    assert "C" not in p and "max_iter" not in p
    out = runbase_cmd("logs", cwd=project, check=True).stdout
    score = float(out.split("SCORE")[1].split()[0])
    assert rec["metrics"]["score"]["value"] == pytest.approx(score)


# -- XGBoost --------------------------------------------------------------------------

XGB_DATA = """
import numpy as np
import xgboost as xgb

rng = np.random.default_rng(0)
X = rng.random((200, 4))
y = (X[:, 0] + X[:, 1] > 1).astype(int)
dtrain = xgb.DMatrix(X[:150], label=y[:150])
dvalid = xgb.DMatrix(X[150:], label=y[150:])
PARAMS = {"max_depth": 2, "eta": 0.3, "objective": "binary:logistic", "eval_metric": ["logloss", "error"]}
"""


def test_xgboost_auto(project: Path) -> None:
    require("xgboost")
    write(
        project,
        "train.py",
        XGB_DATA
        + """
booster = xgb.train(PARAMS, dtrain, 4, evals=[(dtrain, "train"), (dvalid, "valid")], verbose_eval=False)
booster.save_model("model.json")
clf = xgb.XGBClassifier(n_estimators=3, max_depth=3, eval_metric="logloss")
clf.fit(X[:150], y[:150], eval_set=[(X[150:], y[150:])], verbose=False)
""",
    )
    rec = run_script(project, "train.py")
    for key in ("train/logloss", "train/error", "valid/logloss", "valid/error"):
        assert steps(project, key) == [0, 1, 2, 3], key
    assert steps(project, "validation_0/logloss") == [0, 1, 2]  # the scikit-learn API
    p = rec["params"]
    assert p["objective"] == "binary:logistic" and p["eta"] == 0.3
    assert p["max_depth"] == 3 and p["num_boost_round"] == 3  # the last training's
    assert rec["param_sources"]["eta"] == "xgboost"
    assert outputs(rec)["model.json"]["source"] == "declared"


def test_xgboost_explicit_callback(project: Path) -> None:
    require("xgboost")
    write(
        project,
        "train.py",
        "import runbase\nfrom runbase.integrations.xgboost import RunbaseCallback\n"
        + XGB_DATA
        + """
runbase.init()
xgb.train(PARAMS, dtrain, 4, evals=[(dvalid, "valid")], verbose_eval=False, callbacks=[RunbaseCallback()])
""",
    )
    rec = run_api_script(project, "train.py")
    assert rec["metrics"]["valid/logloss"]["count"] == 4  # not twice: auto saw ours
    p = rec["params"]  # read back from the booster's configuration
    assert p["max_depth"] == 2 and p["objective"] == "binary:logistic"
    assert p["eta"] == pytest.approx(0.3) and p["eval_metric"] == ["logloss", "error"]


# -- LightGBM -------------------------------------------------------------------------

LGB_DATA = """
import numpy as np
import lightgbm as lgb

rng = np.random.default_rng(0)
X = rng.random((200, 4))
y = (X[:, 0] + X[:, 1] > 1).astype(int)
dtrain = lgb.Dataset(X[:150], label=y[:150])
dvalid = lgb.Dataset(X[150:], label=y[150:], reference=dtrain)
PARAMS = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_leaves": 4, "verbose": -1}
"""


def test_lightgbm_auto(project: Path) -> None:
    require("lightgbm")
    write(
        project,
        "train.py",
        LGB_DATA
        + """
booster = lgb.train(PARAMS, dtrain, 5, valid_sets=[dtrain, dvalid], valid_names=["train", "valid"])
booster.save_model("model.txt")
""",
    )
    rec = run_script(project, "train.py")
    for key in ("train/binary_logloss", "train/auc", "valid/binary_logloss", "valid/auc"):
        assert steps(project, key) == [0, 1, 2, 3, 4], key
    p = rec["params"]
    assert p["objective"] == "binary" and p["num_leaves"] == 4 and p["num_iterations"] == 5
    assert p["metric"] == ["binary_logloss", "auc"]
    assert rec["param_sources"]["num_leaves"] == "lightgbm"
    assert outputs(rec)["model.txt"]["source"] == "declared"


def test_lightgbm_explicit_callback_and_opt_out(project: Path) -> None:
    require("lightgbm")
    write(
        project,
        "train.py",
        "from runbase.integrations.lightgbm import RunbaseCallback\n"
        + LGB_DATA
        + """
clf = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1)
clf.fit(X[:150], y[:150], eval_set=[(X[150:], y[150:])], callbacks=[RunbaseCallback()])
lgb.train(PARAMS, dtrain, 2, valid_sets=[dvalid], valid_names=["other"])  # no callback
""",
    )
    rec = run_script(project, "train.py", "--no-integrations")
    assert steps(project, "valid_0/binary_logloss") == [0, 1, 2]
    assert not any(k.startswith("other/") for k in rec["metrics"])  # auto mode is off
    assert rec["params"]["num_iterations"] == 3


# -- PyTorch --------------------------------------------------------------------------


def test_torch_save_declares_outputs_inside_and_outside_the_project(
    project: Path, tmp_path: Path
) -> None:
    require("torch")
    outside = tmp_path / "elsewhere" / "weights.pt"
    outside.parent.mkdir()
    write(
        project,
        "train.py",
        f"""
        import io, torch
        torch.save({{"w": torch.ones(2)}}, "weights.pt")
        torch.save({{"w": torch.zeros(2)}}, {str(outside)!r})
        torch.save({{"w": 1}}, io.BytesIO())  # a buffer: nothing to record
        """,
    )
    rec = run_script(project, "train.py")
    outs = outputs(rec)
    assert outs["weights.pt"]["source"] == "declared" and outs["weights.pt"]["hash"]
    assert outs[str(outside)]["source"] == "declared" and outs[str(outside)]["stored"]


def test_automatic_hooks_start_no_run_after_finish(project: Path) -> None:
    require("torch")
    require("sklearn")
    write(
        project,
        "train.py",
        """
        import runbase, torch
        from sklearn.linear_model import LinearRegression

        runbase.init()
        LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
        runbase.finish()
        torch.save({"w": 1}, "after.pt")  # the hooks are still there, the run is not
        LinearRegression(fit_intercept=False).fit([[0.0], [1.0]], [0.0, 1.0])
        """,
    )
    rec = run_api_script(project, "train.py")
    assert rec["params"]["fit_intercept"] is True
    runs = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    assert len(runs) == 1
