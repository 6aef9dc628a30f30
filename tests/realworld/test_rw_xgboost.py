"""An XGBoost native-API script (dmlc/xgboost demo style) that saves its booster and loads
it back to predict: the model file is an output only, the booster params and the script's
argparse options are both there with their values, eval results are per-round metrics, and
``reproduce`` tells a faithful re-run ("reproduced") from one with an override ("changed by
request")."""

from __future__ import annotations

import json
from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    rb,
    record,
    reproduce,
    run,
)


def test_xgboost_booster_saved_then_reloaded(tmp_path: Path) -> None:
    root = make_project(tmp_path, "xgboost_booster", ignore=["data/", "model.json", "eval.json"])
    rec = run(root, "python", "train.py", "--max-depth", "2", "--num-round", "8")
    assert rec["status"] == "finished"
    assert_no_redaction(rec)
    # argparse and the booster params agree where they share a name: one key each
    assert rec["params"] == {
        "train": "data/train.csv", "test": "data/test.csv", "max_depth": 2, "eta": 0.3,
        "num_round": 8, "seed": 0, "model": "model.json",
        "objective": "binary:logistic", "eval_metric": ["logloss", "error"], "nthread": 1,
        "num_boost_round": 8,
    }  # fmt: skip
    src = rec["param_sources"]
    assert (src["max_depth"], src["num_round"], src["objective"]) == (
        "argparse", "argparse", "xgboost")  # fmt: skip
    assert src["num_boost_round"] == "xgboost"

    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/train.csv", "data/test.csv"]))
    assert_files(rec, "outputs", expected_files(root, ["model.json", "eval.json"]))
    assert lineage(root, "model.json") == [rec["id"]]

    m = model_metrics(rec)
    assert set(m) == {"train/logloss", "train/error", "eval/logloss", "eval/error"}
    assert all(v["count"] == 8 and v["step"] == 7 for v in m.values())

    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
    assert {c["key"] for c in verdict["metrics"]} == set(m)
    assert verdict["not_restorable"] == []
    # argparse and the booster report max_depth, eta and seed alike: however their
    # reports interleave, the re-run shows no param change (issue 15.5's false change)
    diff = json.loads(rb(root, "diff", rec["id"], verdict["run"], "--json").stdout)
    assert diff["params"]["unchanged"], diff["params"]
    assert diff["metrics"]["unchanged"], diff["metrics"]
    assert diff["data"]["inputs"] == {"added": [], "removed": [], "changed": []}

    # an override is a change by request, never "reproduced", even where nothing moved
    code, verdict = reproduce(root, rec["id"], "-p", "eta=0.9")
    assert (code, verdict["verdict"]) == (4, "changed by request"), verdict
    assert verdict["unused_overrides"] == []
    new = record(root, verdict["run"])
    assert new["params"]["eta"] == 0.9 and new["reproduces"] == rec["id"]
    assert new["metrics"]["eval/logloss"]["value"] != rec["metrics"]["eval/logloss"]["value"]
