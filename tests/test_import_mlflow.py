"""``runbase import mlflow``: an mlruns directory written by the REAL MLflow client
imports losslessly (exact params, tags, every metric point, parent, datasets,
artifacts), a second import changes nothing, a source that grew is brought up to date."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import require, runbase_cmd
from runbase.cli import main
from runbase.errors import NotFound, UsageError
from runbase.interop.mlflow_import import import_mlflow
from runbase.records import experiments, external
from runbase.records.record import build_record
from runbase.store import Store
from serverkit import team_server

# Run by the real MLflow client in a subprocess: what a user's training script writes.
MAKE = """
import json, os, sys
import mlflow, pandas as pd
from mlflow.tracking import MlflowClient
root = sys.argv[1]
mlflow.set_tracking_uri("file:" + os.path.join(root, "mlruns"))
exp = mlflow.set_experiment("exp-a")
MlflowClient().set_experiment_tag(exp.experiment_id, "team", "vision")
with open(os.path.join(root, "weights.bin"), "wb") as f:
    f.write(bytes(range(256)) * 64)
with open(os.path.join(root, "notes.txt"), "w") as f:
    f.write("first model\\n")
ids = {}
with mlflow.start_run(run_name="parent") as run:
    ids["parent"] = run.info.run_id
    mlflow.log_params({"lr": 0.01, "layers": 3, "optimizer": "adam", "flag": "true"})
    mlflow.set_tags({"stage": "dev", "note": "h\\u00e9llo"})
    for i in range(100):
        mlflow.log_metrics(
            {"loss": 1.0 / (i + 1), "acc": i / 100, "lr": 0.01 * 0.97**i}, step=i
        )
    mlflow.log_metric("odd", float("nan"), step=0)
    mlflow.log_metric("odd", float("inf"), step=1)
    mlflow.log_artifact(os.path.join(root, "weights.bin"), artifact_path="model")
    mlflow.log_artifact(os.path.join(root, "notes.txt"))
    ds = mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2, 3]}), source="data/train.csv", name="train")
    mlflow.log_input(ds, context="training")
    model = MlflowClient().create_logged_model(
        exp.experiment_id, name="reg", source_run_id=run.info.run_id
    )
    os.makedirs(os.path.join(root, "model", "sub"))
    with open(os.path.join(root, "model", "MLmodel"), "w") as f:
        f.write("flavors: {}\\n")
    with open(os.path.join(root, "model", "sub", "w.bin"), "wb") as f:
        f.write(bytes([0, 1, 2]))
    MlflowClient().log_model_artifacts(model.model_id, os.path.join(root, "model"))
    MlflowClient().finalize_logged_model(model.model_id, "READY")
    ids["model"] = model.model_id
    with mlflow.start_run(run_name="child", nested=True) as child:
        ids["child"] = child.info.run_id
        mlflow.log_param("fold", "1")
        mlflow.log_metric("val", 0.5, step=7)
mlflow.set_experiment("exp-b")
with mlflow.start_run(run_name="broken") as run:
    ids["failed"] = run.info.run_id
    mlflow.log_metric("loss", 3.0)
    mlflow.end_run(status="FAILED")
with mlflow.start_run(run_name="gone") as run:
    ids["deleted"] = run.info.run_id
MlflowClient().delete_run(ids["deleted"])
print(json.dumps(ids))
"""


def mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes a file store only when told
    return env


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An mlruns directory made by MLflow itself, and the original run ids. Read-only."""
    require("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    proc = subprocess.run(
        [sys.executable, "-c", MAKE, str(root)],
        capture_output=True,
        text=True,
        env=mlflow_env(),
        cwd=root,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "mlruns", json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def client(mlruns: Path) -> Any:
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return MlflowClient(tracking_uri="file:" + str(mlruns))


def counts(store: Store) -> dict[str, int]:
    tables = ("runs", "params", "tags", "metrics", "metric_chunks", "run_files", "experiments")
    return {t: store.db.query_one(f"SELECT count(*) FROM {t}")[0] for t in tables}


def derived(mlruns: Path, original: str) -> str:
    run = client(mlruns).get_run(original)
    return external.derived_id("mlflow", original, run.info.start_time / 1000)


def test_an_mlruns_directory_imports_losslessly(
    source: tuple[Path, dict[str, str]], store: Store
) -> None:
    mlruns, ids = source
    seen: list[tuple[int, int | None, str]] = []
    report = import_mlflow(store, mlruns, progress=lambda *a: seen.append(a))
    parent, child, failed = (derived(mlruns, ids[k]) for k in ("parent", "child", "failed"))
    assert sorted(report.created) == sorted([parent, child, failed])  # not the deleted one
    assert report.unchanged == [] and report.updated == [] and report.skipped == []
    assert [(d, t) for d, t, _ in seen] == [(0, 3), (1, 3), (2, 3)]
    c = client(mlruns)
    src = c.get_run(ids["parent"])

    rec = build_record(store, parent)  # what `runbase show RUN --json` prints
    assert rec["name"] == "parent" and rec["user"] == src.info.user_id
    assert rec["status"] == "finished" and rec["mode"] == "import" and rec["command"] == []
    assert rec["parent_id"] is None
    assert rec["params"] == {"lr": 0.01, "layers": 3, "optimizer": "adam", "flag": True}
    assert set(rec["param_sources"].values()) == {"mlflow"}
    tags = rec["tags"]
    for key, value in src.data.tags.items():  # every tag, mlflow.* included
        assert tags[key] == value
    assert tags["import.id"] == ids["parent"] and tags["import.source"] == "mlflow"
    assert tags["experiment"] == "exp-a" and tags["note"] == "h\u00e9llo"
    # the one dataset representation (records.external's codec), as the server's API keeps it
    assert "mlflow.datasets" not in tags
    (entry,) = external.datasets(tags)
    ds = entry["dataset"]
    assert ds["name"] == "train" and entry["tags"] == [
        {"key": "mlflow.data.context", "value": "training"}
    ]
    assert json.loads(ds["source"]) == {"uri": "data/train.csv"} and ds["digest"]
    for key in ("loss", "acc", "lr", "odd"):
        theirs = c.get_metric_history(ids["parent"], key)
        mine = external.metric_history(store, parent, key)
        assert [s for s, _t, _v in mine] == [m.step for m in theirs]
        assert [round(t * 1000) for _s, t, _v in mine] == [m.timestamp for m in theirs]
        for (_s, _t, v), m in zip(mine, theirs, strict=True):
            assert v == m.value or (math.isnan(v) and math.isnan(m.value))
    assert len(external.metric_history(store, parent, "loss")) == 100
    assert rec["metrics"]["loss"]["count"] == 100 and rec["metrics"]["loss"]["last"] == 0.01
    outputs = {o["path"]: o for o in rec["outputs"]}
    model = f"mlflow-models/{ids['model']}"
    assert set(outputs) == {
        "model/weights.bin",
        "notes.txt",
        f"{model}/MLmodel",
        f"{model}/sub/w.bin",
        model,  # the logged model whole, as a directory
    }
    assert outputs[model]["directory"] and outputs[model]["size"] == 3 + len("flavors: {}\n")
    assert store.objects.get_bytes(outputs[f"{model}/sub/w.bin"]["hash"]) == b"\x00\x01\x02"
    assert outputs["model/weights.bin"]["stored"] and outputs["model/weights.bin"]["size"] == 16384
    weights = store.objects.get_bytes(outputs["model/weights.bin"]["hash"])
    assert weights == bytes(range(256)) * 64
    assert store.objects.get_bytes(outputs["notes.txt"]["hash"]) == b"first model\n"

    kid = build_record(store, child)
    assert kid["parent_id"] == parent and kid["params"] == {"fold": 1}
    assert external.metric_history(store, child, "val")[0][::2] == (7, 0.5)
    bad = build_record(store, failed)
    assert bad["status"] == "failed" and bad["tags"]["experiment"] == "exp-b"
    exp = experiments.by_name(store, "exp-a")
    assert exp is not None and exp.tags["team"] == "vision"
    assert report.lines() == [
        "mlflow: 3 runs imported, 0 already there",
        "  not mapped: logged models' metadata (1)",
    ]


def test_an_imported_logged_model_registers_whole(
    source: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    mlruns, ids = source
    db = tmp_path / "s"
    assert cli(db, "import", "mlflow", str(mlruns)).exit_code == 0
    parent = derived(mlruns, ids["parent"])
    r = cli(db, "model", "register", "reg", f"{parent}:mlflow-models/{ids['model']}", "--json")
    assert r.exit_code == 0, r.output
    (event,) = json.loads(r.output)["events"]
    assert event["run"] == parent and event["data"]["kind"] == "dir"
    assert event["data"]["path"] == f"mlflow-models/{ids['model']}"


def test_an_imported_run_exports_back_with_its_datasets(
    source: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    from runbase.interop.mlflow_export import export_mlflow

    mlruns, ids = source
    import_mlflow(store, mlruns)
    parent = derived(mlruns, ids["parent"])
    assert export_mlflow(store, [parent], tmp_path / "out")["skipped"] == []
    back, original = client(tmp_path / "out").get_run(parent), client(mlruns).get_run(ids["parent"])
    (mine,), (theirs,) = back.inputs.dataset_inputs, original.inputs.dataset_inputs
    assert mine.dataset.to_dictionary() == theirs.dataset.to_dictionary()
    assert [(t.key, t.value) for t in mine.tags] == [("mlflow.data.context", "training")]
    assert back.data.params == original.data.params
    assert {
        k: v for k, v in back.data.tags.items() if k in original.data.tags
    } == original.data.tags


def test_a_second_import_changes_nothing(source: tuple[Path, dict[str, str]], store: Store) -> None:
    mlruns, _ids = source
    first = import_mlflow(store, mlruns)
    before = counts(store)
    again = import_mlflow(store, mlruns)
    assert again.created == [] and again.updated == []
    assert sorted(again.unchanged) == sorted(first.created)
    assert counts(store) == before
    assert again.lines()[0] == "mlflow: 0 runs imported, 3 already there"
    assert again.as_json()["unchanged"] == again.unchanged


def test_a_source_that_grew_is_brought_up_to_date(
    source: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    mlruns = tmp_path / "copy" / "mlruns"
    shutil.copytree(source[0], mlruns)  # moved: its meta.yaml still names the old place
    ids = source[1]
    import_mlflow(store, mlruns)
    c = client(mlruns)
    for i in range(100, 110):
        c.log_metric(ids["parent"], "loss", 1.0 / (i + 1), step=i)
    c.set_tag(ids["parent"], "reviewed", "yes")
    report = import_mlflow(store, mlruns)
    parent = derived(mlruns, ids["parent"])
    assert report.updated == [parent] and len(report.unchanged) == 2
    history = external.metric_history(store, parent, "loss")
    assert [s for s, _t, _v in history] == list(range(110))
    assert build_record(store, parent)["tags"]["reviewed"] == "yes"
    assert report.lines()[0] == "mlflow: 0 runs imported, 1 updated, 2 already there"


def test_an_mlruns_directory_never_reads_local_files_elsewhere(
    source: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    """An mlruns directory someone sent, whose run's artifacts are a symlink to a local
    directory and whose meta.yaml names it: not read, said; the run imports without."""
    mlruns = tmp_path / "mlruns"
    shutil.copytree(source[0], mlruns)
    secret = tmp_path / "home" / ".ssh"
    secret.mkdir(parents=True)
    (secret / "id_ed25519").write_text("PRIVATE KEY\n")
    (meta,) = mlruns.glob(f"*/{source[1]['parent']}/meta.yaml")
    shutil.rmtree(meta.parent / "artifacts")
    (meta.parent / "artifacts").symlink_to(secret)
    text = meta.read_text()
    start = text.index("artifact_uri: ")
    end = text.index("\n", start)
    meta.write_text(text[:start] + f"artifact_uri: {secret.as_uri()}" + text[end:])
    report = import_mlflow(store, mlruns)
    assert (
        f"the artifacts of run {source[1]['parent']}",
        f"at {secret.as_uri()}, outside {mlruns}: not read (copy them in)",
    ) in report.skipped
    parent = derived(mlruns, source[1]["parent"])
    paths = [o["path"] for o in build_record(store, parent)["outputs"]]
    assert paths and all(p.startswith("mlflow-models/") for p in paths)  # the model only


def test_deleted_runs_and_one_experiment_on_request(
    source: tuple[Path, dict[str, str]], store: Store
) -> None:
    mlruns, ids = source
    report = import_mlflow(store, mlruns, experiment="exp-b", include_deleted=True)
    failed, deleted = derived(mlruns, ids["failed"]), derived(mlruns, ids["deleted"])
    assert sorted(report.created) == sorted([failed, deleted])
    assert external.DELETED_TAG in build_record(store, deleted)["tags"]
    assert external.DELETED_TAG not in build_record(store, failed)["tags"]
    with pytest.raises(NotFound, match="no experiment 'nope'"):
        import_mlflow(store, mlruns, experiment="nope")


def test_a_path_that_is_not_an_mlruns_directory(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        import_mlflow(store, tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("x")
    with pytest.raises(UsageError, match="is not an MLflow file store"):
        import_mlflow(store, tmp_path / "plain")
    (tmp_path / "mlflow.db").write_bytes(b"")
    with pytest.raises(UsageError, match="--tracking-uri sqlite:///"):
        import_mlflow(store, tmp_path / "mlflow.db")
    db_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if importlib.util.find_spec("sqlalchemy") is None:  # mlflow-skinny (the test extra)
        with pytest.raises(UsageError, match="a database needs the full MLflow package"):
            import_mlflow(store, db_uri)
    else:  # the full mlflow package reads (and here creates) the database
        assert import_mlflow(store, db_uri).created == []
    assert counts(store)["runs"] == 0


def cli(store: Path, *args: str) -> Any:
    """The real `runbase` group, in-process."""
    return CliRunner().invoke(main, ["--store", str(store), *args], catch_exceptions=False)


def test_cli_exit_codes_and_json(
    source: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlruns, _ids = source
    db = tmp_path / "s"
    monkeypatch.delenv("RUNBASE_NO_PROGRESS", raising=False)
    r = cli(db, "import", "mlflow", str(mlruns.parent), "--json")  # the directory above: found
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["system"] == "mlflow" and len(out["created"]) == 3 and out["skipped"] == []
    r = cli(db, "import", "mlflow", str(mlruns), "--experiment", "exp-a")
    assert r.exit_code == 0 and r.stdout.startswith("mlflow: 0 runs imported, 2 already there\n")
    assert r.stderr.startswith("importing run 1/2: ")  # not a terminal: plain lines (B6)
    r = cli(db, "import", "mlflow", str(tmp_path / "nothere"))
    assert r.exit_code == 2 and "does not exist" in r.output
    r = cli(db, "import", "mlflow", str(tmp_path))
    assert r.exit_code == 2 and "is not an MLflow file store" in r.output
    r = cli(db, "import", "mlflow")
    assert r.exit_code == 2 and "give an mlruns directory PATH or --tracking-uri URI" in r.output
    r = cli(db, "import", "mlflow", str(mlruns), "--experiment", "nope")
    assert r.exit_code == 1 and "no experiment 'nope'" in r.output
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    r = cli(db, "import", "mlflow", "--tracking-uri", "http://127.0.0.1:9")  # nothing listens
    assert r.exit_code == 1
    assert "cannot read experiments from http://127.0.0.1:9: API request" in r.output
    # what it waits for is said at once (MLflow retries a dead server for minutes), and
    # never a password given in the URI
    r = cli(db, "import", "mlflow", "--tracking-uri", "http://bob:s3cret@127.0.0.1:9/x")
    assert r.stderr.startswith("runbase: reading http://127.0.0.1:9/x (MLflow's client retries")
    assert "s3cret" not in r.output
    for system in ("wandb", "tensorboard", "neptune"):  # E's importers, called the same way
        r = cli(db, "import", system, str(tmp_path / "nothere"))
        assert r.exit_code == 2 and "nothere does not exist" in r.output, system


# -- from a tracking server: a runbase team server's MLflow API ------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real `runbase server` (SQLite + objects directory) and a writer's token."""
    with team_server(tmp_path_factory.mktemp("mlflow-server"), [("alice", "writer")]) as team:
        yield team.uri, team.tokens["alice"]


def test_import_from_a_tracking_server_downloads_artifacts(
    server: tuple[str, str], store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    uri, token = server
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    c = MlflowClient(tracking_uri=uri)
    exp_id = c.create_experiment("served")
    run = c.create_run(exp_id, run_name="remote")
    rid = run.info.run_id
    c.log_param(rid, "depth", "7")
    for i in range(50):
        c.log_metric(rid, "loss", 1 / (i + 1), step=i, timestamp=1_700_000_000_000 + i)
    (tmp_path / "cfg.json").write_text('{"a": 1}\n')
    c.log_artifact(rid, str(tmp_path / "cfg.json"), artifact_path="conf")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    model = c.create_logged_model(exp_id, name="reg", source_run_id=rid)
    c.log_model_artifacts(model.model_id, str(tmp_path / "m"))
    kid = c.create_run(exp_id, run_name="kid", tags={"mlflow.parentRunId": rid}).info.run_id
    c.set_terminated(kid)
    c.set_terminated(rid)

    report = import_mlflow(store, uri, experiment="served")
    parent = external.derived_id("mlflow", rid, run.info.start_time / 1000)
    assert len(report.created) == 2 and parent in report.created and report.skipped == []
    rec = build_record(store, parent)
    assert rec["params"] == {"depth": 7} and rec["tags"]["experiment"] == "served"
    history = external.metric_history(store, parent, "loss")
    assert [(s, round(t * 1000), v) for s, t, v in history] == [
        (i, 1_700_000_000_000 + i, 1 / (i + 1)) for i in range(50)
    ]
    outs = {o["path"]: o["hash"] for o in rec["outputs"]}
    assert set(outs) == {
        "conf/cfg.json",
        f"mlflow-models/{model.model_id}/MLmodel",
        f"mlflow-models/{model.model_id}",  # the model whole, as a directory
    }
    assert store.objects.get_bytes(outs["conf/cfg.json"]) == b'{"a": 1}\n'
    mlmodel = outs[f"mlflow-models/{model.model_id}/MLmodel"]
    assert store.objects.get_bytes(mlmodel) == b"flavors: {}\n"
    (child,) = [r for r in report.created if r != parent]
    assert build_record(store, child)["parent_id"] == parent
    again = import_mlflow(store, uri, experiment="served")
    assert sorted(again.unchanged) == sorted(report.created)


def test_the_runbase_command_imports_and_shows(
    source: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The real entry point, in a subprocess: import, then `runbase show --json`."""
    mlruns, ids = source
    env = {"RUNBASE_DIR": str(tmp_path / "s"), "RUNBASE_NO_PROGRESS": "1"}
    proc = runbase_cmd("import", "mlflow", str(mlruns), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mlflow: 3 runs imported, 0 already there\n")
    parent = derived(mlruns, ids["parent"])
    shown = json.loads(runbase_cmd("show", parent, "--json", cwd=tmp_path, env=env).stdout)
    assert shown["name"] == "parent" and shown["mode"] == "import"
    assert shown["params"] == {"lr": 0.01, "layers": 3, "optimizer": "adam", "flag": True}
    assert shown["tags"]["import.id"] == ids["parent"]
    assert shown["metrics"]["acc"]["count"] == 100
    missing = runbase_cmd("import", "mlflow", str(tmp_path / "gone"), cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_400_digit_param_and_a_fifo_artifact(
    source: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    """A3: a param of 400 digits made the whole import a traceback (float() overflow):
    it is kept as MLflow's string, with the run's metrics. A FIFO among the artifacts
    is reported skipped (never read: it would block), the other artifacts imported."""
    mlruns = tmp_path / "mlruns"
    shutil.copytree(source[0], mlruns)
    c = client(mlruns)
    exp = c.get_experiment_by_name("exp-b")
    run = c.create_run(exp.experiment_id, run_name="huge-seed")
    rid = run.info.run_id
    c.log_param(rid, "seed", "9" * 400)
    c.log_param(rid, "wide", str(2**64))
    c.log_metric(rid, "loss", 0.5, step=1)
    artifacts = mlruns / exp.experiment_id / rid / "artifacts"  # the copy's, written here
    artifacts.mkdir(exist_ok=True)
    (artifacts / "a.txt").write_text("a")
    os.mkfifo(artifacts / "pipe")
    c.set_terminated(rid)
    report = import_mlflow(store, mlruns, experiment="exp-b")
    ours = derived(mlruns, rid)
    assert ours in report.created
    assert report.skipped == [(f"file pipe of run {rid}", "not a regular file")]
    rec = build_record(store, ours)
    assert rec["params"] == {"seed": "9" * 400, "wide": str(2**64)}
    assert rec["metrics"]["loss"]["count"] == 1
    assert {o["path"] for o in rec["outputs"]} == {"a.txt"}


def test_datasets_too_large_for_a_tag_are_counted_and_runbase_tags_not_taken(
    source: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    """A dataset input whose JSON is over a tag's limit is counted in not_mapped (never
    dropped silently); a source tag under runbase.mlflow. (runbase's own state: a
    crafted one would mark the run deleted) is reported, not taken."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    mlruns = tmp_path / "mlruns"
    shutil.copytree(source[0], mlruns)
    c = client(mlruns)
    exp = c.get_experiment_by_name("exp-b")
    run = c.create_run(exp.experiment_id, run_name="big-data")
    small = Dataset("small", "d1", "local", "s.csv")
    big = Dataset("big", "d2", "local", "x" * 60_000, schema="y" * 30_000)
    context = [InputTag("mlflow.data.context", "eval")]
    c.log_inputs(run.info.run_id, [DatasetInput(small, context), DatasetInput(big, [])])
    c.set_tag(run.info.run_id, external.DELETED_TAG, "2026-01-01T00:00:00Z")
    c.set_terminated(run.info.run_id)
    report = import_mlflow(store, mlruns, experiment="exp-b")
    rid = derived(mlruns, run.info.run_id)
    assert report.not_mapped["dataset inputs too large for a tag"] == 1
    assert (
        f"tag {external.DELETED_TAG!r} of run {run.info.run_id}",
        "a name runbase keeps for itself",
    ) in report.skipped
    tags = build_record(store, rid)["tags"]
    assert external.DELETED_TAG not in tags
    (entry,) = external.datasets(tags)
    assert entry["dataset"]["name"] == "small" and entry["tags"] == [
        {"key": "mlflow.data.context", "value": "eval"}
    ]
