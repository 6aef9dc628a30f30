"""A DVC-style pipeline (iterative/example-get-started's shape: params.yaml, dvc.yaml,
prepare -> train -> evaluate, each stage its own process reading the previous stage's
outputs), every stage a separate ``runbase run``: each run's inputs and outputs are
exact, ``trace`` follows the metrics file back through all three stages, a params.yaml
experiment makes a second branch without loops, and re-running the evaluate stage, which
logs no metric, says "nothing to compare" rather than "reproduced"."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    b3,
    lineage,
    make_project,
    model_metrics,
    rb,
    reproduce,
    run,
)

PREPARE = ["python", "src/prepare.py", "data/data.csv"]
TRAIN = ["python", "src/train.py", "data/prepared", "model.pkl"]
EVALUATE = ["python", "src/evaluate.py", "model.pkl", "data/prepared"]


def test_three_stage_pipeline_lineage(tmp_path: Path) -> None:
    root = make_project(tmp_path, "dvc_pipeline", ignore=["/data/", "/model.pkl", "/eval/"])
    h = lambda p: b3(root / p)  # noqa: E731 - the bytes at that path now

    prepare = run(root, *PREPARE)
    # params.yaml is not named on the command line: the stage's params are the file's
    # bytes, an input like the data (runbase does not guess which keys a stage reads)
    assert prepare["params"] == {}
    assert_files(prepare, "inputs", {"data/data.csv": h("data/data.csv"),
                                     "params.yaml": h("params.yaml")})  # fmt: skip
    split = {"data/prepared/train.csv": h("data/prepared/train.csv"),
             "data/prepared/test.csv": h("data/prepared/test.csv")}  # fmt: skip
    assert_files(prepare, "outputs", split)

    train = run(root, *TRAIN)
    assert_no_redaction(train)
    # what the stage fitted, as scikit-learn reports it: params.yaml's train section
    assert {k: train["params"][k] for k in
            ("estimator_class", "n_estimators", "min_samples_split", "max_depth", "random_state")
            } == {"estimator_class": "RandomForestClassifier", "n_estimators": 25,
                  "min_samples_split": 2, "max_depth": 4, "random_state": 20170428}  # fmt: skip
    assert_files(train, "inputs", {"data/prepared/train.csv": split["data/prepared/train.csv"],
                                   "params.yaml": h("params.yaml")})  # fmt: skip
    model_v1 = h("model.pkl")
    assert_files(train, "outputs", {"model.pkl": model_v1})

    evaluate = run(root, *EVALUATE)
    assert evaluate["params"] == {} and model_metrics(evaluate) == {}
    assert_files(evaluate, "inputs", {"model.pkl": model_v1,
                                      "data/prepared/test.csv": split["data/prepared/test.csv"]})  # fmt: skip
    metrics_v1 = h("eval/metrics.json")
    assert_files(evaluate, "outputs", {"eval/metrics.json": metrics_v1})
    for rec in (prepare, train, evaluate):
        assert rec["status"] == "finished"
        assert_no_self_inputs(rec)
    assert lineage(root, "eval/metrics.json") == [evaluate["id"], prepare["id"], train["id"]]

    # an experiment: params.yaml edited in the workspace (`dvc exp run -S train.n_est=40`),
    # train and evaluate re-run; prepare's outputs are reused as they are
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(text.replace("n_est: 25", "n_est: 40"))
    train2 = run(root, *TRAIN)
    assert train2["params"]["n_estimators"] == 40 and train2["code"]["dirty"] is True
    assert files(train2)["params.yaml"] == h("params.yaml") != files(train)["params.yaml"]
    evaluate2 = run(root, *EVALUATE)
    assert_files(evaluate2, "inputs", {"model.pkl": h("model.pkl"),
                                       "data/prepared/test.csv": split["data/prepared/test.csv"]})  # fmt: skip
    assert h("model.pkl") != model_v1
    assert lineage(root, "eval/metrics.json") == [evaluate2["id"], prepare["id"], train2["id"]]
    assert lineage(root, metrics_v1) in (
        [evaluate["id"], prepare["id"], train["id"]],
        [evaluate2["id"], prepare["id"], train2["id"]],  # the same bytes, made again
    )
    diff = rb(root, "diff", train["id"], train2["id"], "--params").stdout
    assert "n_estimators" in diff and "25" in diff and "40" in diff

    # the evaluate stage logs nothing runbase can compare: never "reproduced"
    code, verdict = reproduce(root, evaluate2["id"])
    assert (code, verdict["verdict"]) == (3, "nothing to compare"), verdict


def files(rec: dict) -> dict[str, str]:
    return {f["path"]: f["hash"] for f in rec["inputs"]}
