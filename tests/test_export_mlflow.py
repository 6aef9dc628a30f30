"""``runbase export --format mlflow``: runs made by ``runbase run`` written as an MLflow
file store, read back exactly by MLflow's own client (MlflowClient("file:DIR"))."""

from __future__ import annotations

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

from conftest import GIT, commit, require, runbase_cmd, write
from runbase.cli import main
from runbase.errors import CorruptObject
from runbase.interop.mlflow_export import export_mlflow
from runbase.records import read
from runbase.records.files import list_files
from runbase.store import Store
from runbase.store.hashing import hash_bytes

PY = sys.executable

TRAIN = """
import os, sys, runbase
runbase.tag(experiment=sys.argv[1], stage="dev")
runbase.param("lr", 0.05)
runbase.param("layers", [64, 32])
runbase.param("use_bn", True)
runbase.param("notes", "n" * 20_000)  # above the inline limit: kept as an object
runbase.param("bad|key", 1)  # no MLflow name: skipped and said
for i in range(100):
    runbase.log(loss=1.0 / (i + 1), acc=i / 100, lr=0.05 * 0.99**i, step=i)
runbase.log(weird=float("nan"), step=0)
os.makedirs("out/ckpt", exist_ok=True)
with open("out/model.txt", "w") as f:
    f.write("model bytes " + sys.argv[1] + "\\n")
with open("out/ckpt/last.bin", "wb") as f:
    f.write(bytes(range(256)) * 40)
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two real runs of `runbase run` (experiments "exp-a" and "exp-b"), read-only."""
    root = tmp_path_factory.mktemp("exp") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    (root / ".gitignore").write_text("out/\n")
    commit(root, "train")
    for exp in ("exp-a", "exp-b"):
        runbase_cmd("run", "--", PY, "train.py", exp, cwd=root, check=True)
    store = Store.open(root / ".runbase")
    ids = sorted(read.all_run_ids(store))
    store.close()
    return root, ids


@pytest.fixture(autouse=True)
def _mlflow_file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow 3 reads a file store only when told it may (its "maintenance mode")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture
def store(made: tuple[Path, list[str]]) -> Iterator[Store]:
    s = Store.open(made[0] / ".runbase")
    yield s
    s.close()


def client(dest: Path) -> Any:
    require("mlflow")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri="file:" + str(dest))


def cli(*args: str, store: Path) -> Any:
    """The real `runbase` group, in-process."""
    return CliRunner().invoke(main, ["--store", str(store), *args], catch_exceptions=False)


def test_export_reads_back_exactly_in_mlflows_client(
    made: tuple[Path, list[str]], store: Store, tmp_path: Path
) -> None:
    root, ids = made
    dest = tmp_path / "mlruns"
    result = export_mlflow(store, ids, dest)
    assert result["runs"] == ids
    assert set(result["experiments"]) == {"exp-a", "exp-b"}
    assert result["artifacts"] == 4
    assert result["skipped"] == [
        {
            "what": f"param 'bad|key' of run {rid}",
            "why": "not a name MLflow accepts (letters, digits, _ - . / : space)",
        }
        for rid in ids
    ]
    c = client(dest)
    names = {e.name: e.experiment_id for e in c.search_experiments()}
    assert names.keys() == {"Default", "exp-a", "exp-b"} and names["Default"] == "0"
    for rid in ids:
        rec = read.load_runs(store, [rid])[0]
        run = c.get_run(rid)
        assert run.info.run_id == rid and run.info.run_name == rec["name"]
        assert run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
        assert run.info.start_time == round(rec["started_at"] * 1000)
        assert run.info.end_time == round(rec["ended_at"] * 1000)
        assert run.info.user_id == rec["user_name"]
        exp = rec["tags"]["experiment"]
        assert run.info.experiment_id == names[exp]
        assert run.data.params == {
            "lr": "0.05",
            "layers": "[64, 32]",
            "use_bn": "true",
            "notes": "n" * 20_000,
        }
        tags = run.data.tags
        assert tags["experiment"] == exp and tags["stage"] == "dev"
        assert tags["mlflow.runName"] == rec["name"] and tags["mlflow.user"] == rec["user_name"]
        assert len(tags["mlflow.source.git.commit"]) == 40
        for key in ("loss", "acc", "lr"):
            mine = read.series(store, rid, key)
            hist = c.get_metric_history(rid, key)
            assert [m.step for m in hist] == mine.steps == list(range(100))
            assert [m.value for m in hist] == mine.values  # exactly, every point
            assert [m.timestamp for m in hist] == [round(t * 1000) for t in mine.times]
        (weird,) = c.get_metric_history(rid, "weird")
        assert math.isnan(weird.value)
        arts = {f.path: f for f in c.list_artifacts(rid, "out")}
        assert set(arts) == {"out/model.txt", "out/ckpt"} and arts["out/ckpt"].is_dir
        got = Path(c.download_artifacts(rid, "out", str(tmp_path / f"dl-{rid}")))
        assert (got / "model.txt").read_text() == f"model bytes {exp}\n"
        assert (got / "ckpt" / "last.bin").read_bytes() == bytes(range(256)) * 40
    found = c.search_runs([names["exp-a"]], filter_string="params.lr = '0.05'")
    assert [r.info.run_id for r in found] == [ids[0]]


def test_export_adds_to_an_mlruns_store_and_never_overwrites_a_run(
    made: tuple[Path, list[str]], store: Store, tmp_path: Path
) -> None:
    _root, ids = made
    dest = tmp_path / "mlruns"
    first = export_mlflow(store, ids[:1], dest)
    meta = (dest / first["experiments"]["exp-a"] / ids[0] / "meta.yaml").read_bytes()
    second = export_mlflow(store, ids, dest)
    assert second["runs"] == ids[1:]
    assert second["skipped"][0] == {
        "what": f"run {ids[0]}",
        "why": f"already in {dest}: not overwritten",
    }
    assert (dest / first["experiments"]["exp-a"] / ids[0] / "meta.yaml").read_bytes() == meta
    assert len(client(dest).search_runs(["0", "1", "2"])) == 2


def test_export_refuses_a_directory_that_is_not_an_mlruns_store(
    made: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, ids = made
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    r = cli("export", ids[0], "--format", "mlflow", str(other), store=root / ".runbase")
    assert r.exit_code == 2
    assert "is not empty and not an MLflow file store" in r.output
    assert sorted(os.listdir(other)) == ["notes.txt"]


def test_export_cli_text_and_json(made: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, ids = made
    dest = tmp_path / "out"
    r = cli("export", ids[0], ids[1][:10], "--format", "mlflow", str(dest), store=root / ".runbase")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"exported 2 runs (4 artifacts) to {dest}; experiments: exp-a")
    r = cli(
        "export", ids[0], "--format", "mlflow", str(dest), "--json", store=root / ".runbase"
    )
    assert r.exit_code == 0
    assert json.loads(r.output)["skipped"][0]["why"].startswith("already in")
    r = cli("export", "nosuchrun", "--format", "mlflow", str(dest), store=root / ".runbase")
    assert r.exit_code == 1 and "no run matches 'nosuchrun'" in r.output


def test_a_damaged_object_stops_the_export_and_leaves_no_half_run(
    made: tuple[Path, list[str]], tmp_path: Path
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(made[0] / ".runbase", copy)
    rid = made[1][0]
    s = Store.open(copy)
    try:
        (model,) = [o for o in list_files(s, rid)["outputs"] if o["path"] == "out/model.txt"]
        path = s.local_objects.path(model["hash"])
        os.chmod(path, 0o644)
        path.write_bytes(b"not the model\n")
        dest = tmp_path / "mlruns"
        with pytest.raises(CorruptObject, match=rid):
            export_mlflow(s, [rid], dest)
    finally:
        s.close()
    (exp,) = [d for d in dest.iterdir() if d.name not in ("0", ".trash")]
    assert [p.name for p in exp.iterdir()] == ["meta.yaml"]


def test_importing_the_export_gives_the_same_values_back(
    made: tuple[Path, list[str]], store: Store, tmp_path: Path
) -> None:
    from runbase.interop.mlflow_import import import_mlflow
    from runbase.records import external

    _root, ids = made
    dest = tmp_path / "mlruns"
    export_mlflow(store, ids, dest)
    other = Store.open(tmp_path / "other", create=True)
    try:
        report = import_mlflow(other, dest)
        assert len(report.created) == 2 and report.skipped == []
        for rid in ids:
            (back,) = [r for r in report.created if read.load_tags(other, [r])[r]["import.id"] == rid]
            mine, theirs = read.load_runs(store, [rid])[0], read.load_runs(other, [back])[0]
            # MLflow's params are text: numbers and booleans come back as they were, a
            # list as its JSON text
            want = {k: v for k, v in mine["params"].items() if k != "bad|key"}
            assert theirs["params"] == want | {"layers": "[64, 32]"}
            assert theirs["name"] == mine["name"] and theirs["status"] == mine["status"]
            for key in ("loss", "acc", "lr"):
                a = read.series(store, rid, key)
                b = external.metric_history(other, back, key)
                assert [(s, v) for s, _t, v in b] == list(zip(a.steps, a.values, strict=True))
            outs = {o["path"]: o["hash"] for o in list_files(other, back)["outputs"]}
            model = [o for o in list_files(store, rid)["outputs"] if o["path"] == "out/model.txt"]
            assert outs == {
                "out/model.txt": model[0]["hash"],  # the same object: stored once
                "out/ckpt/last.bin": hash_bytes(bytes(range(256)) * 40),
            }
    finally:
        other.close()


def test_export_reads_a_read_only_store(made: tuple[Path, list[str]], tmp_path: Path) -> None:
    """A colleague's store, opened read-only: exported without a write (the experiment
    gets the next free id, not one the store would have to create)."""
    from runbase.store.db import Database
    from runbase.store.objects import LocalObjects

    root = made[0] / ".runbase"
    ro = Store(
        root,
        Database.open_sqlite(root / "runbase.db", read_only=True),
        LocalObjects(root / "objects", root / "tmp"),
        read_only=True,
    )
    try:
        result = export_mlflow(ro, made[1], tmp_path / "mlruns")
    finally:
        ro.close()
    assert result["runs"] == made[1] and result["experiments"] == {"exp-a": "1", "exp-b": "2"}


def test_runbase_mlflow_state_exports_as_mlflow_keeps_it(tmp_path: Path) -> None:
    """A run written through the MLflow API (or pulled from a server): its dataset
    inputs (records.external's codec) come out as MLflow datasets, its soft delete as a
    deleted run, and no runbase.mlflow.* tag shows as an MLflow tag; status through the
    one map (crashed is FAILED)."""
    from runbase.records import external

    s = Store.open(tmp_path / "s", create=True)
    try:
        rid = external.create_run(
            s, name="api", started_at=1_700_000_000.0006, user="ann", mode="mlflow",
            status="crashed", ended_at=1_700_000_100.0, tags={"experiment": "e"},
        )  # fmt: skip
        entry = {
            "dataset": {"name": "train", "digest": "d1", "source_type": "local", "source": "x"},
            "tags": [{"key": external.DATASET_CONTEXT_TAG, "value": "training"}],
        }
        minimal = {"dataset": {"name": "eval", "digest": "d2"}, "tags": []}
        tags, too_large = external.dataset_tags([entry, minimal])
        assert too_large == 0
        external.set_tags(s, rid, tags)
        external.soft_delete(s, rid, True)
        assert export_mlflow(s, [rid], tmp_path / "mlruns")["skipped"] == []
    finally:
        s.close()
    run = client(tmp_path / "mlruns").get_run(rid)
    assert run.info.lifecycle_stage == "deleted" and run.info.status == "FAILED"
    assert run.info.start_time == 1_700_000_000_000 + 1  # rounded, as every path rounds
    assert not [k for k in run.data.tags if k.startswith(external.HIDDEN_PREFIX)]
    got = sorted(
        (d.dataset.name, d.dataset.digest, d.dataset.source, [(t.key, t.value) for t in d.tags])
        for d in run.inputs.dataset_inputs
    )
    assert got == [
        ("eval", "d2", "", []),
        ("train", "d1", "x", [(external.DATASET_CONTEXT_TAG, "training")]),
    ]
