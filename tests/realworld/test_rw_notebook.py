"""A notebook run with papermill under ``runbase run`` (the MLflow wine-quality example's
shape: a ``parameters`` cell, pandas, an ElasticNet, ``runbase.init()`` in the notebook):
papermill's ``-p`` values are the params, with the estimator's; the data file and the
notebook executed are inputs, the executed copy and the model outputs; the cells that ran
are recorded; the re-run reproduces. papermill's own command-line options are a
launcher's, not the run's params."""

from __future__ import annotations

import json
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
    rb,
    reproduce,
    run,
)

PAPERMILL = ["python", "-m", "papermill", "train.ipynb", "train.out.ipynb",
             "-p", "alpha", "0.3", "-p", "l1_ratio", "0.2"]  # fmt: skip


def test_papermill_notebook_run(tmp_path: Path) -> None:
    root = make_project(tmp_path, "notebook", ignore=["data/", "*.out.ipynb", "model.joblib"])
    rec = run(root, *PAPERMILL)
    assert rec["status"] == "finished" and rec["mode"] == "run"
    assert_no_redaction(rec)
    notebook = {"alpha": 0.3, "l1_ratio": 0.2, "seed": 40, "data_path": "data/winequality.csv"}
    assert_params(rec, notebook, sources=dict.fromkeys(notebook, "papermill"))
    assert_params(
        rec,
        {"estimator_class": "ElasticNet", "random_state": 40, "max_iter": 1000},
        sources={"estimator_class": "sklearn", "random_state": "sklearn"},
    )
    nb = rec["notebook"]
    assert (nb["path"], nb["source"], nb["oid"]) == (
        "train.ipynb",
        "explicit",
        b3(root / "train.ipynb"),
    )
    cells = json.loads(rb(root, "show", rec["id"], "--cells", "--json").stdout)
    assert [c["success"] for c in cells] == [True, True, True, None]  # the last calls finish()
    assert "ElasticNet(alpha=alpha" in cells[2]["source"]

    assert_no_self_inputs(rec)
    assert_files(rec, "inputs", expected_files(root, ["data/winequality.csv", "train.ipynb"]))
    assert_files(rec, "outputs", expected_files(root, ["train.out.ipynb", "model.joblib"]))
    assert lineage(root, "model.joblib") == [rec["id"]]
    assert set(model_metrics(rec)) == {"rmse"}

    code, verdict = reproduce(root, rec["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict

    # papermill's own options (--kernel, --log-output, --cwd, ...) are the launcher's:
    # like `python -m torch.distributed.run`'s, they are not the run's params
    launcher = sorted(k for k, s in rec["param_sources"].items() if s == "click")
    assert launcher == [], f"papermill's command-line options recorded as params: {launcher}"
