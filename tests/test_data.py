"""Data inputs and outputs: detected, hashed, stored once (P2, first part)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import blake3

from conftest import runbase_cmd, write
from runbase.store import Store

PY = sys.executable


def record(project: Path, ref: str = "latest") -> dict:
    return json.loads(
        runbase_cmd("show", ref, "--json", "--no-patch", cwd=project, check=True).stdout
    )


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def by_path(items: list[dict]) -> dict[str, dict]:
    return {i["path"]: i for i in items}


def objects_bytes(project: Path) -> int:
    return sum(
        p.stat().st_size for p in (project / ".runbase" / "objects").rglob("*") if p.is_file()
    )


def test_prep_then_train_inputs_and_outputs_detected(project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "raw.csv").write_text(
        "x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(200))
    )
    (project / ".gitignore").write_text("data/\nout/\n")  # data is usually not committed
    write(
        project,
        "prep.py",
        """
        with open("data/raw.csv") as f:
            rows = f.read().splitlines()
        with open("data/clean.csv", "w") as f:
            f.write("\\n".join(r for r in rows if not r.endswith(",5")) + "\\n")
        with open("scratch.tmp", "w") as f:   # a temp file, deleted: not an output
            f.write("x")
        import os; os.remove("scratch.tmp")
    """,
    )
    write(
        project,
        "train.py",
        """
        import os, pickle
        import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
        df = pd.read_csv("data/clean.csv")
        model = {"mean_y": float(df["y"].mean())}
        os.makedirs("out", exist_ok=True)
        with open("out/model.pkl", "wb") as f:
            pickle.dump(model, f)
        pq.write_table(pa.table({"pred": [model["mean_y"]] * 3}), "out/preds.parquet")  # unseen by audit hooks
    """,
    )
    assert runbase_cmd("run", "--", PY, "prep.py", cwd=project).returncode == 0
    prep = record(project)
    ins, outs = by_path(prep["inputs"]), by_path(prep["outputs"])
    assert set(ins) == {"data/raw.csv"} and set(outs) == {"data/clean.csv"}
    assert (
        ins["data/raw.csv"]["hash"] == b3(project / "data/raw.csv")
        and ins["data/raw.csv"]["stored"]
    )
    assert outs["data/clean.csv"]["hash"] == b3(project / "data/clean.csv")
    assert outs["data/clean.csv"]["source"] == "auto"

    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    train = record(project)
    ins, outs = by_path(train["inputs"]), by_path(train["outputs"])
    assert set(ins) == {"data/clean.csv"} and ins["data/clean.csv"]["hash"] == outs_hash(
        prep, "data/clean.csv"
    )
    assert set(outs) == {"out/model.pkl", "out/preds.parquet"}
    assert outs["out/model.pkl"]["hash"] == b3(project / "out/model.pkl")
    assert outs["out/preds.parquet"]["hash"] == b3(project / "out/preds.parquet")
    assert outs["out/preds.parquet"]["source"] == "scan"
    store = Store.open(project / ".runbase")
    for item in [*train["inputs"], *train["outputs"]]:
        assert store.objects.get_bytes(item["hash"]) == (project / item["path"]).read_bytes()


def outs_hash(rec: dict, path: str) -> str:
    return by_path(rec["outputs"])[path]["hash"]


def test_same_data_twice_is_stored_once(project: Path) -> None:
    (project / "big.bin").write_bytes(bytes(range(256)) * 40_000)  # 10 MiB
    write(project, "read.py", "open('big.bin', 'rb').read()\n")
    runbase_cmd("run", "--", PY, "read.py", cwd=project, check=True)
    first = objects_bytes(project)
    runbase_cmd("run", "--", PY, "read.py", cwd=project, check=True)
    assert (
        objects_bytes(project) - first < 64 * 1024
    )  # the second run adds only metadata-size objects
    assert record(project)["inputs"][0]["size"] == 10_240_000


def test_changed_input_is_flagged(project: Path) -> None:
    (project / "data.txt").write_text("version 1\n")
    write(
        project,
        "mutate.py",
        """
        import time
        print(open("data.txt").read())
        time.sleep(1.5)                      # let the supervisor hash the input as read
        with open("data.txt", "a") as f:
            f.write("version 2\\n")
    """,
    )
    runbase_cmd("run", "--", PY, "mutate.py", cwd=project, check=True)
    rec = record(project)
    inp = by_path(rec["inputs"])["data.txt"]
    assert inp["changed_during_run"] is True
    store = Store.open(project / ".runbase")
    assert store.objects.get_bytes(inp["hash"]) == b"version 1\n"  # the bytes that were read


def test_declared_data_url_directory_and_hash_only(project: Path) -> None:
    (project / "images").mkdir()
    for i in range(3):
        (project / "images" / f"{i}.png").write_bytes(bytes([i]) * 100)
    write(
        project,
        "t.py",
        """
        import runbase
        runbase.input("s3://bucket/dataset/v3")
        path = runbase.output("report.txt")
        open(path, "w").write("ok")
    """,
    )
    proc = runbase_cmd("run", "--input", "images", "--hash-only", "--", PY, "t.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert (
        ins["s3://bucket/dataset/v3"]["url"] == "s3://bucket/dataset/v3"
        and ins["s3://bucket/dataset/v3"]["hash"] is None
    )
    assert ins["images"]["source"] == "declared" and ins["images"]["size"] == 300
    assert not ins["images"]["stored"]
    assert (
        outs["report.txt"]["hash"] == b3(project / "report.txt")
        and not outs["report.txt"]["stored"]
    )
    store = Store.open(project / ".runbase")
    assert not store.objects.exists(outs["report.txt"]["hash"])  # hash-only: no copy kept


def test_imports_are_not_data_but_config_files_are(project: Path) -> None:
    write(project, "lib/helpers.py", "X = 1\n")
    write(project, "config.yaml", "lr: 0.1\n")
    write(
        project,
        "t.py",
        "import sys; sys.path.insert(0, 'lib'); import helpers\nopen('config.yaml').read()\n",
    )
    runbase_cmd("run", "--", PY, "t.py", cwd=project, check=True)
    rec = record(project)
    assert [i["path"] for i in rec["inputs"]] == ["config.yaml"] and rec["outputs"] == []


def test_schema_1_store_is_migrated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".runbase", create=True)
    store.close()
    conn = sqlite3.connect(tmp_path / ".runbase" / "runbase.db")
    conn.execute("DROP TABLE run_files")
    conn.execute("ALTER TABLE runs DROP COLUMN data_policy")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = Store.open(tmp_path / ".runbase")
    assert store.db.schema_version() == 2
    assert store.db.query("SELECT count(*) FROM run_files") == [(0,)]
