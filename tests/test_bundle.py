"""Run bundles (runbase.records.bundle): one run's metadata moved between stores, SQLite and
PostgreSQL, as the team server's push/pull and live publishing use them."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, commit, require, runbase_cmd, write
from runbase.capture import env as envcap
from runbase.errors import BundleError, RunNotFound
from runbase.records import lifecycle, read
from runbase.records.bundle import (
    BUNDLE_VERSION,
    TABLES,
    export_run,
    import_run,
    run_objects,
    schema,
)
from runbase.records.maintenance import fsck, references
from runbase.records.record import build_record
from runbase.store import Store
from runbase.store.db import open_database

PY = sys.executable
DIALECTS = ["sqlite", "postgresql"]

TRAIN = """
import argparse, os, runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
a = p.parse_args()
rows = open("data/input.csv").read().split()
for i in range(40):
    runbase.log(loss=a.lr / (i + 1), acc=i / 40, step=i)
runbase.log(grad=float("inf"))
runbase.summary(best=0.875)
runbase.param("notes", "n" * 20_000)  # above 16 KiB: stored as an object
runbase.tag(stage="dev")
os.makedirs("out", exist_ok=True)
with open("out/model.txt", "w") as f:
    f.write(f"model lr={a.lr} rows={len(rows)}\\n")
"""


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real run made by the real CLI: code, env, logs, params (one as an object),
    metrics, a summary, a tag, an input and an output file. Read-only for the tests."""
    root = tmp_path_factory.mktemp("src") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    write(root, "data/input.csv", "1 2 3 4 5\n")
    (root / ".gitignore").write_text("data/\nout/\n")
    commit(root, "train")
    runbase_cmd("run", "--", PY, "train.py", "--lr", "0.1", cwd=root, check=True)
    shown = runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout
    return root, json.loads(shown)["id"]


@pytest.fixture
def src(source: tuple[Path, str]) -> Iterator[Store]:
    s = Store.open(source[0] / ".runbase")
    yield s
    s.close()


@pytest.fixture
def run_id(source: tuple[Path, str]) -> str:
    return source[1]


def _pg_url(server: str) -> str:
    psycopg = require("psycopg")
    name = f"bundle_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture(params=DIALECTS)
def dst(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store: all SQLite, or objects on disk and metadata in PostgreSQL
    (the team server's layout)."""
    local = Store.open(tmp_path / "dst" / ".runbase", create=True)
    if request.param == "sqlite":
        yield local
        local.close()
        return
    local.close()
    url = _pg_url(request.getfixturevalue("pg_server"))
    s = Store(local.root, open_database(url, create=True), local.objects)
    yield s
    s.close()


@pytest.fixture
def sqlite_dst(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "dst" / ".runbase", create=True)
    yield s
    s.close()


# -- helpers ------------------------------------------------------------------------------------


def wire(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle as it arrives over HTTP: strict JSON (no NaN or infinities)."""
    return json.loads(json.dumps(bundle, allow_nan=False))


def copy_objects(src: Store, dst: Store, objects: dict[str, str]) -> None:
    for oid in objects:
        dst.objects.put_claimed(oid, src.objects.get_bytes(oid))


def rows_of(store: Store, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the run, table by table, in a stable order."""
    out = {"runs": sorted(store.db.query("SELECT * FROM runs WHERE id = ?", (run_id,)))}
    for t in TABLES:
        out[t] = sorted(store.db.query(f"SELECT * FROM {t} WHERE run_id = ?", (run_id,)))
    return out


def all_series(store: Store, run_id: str) -> dict[str, read.MetricSeries]:
    keys = [k for (k,) in store.db.query("SELECT key FROM metrics WHERE run_id = ?", (run_id,))]
    return {k: read.series(store, run_id, k) for k in sorted(keys)}


def chunk(key: str, seq: int, points: list[tuple[int, float, float]]) -> dict[str, Any]:
    """A metric_chunks row as a bundle holds it (little-endian arrays, base64)."""
    steps = array("q", [p[0] for p in points])
    times, vals = array("d", [p[1] for p in points]), array("d", [p[2] for p in points])
    if sys.byteorder == "big":
        for a in (steps, times, vals):
            a.byteswap()

    def b64(a: array[Any]) -> str:
        return base64.b64encode(a.tobytes()).decode()

    return {"key": key, "seq": seq, "n": len(points), "steps": b64(steps),
            "times": b64(times), "vals": b64(vals)}  # fmt: skip


def dead_pid() -> int:
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    return p.pid


# -- the schema whitelist -------------------------------------------------------------------------


def test_schema_whitelist_matches_a_real_database(sqlite_dst: Store) -> None:
    conn = sqlite3.connect(sqlite_dst.root / "runbase.db")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert set(schema()) == set(tables)
    for name in tables:
        info = conn.execute(f"PRAGMA table_info({name})").fetchall()
        assert list(schema()[name].columns) == [r[1] for r in info]
        assert schema()[name].key == tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5])
        for _, col, type_, notnull, default, pk in info:  # what validation relies on
            c = schema()[name].columns[col]
            assert (c.type, c.not_null, c.has_default) == (
                type_,
                bool(notnull or pk),
                default is not None,
            )
    conn.close()


# -- export ---------------------------------------------------------------------------------------


def test_export_is_strict_json_of_every_row(src: Store, run_id: str) -> None:
    bundle = export_run(src, run_id)
    assert bundle["bundle_version"] == BUNDLE_VERSION == 1 and bundle["data"] == "stored"
    assert set(bundle["run"]) == set(schema()["runs"].columns)
    for t in TABLES:
        assert len(bundle.get(t, [])) == len(rows_of(src, run_id)[t]) and all(
            r["run_id"] == run_id for r in bundle.get(t, [])
        )
    # the tables a later schema added are left out when empty: a server of an older
    # runbase refuses an unknown key, and reads its absence as none (test_media: a run
    # with media carries them)
    assert rows_of(src, run_id)["media"] == [] and "media" not in bundle
    assert set(bundle) == {"bundle_version", "data", "run", "objects", *TABLES} - {"media"}
    json.dumps(bundle, allow_nan=False)  # the infinite gradient is the string "Infinity"
    grad = next(m for m in bundle["metrics"] if m["key"] == "grad")
    assert grad["last"] == grad["max"] == "Infinity"
    with pytest.raises(RunNotFound):
        export_run(src, "0" * 16)


def test_run_objects_is_references_of_one_run(src: Store, run_id: str) -> None:
    objects = run_objects(src, run_id)
    assert {"code", "env", "logs", "data", "params"} == set(objects.values())
    assert set(objects) == {oid for oid, _, r in references(src) if r == run_id}
    assert objects == export_run(src, run_id)["objects"]
    without = run_objects(src, run_id, data=False)
    assert "data" not in without.values()
    assert set(without) == {o for o, k in objects.items() if k != "data"}


# -- round trips ----------------------------------------------------------------------------------


def test_round_trip_gives_the_same_run(src: Store, dst: Store, run_id: str) -> None:
    bundle = wire(export_run(src, run_id))
    assert import_run(dst, bundle) == run_id
    copy_objects(src, dst, bundle["objects"])
    assert build_record(dst, run_id) == build_record(src, run_id)
    assert all_series(dst, run_id) == all_series(src, run_id)
    assert len(all_series(dst, run_id)["loss"]) == 40
    assert fsck(dst).ok
    # and back out again (a pull from the server): the same bundle, less the local owner
    again, orig = export_run(dst, run_id), export_run(src, run_id)
    orig["run"].update(owner_pid=None, owner_start=None)
    assert wire(again) == wire(orig)
    before = rows_of(dst, run_id)
    import_run(dst, wire(export_run(src, run_id)))  # idempotent
    assert rows_of(dst, run_id) == before
    assert build_record(dst, run_id) == build_record(src, run_id)


def test_round_trip_shown_by_the_cli(
    src: Store, sqlite_dst: Store, run_id: str, source: tuple[Path, str]
) -> None:
    bundle = wire(export_run(src, run_id))
    import_run(sqlite_dst, bundle)
    copy_objects(src, sqlite_dst, bundle["objects"])

    def show(store_dir: Path) -> dict[str, Any]:
        out = runbase_cmd(
            "show", run_id, "--json", env={"RUNBASE_DIR": str(store_dir)}, check=True
        ).stdout
        return json.loads(out)

    assert show(sqlite_dst.root) == show(source[0] / ".runbase")


def test_data_left_local(src: Store, dst: Store, run_id: str) -> None:
    bundle = wire(export_run(src, run_id, data=False))
    assert bundle["data"] == "local" and "data" not in bundle["objects"].values()
    assert bundle["run_files"] and all(f["stored"] == 0 and f["oid"] for f in bundle["run_files"])
    import_run(dst, bundle)
    copy_objects(src, dst, bundle["objects"])
    rec, orig = build_record(dst, run_id), build_record(src, run_id)
    for role in ("inputs", "outputs"):
        assert [(f["path"], f["hash"], f["size"]) for f in rec[role]] == [
            (f["path"], f["hash"], f["size"]) for f in orig[role]
        ]
        assert not any(f["stored"] for f in rec[role])
    data_oids = {o for o, k in run_objects(src, run_id).items() if k == "data"}
    assert data_oids and not any(dst.objects.exists(o) for o in data_oids)
    assert fsck(dst).ok  # unstored data is not expected in the store


# -- delta imports (live publishing) ---------------------------------------------------------------


def test_delta_adds_without_deleting(src: Store, dst: Store, run_id: str) -> None:
    import_run(dst, wire(export_run(src, run_id)))
    before = rows_of(dst, run_id)
    loss = read.series(dst, run_id, "loss")
    top = max(r[2] for r in before["metric_chunks"] if r[1] == "loss")
    delta = {
        "bundle_version": 1,
        "run": {"id": run_id, "heartbeat_at": 2e9, "status": "finished"},
        "metric_chunks": [chunk("loss", top + 1, [(40, 1.9e9, 0.001), (41, 1.9e9 + 1, 0.0005)])],
        "metrics": [
            {
                "key": "loss",
                "count": 42,
                "last": 0.0005,
                "min": 0.0005,
                "max": 0.1,
                "last_step": 41,
                "last_time": 1.9e9 + 1,
                "has_summary": 0,
                "value": 0.0005,
            }
        ],  # fmt: skip
        "tags": [{"run_id": run_id, "key": "published", "value": "yes"}],
    }
    assert import_run(dst, delta, replace=False) == run_id
    after = rows_of(dst, run_id)
    assert len(after["metric_chunks"]) == len(before["metric_chunks"]) + 1
    assert set(before["metric_chunks"]) <= set(after["metric_chunks"])
    assert after["params"] == before["params"] and after["run_files"] == before["run_files"]
    assert len(after["tags"]) == len(before["tags"]) + 1
    series = read.series(dst, run_id, "loss")
    assert series.steps == [*loss.steps, 40, 41] and series.values[-1] == 0.0005
    run = read.load_row(dst, run_id)
    assert run["heartbeat_at"] == 2e9 and run["name"] == build_record(src, run_id)["name"]
    assert read.load_metrics(dst, [run_id])[run_id]["loss"]["count"] == 42
    import_run(dst, delta, replace=False)  # a delta resent is harmless too
    assert rows_of(dst, run_id) == after


def test_delta_for_an_unknown_run_needs_a_full_row(src: Store, dst: Store, run_id: str) -> None:
    delta = {"bundle_version": 1, "run": {"id": run_id, "heartbeat_at": 2e9},
             "tags": [{"key": "k", "value": "v"}]}  # fmt: skip
    with pytest.raises(BundleError, match="missing columns"):
        import_run(dst, delta, replace=False)
    assert dst.db.query("SELECT count(*) FROM tags") == [(0,)]  # rolled back
    bundle = wire(export_run(src, run_id))
    first = {"bundle_version": 1, "run": bundle["run"], "tags": bundle["tags"]}
    import_run(dst, first, replace=False)
    assert rows_of(dst, run_id)["tags"] == rows_of(src, run_id)["tags"]


# -- orphans ----------------------------------------------------------------------------------------


def test_imported_running_run_is_no_orphan(src: Store, sqlite_dst: Store, run_id: str) -> None:
    bundle = wire(export_run(src, run_id))
    _, host = envcap.user_and_host()
    # live on another machine of the same name, with a pid that means nothing here
    bundle["run"].update(status="running", ended_at=None, host=host, owner_pid=dead_pid())
    import_run(sqlite_dst, bundle)
    row = sqlite_dst.db.query_one(
        "SELECT status, owner_pid, owner_start FROM runs WHERE id = ?", (run_id,)
    )
    assert row == ("running", None, None)
    local = lifecycle.create_run(sqlite_dst, command=["x"], mode="run", owner_pid=dead_pid())
    assert lifecycle.recover_orphans(sqlite_dst) == [local]  # a local orphan still is one
    assert read.load_row(sqlite_dst, run_id)["status"] == "running"
    runbase_cmd("ls", env={"RUNBASE_DIR": str(sqlite_dst.root)}, check=True)  # recovers too
    assert read.load_row(sqlite_dst, run_id)["status"] == "running"


def test_import_keeps_a_local_owner(sqlite_dst: Store) -> None:
    mine = lifecycle.create_run(sqlite_dst, command=["x"], mode="run")
    owner = sqlite_dst.db.query_one("SELECT owner_pid, owner_start FROM runs WHERE id = ?", (mine,))
    bundle = wire(export_run(sqlite_dst, mine))
    bundle["run"].update(owner_pid=None, owner_start=None, name="renamed")
    import_run(sqlite_dst, bundle)  # e.g. pulled back from the server while it runs
    row = sqlite_dst.db.query_one(
        "SELECT name, owner_pid, owner_start FROM runs WHERE id = ?", (mine,)
    )
    assert row == ("renamed", os.getpid(), owner[1] if owner else None)


# -- untrusted input ----------------------------------------------------------------------------------

OTHER = "0" * 16


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``path`` (``run.id``, ``metrics.0.count``) of a bundle."""

    def apply(b: dict[str, Any]) -> None:
        *parts, last = path.split(".")
        target: Any = b
        for p in parts:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return apply


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda b: b.pop(key)


BAD = {
    "not an object": None,
    "version 2": _set("bundle_version", 2),
    "version as text": _set("bundle_version", "1"),
    "version as bool": _set("bundle_version", True),
    "no version": _drop("bundle_version"),
    "unknown top-level key": _set("evil", 1),
    "bad data mode": _set("data", "remote"),
    "bad run id": _set("run.id", "not-a-run-id"),
    "run id with upper case": _set("run.id", "0123456789ABCDEF"),
    "run id as a number": _set("run.id", 12),
    "no run": _drop("run"),
    "unknown run column": _set("run.name; DROP TABLE runs; --", "x"),
    "unknown params column": _set("params.0.evil", 1),
    "column name not a string": lambda b: b["tags"][0].update({1: "x"}),
    "params row of another run": _set("params.0.run_id", OTHER),
    "run_files row of another run": _set("run_files.0.run_id", OTHER),
    "bad base64": _set("metric_chunks.0.steps", "!!not base64!!"),
    "base64 of the wrong length": _set("metric_chunks.0.vals", "AAAA"),
    "chunk n mismatch": lambda b: b["metric_chunks"][0].update(n=b["metric_chunks"][0]["n"] + 1),
    "blob not a string": _set("metric_chunks.0.times", [1, 2]),
    "count as text": _set("metrics.0.count", "3"),
    "count as float": _set("metrics.0.count", 3.0),
    "exit_code as bool": _set("run.exit_code", True),
    "integer past 64 bits": _set("metrics.0.last_step", 1 << 70),
    "started_at as text": _set("run.started_at", "yesterday"),
    "started_at NaN": _set("run.started_at", "NaN"),
    "name null": _set("run.name", None),
    "name missing": lambda b: b["run"].pop("name"),
    "params row missing value": lambda b: b["params"][0].pop("value"),
    "params not a list": _set("params", {}),
    "row not an object": _set("tags.0", "stage=dev"),
    "NUL in text": _set("tags.0.value", "a\x00b"),
    "lone surrogate": _set("tags.0.value", "\ud800"),
    "text too long": _set("tags.0.value", "x" * ((16 << 20) + 1)),
    "bad status": _set("run.status", "zombie"),
    "command not JSON": _set("run.command", "python train.py"),
    "command not a list": _set("run.command", '"python"'),
    "code tree not an object id": lambda b: b["run"].update(
        code_json=json.dumps({**json.loads(b["run"]["code_json"]), "tree": "../../etc"})
    ),
    "logs entry without oid": _set("run.logs_json", json.dumps({"output": {"size": 3}})),
    "bad packages id": _set("run.packages_id", "blake3:xyz"),
    "bad run_files oid": _set("run_files.0.oid", "sha1:abc"),
    "bad run_files role": _set("run_files.0.role", "both"),
    "param object id bad": _set("params.0.value", '{"$object": "nope", "size": 3}'),
    "bad object kind": lambda b: b["objects"].update({next(iter(b["objects"])): "secrets"}),
    "bad object id": lambda b: b["objects"].update({"blake3:00": "code"}),
    "table missing in a full bundle": _drop("metric_chunks"),
    "data local but files stored": _set("data", "local"),
    "too many rows": lambda b: b.update(tags=[b["tags"][0]] * 1_000_001),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_bundles_are_refused_and_change_nothing(
    name: str, src: Store, sqlite_dst: Store, run_id: str
) -> None:
    good = wire(export_run(src, run_id))
    import_run(sqlite_dst, good)
    good["run"]["name"] = "changed"  # what a valid import would now write
    before = rows_of(sqlite_dst, run_id)
    mutate = BAD[name]
    bad: Any = None
    if mutate is not None:
        bad = copy.deepcopy(good)
        mutate(bad)
    with pytest.raises(BundleError, match="bad run bundle"):
        import_run(sqlite_dst, bad)
    assert rows_of(sqlite_dst, run_id) == before
    assert sqlite_dst.db.query("SELECT count(*) FROM runs") == [(1,)]


@pytest.mark.parametrize("dst", ["postgresql"], indirect=True)
def test_malformed_bundle_changes_nothing_on_postgresql(
    src: Store, dst: Store, run_id: str
) -> None:
    good = wire(export_run(src, run_id))
    import_run(dst, good)
    before = rows_of(dst, run_id)
    bad = copy.deepcopy(good)
    bad["run"]["name"] = "changed"
    bad["run_files"][-1]["run_id"] = OTHER  # the last row: caught before any write
    with pytest.raises(BundleError, match="run_files"):
        import_run(dst, bad)
    assert rows_of(dst, run_id) == before


def test_documented_keys(src: Store, run_id: str) -> None:
    text = (Path(__file__).parent.parent / "docs" / "store-format.md").read_text()
    section = text.split("## Run bundles", 1)[1].split("\n## ", 1)[0]
    keys = {
        k
        for line in section.splitlines()
        if line.startswith("| `")
        for k in re.findall(r"`(\w+)`", line.split("|")[1])
    }
    # every key a full bundle has (media: a run with some; sweep: a sweep's trial), and
    # the one only a live delta carries
    assert keys == set(export_run(src, run_id)) | {"media", "sweep", "log_chunks"}
