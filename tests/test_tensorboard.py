"""The TensorBoard mirror: real SummaryWriters (torch, tensorboardX) and tf.summary, in
real tracked processes; TensorBoard's own files must stay as they are without runbase."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require, runbase_cmd, write
from runbase.records.view import get_run

PY = sys.executable

TRAIN = """
    import sys
    {imports}
    {init}
    w = SummaryWriter("tb")
    for step in range(5):
        w.add_scalar("train/loss", 1.0 / (step + 1), step)
        w.add_scalars("acc", {{"train": step / 10, "val": step / 20}}, global_step=step)
    w.add_scalar("lr", 0.5)            # no step: runbase's next step
    w.add_scalar("lr", 0.25)
    w.add_hparams({{"lr": 0.5, "batch": 32, "opt": "adam"}}, {{"hparam/acc": 0.9}})
    w.close()
    print("trained")
"""


def series(project: Path, key: str, ref: str = "latest") -> tuple[list[int], list[float]]:
    s = get_run(ref, store=str(project / ".runbase")).series(key)
    return list(s.steps), list(s.values)


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)


def event_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``logdir``, read by TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    dirs = {p.parent for p in logdir.rglob("events.out.tfevents.*")}
    for d in sorted(dirs):
        acc = EventAccumulator(str(d))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            name = tag if d == logdir else f"{d.relative_to(logdir)}:{tag}"
            out[name] = [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
    return out


def check_mirrored(project: Path) -> None:
    rec = record(project)
    assert rec["status"] == "finished", rec
    assert series(project, "train/loss") == ([0, 1, 2, 3, 4], [1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert series(project, "acc/train") == ([0, 1, 2, 3, 4], [0.0, 0.1, 0.2, 0.3, 0.4])
    assert series(project, "acc/val")[1] == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert series(project, "lr") == ([0, 1], [0.5, 0.25])
    # add_hparams: params and a summary; its own add_scalar calls are not a second series
    assert {k: rec["params"][k] for k in ("lr", "batch", "opt")} == {
        "lr": 0.5,
        "batch": 32,
        "opt": "adam",
    }
    assert {rec["param_sources"][k] for k in ("lr", "batch", "opt")} == {"tensorboard"}
    assert rec["metrics"]["hparam/acc"]["value"] == 0.9
    assert rec["metrics"]["hparam/acc"]["count"] == 0


def check_event_files(project: Path) -> None:
    files = list((project / "tb").rglob("events.out.tfevents.*"))
    assert files and all(f.stat().st_size > 0 for f in files), files
    scalars = event_scalars(project / "tb")
    assert scalars["train/loss"] == [(0, 1.0), (1, 0.5), (2, 0.333333), (3, 0.25), (4, 0.2)]
    assert scalars["lr"] == [(0, 0.5), (0, 0.25)]  # TensorBoard's own step: 0
    # add_scalars: one writer (a subdirectory) per sub-tag
    assert [v for k, v in scalars.items() if k.replace("/", "_").startswith("acc_train:")] == [
        [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]
    ], scalars.keys()
    assert any(k.endswith(":hparam/acc") for k in scalars), scalars


def test_torch_summary_writer_under_runbase_run(project: Path) -> None:
    write(
        project,
        "train.py",
        TRAIN.format(imports="from torch.utils.tensorboard import SummaryWriter", init=""),
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout
    assert "runbase: warning" not in proc.stderr, proc.stderr
    check_mirrored(project)
    check_event_files(project)


def test_tensorboardx_imported_before_init(project: Path) -> None:
    # the writer class is hooked at init() although it was imported (and used) before
    write(
        project,
        "train.py",
        TRAIN.format(
            imports="from tensorboardX import SummaryWriter; SummaryWriter('tb').close(); import runbase",
            init="runbase.init(name='tbx')",
        ),
    )
    proc = subprocess.run(
        [PY, "train.py"], cwd=project, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    assert record(project)["mode"] == "api"
    check_mirrored(project)
    check_event_files(project)


def test_no_integrations_no_mirror(project: Path) -> None:
    write(
        project,
        "train.py",
        TRAIN.format(imports="from tensorboardX import SummaryWriter", init=""),
    )
    proc = runbase_cmd("run", "--no-integrations", "--", PY, "train.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert not {"train/loss", "acc/train", "lr", "hparam/acc"} & set(rec["metrics"])
    assert "batch" not in rec["params"]
    check_event_files(project)  # TensorBoard is unaffected either way


def test_writer_errors_reach_the_program_unchanged(project: Path) -> None:
    write(
        project,
        "bad.py",
        """
        from tensorboardX import SummaryWriter
        w = SummaryWriter("tb")
        try:
            w.add_hparams("not a dict", {})
        except TypeError as e:
            print("TypeError", e)
        w.add_scalar("ok", 1.5, 3)
        w.close()
        """,
    )
    proc = runbase_cmd("run", "--", PY, "bad.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "TypeError" in proc.stdout
    assert series(project, "ok") == ([3], [1.5])


def test_tf_summary_scalar(project: Path) -> None:
    require("tensorflow")
    write(
        project,
        "train.py",
        """
        import tensorflow as tf
        writer = tf.summary.create_file_writer("tb")
        with writer.as_default():
            for step in range(3):
                tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
                with tf.name_scope("val"):
                    tf.summary.scalar("acc", tf.constant(0.5), step=step)
            tf.summary.experimental.set_step(10)
            tf.summary.scalar("default_step", 2.0)   # tf.summary.experimental.get_step()

            @tf.function
            def traced(x):
                tf.summary.scalar("in_graph", x, step=1)  # symbolic: not mirrored
                return x

            traced(tf.constant(1.0))
        tf.summary.scalar("no_writer", 1.0, step=0)  # not written: not mirrored
        writer.flush()
        print("trained")
        """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert series(project, "loss") == ([0, 1, 2], [1.0, 0.5, pytest.approx(1 / 3)])
    assert series(project, "val/acc") == ([0, 1, 2], [0.5, 0.5, 0.5])
    assert series(project, "default_step") == ([10], [2.0])
    metrics = record(project)["metrics"]
    assert "no_writer" not in metrics and "in_graph" not in metrics
    files = list((project / "tb").glob("events.out.tfevents.*"))
    assert files and files[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(project / "tb"))
    acc.Reload()
    assert {"loss", "val/acc", "default_step"} <= set(acc.Tags()["tensors"])


def test_lightning_tensorboard_logger_is_not_recorded_twice(project: Path) -> None:
    # Lightning's own integration records self.log; its TensorBoardLogger's writes are
    # left to it, while the program's direct add_scalar calls are mirrored
    require("pytorch_lightning")
    write(
        project,
        "train.py",
        """
        import torch
        import pytorch_lightning as pl
        from pytorch_lightning.loggers import TensorBoardLogger
        from torch.utils.data import DataLoader, TensorDataset

        class Model(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(2, 1)

            def training_step(self, batch, i):
                x, y = batch
                loss = torch.nn.functional.mse_loss(self.layer(x), y)
                self.log("train_loss", loss)
                self.logger.experiment.add_scalar("direct", float(i), i)
                return loss

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        data = DataLoader(TensorDataset(torch.randn(16, 2), torch.randn(16, 1)), batch_size=4)
        trainer = pl.Trainer(
            max_steps=4, logger=TensorBoardLogger("tb"), log_every_n_steps=1,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )
        trainer.fit(Model(), data)
        """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project, timeout=240)
    assert proc.returncode == 0, proc.stderr
    metrics = record(project)["metrics"]
    assert metrics["train_loss"]["count"] == 4, metrics["train_loss"]
    assert series(project, "direct") == ([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0])
    assert "train_loss" in event_scalars(project / "tb" / "lightning_logs" / "version_0")
