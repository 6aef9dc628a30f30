"""A scikit-learn text pipeline (TfidfVectorizer with a ``token_pattern``, a GridSearchCV
over the pipeline, joblib dump then load): regexes and ``*_key`` column names are
ordinary params, never ``***`` (issue 15.1); the search's own params are recorded under
the pipeline's step names; the dumped model read back is an output only."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    assert_params,
    expected_files,
    lineage,
    make_project,
    model_metrics,
    reproduce,
    run,
)

PATTERN = r"(?u)\b\w+\b"


def test_tfidf_grid_search_pipeline(tmp_path: Path) -> None:
    root = make_project(tmp_path, "sklearn_text", ignore=["data/", "model.joblib", "metrics.json"])
    rec = run(root, "python", "train.py", "--token-pattern", PATTERN, "--max-features", "150")
    assert rec["status"] == "finished"
    assert_no_redaction(rec)
    assert rec["command"][-4:] == ["--token-pattern", PATTERN, "--max-features", "150"]
    args = {"data": "data/reviews.csv", "text_key": "review", "label_key": "sentiment",
            "token_pattern": PATTERN, "max_features": 150, "cv": 3, "test_size": 0.25,
            "random_state": 42, "model": "model.joblib"}  # fmt: skip
    assert_params(rec, args, sources=dict.fromkeys(args, "argparse"))
    assert_params(
        rec,
        {"estimator_class": "GridSearchCV", "estimator": "Pipeline",
         "estimator.tfidf.token_pattern": PATTERN, "estimator.tfidf.max_features": 150,
         "estimator.tfidf.sublinear_tf": True, "estimator.clf.max_iter": 200,
         "param_grid.clf__C": [0.5, 5.0], "param_grid.tfidf__ngram_range": [[1, 1], [1, 2]],
         "scoring": "accuracy"},
        sources={"estimator.tfidf.token_pattern": "sklearn", "scoring": "sklearn"},
    )  # fmt: skip

    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/reviews.csv"]))
    assert_files(rec, "outputs", expected_files(root, ["model.joblib", "metrics.json"]))
    assert lineage(root, "metrics.json") == [rec["id"]]
    assert set(model_metrics(rec)) == {"score"}  # the reloaded model's held-out accuracy

    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
