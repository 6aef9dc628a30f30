"""`runbase model` (docs/models.md) on a real store made by real runs: register from a
run's output and from a file, versions and bumps, stages, the audit log and its
verification against edits and deletions made directly in SQLite, delivery of exact
bytes (`model get`), the drift check (`model status`) and the library API."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from conftest import runbase_cmd, start_server, write

PY = sys.executable

TRAIN = """
import os, sys, runbase
os.makedirs("out", exist_ok=True)
tag = sys.argv[1]
with open("out/model.pkl", "w") as f:
    f.write("weights " + tag)
d = runbase.output("out/tree")
os.makedirs(d + "/sub", exist_ok=True)
open(d + "/w.bin", "w").write("tree " + tag)
open(d + "/sub/config.json", "w").write('{"layers": 3}')
runbase.log(acc=float(sys.argv[2]), loss=0.5)
"""


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def rb(project: Path, *args: str, code: int | None = 0) -> Any:
    """`runbase ARGS` in the project; its JSON when --json is given, else the process.
    ``code``: the exit status it must end with (None: any)."""
    proc = runbase_cmd(*args, cwd=project)
    if code is not None:
        assert proc.returncode == code, (
            f"runbase {' '.join(args)} exited {proc.returncode}, not {code}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else proc


def doc_keys(heading: str) -> set[str]:
    """The keys the table under ``heading`` of docs/models.md names (up to the next
    heading): formats are specs, compared here with real output."""
    text = (Path(__file__).parent.parent / "docs" / "models.md").read_text()
    part = text.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    keys: set[str] = set()
    for line in part.splitlines():
        m = re.match(r"\|\s*((?:`[^`]+`(?:,\s*)?)+)\s*\|", line)
        if m:
            keys |= set(re.findall(r"`([^`]+)`", m.group(1)))
    return keys


def train(project: Path, tag: str, acc: float) -> str:
    """One real run writing out/model.pkl and the directory out/tree; its id."""
    write(project, "train.py", TRAIN)
    rb(project, "run", "--", PY, "train.py", tag, str(acc))
    return str(rb(project, "show", "latest", "--json", "--no-patch")["id"])


@pytest.fixture
def two_runs(project: Path) -> tuple[Path, str, str]:
    run1 = train(project, "one", 0.81)
    v1_bytes = (project / "out/model.pkl").read_bytes()
    run2 = train(project, "two", 0.86)
    (project / "v1.pkl").write_bytes(v1_bytes)  # what run 1 wrote, kept aside
    return project, run1, run2


def test_register_promote_rollback_log_and_verify(two_runs: tuple[Path, str, str]) -> None:
    project, run1, run2 = two_runs
    # a run's output (RUN:PATH) and a file on disk found by its bytes (run 2 wrote it)
    first = rb(
        project, "model", "register", "churn", f"{run1}:out/model.pkl", "-m", "baseline", "--json"
    )
    assert [e["action"] for e in first["events"]] == ["register"]
    assert first["events"][0]["version"] == "v0.0.1" and first["events"][0]["run"] == run1
    second = rb(project, "model", "register", "churn", "out/model.pkl", "--json")["events"][0]
    assert (second["version"], second["run"]) == ("v0.0.2", run2)
    assert second["oid"] == b3(project / "out/model.pkl")
    # the same bytes twice, an existing number: refused, nothing written
    assert (
        "already churn@v0.0.1" in rb(project, "model", "register", "churn", "v1.pkl", code=1).stderr
    )
    rb(project, "model", "register", "churn", f"{run1}:out/tree", "--version", "v0.0.2", code=1)
    # bytes no run produced: refused without --external (usage), accepted with it
    (project / "hand-made.pkl").write_bytes(b"made by hand")
    refused = rb(project, "model", "register", "churn", "hand-made.pkl", code=2)
    assert "--external" in refused.stderr
    ext = rb(project, "model", "register", "churn", "hand-made.pkl", "--external", "--bump-minor",
             "--json")["events"][0]  # fmt: skip
    assert ext["version"] == "v0.1.0" and ext["run"] is None and ext["data"]["external"] is True
    major = rb(project, "model", "register", "churn", f"{run2}:out/tree", "--bump-major", "--json")
    assert major["events"][0]["version"] == "v1.0.0"
    explicit = rb(
        project, "model", "register", "churn", f"{run1}:out/tree", "--version", "1.2.3", "--json"
    )
    assert explicit["events"][0]["version"] == "v1.2.3"
    rb(project, "model", "register", "churn", "x:y", "--version", "v9", code=2)
    rb(
        project,
        "model",
        "register",
        "churn",
        "v1.pkl",
        "--version",
        "v3.0.0",
        "--bump-minor",
        code=2,
    )

    # stages: promote, promote, rollback, demote
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "-m", "first deploy")
    rb(project, "model", "promote", "churn", "0.0.2", "--to", "production", "-m", "acc +0.05")
    rb(project, "model", "promote", "churn", "latest", "--to", "staging", "-m", "try it")
    line = rb(project, "model", "rollback", "churn", "production", "-m", "p99 latency").stdout
    assert line.strip() == "rolled back churn@production: v0.0.2 -> v0.0.1"
    rb(project, "model", "demote", "churn", "--from", "staging", "-m", "done trying")
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "-m", "again", code=1)

    log = rb(project, "model", "log", "churn", "--json")["events"]
    changes = [(e["action"], e["stage"], e["from_version"], e["to_version"], e["message"])
               for e in log if e["action"] != "register"]  # fmt: skip
    assert changes == [
        ("promote", "production", None, "v0.0.1", "first deploy"),
        ("promote", "production", "v0.0.1", "v0.0.2", "acc +0.05"),
        ("promote", "staging", None, "v1.2.3", "try it"),
        ("rollback", "production", "v0.0.2", "v0.0.1", "p99 latency"),
        ("demote", "staging", "v1.2.3", None, "done trying"),
    ]
    assert [e["seq"] for e in log] == list(range(1, 11))
    assert all(e["user"] and e["time"].endswith("+00:00") for e in log)
    assert log[0]["prev_hash"] == "sha256:" + "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(log, log[1:], strict=False))
    assert log[5]["oid"] == first["events"][0]["oid"] and log[5]["run"] == run1
    text = rb(project, "model", "log", "churn").stdout
    assert "production: v0.0.2 -> v0.0.1" in text and "p99 latency" in text

    # show: versions with stages and their runs' metrics side by side
    detail = rb(project, "model", "show", "churn", "--json")
    by_version = {v["version"]: v for v in detail["versions"]}
    assert list(by_version) == ["v1.2.3", "v1.0.0", "v0.1.0", "v0.0.2", "v0.0.1"]
    assert detail["stages"] == {"production": "v0.0.1"}
    assert by_version["v0.0.1"]["stages"] == ["production"]
    assert by_version["v0.0.1"]["metrics"]["acc"] == 0.81
    assert by_version["v0.0.2"]["metrics"]["acc"] == 0.86
    assert by_version["v0.1.0"]["external"] is True and by_version["v0.1.0"]["run"] is None
    shown = rb(project, "model", "show", "churn").stdout
    assert "no provenance" in shown and "acc" in shown and "production" in shown
    markdown = rb(project, "model", "show", "churn", "--format", "markdown").stdout
    assert "| `v0.0.1` | production |" in markdown and "no provenance" in markdown
    listing = rb(project, "model", "ls", "--json")["models"]
    assert [(m["name"], m["latest"], m["versions"], m["stages"]) for m in listing] == [
        ("churn", "v1.2.3", 5, {"production": "v0.0.1"})
    ]

    # references are accepted where a run is
    rb(project, "diff", "churn@v0.0.1", "churn@v0.0.2")
    assert rb(project, "show", "churn@production", "--json", "--no-patch")["id"] == run1

    ok = rb(project, "model", "verify", "--json")
    assert ok["ok"] is True and ok["events"] == 10 and ok["head"] == log[-1]["hash"]
    assert rb(project, "model", "verify").stdout.startswith("ok: 10 events")

    # an event edited in SQLite: verify names it and exits 1
    db = sqlite3.connect(project / ".runbase" / "runbase.db")
    original = db.execute("SELECT message FROM model_events WHERE seq = 7").fetchone()[0]
    with db:
        db.execute("UPDATE model_events SET message = 'routine' WHERE seq = 7")
    broken = rb(project, "model", "verify", "--json", code=1)
    assert broken["ok"] is False
    assert any("event 7" in p and "edited" in p for p in broken["problems"]), broken
    assert "event 7" in rb(project, "model", "verify", code=1).stdout
    with db:
        db.execute("UPDATE model_events SET message = ? WHERE seq = 7", (original,))
    rb(project, "model", "verify")
    # the last event deleted: the head says so
    with db:
        db.execute("DELETE FROM model_events WHERE seq = 10")
    db.close()
    gone = rb(project, "model", "verify", "--json", code=1)
    assert any("head" in p and "10 " in p for p in gone["problems"]), gone


def test_get_writes_exact_bytes_and_status_checks_drift(two_runs: tuple[Path, str, str]) -> None:
    project, run1, run2 = two_runs
    rb(project, "model", "register", "churn", f"{run1}:out/model.pkl")
    rb(project, "model", "register", "churn", f"{run2}:out/model.pkl")
    rb(project, "model", "register", "tree", f"{run2}:out/tree")
    rb(project, "model", "promote", "churn", "v0.0.2", "--to", "production", "-m", "go")
    deploy = project / "deploy"

    got = rb(project, "model", "get", "churn@production", "-o", str(deploy / "model.pkl"), "--json")
    assert got == {
        "ref": "churn@v0.0.2",
        "path": str(deploy / "model.pkl"),
        "oid": b3(project / "out/model.pkl"),
        "kind": "file",
        "size": len("weights two"),
        "files": 1,
        "written": True,
    }
    assert (deploy / "model.pkl").read_bytes() == b"weights two"
    assert b3(deploy / "model.pkl") == got["oid"]
    assert set(got) == doc_keys("### `runbase model get REF [-o PATH] [--force]`")
    assert rb(project, "model", "get", "churn@production", "-o", str(deploy / "model.pkl"),
              "--json")["written"] is False  # fmt: skip
    # the default name is the run's file name
    (project / "cwd").mkdir()
    proc = runbase_cmd("model", "get", "churn@v0.0.1", cwd=project / "cwd")
    assert proc.returncode == 0, proc.stderr
    assert (project / "cwd" / "model.pkl").read_bytes() == b"weights one"

    # the drift check: in sync, another version, no version, missing
    status = rb(project, "model", "status", "churn@production", str(deploy / "model.pkl"), "--json")
    assert status["state"] == "in_sync" and status["in_sync"] is True
    assert status["expected"]["version"] == "v0.0.2" and status["matches"] == ["churn@v0.0.2"]
    assert set(status) == doc_keys("### `runbase model status REF PATH` — the drift check")
    assert status["differences"] == [] and status["more_differences"] == 0
    assert set(status["expected"]) == doc_keys("#### The version")
    summary = rb(project, "model", "ls", "--json")["models"][0]
    assert set(summary) == doc_keys("#### The model summary")
    event = rb(project, "model", "log", "churn", "--json")["events"][0]
    assert set(event) == doc_keys("## The audit log") - {"run_id"} | {"run"}
    assert rb(project, "model", "status", "churn@production", "deploy/model.pkl").stdout.startswith(
        "in sync"
    )
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "-m", "regression")
    other = rb(project, "model", "status", "churn@production", "deploy/model.pkl", "--json", code=1)
    assert other["state"] == "other_version" and other["in_sync"] is False
    assert other["matches"] == ["churn@v0.0.2"] and other["expected"]["version"] == "v0.0.1"
    text = rb(project, "model", "status", "churn@production", "deploy/model.pkl", code=1).stdout
    assert text.startswith("out of sync:") and "matches churn@v0.0.2" in text
    # a different file is not overwritten without --force
    rb(project, "model", "get", "churn@production", "-o", "deploy/model.pkl", code=1)
    assert (deploy / "model.pkl").read_bytes() == b"weights two"
    rb(project, "model", "get", "churn@production", "-o", "deploy/model.pkl", "--force")
    assert (deploy / "model.pkl").read_bytes() == b"weights one"
    rb(project, "model", "status", "churn@production", "deploy/model.pkl")

    (deploy / "model.pkl").write_bytes(b"patched in production")
    none = rb(project, "model", "status", "churn@production", "deploy/model.pkl", "--json", code=1)
    assert none["state"] == "no_version" and none["matches"] == []
    assert none["actual_oid"] == b3(deploy / "model.pkl")
    assert [set(d) for d in none["differences"]] == [doc_keys("#### A difference (`model status`)")]
    assert "matches no version" in rb(project, "model", "status", "churn@production",
                                      "deploy/model.pkl", code=1).stdout  # fmt: skip
    (deploy / "model.pkl").unlink()
    missing = rb(
        project, "model", "status", "churn@production", "deploy/model.pkl", "--json", code=1
    )
    assert missing["state"] == "missing" and missing["actual_oid"] is None
    assert "is missing" in rb(project, "model", "status", "churn@production", "deploy/model.pkl",
                              code=1).stdout  # fmt: skip

    # a directory version: its tree, file by file
    tree = rb(project, "model", "get", "tree@latest", "-o", "deploy/tree", "--json")
    assert tree["kind"] == "dir" and tree["files"] == 2 and tree["written"] is True
    for rel in ("w.bin", "sub/config.json"):
        assert (deploy / "tree" / rel).read_bytes() == (project / "out/tree" / rel).read_bytes()
    assert not [p for p in deploy.iterdir() if p.name.startswith(".")]  # no temp left
    rb(project, "model", "status", "tree@latest", "deploy/tree")
    (deploy / "tree" / "sub" / "config.json").write_text('{"layers": 4}')
    rb(project, "model", "status", "tree@latest", "deploy/tree", code=1)
    rb(project, "model", "get", "tree@v0.0.1", "-o", "deploy/tree", "--force")
    assert (deploy / "tree" / "sub" / "config.json").read_text() == '{"layers": 3}'
    rb(project, "model", "status", "tree@latest", "deploy/tree")

    # bad references: usage (2); unknown model, version or stage: 1
    rb(project, "model", "status", "churn", "deploy/x", code=2)
    rb(project, "model", "get", "Churn@latest", code=2)
    assert "no model 'nope'" in rb(project, "model", "get", "nope@latest", code=1).stderr
    assert "no version v7.0.0" in rb(project, "model", "get", "churn@v7.0.0", code=1).stderr
    assert "stage 'qa'" in rb(project, "model", "status", "churn@qa", "deploy/x", code=1).stderr


def test_bad_input_is_a_clear_error(two_runs: tuple[Path, str, str]) -> None:
    project, run1, _ = two_runs
    rb(project, "model", "register", "Bad Name", f"{run1}:out/model.pkl", code=2)
    rb(project, "model", "register", "churn", "nothing-here", code=2)
    assert (
        "wrote no output 'out/none.pkl'"
        in rb(project, "model", "register", "churn", f"{run1}:out/none.pkl", code=1).stderr
    )
    rb(project, "model", "register", "churn", "no-such-run:out/model.pkl", code=1)
    rb(project, "model", "register", "churn", f"{run1}:out/model.pkl")
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "latest", "-m", "x", code=2)
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "v1.0.0", "-m", "x", code=2)
    rb(project, "model", "promote", "churn", "v1.0", "--to", "production", "-m", "x", code=2)
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", code=2)  # no -m
    assert "no version v0.0.9" in rb(project, "model", "promote", "churn", "v0.0.9", "--to",
                                     "production", "-m", "x", code=1).stderr  # fmt: skip
    assert "no model 'other'" in rb(project, "model", "promote", "other", "v0.0.1", "--to",
                                    "production", "-m", "x", code=1).stderr  # fmt: skip
    assert "stage 'production'" in rb(project, "model", "demote", "churn", "--from",
                                      "production", "-m", "x", code=1).stderr  # fmt: skip
    assert "has ever been in stage 'production'" in rb(project, "model", "rollback", "churn",
                                                       "production", "-m", "x", code=1).stderr  # fmt: skip
    rb(project, "model", "show", "nope", code=1)
    rb(project, "model", "log", "nope", code=1)
    rb(project, "model", "approve", "nosuchrequest", code=1)
    assert rb(project, "model", "requests", "--json") == {"requests": []}


def test_promoting_a_version_whose_bytes_are_gone(two_runs: tuple[Path, str, str]) -> None:
    project, run1, _ = two_runs
    oid = rb(project, "model", "register", "churn", f"{run1}:out/model.pkl", "--json")["events"][0][
        "oid"
    ]
    hexid = oid.partition(":")[2]
    obj = project / ".runbase" / "objects" / hexid[:2] / hexid[2:]
    obj.parent.chmod(0o755)
    obj.chmod(stat.S_IWUSR | stat.S_IRUSR)
    obj.unlink()
    err = rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "-m", "x",
             code=1).stderr  # fmt: skip
    assert "gone from this store" in err
    assert rb(project, "model", "show", "churn", "--json")["stages"] == {}
    assert "not in this store" in rb(project, "model", "get", "churn@latest", code=1).stderr
    assert rb(project, "model", "verify", "--json")["events"] == 1  # nothing half-written


def test_library_model_and_model_path(two_runs: tuple[Path, str, str]) -> None:
    import runbase

    project, run1, run2 = two_runs
    rb(project, "model", "register", "churn", f"{run1}:out/model.pkl")
    rb(project, "model", "register", "churn", f"{run2}:out/model.pkl")
    rb(project, "model", "register", "tree", f"{run2}:out/tree")
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "-m", "go")

    m = runbase.model("churn")
    assert [v.version for v in m.versions] == ["v0.0.2", "v0.0.1"]
    assert m.versions[1].run_id == run1 and m.versions[1].stages == ("production",)
    assert m.stages == {"production": "v0.0.1"}
    assert [e.action for e in m.log] == ["register", "register", "promote"]
    assert m.version("production").version == "v0.0.1"
    written = m.get("latest", project / "lib" / "m.pkl")
    assert Path(written).read_bytes() == b"weights two"

    path = Path(runbase.model_path("churn@production"))
    assert path.read_bytes() == b"weights one" and path.name == "model.pkl"
    assert path.is_relative_to(project / ".runbase")
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert runbase.model_path("churn@production") == str(path)  # reused
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert Path(runbase.model_path("churn@production")).read_bytes() == b"weights one"
    tree = Path(runbase.model_path("tree@latest"))
    assert (tree / "sub" / "config.json").read_text() == '{"layers": 3}'
    with pytest.raises(runbase.NotFound, match="no model 'nope'"):
        runbase.model("nope")
    with pytest.raises(runbase.NotFound, match="stage 'qa'"):
        runbase.model_path("churn@qa")
    with pytest.raises(runbase.UsageError):
        runbase.model_path("churn")


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real `runbase server` (SQLite, local objects) where alice writes in `default`."""
    base = tmp_path / "server"
    base.mkdir()
    db, objects = str(base / "server.db"), str(base / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, check=True)
    added = runbase_cmd("server", "users", "add", "alice", "--db", db, check=True)
    server = start_server(db, objects, log_dir=base)
    try:
        yield {"url": server.url, "token": added.stdout.strip().splitlines()[-1]}
    finally:
        server.stop()


def test_remote_registry_get_and_status(
    two_runs: tuple[Path, str, str], team_server: dict[str, Any], tmp_path: Path
) -> None:
    import runbase

    project, run1, run2 = two_runs
    rb(project, "login", team_server["url"], "--token", team_server["token"])
    rb(project, "remote", "add", "team", team_server["url"])
    rb(project, "push", run1, run2)
    # the version is registered on the server (its bytes uploaded), not locally
    ev = rb(project, "model", "register", "churn", f"{run1}:out/model.pkl", "--remote", "team",
            "-m", "from the laptop", "--json")["events"][0]  # fmt: skip
    assert (ev["version"], ev["run"], ev["user"]) == ("v0.0.1", run1, "alice")
    rb(project, "model", "register", "churn", "out/model.pkl", "--remote", "team")
    rb(project, "model", "promote", "churn", "latest", "--to", "production", "--remote", "team",
       "-m", "ship it")  # fmt: skip
    assert rb(project, "model", "ls", "--json") == {"models": []}
    listing = rb(project, "model", "ls", "--remote", "team", "--json")["models"]
    assert [(m["name"], m["latest"], m["stages"]) for m in listing] == [
        ("churn", "v0.0.2", {"production": "v0.0.2"})
    ]
    detail = rb(project, "model", "show", "churn", "--remote", "team", "--json")
    assert [v["run"] for v in detail["versions"]] == [run2, run1]
    log = rb(project, "model", "log", "--remote", "team", "--json")["events"]
    assert [e["action"] for e in log] == ["register", "register", "promote"]
    assert rb(project, "model", "verify", "--remote", "team", "--json")["ok"] is True
    assert rb(project, "model", "requests", "--remote", "team", "--json") == {"requests": []}

    # a deployment machine: no store, the registry's bytes from the server
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    proc = runbase_cmd("model", "get", "churn@production", "--remote", "team", "--json",
                       cwd=deploy)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ref"] == "churn@v0.0.2"
    assert (deploy / "model.pkl").read_bytes() == b"weights two"
    assert not (deploy / ".runbase").exists()
    status = runbase_cmd("model", "status", "churn@production", "model.pkl", "--remote", "team",
                         cwd=deploy)  # fmt: skip
    assert status.returncode == 0 and status.stdout.startswith("in sync"), status.stderr
    rb(project, "model", "promote", "churn", "v0.0.1", "--to", "production", "--remote", "team",
       "-m", "revert")  # fmt: skip
    status = runbase_cmd("model", "status", "churn@production", "model.pkl", "--remote", "team",
                         "--json", cwd=deploy)  # fmt: skip
    assert status.returncode == 1
    assert json.loads(status.stdout)["matches"] == ["churn@v0.0.2"]
    # a directory version: compared entry by entry with its manifest, fetched from the
    # server into the temporary store (nothing of capture's skip list is skipped)
    rb(project, "model", "register", "tree", f"{run2}:out/tree", "--remote", "team")
    proc = runbase_cmd("model", "get", "tree@latest", "--remote", "team", "-o", "tree",
                       cwd=deploy)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = runbase_cmd("model", "status", "tree@latest", "tree", "--remote", "team",
                         cwd=deploy)  # fmt: skip
    assert status.returncode == 0 and status.stdout.startswith("in sync"), status.stderr
    (deploy / "tree" / ".env").write_text("TOKEN=x\n")
    status = runbase_cmd("model", "status", "tree@latest", "tree", "--remote", "team", "--json",
                         cwd=deploy)  # fmt: skip
    assert status.returncode == 1, status.stderr
    assert json.loads(status.stdout)["differences"] == [
        {"path": ".env", "problem": "extra", "expected": None, "actual": "file"}
    ]
    # the library fetches too
    path = Path(runbase.model_path("churn@production", store=str(tmp_path / "lib"), remote="team"))
    assert path.read_bytes() == b"weights one"
    rb(project, "model", "show", "nope", "--remote", "team", code=1)
    rb(project, "model", "ls", "--remote", "elsewhere", code=2)
