"""Experiments, logged models and runs written from outside a tracked process
(runbase.records.experiments, runbase.records.external): schema 8, on real stores."""

from __future__ import annotations

import json
import math
import random
import sqlite3
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbase.capture.manifest import put_manifest
from runbase.capture.params import mlflow_param_value, numeric
from runbase.core.ids import is_valid_id
from runbase.core.statuses import STATUSES
from runbase.errors import Conflict, NotFound, RunNotFound, UsageError
from runbase.records import experiments as ex
from runbase.records import external as x
from runbase.records import lifecycle, maintenance
from runbase.records.bundle import export_run, import_run
from runbase.records.record import build_record
from runbase.records.series import series_points
from runbase.store import Store
from runbase.store.db import Database, open_database
from runbase.store.schema import SCHEMA_VERSION, STORE_SCHEMA

T0 = 1_750_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def _run(store: Store, **kw: object) -> str:
    args: dict[str, object] = {"name": "r", "started_at": T0, "user": "ann", "mode": "mlflow"}
    args.update(kw)
    return x.create_run(store, **args)  # type: ignore[arg-type]


# -- the schema ------------------------------------------------------------------------------


def test_schema_8_migrates_a_version_7_store(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in STORE_SCHEMA.create("sqlite", version=7):
        conn.execute(stmt)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '7')")
    conn.close()
    db = open_database(path)  # migrates on open (to 8, then on)
    assert db.schema_version() == SCHEMA_VERSION >= 8
    for table in ("experiments", "experiment_tags", "logged_models", "logged_model_files"):
        assert db.query(f"SELECT count(*) FROM {table}") == [(0,)]
    db.close()


def test_schema_8_on_postgresql(pg_server: str) -> None:
    """The new tables migrate from 7 on PostgreSQL too, and the records work there."""
    import psycopg

    url = f"{pg_server}/ext8"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ext8")
        conn.execute("CREATE DATABASE ext8")
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in STORE_SCHEMA.create("postgresql", version=7):
            conn.execute(stmt)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '7')")
    db = open_database(url)
    assert db.schema_version() == SCHEMA_VERSION >= 8
    db.close()


def test_records_on_postgresql(pg_server: str, tmp_path: Path) -> None:
    import psycopg

    url = f"{pg_server}/ext8b"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ext8b")
        conn.execute("CREATE DATABASE ext8b")
    local = Store.open(tmp_path / "pg" / ".runbase", create=True)
    local.close()
    s = Store(local.root, open_database(url, create=True), local.objects)
    try:
        e = ex.create(s, "pg-exp", tags={"k": "v"})
        with pytest.raises(Conflict):
            ex.create(s, "pg-exp")
        run = _run(s, tags={"experiment": "pg-exp"})
        x.set_params(s, run, {"lr": "0.1"}, "mlflow")
        x.log_points(s, run, [("loss", 0, T0, 1.0), ("loss", 1, T0 + 1, math.nan)])
        assert ex.run_ids(s, [e.id]) == [run]
        assert x.metric_history(s, run, "loss")[0] == (0, T0, 1.0)
        ex.rename(s, e.id, "pg-exp2")
        assert ex.of_run(s, run).name == "pg-exp2"
        m = ex.create_model(s, e.id, "m", run, {"a": 1})
        assert ex.search_models(s, [e.id])[0]["id"] == m["id"]
        # tags are indexed by key only: a long value (a dataset input, MLflow's model
        # history) would not fit a btree entry of (key, value) on PostgreSQL
        noise = "".join(random.Random(1).choice(string.ascii_letters) for _ in range(60_000))
        x.set_tags(s, run, {"long": noise})
        points, after = x.metric_page(s, run, "loss", 1, 5)
        assert after is None and points[0][:2] == (1, T0 + 1) and math.isnan(points[0][2])
    finally:
        s.close()


# -- experiments -----------------------------------------------------------------------------


def test_default_experiment_is_created_on_first_use(store: Store) -> None:
    d = ex.default(store)
    assert (d.id, d.name, d.lifecycle_stage) == ("0", "Default", "active")
    assert ex.get(store, "0") == d
    assert [e.id for e in ex.search(store)] == ["0"]


def test_create_get_and_unique_names(store: Store) -> None:
    a = ex.create(store, "vision", artifact_location="s3://b/p", tags={"team": "cv"})
    b = ex.create(store, "nlp")
    assert (a.id, b.id) == ("1", "2")
    assert a.tags == {"team": "cv"} and a.artifact_location == "s3://b/p"
    assert ex.get(store, "1") == a
    assert ex.by_name(store, "nlp") == b
    assert ex.by_name(store, "nothing") is None
    with pytest.raises(Conflict, match="vision"):
        ex.create(store, "vision")
    with pytest.raises(Conflict):
        ex.create(store, "Default")
    with pytest.raises(NotFound):
        ex.get(store, "99")
    with pytest.raises(NotFound):
        ex.get(store, "../1")


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 501, None, 3])
def test_bad_names_are_refused(store: Store, bad: object) -> None:
    with pytest.raises(UsageError):
        ex.create(store, bad)  # type: ignore[arg-type]


def test_stage_tags_and_search(store: Store) -> None:
    a = ex.create(store, "alpha")
    ex.create(store, "beta")
    ex.set_stage(store, a.id, "deleted")
    assert [e.name for e in ex.search(store)] == ["Default", "beta"]
    assert [e.name for e in ex.search(store, "deleted")] == ["alpha"]
    with pytest.raises(Conflict):  # a deleted experiment keeps its name, as MLflow
        ex.create(store, "alpha")
    ex.set_stage(store, a.id, "active")
    with pytest.raises(UsageError):
        ex.set_stage(store, "0", "deleted")
    with pytest.raises(UsageError):
        ex.set_stage(store, a.id, "gone")
    with pytest.raises(UsageError):
        ex.search(store, "some")
    ex.set_tag(store, a.id, "k", "v")
    ex.set_tag(store, a.id, "k", "w")
    assert ex.get(store, a.id).tags == {"k": "w"}
    ex.delete_tag(store, a.id, "k")
    assert ex.get(store, a.id).tags == {}
    with pytest.raises(NotFound):
        ex.delete_tag(store, a.id, "k")


def test_runs_of_experiments_and_rename(store: Store) -> None:
    e = ex.create(store, "exp")
    r1 = _run(store, tags={"experiment": "exp"}, started_at=T0)
    r2 = _run(store, tags={"experiment": "exp"}, started_at=T0 + 10)
    plain = _run(store, started_at=T0 + 20)
    assert ex.run_ids(store, [e.id]) == [r2, r1]  # newest first
    assert ex.run_ids(store, ["0"]) == [plain]
    assert ex.run_ids(store, ["0", e.id, "77", "x"]) == [plain, r2, r1]
    assert ex.of_run(store, plain).id == "0"
    renamed = ex.rename(store, e.id, "exp-renamed")
    assert renamed.name == "exp-renamed"
    tags = store.db.query("SELECT run_id, value FROM tags WHERE key = 'experiment' ORDER BY run_id")
    assert {v for _, v in tags} == {"exp-renamed"}
    assert ex.run_ids(store, [e.id]) == [r2, r1]
    ex.create(store, "other")
    with pytest.raises(Conflict):
        ex.rename(store, e.id, "other")
    with pytest.raises(RunNotFound):
        ex.of_run(store, "0000000000000000")


def test_a_tagged_name_becomes_an_experiment(store: Store) -> None:
    """Runs tagged by runbase (``--tag experiment=...``) before any MLflow call."""
    run = _run(store, tags={"experiment": "from-runbase"})
    e = ex.of_run(store, run)
    assert e.name == "from-runbase" and e.id != "0"
    assert ex.by_name(store, "from-runbase") == e
    _run(store, tags={"experiment": "later"})
    assert [e.name for e in ex.search(store)] == ["Default", "from-runbase", "later"]


# -- logged models ---------------------------------------------------------------------------


def test_logged_models(store: Store) -> None:
    e = ex.create(store, "models")
    run = _run(store)
    m = ex.create_model(store, e.id, "clf", run, {"model_type": "sklearn", "tags": {}})
    assert m["id"].startswith("m-") and len(m["id"]) == 34
    assert (m["status"], m["run_id"], m["info"]["model_type"]) == (
        "LOGGED_MODEL_PENDING",
        run,
        "sklearn",
    )
    assert ex.get_model(store, m["id"]) == m
    up = ex.update_model(store, m["id"], status="LOGGED_MODEL_READY")
    assert up["status"] == "LOGGED_MODEL_READY" and up["info"] == m["info"]
    assert ex.update_model(store, m["id"], info={"x": 1})["info"] == {"x": 1}
    oid = store.objects.put_bytes(b"pickle bytes")
    ex.put_model_file(store, m["id"], "model/model.pkl", oid, 12)
    ex.put_model_file(store, m["id"], "MLmodel", oid, 12)
    assert ex.model_files(store, m["id"]) == [("MLmodel", oid, 12), ("model/model.pkl", oid, 12)]
    assert ex.model_files(store, m["id"], "model/") == [("model/model.pkl", oid, 12)]
    assert [d["id"] for d in ex.search_models(store, [e.id, "0"])] == [m["id"]]
    with pytest.raises(UsageError):
        ex.put_model_file(store, m["id"], "../escape", oid, 1)
    with pytest.raises(NotFound):
        ex.put_model_file(store, m["id"], "a", "blake3:" + "0" * 64, 1)
    with pytest.raises(NotFound):
        ex.create_model(store, "42", "x", None, {})
    with pytest.raises(NotFound):
        ex.create_model(store, e.id, "x", "0000000000000000", {})
    with pytest.raises(UsageError):
        ex.create_model(store, e.id, "x", None, {"nan": math.nan})
    ex.delete_model(store, m["id"])
    with pytest.raises(NotFound):
        ex.get_model(store, m["id"])
    with pytest.raises(NotFound):
        ex.get_model(store, "m-../../etc")


def test_gc_keeps_and_fsck_checks_logged_model_objects(store: Store) -> None:
    e = ex.create(store, "models")
    m = ex.create_model(store, e.id, "clf", None, {})
    kept = store.objects.put_bytes(b"model weights")
    loose = store.objects.put_bytes(b"nobody's")
    ex.put_model_file(store, m["id"], "w.bin", kept, 13)
    report = maintenance.gc(store, delete=True, grace=0)
    assert [oid for oid, _ in report.unreferenced] == [loose]
    assert store.objects.exists(kept)
    assert maintenance.fsck(store).ok
    store.objects.delete(kept)
    missing = maintenance.fsck(store).missing
    assert [(oid, kind) for oid, kind, _ in missing] == [(kept, "model")]


# -- runs from outside -----------------------------------------------------------------------


def test_create_run_and_its_record(store: Store) -> None:
    run = x.create_run(
        store,
        name="mlflow-run",
        started_at=T0,
        user="ann",
        mode="mlflow",
        tags={"experiment": "e", "mlflow.source.name": "train.py"},
    )
    assert is_valid_id(run) and x.exists(store, run)
    rec = build_record(store, run)
    assert (rec["name"], rec["status"], rec["mode"], rec["user"]) == (
        "mlflow-run",
        "running",
        "mlflow",
        "ann",
    )
    assert rec["command"] == [] and rec["tags"]["mlflow.source.name"] == "train.py"
    with pytest.raises(Conflict):
        x.create_run(store, run_id=run, name=None, started_at=T0, user=None, mode="mlflow")
    fixed = x.create_run(
        store,
        run_id="0abcdefghjkmnpqr",
        name=None,
        started_at=T0,
        user=None,
        mode="import",
        status="finished",
        ended_at=T0 + 5,
    )
    assert fixed == "0abcdefghjkmnpqr"
    assert store.db.query_one("SELECT name != '', ended_at FROM runs WHERE id = ?", (fixed,)) == (
        1,
        T0 + 5,
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"run_id": "short"},
        {"started_at": math.nan},
        {"status": "SCHEDULED"},
        {"mode": ""},
        {"name": "a\x00"},
        {"parent_id": "../x"},
        {"command": "python x.py"},
        {"tags": {"": "v"}},
    ],
)
def test_create_run_validates(store: Store, kw: dict[str, object]) -> None:
    with pytest.raises((UsageError, RunNotFound)):
        _run(store, **kw)


def test_recovery_never_crashes_runs_without_an_owner(store: Store) -> None:
    import socket

    for mode in ("mlflow", "import"):
        _run(store, mode=mode, host=socket.gethostname())
    # whatever host user_and_host reports, owner-less runs are left alone
    store.db.execute("UPDATE runs SET host = ?", (lifecycle.envcap.user_and_host()[1],))
    assert lifecycle.recover_orphans(store) == []
    assert {r[0] for r in store.db.query("SELECT status FROM runs")} == {"running"}


def test_params_are_immutable_and_round_trip(store: Store) -> None:
    run = _run(store)
    values = {
        "lr": "0.01",
        "n": "3",
        "flag": "true",
        "sci": "1e-3",
        "s": "adam",
        "e": "",
        "j": "[1]",
    }
    x.set_params(store, run, values, "mlflow")
    x.set_params(store, run, {"lr": "0.01"}, "mlflow")  # same value: nothing happens
    with pytest.raises(Conflict, match="lr.*0.01.*0.02"):
        x.set_params(store, run, {"lr": "0.02"}, "mlflow")
    rows = store.db.query("SELECT key, value, num, source FROM params WHERE run_id = ?", (run,))
    stored = {k: (v, n, s) for k, v, n, s in rows}
    assert stored["lr"] == ("0.01", 0.01, "mlflow")  # a number to runbase: filters, sorts
    assert stored["s"] == ('"adam"', None, "mlflow")
    assert stored["sci"] == ('"1e-3"', 0.001, "mlflow")  # kept as sent, yet a number
    assert {k: x.param_text(store, v) for k, (v, _, _) in stored.items()} == values
    with pytest.raises(UsageError):
        x.set_params(store, run, {"k": 1}, "mlflow")  # type: ignore[dict-item]
    with pytest.raises(RunNotFound):
        x.set_params(store, "0000000000000000", {"a": "b"}, "mlflow")


def test_a_long_param_is_an_object(store: Store) -> None:
    run = _run(store)
    long = "x" * 20_000
    x.set_params(store, run, {"long": long}, "mlflow")
    x.set_params(store, run, {"long": long}, "mlflow")
    (value,) = store.db.query_one("SELECT value FROM params WHERE key = 'long'") or ("",)
    assert "$object" in json.loads(value)
    assert x.param_text(store, value) == long
    assert not maintenance.gc(store, delete=False, grace=0).unreferenced


def test_a_param_another_source_set_is_kept_if_equal(store: Store) -> None:
    run = _run(store)
    store.db.execute(
        "INSERT INTO params (run_id, key, value, num, source) VALUES (?, 'lr', '0.1', 0.1, 'argparse')",
        (run,),
    )
    x.set_params(store, run, {"lr": "0.10"}, "mlflow")  # the same number
    with pytest.raises(Conflict):
        x.set_params(store, run, {"lr": "0.2"}, "mlflow")


def test_tags_name_status_and_soft_delete(store: Store) -> None:
    run = _run(store)
    x.set_tags(store, run, {"a": "1", "mlflow.note.content": "hi"})
    x.set_tags(store, run, {"a": "2"})
    x.delete_tag(store, run, "mlflow.note.content")
    with pytest.raises(NotFound):
        x.delete_tag(store, run, "mlflow.note.content")
    x.set_name(store, run, "renamed")
    x.soft_delete(store, run, True)
    rec = build_record(store, run)
    assert rec["name"] == "renamed" and rec["tags"]["a"] == "2" and x.DELETED_TAG in rec["tags"]
    x.soft_delete(store, run, False)
    assert x.DELETED_TAG not in build_record(store, run)["tags"]
    x.set_status(store, run, "finished", T0 + 3)
    assert store.db.query_one("SELECT status, ended_at FROM runs WHERE id = ?", (run,)) == (
        "finished",
        T0 + 3,
    )
    x.set_status(store, run, "running", None)
    assert store.db.query_one("SELECT ended_at FROM runs WHERE id = ?", (run,)) == (None,)
    with pytest.raises(UsageError):
        x.set_status(store, run, "FINISHED", None)


def test_metric_points_and_summaries(store: Store) -> None:
    run = _run(store)
    x.log_points(
        store,
        run,
        [("loss", 0, T0, 3.0), ("acc", 0, T0, 0.5), ("loss", 1, T0 + 1, math.nan)],
    )
    x.log_points(store, run, [("loss", 5, T0 + 2, 1.0), ("loss", 6, T0 + 3, math.inf)])
    row = store.db.query_one(
        "SELECT count, last, min, max, last_step, last_time FROM metrics WHERE run_id = ? AND key = 'loss'",
        (run,),
    )
    assert row == (4, math.inf, 1.0, math.inf, 6, T0 + 3)
    hist = x.metric_history(store, run, "loss")
    assert [(s, t) for s, t, _ in hist] == [(0, T0), (1, T0 + 1), (5, T0 + 2), (6, T0 + 3)]
    assert math.isnan(hist[1][2]) and hist[3][2] == math.inf
    steps, _vals = series_points(store, run, "loss")
    assert list(steps) == [0, 1, 5, 6]
    assert x.metric_history(store, run, "nothing") == []
    x.log_points(store, run, [("nan-last", 0, T0, math.nan)])
    assert store.db.query_one(
        "SELECT count, last, min FROM metrics WHERE run_id = ? AND key = 'nan-last'", (run,)
    ) == (1, None, None)
    for bad in [("k", 1.5, T0, 1.0), ("k", 0, -1.0, 1.0), ("k", 0, T0, "1"), ("", 0, T0, 1.0)]:
        with pytest.raises(UsageError):
            x.log_points(store, run, [bad])  # type: ignore[list-item]
    assert store.db.query_one("SELECT 1 FROM metrics WHERE key = 'k'") is None


def test_outputs_are_run_files(store: Store) -> None:
    run = _run(store)
    oid = store.objects.put_bytes(b"artifact")
    x.add_output(store, run, "model/model.pkl", oid, 8, "mlflow")
    x.add_output(store, run, "model/model.pkl", oid, 8, "mlflow")
    rows = store.db.query("SELECT role, path, oid, size, stored, source, kind FROM run_files")
    assert rows == [("output", "model/model.pkl", oid, 8, 1, "mlflow", "file")]
    assert not maintenance.gc(store, grace=0).unreferenced
    for path in ("/abs", "../up", ".git/hooks/x", "a//b"):
        with pytest.raises(UsageError):
            x.add_output(store, run, path, oid, 8, "mlflow")
    with pytest.raises(NotFound):
        x.add_output(store, run, "b", "blake3:" + "1" * 64, 8, "mlflow")


def test_bundles_carry_no_experiment_tables(store: Store) -> None:
    e = ex.create(store, "exp")
    run = _run(store, tags={"experiment": "exp"})
    ex.create_model(store, e.id, "m", run, {})
    bundle = export_run(store, run)
    assert not {"experiments", "experiment_tags", "logged_models", "logged_model_files"} & set(
        bundle
    )
    assert {"tags", "params", "metrics"} <= set(bundle)


def test_derived_ids(store: Store) -> None:
    a = x.derived_id("mlflow", "abc", T0)
    assert is_valid_id(a) and a == x.derived_id("mlflow", "abc", T0)
    assert a != x.derived_id("wandb", "abc", T0)
    assert a != x.derived_id("mlflow", "abd", T0)
    later = x.derived_id("mlflow", "abc", T0 + 3600)
    assert later[8:] == a[8:] and later > a  # sortable by start time
    with pytest.raises(UsageError):
        x.derived_id("mlflow", "", T0)
    with pytest.raises(UsageError):
        x.derived_id("mlflow", "a", math.inf)
    assert time.time() > 0


def test_a_secret_param_is_redacted(store: Store) -> None:
    run = _run(store)
    x.set_params(
        store, run, {"db.password": "1234", "api_key": "sk-abcdefghijklmnopqrstuvwx"}, "mlflow"
    )
    rows = store.db.query("SELECT value, num FROM params WHERE run_id = ?", (run,))
    assert all("1234" not in v and "sk-abc" not in v and n is None for v, n in rows)
    x.set_params(store, run, {"db.password": "1234"}, "mlflow")  # the same: no-op


def test_writes_move_a_running_runs_heartbeat(store: Store) -> None:
    run = _run(store)
    assert store.db.query_one("SELECT heartbeat_at FROM runs WHERE id = ?", (run,)) == (T0,)
    x.log_points(store, run, [("m", 0, T0, 1.0)])
    (beat,) = store.db.query_one("SELECT heartbeat_at FROM runs WHERE id = ?", (run,)) or (0,)
    assert beat > T0


def test_summary_and_latest_metrics(store: Store) -> None:
    run, other = _run(store), _run(store)
    x.log_points(
        store, run, [("loss", 0, T0, 2.0), ("loss", 4, T0 + 1, 1.5), ("n", 0, T0, math.nan)]
    )
    x.set_summary(store, run, {"best": 0.9, "loss": 1.0})
    latest = x.latest_metrics(store, [run, other, "bad"])
    assert set(latest) == {run}  # summary-only keys and runs without points: none
    assert latest[run]["loss"] == (1.5, T0 + 1, 4)
    assert math.isnan(latest[run]["n"][0])
    assert "best" not in latest[run]
    rows: dict[str, float] = dict(
        store.db.query("SELECT key, value FROM metrics WHERE run_id = ?", (run,))
    )
    assert rows["best"] == 0.9 and rows["loss"] == 1.0  # the summary is the metric's value
    with pytest.raises(UsageError):
        x.set_summary(store, run, {"k": "1"})  # type: ignore[dict-item]


def test_a_directory_output(store: Store) -> None:
    run = _run(store)
    blob = store.objects.put_bytes(b"weights")
    tree = put_manifest(store, [{"path": "w.bin", "type": "f", "oid": blob, "size": 7}])
    x.add_output(store, run, "mlflow-models/m-1", tree, 7, "mlflow", kind="dir")
    assert store.db.query_one("SELECT kind FROM run_files WHERE run_id = ?", (run,)) == ("dir",)
    assert not maintenance.gc(store, grace=0).unreferenced  # the manifest and its file
    with pytest.raises(UsageError):
        x.add_output(store, run, "x", blob, 7, "mlflow", kind="link")


# -- review 1: one home for MLflow's shapes ---------------------------------------------------


def test_reads_take_no_write_transaction(store: Store, tmp_path: Path) -> None:
    """Every read of records.experiments works on a read-only database (a write there
    raises), and Default is read, not created, before a write needs it."""
    e = ex.create(store, "exp")
    run = _run(store, tags={"experiment": "exp"})
    plain = _run(store, started_at=T0 - 5)
    m = ex.create_model(store, e.id, "m", run, {})
    store.db.execute("DELETE FROM experiments WHERE id = '0'")  # Default not written yet
    store.close()
    db = Database.open_sqlite(tmp_path / ".runbase" / "runbase.db", read_only=True)
    ro = Store(store.root, db, store.objects, read_only=True)
    try:
        d = ex.default(ro)
        assert (d.id, d.name, d.lifecycle_stage, d.created_at) == ("0", "Default", "active", T0 - 5)
        assert ex.get(ro, "0") == d and ex.by_name(ro, "Default") == d
        assert [x.id for x in ex.search(ro, "all")] == ["0", e.id]
        assert ex.by_name(ro, "exp") == e == ex.get(ro, e.id) == ex.of_run(ro, run)
        assert ex.of_run(ro, plain) == d
        assert ex.run_ids(ro, ["0", e.id]) == [run, plain]
        assert ex.get_model(ro, m["id"])["name"] == "m" and ex.model_files(ro, m["id"]) == []
        assert ex.search_models(ro, [e.id])[0]["id"] == m["id"]
    finally:
        ro.close()
    again = Store.open(tmp_path / ".runbase")
    try:
        ex.search(again)
        assert again.db.query("SELECT id FROM experiments ORDER BY id") == [(e.id,)]
        ex.set_tag(again, "0", "k", "v")  # a write: Default's row now
        assert ex.default(again).tags == {"k": "v"}
    finally:
        again.close()


def test_a_name_is_adopted_where_the_tag_is_written(store: Store) -> None:
    run = _run(store)
    x.set_tags(store, run, {"experiment": "tagged"})
    assert store.db.query_one("SELECT id FROM experiments WHERE name = 'tagged'") is not None
    bundle = export_run(store, run)
    bundle["tags"] = [
        {**t, "value": "pushed"} if t["key"] == "experiment" else t for t in bundle["tags"]
    ]
    import_run(store, bundle)
    assert ex.of_run(store, run).name == "pushed"
    # a run stored before schema 8 (no row for its name): the first read adopts it, once
    store.db.execute(
        "UPDATE tags SET value = 'old' WHERE run_id = ? AND key = 'experiment'", (run,)
    )
    assert "old" in [e.name for e in ex.search(store)]
    assert ex.of_run(store, run).name == "old"


def _chunked(store: Store, sizes: list[int]) -> tuple[str, list[tuple[int, float, float]]]:
    """A run whose metric ``m`` has one chunk per size (log_points writes one per call)."""
    run = _run(store)
    step = 0
    for n in sizes:
        x.log_points(
            store, run, [("m", step + i, T0 + step + i, float(step + i)) for i in range(n)]
        )
        step += n
    return run, x.metric_history(store, run, "m")


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 100])
def test_metric_page_across_chunks(store: Store, limit: int) -> None:
    run, whole = _chunked(store, [3, 1, 4, 2])
    assert len(whole) == 10
    pages: list[tuple[int, float, float]] = []
    start: int | None = 0
    while start is not None:
        points, after = x.metric_page(store, run, "m", start, limit)
        assert points == whole[start : start + limit]
        assert after == (start + limit if start + limit < 10 else None)
        pages.extend(points)
        start = after
    assert pages == whole
    assert x.metric_page(store, run, "m", 10, limit) == ([], None)
    assert x.metric_page(store, run, "m", 99, limit) == ([], None)


def test_metric_page_edges(store: Store) -> None:
    run, whole = _chunked(store, [2, 3, 2])
    assert x.metric_page(store, run, "other", 0, 5) == ([], None)
    with pytest.raises(RunNotFound):
        x.metric_page(store, "0000000000000000", "m", 0, 5)
    for start, limit in ((-1, 5), (0, 0), (0, -2), (True, 5), (0, 1.5), ("0", 5)):
        with pytest.raises(UsageError):
            x.metric_page(store, run, "m", start, limit)  # type: ignore[arg-type]
    # a damaged chunk keeps its places (pages never shift) and gives no points
    store.db.execute("UPDATE metric_chunks SET vals = x'00' WHERE run_id = ? AND seq = 1", (run,))
    assert x.metric_page(store, run, "m", 0, 4) == (whole[:2], 4)
    assert x.metric_page(store, run, "m", 4, 4) == (whole[5:], None)


def _ds(name: str, **tags: str) -> dict[str, object]:
    return {
        "dataset": {"name": name, "digest": "d" + name, "source_type": "local", "source": "/x"},
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }


def test_dataset_tags_round_trip(store: Store) -> None:
    train = _ds("train", **{"mlflow.data.context": "training"})
    evals = _ds("train", **{"mlflow.data.context": "eval"})
    as_map = {"dataset": {"name": "m", "digest": "dm", "schema": ""}, "tags": {"a": "b"}}
    tags, too_large = x.dataset_tags([train, evals, train, as_map])
    assert too_large == 0 and len(tags) == 3  # the same dataset in the same context: one
    assert all(k.startswith(x.DATASET_PREFIX) for k in tags)
    run = _run(store, tags=tags)
    got = x.datasets(build_record(store, run)["tags"])
    assert sorted(map(json.dumps, got)) == sorted(
        json.dumps(e)
        for e in (
            train,
            evals,
            {"dataset": {"name": "m", "digest": "dm"}, "tags": [{"key": "a", "value": "b"}]},
        )
    )
    assert {x.dataset_context(e) for e in got} == {"training", "eval", None}
    big = _ds("big")
    big["dataset"]["schema"] = "s" * 32_000  # type: ignore[index]
    big["dataset"]["profile"] = "p" * 16_000  # type: ignore[index]
    big["dataset"]["source"] = "o" * 60_000  # type: ignore[index]
    assert x.dataset_tags([big, train])[1] == 1
    for bad in (
        [1],
        [{"dataset": "x"}],
        [{"dataset": {"name": "n"}}],
        [{"dataset": {"name": "n", "digest": 5}}],
        [{"dataset": {"name": "n", "digest": "d" * 37}}],
        [{"dataset": {"name": "n", "digest": "d"}, "tags": "ab"}],
        [{"dataset": {"name": "n", "digest": "d"}, "tags": [{"key": "", "value": "v"}]}],
        [{"dataset": {"name": "n", "digest": "d"}, "tags": [{"key": "k", "value": 1}]}],
    ):
        with pytest.raises(UsageError):
            x.dataset_tags(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        x.dataset_tags("no")  # type: ignore[arg-type]


def test_datasets_skips_malformed_entries() -> None:
    """Tags reach a store unchecked (push, ``runbase tag``): a bad one is skipped."""
    good, _ = x.dataset_tags([_ds("good")])
    junk = {
        "not json": "{",
        "a list": "[1]",
        "review M6": json.dumps({"dataset": [1], "tags": "ab"}),
        "no digest": json.dumps({"dataset": {"name": "n"}, "tags": []}),
        "tags a map": json.dumps({"dataset": {"name": "n", "digest": "d"}, "tags": {"a": "b"}}),
        "bad pair": json.dumps({"dataset": {"name": "n", "digest": "d"}, "tags": [["k", "v"]]}),
        "deep": "[" * 100_000,
        "number field": json.dumps({"dataset": {"name": "n", "digest": "d", "source": 3}}),
    }
    tags = {x.DATASET_PREFIX + k: v for k, v in junk.items()} | good | {"other": "{"}
    assert x.datasets(tags) == [_ds("good")]


def test_set_params_holds_the_objects_it_writes(store: Store) -> None:
    run = _run(store)
    held: list[tuple[str, int]] = []
    x.set_params(
        store,
        run,
        {"short": "1", "long": "y" * 20_000},
        "mlflow",
        hold=lambda o, n: held.append((o, n)),
    )
    assert len(held) == 1
    oid, size = held[0]
    assert store.objects.exists(oid) and store.objects.size(oid) == size
    (value,) = store.db.query_one("SELECT value FROM params WHERE key = 'long'") or ("",)
    assert json.loads(value)["$object"] == oid


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.01", 0.01),
        ("3", 3),
        ("-2", -2),
        ("true", True),
        ("false", False),
        ("1e-3", "1e-3"),
        ("0.10", "0.10"),
        ("-0", "-0"),
        ("-0.0", -0.0),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("True", "True"),
        (" 1", " 1"),
        ("[1]", "[1]"),
        ('"a"', '"a"'),
        ("9" * 5000, "9" * 5000),
        ("9" * 400, "9" * 400),  # under Python's digit limit, over a float: text (A3)
        (str(2**63), str(2**63)),  # outside 64 bits: MLflow's stores hold no wider int
        (str(-(2**63) - 1), str(-(2**63) - 1)),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
        ("[" * 10_000, "[" * 10_000),
        ("", ""),
    ],
)
def test_the_mlflow_param_rule(text: str, value: object) -> None:
    got = mlflow_param_value(text)
    assert got == value and type(got) is type(value)
    back = got if isinstance(got, str) else json.dumps(got)
    assert back == text  # lossless


def test_a_400_digit_param_is_kept_and_numeric_never_raises(store: Store) -> None:
    """A3: a param of 309+ digits reached float() and raised OverflowError (a 500 on the
    server, a lost mirror, a traceback from the importer). numeric() is None for it, and
    external.set_params keeps it as the string MLflow sent."""
    big = "9" * 400
    assert numeric(big) is None and numeric("-" + big) is None
    assert numeric("[" * 10_000) is None and numeric("9" * 5000) is None
    assert numeric(str(2**63)) == float(2**63) and numeric("true") == 1.0
    run = _run(store)
    x.set_params(store, run, {"big": big, "seed": str(2**64), "lr": "0.1"}, "mlflow")
    params = build_record(store, run)["params"]
    assert params == {"big": big, "seed": str(2**64), "lr": 0.1}
    x.set_params(store, run, {"big": big}, "mlflow")  # the same value again: a no-op


def test_times_and_statuses() -> None:
    assert (x.ms(0), x.ms(None), x.ms(1.0004), x.ms(1.0006)) == (0, None, 1000, 1001)
    assert x.ms(T0 + 0.0006) == int(round((T0 + 0.0006) * 1000))
    assert x.seconds(0) == 0.0 and x.seconds(None) is None and x.seconds(1500) == 1.5
    for bad in (True, "1", math.nan, math.inf):
        with pytest.raises(UsageError):
            x.ms(bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            x.seconds(bad)  # type: ignore[arg-type]
    assert set(x.STATUS_TO_MLFLOW) == set(STATUSES)
    assert set(x.STATUS_FROM_MLFLOW.values()) <= set(STATUSES)
    # crashed, pruned and lost have no MLflow status of their own: they read back as
    # failed, killed and failed
    lossy = ("crashed", "pruned", "lost")
    assert all(x.STATUS_FROM_MLFLOW[x.STATUS_TO_MLFLOW[s]] == s for s in STATUSES if s not in lossy)


def test_a_server_push_spares_what_the_mlflow_api_kept(store: Store) -> None:
    """SERVER_ROWS: the hidden tags (soft delete included) and MLflow's model history
    survive a whole-run import with keep_server_rows; a plain tag does not."""
    run = _run(store)
    bundle = export_run(store, run)
    datasets, _ = x.dataset_tags([_ds("d")])
    x.set_tags(store, run, {"plain": "1", x.MODEL_HISTORY_TAG: "[]", **datasets})
    x.soft_delete(store, run, True)
    import_run(store, bundle, keep_server_rows=True)
    kept = set(build_record(store, run)["tags"])
    assert {x.DELETED_TAG, x.MODEL_HISTORY_TAG, *datasets} <= kept and "plain" not in kept
    import_run(store, bundle)
    assert not {x.DELETED_TAG, x.MODEL_HISTORY_TAG} & set(build_record(store, run)["tags"])


def test_a_run_started_with_an_experiment_tag_gives_it_a_row(store: Store) -> None:
    """`runbase run --tag experiment=churn`: the name gets its experiment where the tag is
    written, so no later read has to write."""
    lifecycle.create_run(store, command=["true"], mode="run", tags={"experiment": "churn"})
    rows = store.db.query("SELECT id, name FROM experiments ORDER BY id")
    assert [name for _, name in rows] == ["Default", "churn"]


def test_a_run_whose_experiment_tag_names_none_is_defaults(store: Store) -> None:
    """An empty or overlong `experiment` tag (`runbase run --tag experiment=`, a push)
    cannot name an experiment: the run reads as Default's and is listed there."""
    empty = x.create_run(store, name="e", started_at=1.0, user="u", mode="mlflow")
    long = x.create_run(store, name="l", started_at=2.0, user="u", mode="mlflow")
    named = x.create_run(store, name="n", started_at=3.0, user="u", mode="mlflow")
    store.db.execute("INSERT INTO tags (run_id, key, value) VALUES (?, 'experiment', '')", (empty,))
    store.db.execute(
        "INSERT INTO tags (run_id, key, value) VALUES (?, 'experiment', ?)", (long, "x" * 600)
    )
    x.set_tags(store, named, {"experiment": "churn"})
    assert ex.of_run(store, empty).id == ex.of_run(store, long).id == ex.DEFAULT_ID
    assert ex.run_ids(store, [ex.DEFAULT_ID]) == [long, empty]
