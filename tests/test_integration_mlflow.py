"""The MLflow integration (runbase.integrations.mlflow): an MLflow script under
``runbase run`` is one run. With MLflow's file store both records are complete: MLflow's
own (read back by the real MlflowClient) and the runbase run, which holds the top-level
MLflow run's params (source ``mlflow``), metrics (steps, timestamps), tags, name and
experiment, and nothing of the nested or later runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import require, runbase_cmd, write
from runbase.capture.params import mlflow_param_value
from runbase.core.spool import KIND_KEY, STEP_KEY, read_frames
from runbase.integrations import mlflow as mirror
from runbase.records.read import series
from runbase.store import Store
from runbase.tracking import tracker as _tracker

require("mlflow")

SCRIPT = """
    import json
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment("exp-a")
    with mlflow.start_run(run_name="top", tags={"team": "vision"}) as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"batch": 32, "opt": "adam", "eps": "1e-3", "flag": True})
        for step in range(4):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step,
                              timestamp=1700000000000 + step * 1500)
        mlflow.log_metrics({"acc": 0.5, "f1": 0.25}, step=7)
        mlflow.log_metric("nan_m", float("nan"))
        mlflow.log_metric("async_m", 2.0, synchronous=False).wait()
        mlflow.set_tag("stage", "dev")
        mlflow.set_tags({"k2": "v2", "scratch": "1"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("child_only", 1)
            mlflow.log_metric("child_metric", 3.0)
        try:
            mlflow.log_param("lr", 0.2)
        except mlflow.exceptions.MlflowException:
            print("refused")
        mlflow.log_param("lr", 0.1)  # the same value again: fine
        MlflowClient().update_run(run.info.run_id, name="renamed")
    with mlflow.start_run(run_id=run.info.run_id):  # MLflow's way to add to a run
        mlflow.log_metric("resumed", 1.0, step=9)
        mlflow.delete_tag("scratch")
    with mlflow.start_run(run_name="second") as second:
        mlflow.log_metric("other", 1.0)
        mlflow.log_param("lr", 0.5)
    with open("ids.json", "w") as f:
        json.dump({"run": run.info.run_id, "child": child.info.run_id,
                   "second": second.info.run_id, "exp": run.info.experiment_id}, f)
"""


def _mlflow_env(project: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"file:{project / 'mlruns'}",
        "MLFLOW_ALLOW_FILE_STORE": "true",  # MLflow 3 keeps the file store behind a switch
    }


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``runbase run -- python train.py`` of SCRIPT (module-scoped: one run for all)."""
    import subprocess

    from conftest import GIT, commit

    root = tmp_path_factory.mktemp("mlflow") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", ".runbase/\nmlruns/\nids.json\n")
    write(root, "train.py", SCRIPT)
    commit(root, "mlflow script")
    env = _mlflow_env(root)
    proc = runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, env=env, check=True)
    rec = json.loads(runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout)
    ids = json.loads((root / "ids.json").read_text())
    return {"root": root, "proc": proc, "rec": rec, "ids": ids, "env": env}


def test_top_level_run_is_mirrored_into_the_runbase_run(scripted: dict[str, Any]) -> None:
    rec = scripted["rec"]
    assert rec["status"] == "finished"
    assert "refused" in scripted["proc"].stdout  # MLflow's own rule still applies
    assert "warning" not in scripted["proc"].stderr, scripted["proc"].stderr
    assert rec["name"] == "renamed"
    mlflow_params = {"lr": 0.1, "batch": 32, "opt": "adam", "eps": "1e-3", "flag": "True"}
    for key, value in mlflow_params.items():
        assert rec["params"][key] == value and type(rec["params"][key]) is type(value), key
        assert rec["param_sources"][key] == "mlflow", (key, rec["param_sources"][key])
    assert "child_only" not in rec["params"]  # the nested run's are its own
    tags = rec["tags"]
    assert {k: tags.get(k) for k in ("experiment", "team", "stage", "k2")} == {
        "experiment": "exp-a", "team": "vision", "stage": "dev", "k2": "v2",
    }  # fmt: skip
    assert tags["mlflow.source.type"] == "LOCAL"  # MLflow's system tags come along
    # the name is the run's (MLflow's API on a server shows it as mlflow.runName)
    assert not {"runbase.run_id", "mlflow.parentRunId", "mlflow.runName"} & set(tags)
    metrics = {k: m for k, m in rec["metrics"].items() if not k.startswith("sys/")}
    assert set(metrics) == {"loss", "acc", "f1", "nan_m", "async_m", "resumed"}
    # resuming the run by id (start_run(run_id=...)) adds to it; a deleted tag is not
    # mirrored (docs/mlflow.md: the runbase run keeps it)
    assert metrics["resumed"]["count"] == 1 and tags["scratch"] == "1"


def test_metric_points_keep_mlflow_steps_and_timestamps(scripted: dict[str, Any]) -> None:
    store = Store.open(scripted["root"] / ".runbase")
    try:
        run_id = scripted["rec"]["id"]
        loss = series(store, run_id, "loss")
        assert list(loss.steps) == [0, 1, 2, 3]
        assert list(loss.values) == [1.0, 0.5, 1.0 / 3, 0.25]
        assert list(loss.times) == [1700000000.0, 1700000001.5, 1700000003.0, 1700000004.5]
        acc, f1 = series(store, run_id, "acc"), series(store, run_id, "f1")
        assert (list(acc.steps), list(acc.values)) == ([7], [0.5])
        assert (list(f1.steps), list(f1.values)) == ([7], [0.25])
        nan = series(store, run_id, "nan_m")
        assert list(nan.steps) == [0] and math.isnan(nan.values[0])  # MLflow's default step
        assert list(series(store, run_id, "async_m").values) == [2.0]
    finally:
        store.close()


def test_mlflow_has_its_own_record_whole(
    scripted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    for k, v in scripted["env"].items():
        monkeypatch.setenv(k, v)
    client = MlflowClient(tracking_uri=scripted["env"]["MLFLOW_TRACKING_URI"])
    ids = scripted["ids"]
    top = client.get_run(ids["run"])
    assert top.info.status == "FINISHED" and top.info.run_name == "renamed"
    assert top.data.metrics["resumed"] == 1.0 and "scratch" not in top.data.tags
    assert top.data.params == {
        "lr": "0.1",
        "batch": "32",
        "opt": "adam",
        "eps": "1e-3",
        "flag": "True",
    }
    history = client.get_metric_history(ids["run"], "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (s, 1.0 / (s + 1), 1700000000000 + s * 1500) for s in range(4)
    ]
    child = client.get_run(ids["child"])
    assert child.data.tags["mlflow.parentRunId"] == ids["run"]
    assert child.data.params == {"child_only": "1"} and child.data.metrics == {"child_metric": 3.0}
    second = client.get_run(ids["second"])
    assert second.data.metrics == {"other": 1.0} and second.data.params == {"lr": "0.5"}
    assert client.get_experiment(ids["exp"]).name == "exp-a"


def test_later_top_level_runs_stay_mlflows(scripted: dict[str, Any]) -> None:
    rec = scripted["rec"]
    assert "other" not in rec["metrics"]
    assert rec["params"]["lr"] == 0.1  # not the second run's 0.5


@pytest.mark.parametrize(
    ("text", "kept"),
    [("0.1", 0.1), ("32", 32), ("-4", -4), ("1.0", 1.0), ("1e-3", "1e-3"), ("True", "True"),
     ("None", "None"), ("true", True), ("nan", "nan"), ("NaN", "NaN"), ("007", "007"), ("adam", "adam"), ("", "")],
)  # fmt: skip
def test_param_values_become_numbers_only_when_lossless(text: str, kept: Any) -> None:
    assert mirror.mlflow_param_value is mlflow_param_value  # the one rule, as the server's
    got = mlflow_param_value(text)
    assert got == kept and type(got) is type(kept)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("http://h:5/p/x/mlflow", "http://h:5/p/x/mlflow/", True),
     ("HTTPS://Host/p/x/mlflow", "https://host/p/x/mlflow", True),
     ("http://h/p/x/mlflow", "http://h/p/y/mlflow", False),
     ("file:/p/x/mlflow", "file:/p/x/mlflow", False),
     ("databricks", "http://h/p/x/mlflow", False)],
)  # fmt: skip
def test_publish_target_is_recognized_by_url(a: str, b: str, same: bool) -> None:
    assert mirror.same_url(a, b) is same


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The integration installed in this process, a real tracker active on a scratch
    store root, and MLflow writing a file store under ``tmp_path``."""
    import mlflow

    for k, v in _mlflow_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(mirror, "state", mirror._State())
    mirror.install(mlflow)
    t = _tracker.Tracker("0mtestrun0000001", str(tmp_path / "store"))
    _tracker.activate(t)
    try:
        yield t
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        _tracker.deactivate()
        t.close()


def test_a_failing_mirror_warns_once_and_mlflow_goes_on(
    in_process: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    from mlflow import MlflowClient

    def broken(*_a: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mirror, "_mirror_metrics", broken)
    with mlflow.start_run() as run:
        mlflow.log_param("p", "x")
        mlflow.log_metric("m", 1.0, step=1)
        mlflow.log_metric("m", 2.0, step=2)
    history = MlflowClient().get_metric_history(run.info.run_id, "m")
    assert [m.value for m in history] == [1.0, 2.0]
    err = capsys.readouterr().err
    assert err.count("could not mirror log_metric") == 1 and "disk on fire" in err
    events = [e for e in _spooled(in_process) if e.get(KIND_KEY) == "param"]
    assert [(e["key"], e["value"], e["source"]) for e in events] == [("p", '"x"', "mlflow")]


def test_no_active_runbase_run_leaves_mlflow_alone(in_process: Any) -> None:
    import mlflow

    _tracker.deactivate()  # after runbase.finish(): the hooks stay, the run is gone
    with mlflow.start_run():
        mlflow.log_param("p", 1)
        mlflow.log_metric("m", 1.0)
    assert _spooled(in_process) == [] and not mirror.state.claimed


def _spooled(t: _tracker.Tracker) -> list[dict[str, Any]]:
    """What the tracker holds and has written to its spool."""
    t.flush()
    return [e for path in sorted(Path(t.spool_dir).glob("*")) for _, frame in read_frames(path)
            for e in frame]  # fmt: skip


def test_a_nested_run_never_inherits_the_publish_target(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.tracking._child import PUBLISH_URL_ENV
    from runbase.tracking.supervisor import child_env

    monkeypatch.setenv(
        PUBLISH_URL_ENV, "http://127.0.0.1:9/p/team"
    )  # as a publishing run's command
    store = Store.open(project / ".runbase", create=True)
    try:
        assert PUBLISH_URL_ENV not in child_env(store, "0mtestrun0000001")
    finally:
        store.close()


def test_autologs_client_goes_through_the_mirror(in_process: _tracker.Tracker) -> None:
    """Autologging (``mlflow.sklearn.autolog()`` ...) logs with its queueing client, which
    flushes through ``MlflowClient.log_batch``: its params and metrics are mirrored."""
    import mlflow
    from mlflow.utils.autologging_utils.client import MlflowAutologgingQueueingClient

    with mlflow.start_run() as run:
        client = MlflowAutologgingQueueingClient()
        client.log_params(run.info.run_id, {"C": 0.5, "solver": "lbfgs"})
        client.log_metrics(run.info.run_id, {"training_score": 0.93}, step=3)
        client.flush(synchronous=True)
    spooled = _spooled(in_process)
    params = {e["key"]: (e["value"], e["source"]) for e in spooled if e.get(KIND_KEY) == "param"}
    assert params == {"C": ("0.5", "mlflow"), "solver": ('"lbfgs"', "mlflow")}
    points = [e for e in spooled if "training_score" in e]
    assert [(e["training_score"], e[STEP_KEY]) for e in points] == [(0.93, 3)]


def test_runbase_mlflow_tags_are_not_mirrored_and_deleted_is_an_ordinary_tag(
    in_process: _tracker.Tracker,
) -> None:
    """Tags under runbase.mlflow. (records.external.HIDDEN_PREFIX) are runbase's own
    MLflow state: never taken from a script. A plain tag named "deleted" is the user's."""
    import mlflow

    from runbase.records import external

    with mlflow.start_run():
        mlflow.set_tag(external.DELETED_TAG, "2026-01-01")
        mlflow.set_tag(external.DATASET_PREFIX + "abc", "{}")
        mlflow.set_tag("deleted", "no")
    tags = {e["key"]: e["value"] for e in _spooled(in_process) if e.get(KIND_KEY) == "tag"}
    assert tags.get("deleted") == "no"
    assert not [k for k in tags if k.startswith(external.HIDDEN_PREFIX)]


def test_set_terminated_of_an_adopted_run_on_an_mlflow_without_async_logging(
    in_process: _tracker.Tracker,
) -> None:
    """MLflow before 2.8 has no shut_down_async_logging: ending the adopted run (kept
    here) must not raise inside the user's program."""
    from types import SimpleNamespace

    sent: list[Any] = []
    set_terminated = mirror._set_terminated(lambda *a: sent.append(a))
    with mirror.state.lock:
        mirror.state.claimed, mirror.state.run_id, mirror.state.local = True, "r1", True
    old_client = SimpleNamespace(store=SimpleNamespace())  # its store lacks the method
    assert set_terminated(old_client, "r1", "FINISHED") is None
    assert sent == []  # the status is runbase's to record: nothing sent
    flushed: list[bool] = []
    new_client = SimpleNamespace(
        store=SimpleNamespace(shut_down_async_logging=lambda: flushed.append(True))
    )
    assert set_terminated(new_client, "r1", "FINISHED") is None and flushed == [True]


def test_mirroring_tags_loads_no_store_module(tmp_path: Path) -> None:
    """review2 B4: mirroring a tag (every create_run sends MLflow's system tags) needs
    runbase's hidden-tag prefix only: the training process does not load the records or
    the store for it (core.mlflowtags)."""
    import subprocess

    code = (
        "import sys\n"
        "from runbase.tracking import tracker as t\n"
        "from runbase.integrations import mlflow as m\n"
        f"tr = t.Tracker('0mtestrun0000001', {str(tmp_path / 'store')!r})\n"
        "t.activate(tr)\n"
        "m._mirror_tags([('mlflow.user', 'alice'), ('runbase.mlflow.deleted', 'x')])\n"
        "print(sorted(k for k in sys.modules if k.startswith(('runbase.records', "
        "'runbase.store'))))\n"
        "t.deactivate(); tr.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert "is runbase's own" in out.stderr  # the hidden tag was seen, and not taken
