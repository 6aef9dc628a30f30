"""``runbase import wandb``: offline runs made by the REAL wandb client (no network),
imported with their full history, config, summary, tags and files; twice is once; a
run imported while it was still writing is completed by the next import."""

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

from conftest import require
from runbase.cli import COMMANDS, main
from runbase.errors import NotFound, UsageError
from runbase.interop.wandb_import import HEADER, find_logs, import_wandb, read_records
from runbase.records import external, read
from runbase.records.files import list_files
from runbase.store import Store

SCRIPT = r"""
import json, math, os, sys, wandb
out = {}
run = wandb.init(project="vision", name="resnet-a", group="sweep-1", job_type="train",
                 tags=["baseline", "gpu"], notes="first try",
                 config={"lr": 0.05, "model": {"depth": 18, "act": "relu"}, "layers": [64, 32],
                         "use_bn": True, "opt": "adam"})
for i in range(50):
    wandb.log({"loss": 1.0 / (i + 1), "acc": i / 50 + 1e-12, "text": "not a number"})
wandb.log({"loss": float("nan")}, step=50)
run.summary["best_acc"] = 0.97
run.summary["acc"] = 0.5  # set over the history's last value
with open(os.path.join(run.dir, "model.txt"), "w") as f:
    f.write("weights v1\n")
wandb.save(os.path.join(run.dir, "model.txt"), base_path=run.dir)
out["ok"] = run.id
run.finish()
bad = wandb.init(project="vision", name="crashy", config={"lr": 0.1})
for i in range(3):
    wandb.log({"loss": 2.0 - i})
out["bad"] = bad.id
bad.finish(exit_code=3)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A wandb/ directory with two offline runs, written by the real client."""
    require("wandb")
    where = tmp_path_factory.mktemp("wb")
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(where),
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_CONFIG_DIR": str(where / "config"),
        "WANDB_CACHE_DIR": str(where / "cache"),
    }
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout.strip().splitlines()[-1])
    return where / "wandb", ids


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def by_import_id(s: Store, original: str) -> str:
    for rid in read.all_run_ids(s):
        if read.load_tags(s, [rid])[rid].get("import.id") == original:
            return rid
    raise AssertionError(f"no run imported from {original}")


def test_full_history_config_summary_tags_files(
    made: tuple[Path, dict[str, str]], store: Store
) -> None:
    wandb_dir, ids = made
    seen: list[tuple[int, int | None, str]] = []
    report = import_wandb(store, wandb_dir, progress=lambda d, t, w: seen.append((d, t, w)))
    assert len(report.created) == 2 and not report.skipped, report.lines()
    assert seen[0][:2] == (0, 2) and seen[-1][:2] == (2, 2)
    rid = by_import_id(store, ids["ok"])
    row = read.load_row(store, rid)
    assert row["name"] == "resnet-a" and row["status"] == "finished" and row["mode"] == "import"
    assert row["started_at"] <= row["ended_at"]
    tags = read.load_tags(store, [rid])[rid]
    assert tags["import.source"] == "wandb" and tags["experiment"] == "vision"
    assert tags["baseline"] == "" and tags["gpu"] == ""
    assert tags["wandb.group"] == "sweep-1" and tags["wandb.job_type"] == "train"
    assert tags["wandb.notes"] == "first try"
    params = {k: v for k, (v, _src) in read.load_params(store, [rid])[rid].items()}
    assert params == {
        "lr": 0.05,
        "model.depth": 18,
        "model.act": "relu",
        "layers": "[64, 32]",
        "use_bn": True,
        "opt": "adam",
    }
    assert {src for _v, src in read.load_params(store, [rid])[rid].values()} == {"wandb"}
    # the full history: every step, value and time, in order
    loss = external.metric_history(store, rid, "loss")
    assert [s for s, _t, _v in loss] == list(range(51))
    assert [v for _s, _t, v in loss[:50]] == [1.0 / (i + 1) for i in range(50)]
    assert math.isnan(loss[50][2])
    times = [t for _s, t, _v in loss]
    assert times == sorted(times) and row["started_at"] <= times[0] and times[-1] <= row["ended_at"]
    acc = external.metric_history(store, rid, "acc")
    assert [(s, v) for s, _t, v in acc] == [(i, i / 50 + 1e-12) for i in range(50)]
    metrics = read.load_metrics(store, [rid])[rid]
    assert set(metrics) == {"loss", "acc", "best_acc"}  # the strings are not a metric
    assert metrics["acc"]["value"] == 0.5 and metrics["acc"]["last"] == 49 / 50 + 1e-12
    assert metrics["best_acc"]["value"] == 0.97 and metrics["best_acc"]["count"] == 0
    assert report.not_mapped.get("non-numeric history values") == 50
    outputs = {f["path"]: f for f in list_files(store, rid)["outputs"]}
    assert "model.txt" in outputs and outputs["model.txt"]["size"] == len("weights v1\n")
    assert store.objects.get_bytes(outputs["model.txt"]["hash"]) == b"weights v1\n"
    bad = read.load_row(store, by_import_id(store, ids["bad"]))
    assert bad["status"] == "failed" and bad["name"] == "crashy"


def test_twice_imports_once(made: tuple[Path, dict[str, str]], store: Store) -> None:
    wandb_dir, _ids = made
    first = import_wandb(store, wandb_dir)
    points = store.db.query_one("SELECT count(*) FROM metric_chunks")
    second = import_wandb(store, wandb_dir)
    assert sorted(second.unchanged) == sorted(first.created)
    assert not second.created and not second.updated and not second.skipped
    assert store.db.query_one("SELECT count(*) FROM metric_chunks") == points
    assert len(read.all_run_ids(store)) == 2


def test_a_run_still_writing_is_completed_by_the_next_import(
    made: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    wandb_dir, ids = made
    run_dir = next(p.parent for p in find_logs(wandb_dir) if ids["ok"] in p.name)
    partial = tmp_path / "partial" / run_dir.name
    shutil.copytree(run_dir, partial, symlinks=True)
    log = next(partial.glob("*.wandb"))
    data = log.read_bytes()
    log.write_bytes(data[: len(data) // 2])  # cut mid-record, as a live run's log may be
    report = import_wandb(store, partial)
    assert len(report.created) == 1
    assert any("what came before is imported" in why for _w, why in report.skipped)
    rid = report.created[0]
    assert read.load_row(store, rid)["status"] == "crashed"
    n = len(external.metric_history(store, rid, "loss"))
    assert 0 < n < 51
    again = import_wandb(store, run_dir)
    assert again.updated == [rid] and not again.created
    assert len(external.metric_history(store, rid, "loss")) == 51
    assert read.load_row(store, rid)["status"] == "finished"


def test_clear_errors(made: tuple[Path, dict[str, str]], store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        import_wandb(store, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no W&B runs"):
        import_wandb(store, tmp_path / "empty")
    junk = tmp_path / "junk" / "offline-run-x"
    junk.mkdir(parents=True)
    (junk / "run-x.wandb").write_bytes(b"not a log at all")
    report = import_wandb(store, junk.parent)
    assert not report.created
    assert report.skipped == [
        (f"W&B log {junk / 'run-x.wandb'}", "not a W&B transaction log (its header is not W&B's)")
    ]
    with pytest.raises(UsageError):
        list(read_records(b"PK\x03\x04", []))
    stopped: list[str] = []
    assert list(read_records(HEADER, stopped)) == [] and stopped == []
    assert list(read_records(HEADER + b"\x01\x02", stopped)) == []
    assert stopped == ["the log ends inside a record header"]


def test_a_link_out_of_the_run_directory_is_not_read(
    made: tuple[Path, dict[str, str]], store: Store, tmp_path: Path
) -> None:
    wandb_dir, ids = made
    run_dir = next(p.parent for p in find_logs(wandb_dir) if ids["bad"] in p.name)
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy, symlinks=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not import\n")
    os.symlink(secret, copy / "files" / "leak.txt")
    report = import_wandb(store, copy)
    assert (
        f"file leak.txt of W&B run {copy.name}",
        "a symbolic link: not followed (only a link to a file inside the run's directory is)",
    ) in report.skipped
    rid = report.created[0]
    assert "leak.txt" not in {f["path"] for f in list_files(store, rid)["outputs"]}


def test_cli(made: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    COMMANDS.setdefault("import", "interop")
    wandb_dir, _ids = made
    args = ["--store", str(tmp_path / ".runbase"), "import", "wandb", str(wandb_dir)]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("wandb: 2 runs imported, 0 already there")
    r = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    out: dict[str, Any] = json.loads(r.output)
    assert len(out["unchanged"]) == 2 and out["created"] == []
