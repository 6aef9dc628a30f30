"""Data inputs and outputs: detected, hashed, stored once (P2, first part)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import blake3

from conftest import WAIT_FOR_RECORD, runbase_cmd, write
from runbase.store import Store
from runbase.store.schema import SCHEMA_VERSION

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
    assert outs["out/preds.parquet"]["source"] in ("watch", "scan")  # not the audit hook
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
        WAIT_FOR_RECORD
        + """
print(open("data.txt").read())
wait_for_record(lambda rec: stored_input(rec, "data.txt"), "the input to be hashed")
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
    conn.execute("ALTER TABLE runs DROP COLUMN notebook_json")
    conn.execute("ALTER TABLE runs DROP COLUMN executor_json")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = Store.open(tmp_path / ".runbase")
    assert store.db.schema_version() == SCHEMA_VERSION
    assert store.db.query("SELECT count(*) FROM run_files") == [(0,)]
    assert store.db.query("SELECT notebook_json FROM runs") == []


def _pipeline(project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "raw.csv").write_text(
        "x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(100))
    )
    (project / ".gitignore").write_text("data/\nout/\n")
    write(
        project,
        "prep.py",
        """
        rows = open("data/raw.csv").read().splitlines()
        open("data/clean.csv", "w").write("\\n".join(rows[:50]) + "\\n")
    """,
    )
    write(
        project,
        "train.py",
        """
        import os, pickle
        import pandas as pd
        df = pd.read_csv("data/clean.csv")
        os.makedirs("out", exist_ok=True)
        pickle.dump({"mean": float(df["y"].mean())}, open("out/model.pkl", "wb"))
    """,
    )
    runbase_cmd("run", "--name", "prep", "--", PY, "prep.py", cwd=project, check=True)
    runbase_cmd("run", "--name", "train", "--", PY, "train.py", cwd=project, check=True)


def test_trace_follows_bytes_through_runs(project: Path) -> None:
    _pipeline(project)
    text = runbase_cmd("trace", "out/model.pkl", cwd=project, check=True).stdout
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0].startswith("out/model.pkl") and "train" in lines[1]
    assert (
        lines[2].startswith("data/clean.csv")
        and "prep" in lines[3]
        and lines[4].startswith("data/raw.csv")
    )
    assert "no recorded run" in lines[5]
    graph = json.loads(
        runbase_cmd("trace", "out/model.pkl", "--json", cwd=project, check=True).stdout
    )
    runs = {n["name"] for n in graph["nodes"] if n["type"] == "run"}
    assert runs == {"prep", "train"}
    kinds = sorted(e["kind"] for e in graph["edges"])
    assert kinds == ["produced", "produced", "read", "read"]
    # other bytes at the same path have no history
    (project / "out" / "model.pkl").write_bytes(b"retrained elsewhere")
    assert (
        "no recorded run" in runbase_cmd("trace", "out/model.pkl", cwd=project, check=True).stdout
    )


def test_checkout_round_trip_and_conflicts(project: Path, tmp_path: Path) -> None:
    _pipeline(project)
    rows = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    train = next(r["id"] for r in rows if r["name"] == "train")
    into = tmp_path / "restored"
    proc = runbase_cmd("checkout", train, "--into", str(into), "--outputs", cwd=project, check=True)
    assert "files written" in proc.stdout
    for rel_path in ("train.py", "prep.py", "data/clean.csv", "out/model.pkl"):
        assert b3(into / rel_path) == b3(project / rel_path), rel_path
    (into / "data" / "clean.csv").write_text("local edit\n")
    proc = runbase_cmd("checkout", train, "--into", str(into), cwd=project)
    assert proc.returncode == 1 and "data/clean.csv" in proc.stderr and "--force" in proc.stderr
    assert (into / "data" / "clean.csv").read_text() == "local edit\n"  # nothing written
    runbase_cmd(
        "checkout", train, "--into", str(into), "--data", "--force", cwd=project, check=True
    )
    assert b3(into / "data" / "clean.csv") == b3(project / "data" / "clean.csv")


def test_fsck_gc_du(project: Path) -> None:
    _pipeline(project)
    runbase_cmd("run", "--name", "prep-again", "--", PY, "prep.py", cwd=project, check=True)
    assert runbase_cmd("fsck", cwd=project).returncode == 0
    du = json.loads(runbase_cmd("du", "--json", cwd=project, check=True).stdout)
    assert du["runs"] == 3 and du["by_kind"]["data"] > 0 and du["by_kind"]["code"] > 0
    assert du["saved_by_dedup"] > 0  # the second prep run re-used every object
    # corrupt one byte of a stored data object
    store = Store.open(project / ".runbase")
    raw = b3(project / "data" / "raw.csv")
    path = store.objects.path(raw)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 1 and f"corrupt: {raw}" in proc.stderr
    # moved aside (the store no longer claims it: a pull --data fetches a good copy)
    assert not path.exists() and (project / ".runbase" / "corrupt" / raw[7:]).exists()
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 1 and f"missing: {raw}" in proc.stderr
    # an unreferenced, old object is collected; recent ones are kept for live runs
    orphan = store.objects.put_bytes(b"nobody refers to me")
    assert "1 recent" in runbase_cmd("gc", cwd=project, check=True).stdout
    import os
    import time

    old = time.time() - 7200
    os.utime(store.objects.path(orphan), (old, old))
    assert "would delete" in runbase_cmd("gc", cwd=project, check=True).stdout
    assert store.objects.exists(orphan)
    runbase_cmd("gc", "--yes", cwd=project, check=True)
    assert not store.objects.exists(orphan)
    assert store.objects.exists(b3(project / "data" / "clean.csv"))  # referenced: kept


def test_io_invisible_to_audit_hooks_is_caught(project: Path) -> None:
    """pyarrow reads and a non-Python child process: seen by the tree watcher."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (project / "data").mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3]}), project / "data" / "features.parquet")
    (project / "data" / "labels.txt").write_text("a\nb\nc\n")
    write(
        project,
        "t.py",
        """
        import subprocess
        import pyarrow.parquet as pq
        n = pq.read_table("data/features.parquet").num_rows
        subprocess.run("cat data/labels.txt > data/labels_copy.txt", shell=True, check=True)
        print(n)
    """,
    )
    proc = runbase_cmd("run", "--", PY, "t.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert ins["data/features.parquet"]["hash"] == b3(project / "data/features.parquet")
    assert ins["data/features.parquet"]["source"] == "watch"
    assert ins["data/labels.txt"]["hash"] == b3(project / "data/labels.txt")
    assert outs["data/labels_copy.txt"]["hash"] == b3(project / "data/labels_copy.txt")


def test_trace_accepts_a_short_hash_and_lists_every_producer(project: Path) -> None:
    _pipeline(project)
    # the same bytes produced again by a second run: trace names both producers
    runbase_cmd("run", "--name", "prep2", "--", PY, "prep.py", cwd=project, check=True)
    full = b3(project / "data" / "clean.csv")
    for prefix in (full[:19], full[7:19], full[7:19].upper()):  # as trace and diff print it
        text = runbase_cmd("trace", prefix, cwd=project, check=True).stdout
        lines = text.splitlines()
        assert lines[0].startswith(full) and "prep2" in lines[1], text
        assert "also produced by run" in lines[2], text
    assert "prep" in runbase_cmd("trace", full, cwd=project, check=True).stdout
    proc = runbase_cmd("trace", "blake3:" + "0" * 64, cwd=project)
    assert proc.returncode == 0 and "no recorded run" in proc.stdout
    # 17 outputs: two of them must share a first hex digit (pigeonhole)
    write(
        project,
        "many.py",
        """
        import os
        os.makedirs("out/many", exist_ok=True)
        for i in range(17):
            open(f"out/many/{i}.txt", "w").write(f"file {i}\\n")
    """,
    )
    runbase_cmd("run", "--", PY, "many.py", cwd=project, check=True)
    digits = [b3(p)[7] for p in (project / "out" / "many").iterdir()]
    shared = next(d for d in digits if digits.count(d) > 1)
    proc = runbase_cmd("trace", shared, cwd=project)
    assert proc.returncode != 0 and "matches several files" in proc.stderr
    assert f"blake3:{shared}" in proc.stderr and "Traceback" not in proc.stderr
    proc = runbase_cmd("trace", "not-a-file-nor-hash", cwd=project)
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_show_text_has_the_data_and_the_code_change(project: Path) -> None:
    _pipeline(project)
    (project / "README.md").write_text("# project\nedited\n")  # one tracked line changed
    runbase_cmd("run", "--name", "train", "--", PY, "train.py", cwd=project, check=True)
    text = runbase_cmd("show", cwd=project, check=True).stdout
    lines = text.splitlines()
    inputs = lines[lines.index("inputs:") + 1 :]
    assert inputs[0].split() == ["path", "hash", "size", "kept"]
    clean = b3(project / "data" / "clean.csv")
    assert inputs[1].split()[:2] == ["data/clean.csv", clean[:19]] and "stored" in inputs[1]
    outputs = lines[lines.index("outputs:") + 1 :]
    assert outputs[1].split()[:2] == ["out/model.pkl", b3(project / "out" / "model.pkl")[:19]]
    # the uncommitted change: totals on the patch line, then one line per file
    rid = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)[0]["id"]
    patch = next(line for line in lines if line.strip().startswith("patch"))
    assert f"(runbase diff {rid[:10]})" in patch and ", +" in patch
    files = {line.split()[-1]: line.split()[:-1] for line in lines if line.startswith("    +")}
    assert files["README.md"] == ["+1", "-0"] and "train.py" in files and "prep.py" in files
    no_patch = runbase_cmd("show", "--no-patch", cwd=project, check=True).stdout.splitlines()
    patch_line = next(x for x in no_patch if x.strip().startswith("patch"))
    assert f"(runbase diff {rid[:10]})" in patch_line
    assert not [line for line in no_patch if line.startswith("    +")]


def test_patch_summary_counts_lines_per_file() -> None:
    from runbase.render.show import patch_summary

    patch = (
        "diff --git a/a.py b/a.py\nindex 1..2 100644\n--- a/a.py\n+++ b/a.py\n"
        "@@ -1,3 +1,3 @@\n keep\n-old\n--- not a header: a removed line\n+new\n+++ added too\n"
        "diff --git a/img.png b/img.png\nnew file mode 100644\nGIT binary patch\nliteral 3\n"
        "diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    )
    assert patch_summary(patch) == [("a.py", 2, 2), ("img.png", -1, 0), ("gone.txt", 0, 1)]


def test_files_hashed_soon_after_they_were_written_are_cached(tmp_path: Path) -> None:
    """A run's outputs are hashed as it ends, right after they were written: the next
    snapshot must cost a stat per file, not a re-hash (the 2 s rule made it one)."""
    import os
    import time

    from runbase.capture.files import snapshot_path
    from runbase.store.statcache import StatCache, fine_grained_devices

    data = tmp_path / "data"
    data.mkdir()
    if os.stat(data).st_dev not in fine_grained_devices():
        import pytest

        pytest.skip("the test directory is not on a local file system with fine timestamps")
    store = Store.open(tmp_path / ".runbase", create=True)
    settled, racy = data / "settled.bin", data / "racy.bin"
    settled.write_bytes(b"a" * 1000)
    racy.write_bytes(b"b" * 1000)
    now = time.time()
    os.utime(settled, (now - 0.5, now - 0.5))  # written half a second ago: cached now
    os.utime(racy, (now + 5, now + 5))  # as if written during the hash: never trusted
    first = snapshot_path(store, str(data))
    assert first is not None
    cache = StatCache(store)
    assert cache.lookup(str(settled), os.lstat(settled)) == (b3(settled), True)
    assert cache.lookup(str(racy), os.lstat(racy)) is None
    # the cached entry is still checked against the file: a change of size is seen
    settled.write_bytes(b"c" * 1001)
    os.utime(settled, (now - 0.5, now - 0.5))
    assert StatCache(store).lookup(str(settled), os.lstat(settled)) is None
    assert snapshot_path(store, str(data)) != first


def test_stat_cache_rows_reused_across_lookups_stay_exact(tmp_path: Path) -> None:
    """Files of one directory snapshotted one by one reuse its decoded row (not decoded
    per file), but never a row that changed in the store meanwhile."""
    import os
    import time

    from runbase.capture.files import snapshot_path
    from runbase.store.statcache import StatCache, forget

    store = Store.open(tmp_path / ".runbase", create=True)
    flat = tmp_path / "flat"
    flat.mkdir()
    old = time.time() - 600
    for i in range(30):
        (flat / f"f{i}.txt").write_text(f"file {i}\n")
        os.utime(flat / f"f{i}.txt", (old, old))
    for p in sorted(flat.iterdir()):  # as a run's reads are hashed: one file at a time
        assert snapshot_path(store, str(p)) == (b3(p), p.stat().st_size)
    one = flat / "f3.txt"
    assert StatCache(store).lookup(str(one), os.lstat(one)) == (b3(one), True)
    # gc/fsck drop the entries of objects they delete: a reused row must not vouch for it
    assert forget(store, {b3(one)}) == 1
    assert StatCache(store).lookup(str(one), os.lstat(one)) is None
    assert StatCache(store).lookup(str(flat / "f4.txt"), os.lstat(flat / "f4.txt")) is not None
    # a cache that reads the row, then another that adds an entry: the first is unaffected
    reader, writer = StatCache(store), StatCache(store)
    assert reader.lookup(str(one), os.lstat(one)) is None
    writer.remember(str(one), os.lstat(one), b3(one), True)
    assert reader.lookup(str(one), os.lstat(one)) is None
    writer.save()
    assert StatCache(store).lookup(str(one), os.lstat(one)) == (b3(one), True)


def test_file_events_noted_in_a_batch_as_one_by_one(tmp_path: Path) -> None:
    """The supervisor notes each ingest's file events in one batch (a few queries and
    one write transaction): the record must be exactly that of noting them one by one
    (roles, hashes, stored, withheld, changed, read-back outputs, preimages, URLs)."""
    import os
    import time

    from runbase.records import lifecycle
    from runbase.records.files import _IN_CHUNK, note_file, withhold_input
    from runbase.records.ingest import IngestResult

    root = tmp_path / "proj"
    store = Store.open(tmp_path / ".runbase", create=True)
    old_ns = time.time_ns() - 600 * 10**9
    many = []
    for i in range(_IN_CHUNK + 20):  # more paths than one lookup query holds
        p = root / "many" / f"d{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"row {i}\n")
        many.append(p)
    for name, text in [
        ("a.bin", "a"),
        (".env", "TOKEN=x"),
        ("moved.bin", "m"),
        ("conf.yaml", "k: 1"),
    ]:
        (root / name).write_text(text)
    (root / "sub").mkdir()
    (root / "sub" / "x.txt").write_text("x")
    for p in [*many, *root.iterdir(), root / "sub" / "x.txt"]:
        os.utime(p, ns=(old_ns, old_ns))
    os.utime(root / "moved.bin", ns=(old_ns + 10**9, old_ns + 10**9))  # changed since the read
    before = ("blake3:" + "0" * 64, 7, False)  # bytes hashed by the process before a write

    def events() -> list[dict]:
        fresh = time.time_ns() + 10**9
        (root / "own.bin").write_text("own")
        (root / "new.bin").write_text("new")
        for p in (root / "own.bin", root / "new.bin"):
            os.utime(p, ns=(fresh, fresh))
        e = [{"path": str(p.relative_to(root)), "op": "r", "mtime_ns": old_ns} for p in many]
        return [
            *e[:300],
            {"path": "a.bin", "op": "r", "mtime_ns": old_ns},
            {"path": "a.bin", "op": "r", "mtime_ns": old_ns},  # read twice
            {"path": str(root / ".env"), "op": "r", "mtime_ns": old_ns},  # secret: hashed only
            {"path": "conf.yaml", "op": "r", "mtime_ns": old_ns},  # withheld before
            {"path": "moved.bin", "op": "r", "mtime_ns": old_ns},
            {"path": "gone.bin", "op": "r", "mtime_ns": old_ns},  # deleted since the read
            {"path": "sub", "op": "r"},  # a directory, no mtime reported
            {"path": "own.bin", "op": "w"},
            {"path": "own.bin", "op": "r", "mtime_ns": fresh},  # its own output read back
            {"path": "new.bin", "op": "r", "mtime_ns": fresh},  # decided at the end
            {"path": "over.bin", "op": "r", "mtime_ns": old_ns},
            {"path": "over.bin", "op": "r", "mtime_ns": old_ns, "oid": before[0], "size": 7},
            {"path": "s3://bucket/key", "op": "r"},
            {"path": "out/model.pt", "op": "w"},
            *e[300:],
        ]

    rows = []
    for batched in (False, True):
        run_id = lifecycle.create_run(store, command=["x"], mode="api", cwd=str(root))
        withhold_input(store, run_id, str(root), str(root), "conf.yaml")
        evs = events()
        if batched:
            lifecycle.handle_events(
                store, run_id, IngestResult(events=[{"\x00k": "file", **e} for e in evs])
            )
        else:
            for e in evs:
                pre = (e["oid"], e["size"], False) if "oid" in e else None
                role = "output" if e["op"] == "w" else "input"
                note_file(store, run_id, str(root), e["path"], role, "auto", e.get("mtime_ns"), pre)
        rows.append(
            store.db.query(
                "SELECT role, path, oid, size, stored, source, url, changed, kind FROM run_files "
                "WHERE run_id = ? ORDER BY role, path",
                (run_id,),
            )
        )
    one_by_one, batch = rows
    assert batch == one_by_one
    got = {(r[0], r[1]): r for r in batch}
    assert len(got) == len(many) + 11
    assert got[("input", "a.bin")][2:5] == (b3(root / "a.bin"), 1, 1)
    assert got[("input", ".env")][2:5] == (b3(root / ".env"), 7, 0)
    assert got[("input", "conf.yaml")][4:6] == (0, "config")
    assert got[("input", "moved.bin")][2] is None and got[("input", "moved.bin")][7] == 1
    assert got[("input", "gone.bin")][7] == 1
    assert got[("input", "sub")][8] == "dir"
    assert ("input", "own.bin") not in got and got[("input", "new.bin")][2] is None
    assert got[("input", "over.bin")][2:5] == (before[0], 7, 0)
    assert got[("input", "s3://bucket/key")][6] == "s3://bucket/key"
    assert all(got[("input", str(p.relative_to(root)))][2] == b3(p) for p in many)
