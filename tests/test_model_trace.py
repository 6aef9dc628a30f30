"""The chain from a deployed model back to its run and data (issue 19): `runbase trace
NAME@production`, `runbase fsck` checking the registry's audit chain, and `runbase gc`
keeping every registered version's bytes. Real runs, a real store, the real CLI."""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import blake3

from conftest import commit, documented_keys, runbase_cmd, write
from runbase.records import registry
from runbase.records.bundle import export_run
from runbase.store import Store

PY = sys.executable
ADMIN = registry.Actor("ana")


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def pipeline(project: Path) -> dict[str, str]:
    """prep (raw.csv -> clean.csv) from committed code, then train (clean.csv ->
    model.pkl) with train.py edited and not committed: ``{run name: id, "commit": sha}``."""
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
        import argparse, os, pickle
        import runbase
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        args = parser.parse_args()
        rows = open("data/clean.csv").read().splitlines()[1:]
        os.makedirs("out", exist_ok=True)
        pickle.dump({"rows": len(rows), "lr": args.lr}, open("out/model.pkl", "wb"))
        runbase.log({"acc": 0.91})
    """,
    )
    sha = commit(project, "the pipeline")
    runbase_cmd("run", "--name", "prep", "--", PY, "prep.py", cwd=project, check=True)
    with open(project / "train.py", "a") as f:
        f.write("# tuned by hand\n")  # one uncommitted line: the run is dirty
    runbase_cmd(
        "run", "--name", "train", "--", PY, "train.py", "--lr", "0.05", cwd=project, check=True
    )
    store = Store.open(project / ".runbase")
    ids = {str(n): str(i) for n, i in store.db.query("SELECT name, id FROM runs")}
    store.close()
    return {**ids, "commit": sha}


def register_and_promote(project: Path) -> str:
    """churn@v0.0.1 = out/model.pkl, promoted to production, through the library."""
    store = Store.open(project / ".runbase")
    src = registry.source_of_file(store, str(project / "out" / "model.pkl"))
    (ev,) = registry.register(store, "churn", src, message="first model", actor=ADMIN)
    registry.promote(store, "churn", ev.version or "", "production", message="ship", actor=ADMIN)
    store.close()
    return str(ev.version)


def trace_json(project: Path, target: str) -> dict[str, Any]:
    return json.loads(runbase_cmd("trace", target, "--json", cwd=project, check=True).stdout)


def test_trace_of_a_production_model(project: Path) -> None:
    runs = pipeline(project)
    version = register_and_promote(project)
    model, clean, raw = (
        b3(project / p) for p in ("out/model.pkl", "data/clean.csv", "data/raw.csv")
    )
    text = runbase_cmd("trace", "churn@production", cwd=project, check=True).stdout
    lines = text.splitlines()
    assert lines[0] == f"model churn@{version} (production)"
    assert lines[1].split() == [
        "hash",
        model,
        "(file,",
        f"{(project / 'out/model.pkl').stat().st_size}",
        "B)",
    ]
    assert lines[2].split() == ["path", "out/model.pkl"]
    assert lines[3].startswith("  registered") and lines[3].endswith("by ana: first model")
    assert lines[5] == f"run {runs['train']}  train  [finished]"
    fields = {
        line.split()[0]: line.strip() for line in lines if line.startswith("  ") and line[2] != " "
    }
    assert fields["command"].endswith("train.py --lr 0.05")
    assert fields["commit"] == (
        f"commit     {runs['commit']} on main  + uncommitted changes: 1 file, +1 -0 lines, "
        f"{fields['commit'].split(', ')[-1]}"
    )
    assert fields["commit"].endswith("bytes of patch")
    assert "      +1 -0       train.py" in lines
    assert lines[lines.index("  params:") + 1].split() == ["lr", "0.05"]
    assert lines[lines.index("  metrics:") + 1].split() == ["acc", "0.91"]
    env = lines[lines.index("  environment:") + 1 :]
    assert env[0].split() == ["python", platform.python_version()]
    assert any(e.split()[0] == "packages" and "in all" in e for e in env)
    # then the lineage: the version's bytes <- train <- clean.csv <- prep <- raw.csv
    tree = [line.strip() for line in lines[lines.index("lineage:") + 1 :]]
    assert tree == [
        f"churn@{version}  {model[:19]}",
        f"<- run {runs['train'][:10]} train [finished]",
        f"data/clean.csv  {clean[:19]}",
        f"<- run {runs['prep'][:10]} prep [finished]",
        f"data/raw.csv  {raw[:19]}",
        "(no recorded run produced these bytes)",
    ]

    view = trace_json(project, "churn@production")
    assert view["model"]["ref"] == f"churn@{version}" and view["model"]["stages"] == ["production"]
    assert view["model"]["oid"] == model and view["model"]["run"] == runs["train"]
    assert view["model"]["git_commit"] == runs["commit"] and view["model"]["external"] is False
    assert view["versions"] == [view["model"]]
    run = view["run"]
    assert (run["id"], run["name"], run["status"]) == (runs["train"], "train", "finished")
    assert run["code"]["commit"] == runs["commit"] and run["code"]["dirty"] is True
    assert run["code"]["changed_files"] == [{"path": "train.py", "added": 1, "removed": 0}]
    assert run["code"]["patch_bytes"] > 0 and run["code"]["branch"] == "main"
    assert run["params"] == {"lr": 0.05} and run["metrics"] == {"acc": 0.91}
    assert run["env"]["python"] == platform.python_version()
    assert run["env"]["packages_count"] > 0 and run["env"]["gpus"] == []
    # the exact chain as a graph
    nodes = {n["id"]: n for n in view["nodes"]}
    assert view["root"] == f"file:{model}" and nodes[view["root"]]["path"] == f"churn@{version}"
    assert {(e["from"], e["to"], e["kind"]) for e in view["edges"]} == {
        (f"run:{runs['train']}", f"file:{model}", "produced"),
        (f"file:{clean}", f"run:{runs['train']}", "read"),
        (f"run:{runs['prep']}", f"file:{clean}", "produced"),
        (f"file:{raw}", f"run:{runs['prep']}", "read"),
    }
    assert len(view["edges"]) == 4 and len(nodes) == 5
    # the document names every key (docs/trace.md)
    node_keys = {k for n in view["nodes"] for k in n}
    assert documented_keys("trace.md", "--json") == set(view) | node_keys | {"url"}
    assert documented_keys("trace.md", "run") == set(run)
    doc = (Path(__file__).parent.parent / "docs" / "trace.md").read_text()
    for key in [*run["code"], *run["code"]["changed_files"][0], *run["env"]]:
        assert re.search(rf"`[^`]*\b{key}\b[^`]*`", doc), key
    assert trace_json(project, f"churn@{version}")["model"] == view["model"]
    assert trace_json(project, "churn@latest")["run"]["id"] == runs["train"]

    # the file itself: which versions these bytes are, then its lineage as always
    text = runbase_cmd("trace", "out/model.pkl", cwd=project, check=True).stdout.splitlines()
    assert text[0] == f"these bytes are churn@{version} (production)"
    assert text[3].startswith("out/model.pkl") and f"run {runs['train'][:10]} train" in text[4]
    by_file = trace_json(project, "out/model.pkl")
    assert by_file["model"] is None and by_file["run"] is None
    assert [v["ref"] for v in by_file["versions"]] == [f"churn@{version}"]
    assert trace_json(project, "data/clean.csv")["versions"] == []

    # bad references: clear errors, no traceback
    for target, message in (
        ("churn@staging", "no version of churn is in stage 'staging'"),
        ("churn@v9.9.9", "no version v9.9.9 of model churn"),
        ("nope@production", "no model is named 'nope'"),
    ):
        proc = runbase_cmd("trace", target, cwd=project)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_trace_of_an_external_version_says_no_provenance(project: Path) -> None:
    (project / "vendor.bin").write_text("weights from a vendor\n")
    store = Store.open(project / ".runbase", create=True)
    src = registry.source_of_file(store, str(project / "vendor.bin"), external=True)
    registry.register(store, "vendor", src, version="v2.0.0", actor=ADMIN)
    store.close()
    lines = runbase_cmd("trace", "vendor@v2.0.0", cwd=project, check=True).stdout.splitlines()
    assert lines[0] == "model vendor@v2.0.0"
    assert "  no provenance: registered --external, no recorded run produced it" in lines
    assert lines[-1].strip() == "(no recorded run produced these bytes)"
    view = trace_json(project, "vendor@latest")
    assert view["model"]["external"] is True and view["model"]["run"] is None
    assert view["run"] is None and view["edges"] == []


def test_fsck_checks_the_registry_chain(project: Path) -> None:
    pipeline(project)
    register_and_promote(project)
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "model registry: 2 events, audit chain intact" in proc.stdout
    conn = sqlite3.connect(project / ".runbase" / "runbase.db")
    with conn:
        conn.execute("UPDATE model_events SET message = 'nothing happened' WHERE seq = 2")
    conn.close()
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 1
    assert "model registry: event 2 does not match its hash (its fields were edited)" in proc.stderr
    assert "model registry: 2 events, audit chain BROKEN" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_gc_keeps_the_bytes_of_every_version(project: Path) -> None:
    """A run that kept only hashes (--hash-only): registering its outputs stores their
    bytes, and the registry alone keeps them once the files are gone from disk."""
    write(
        project,
        "export.py",
        """
        import os
        os.makedirs("out/encoder", exist_ok=True)
        for i in range(3):
            open(f"out/encoder/part{i}.bin", "w").write(f"encoder part {i}\\n")
        open("out/model.pkl", "w").write("a model\\n")
    """,
    )
    (project / ".gitignore").write_text("out/\n")
    commit(project, "export")
    runbase_cmd(
        "run", "--hash-only", "-o", "out/encoder", "--name", "export", "--", PY, "export.py",
        cwd=project, check=True,
    )  # fmt: skip
    store = Store.open(project / ".runbase")
    (run_id,) = [str(r[0]) for r in store.db.query("SELECT id FROM runs")]
    model = registry.source_of_run_path(store, run_id, "out/model.pkl")
    encoder = registry.source_of_run_path(store, run_id, "out/encoder")
    assert encoder.kind == "dir" and model.kind == "file"
    registry.register(store, "churn", model, actor=ADMIN)
    registry.register(store, "encoder", encoder, actor=ADMIN)
    blobs = [b3(p) for p in sorted((project / "out" / "encoder").iterdir())]
    kept = [model.oid, encoder.oid, *blobs]
    # no run keeps these bytes: only the registry refers to them
    stored = store.db.query("SELECT count(*) FROM run_files WHERE stored = 1 AND oid IN (?, ?)",
                            (model.oid, encoder.oid))  # fmt: skip
    assert stored == [(0,)]
    # nor does the run's bundle carry the registry (it travels as events, not with runs)
    bundle = export_run(store, run_id)
    assert not [k for k in bundle if k.startswith("model")]
    assert not set(kept) & set(bundle["objects"])
    orphan = store.objects.put_bytes(b"nobody refers to me")
    for root, _, files in os.walk(project / "out"):
        for name in files:
            os.remove(os.path.join(root, name))
    old = time.time() - 7200  # older than gc's grace period
    for oid in [*kept, orphan]:
        os.utime(store.objects.path(oid), (old, old))
    runbase_cmd("gc", "--yes", cwd=project, check=True)
    assert not store.objects.exists(orphan)  # gc did run
    assert all(store.objects.exists(oid) for oid in kept)
    assert registry.bytes_present(store, encoder.oid, "dir")
    assert registry.bytes_present(store, model.oid, "file")
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 0 and "0 missing" in proc.stdout, proc.stderr
    # a version whose bytes are lost is reported by fsck as the registry's
    store.objects.delete(model.oid)
    proc = runbase_cmd("fsck", cwd=project)
    assert proc.returncode == 1 and f"missing: {model.oid} (model of run {run_id})" in proc.stderr
    store.close()
