"""A LightGBM native-API regression (microsoft/LightGBM python-guide style): pandas reads
the CSV, ``lgb.train`` with a validation set, ``save_model`` then a new ``Booster`` from
the file. The model file, written and read back by LightGBM's C++ code, is an output
only; LightGBM's resolved params sit beside the script's own."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    reproduce,
    run,
)


def test_lightgbm_model_saved_then_reloaded(tmp_path: Path) -> None:
    root = make_project(tmp_path, "lightgbm_booster", ignore=["data/", "*.txt", "predictions.csv"])
    rec = run(root, "python", "train.py", "--num-leaves", "5", "--num-boost-round", "20")
    assert rec["status"] == "finished"
    assert_no_redaction(rec)
    assert rec["params"] == {
        "data": "data/housing.csv", "num_leaves": 5, "learning_rate": 0.1,
        "num_boost_round": 20, "output": "model.txt",
        "objective": "regression", "metric": ["l2", "l1"], "feature_fraction": 0.9,
        "bagging_fraction": 0.8, "bagging_freq": 5, "seed": 3, "num_threads": 1, "verbose": -1,
        "num_iterations": 20,
    }  # fmt: skip
    src = rec["param_sources"]
    assert (src["num_leaves"], src["objective"], src["num_iterations"]) == (
        "argparse", "lightgbm", "lightgbm")  # fmt: skip

    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/housing.csv"]))
    assert_files(rec, "outputs", expected_files(root, ["model.txt", "predictions.csv"]))
    assert lineage(root, "predictions.csv") == [rec["id"]]

    m = model_metrics(rec)
    assert set(m) == {"valid_0/l1", "valid_0/l2"}
    assert m["valid_0/l2"]["count"] == 20

    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
