"""A Lightning module with ``ModelCheckpoint`` (best by ``val_loss``) that tests the best
checkpoint it reloads from disk: the checkpoint is an output only, argparse and
``save_hyperparameters()`` both keep their learning rate where they disagree."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    assert_params,
    b3,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    run,
)


def test_lightning_model_checkpoint_best_reloaded_for_test(tmp_path: Path) -> None:
    root = make_project(tmp_path, "lightning_ckpt", ignore=["data/", "checkpoints/", "logs/"])
    rec = run(root, "python", "train.py", "--max_epochs", "3", "--learning_rate", "0.02",
              "--batch_size", "32")  # fmt: skip
    assert rec["status"] == "finished"
    assert_no_redaction(rec)
    # argparse's learning rate and the module's (scaled by the batch size) disagree: both
    # are kept, the framework's under its name (issue 15.5); where they agree, one key
    assert rec["params"] == {
        "data": "data/regression.csv", "batch_size": 32, "hidden_dim": 8,
        "learning_rate": 0.02, "max_epochs": 3, "seed": 7, "lightning.learning_rate": 0.04,
    }  # fmt: skip
    assert_params(
        rec,
        {},
        sources={"learning_rate": "argparse", "hidden_dim": "argparse",
                 "lightning.learning_rate": "lightning"},
    )  # fmt: skip

    (best,) = [p.name for p in (root / "checkpoints").iterdir()]
    assert best.startswith("best-epoch=") and best.endswith(".ckpt")
    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", {"data/regression.csv": b3(root / "data/regression.csv")})
    logs = [str(p.relative_to(root)) for p in (root / "logs").rglob("*") if p.is_file()]
    assert sorted(logs) == ["logs/regression/version_0/hparams.yaml",
                            "logs/regression/version_0/metrics.csv"]  # fmt: skip
    assert_files(rec, "outputs", expected_files(root, [f"checkpoints/{best}", *logs]))
    assert files_source(rec, f"checkpoints/{best}") == "declared"
    assert lineage(root, f"checkpoints/{best}") == [rec["id"]]

    m = model_metrics(rec)
    assert m["train_loss"]["count"] == 3 and m["val_loss"]["count"] == 3
    assert m["test_loss"]["count"] == 1  # measured on the reloaded best checkpoint


def files_source(rec: dict, path: str) -> str:
    return next(f["source"] for f in rec["outputs"] if f["path"] == path)
