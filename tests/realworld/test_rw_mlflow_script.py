"""An unmodified MLflow training script (``programs/mlflow_sgd``: set_experiment, a named
run, log_params, log_metric per epoch, set_tags, log_artifact, a nested evaluation run)
run as ``runbase run --publish team -- python train.py`` with MLflow pointed at the same
team server: ONE top-level run on the server, holding the code, the environment and
MLflow's params and metrics (each point once: they arrive by publishing, not also over
MLflow's REST calls), the nested run as its own MLflow run; the MLflow client reads it
all back (search_runs, get_metric_history, download_artifacts). Once the run is
published, the script resumes it (``start_run(run_id=...)``) and deletes a tag, as
MLflow allows: neither fails (review2 A1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rwkit import PY, make_project, rb

from conftest import http_request, require
from serverkit import PROJECT, team_server

EPOCHS = 4


@dataclass
class Published:
    url: str  # the server
    token: str  # alice's
    root: Path  # her project
    local: dict[str, Any]  # `runbase show --json` of the run, on her machine
    history: dict[str, Any]  # what the script logged (its history.json)
    ids: dict[str, str]  # MLflow's run ids, as the script saw them
    env: dict[str, str]
    proc: subprocess.CompletedProcess[str]
    other_token: str  # bob's, another writer of the project

    def api(self, path: str) -> Any:
        status, answer = http_request(self.url, "GET", f"/p/{PROJECT}/api{path}", self.token)
        assert status == 200, (path, status, answer)
        return answer


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require("mlflow")
    require("sklearn")
    base = tmp_path_factory.mktemp("rw-mlflow")
    with team_server(base, [("alice", "writer"), ("bob", "writer")]) as server:
        root = make_project(
            base, "mlflow_sgd", ignore=["model.joblib", "history.json", "ids.json", "mlruns/"]
        )
        env = server.login("alice", {"RUNBASE_CONFIG": str(base / "alice-config.json")}, root)
        token = server.tokens["alice"]
        env |= {"MLFLOW_TRACKING_URI": server.uri, "MLFLOW_TRACKING_TOKEN": token}
        proc = rb(root, "run", "--publish", "team", "--", PY, "train.py",
                  "--epochs", str(EPOCHS), "--reopen", env=env)  # fmt: skip
        local = json.loads(rb(root, "show", "latest", "--json", env=env).stdout)
        yield Published(
            server.url, token, root, local,
            json.loads((root / "history.json").read_text()),
            json.loads((root / "ids.json").read_text()), env, proc, server.tokens["bob"],
        )  # fmt: skip


def _client(p: Published, monkeypatch: pytest.MonkeyPatch, token: str | None = None) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token or p.token)
    return MlflowClient(tracking_uri=p.env["MLFLOW_TRACKING_URI"])


def test_the_mlflow_run_is_the_runbase_run(published: Published) -> None:
    p = published
    assert p.local["status"] == "finished", p.proc.stderr
    assert "warning" not in p.proc.stderr, p.proc.stderr
    assert p.ids["run"] == p.local["id"]  # the server adopted the runbase run
    assert p.ids["child"] != p.local["id"]
    runs = p.api("/runs?limit=50")["runs"]
    assert sorted(r["id"] for r in runs) == sorted([p.ids["run"], p.ids["child"]])


def test_the_server_run_holds_code_env_and_mlflows_values(published: Published) -> None:
    p = published
    run = p.api(f"/runs/{p.ids['run']}")  # the run record (docs/run-record.md)
    assert run["status"] == "finished" and run["name"] == "sgd-logreg"
    assert run["code"] and run["code"].get("commit"), "the code snapshot reached the server"
    assert run["env"], "the environment reached the server"
    expected = {"alpha": 0.0001, "epochs": EPOCHS, "loss": "log_loss", "penalty": "l2",
                "n_features": 12}  # fmt: skip
    for key, value in expected.items():
        assert run["params"][key] == value and type(run["params"][key]) is type(value), key
    assert run["tags"]["experiment"] == "churn-baselines"
    assert {run["tags"].get("team"), run["tags"].get("stage")} == {"growth", "baseline"}
    metrics = run["metrics"]
    for key in ("train_loss", "train_acc"):
        assert metrics[key]["count"] == EPOCHS, (key, metrics[key])  # each point once
        assert metrics[key]["last"] == p.history[key][-1]
    assert (
        metrics["test_acc"]["count"] == 1 and metrics["test_acc"]["last"] == p.history["test_acc"]
    )
    assert run["param_sources"]["n_features"] == "mlflow"  # what MLflow alone reported


def test_the_script_resumes_the_published_run(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review2 A1: after a live publish made the adopted run the published runbase run,
    MLflow's fluent resume (``start_run(run_id=...)``: the store's update_run_info) and
    ``delete_tag`` on it run as without runbase; what the resumed run logs arrives once.
    The deletion is kept local, and the runbase run keeps the tag (docs/mlflow.md)."""
    p = published
    assert p.ids["shown_before_reopen"], "the run was published before the script resumed it"
    assert p.proc.returncode == 0 and "Traceback" not in p.proc.stderr, p.proc.stderr
    run = p.api(f"/runs/{p.ids['run']}")
    assert run["status"] == "finished"
    assert run["metrics"]["test_loss"]["count"] == 1
    assert run["metrics"]["test_loss"]["last"] == p.history["test_loss"]
    assert run["tags"]["scratch"] == "until the evaluation"  # a deletion is not mirrored
    assert p.local["metrics"]["test_loss"]["count"] == 1
    top = _client(p, monkeypatch).get_run(p.ids["run"])
    assert top.info.status == "FINISHED" and top.data.metrics["test_loss"] == p.history["test_loss"]


def test_the_mlflow_client_reads_it_back(
    published: Published, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    p = published
    client = _client(p, monkeypatch)
    exp = client.get_experiment_by_name("churn-baselines")
    assert exp is not None
    found = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.run_id for r in found] == [p.ids["run"], p.ids["child"]]
    top = client.get_run(p.ids["run"])
    assert top.info.status == "FINISHED" and top.info.run_name == "sgd-logreg"
    assert top.data.params["alpha"] == "0.0001" and top.data.params["epochs"] == str(EPOCHS)
    for key in ("train_loss", "train_acc"):
        history = client.get_metric_history(p.ids["run"], key)
        assert [(m.step, m.value) for m in history] == list(enumerate(p.history[key]))
    child = client.get_run(p.ids["child"])
    assert child.data.tags["mlflow.parentRunId"] == p.ids["run"]
    assert child.data.params == {"split": "test"}
    assert child.data.metrics == {"test_acc": p.history["test_acc"]}
    # model.joblib: the run's own output at that path too, so the final push keeps it
    got = Path(client.download_artifacts(p.ids["run"], "model.joblib", str(tmp_path)))
    assert got.read_bytes() == (p.root / "model.joblib").read_bytes()


def test_artifacts_of_the_adopted_run_survive_the_final_push(
    published: Published, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Sent over MLflow's artifact API, not published: the final push keeps them
    (records.bundle.SERVER_ROWS)."""
    p = published
    client = _client(p, monkeypatch)
    listed = {f.path for f in client.list_artifacts(p.ids["run"], "reports")}
    assert listed == {"reports/history.json"}
    report = json.loads(
        Path(
            client.download_artifacts(p.ids["run"], "reports/history.json", str(tmp_path))
        ).read_text()
    )
    assert report == {k: p.history[k] for k in ("train_loss", "train_acc")}  # as it was logged


def test_another_users_mlflow_token_is_never_adopted(
    published: Published, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MLFLOW_TRACKING_TOKEN of another user than the remote's login: adopting would make
    the published run theirs, so MLflow's run stays a run of its own (as without runbase)
    and the runbase run still records MLflow's values."""
    p = published
    root = tmp_path / "copy"
    shutil.copytree(p.root, root)  # the other tests' files stay as they are
    env = {**p.env, "MLFLOW_TRACKING_TOKEN": p.other_token}
    rb(root, "run", "--publish", "team", "--", PY, "train.py", "--epochs", "2",
       "--experiment", "bobs", env=env)  # fmt: skip
    local = json.loads(rb(root, "show", "latest", "--json", env=env).stdout)
    ids = json.loads((root / "ids.json").read_text())
    assert ids["run"] != local["id"]
    assert local["params"]["n_features"] == 12 and local["param_sources"]["n_features"] == "mlflow"
    assert p.api(f"/runs/{local['id']}")["params"]["n_features"] == 12  # published, alice's
    theirs = _client(p, monkeypatch, p.other_token).get_run(
        ids["run"]
    )  # sent over MLflow's API, bob's
    assert theirs.info.user_id == "bob" and theirs.data.params["n_features"] == "12"


def test_a_refused_adoption_leaves_mlflow_its_own_run(
    published: Published,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server refuses to adopt a run that has ended: the program's MLflow run is then
    made as it would be without runbase, and mirrored (in this process: the integration
    installed, a tracker active for the finished run's id, the publish target set)."""
    import mlflow

    from runbase.integrations import mlflow as mirror
    from runbase.tracking import tracker as _tracker
    from runbase.tracking._child import PUBLISH_URL_ENV

    p = published
    monkeypatch.setenv(PUBLISH_URL_ENV, f"{p.url}/p/{PROJECT}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", p.env["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", p.token)
    monkeypatch.setattr(mirror, "state", mirror._State())
    mirror.install(mlflow)
    t = _tracker.Tracker(p.local["id"], str(tmp_path / "store"))  # finished on the server
    _tracker.activate(t)
    try:
        with mlflow.start_run(run_name="late") as run:
            mlflow.log_param("x", 1)
    finally:
        _tracker.deactivate()
        t.close()
    assert run.info.run_id != p.local["id"]
    assert "did not adopt" in capsys.readouterr().err
    assert not mirror.state.local and mirror.state.run_id == run.info.run_id
    assert _client(p, monkeypatch).get_run(run.info.run_id).data.params == {"x": "1"}
