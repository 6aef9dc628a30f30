"""``runbase import tensorboard``: event files written by PyTorch's SummaryWriter (two
run directories, 100 steps of scalars, add_hparams, a text summary) import exactly;
twice is once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require
from runbase.errors import NotFound, UsageError
from runbase.interop.tensorboard_import import import_tensorboard, run_dirs
from runbase.records import external, read
from runbase.store import Store

SCRIPT = r"""
import json, sys, numpy as np
from torch.utils.tensorboard import SummaryWriter
root = sys.argv[1]
out = {}
for name, lr in (("baseline", 0.1), ("deep/wide", 0.01)):
    w = SummaryWriter(log_dir=f"{root}/{name}")
    for i in range(100):
        w.add_scalar("loss/train", 1.0 / (i + 1), i, walltime=1_700_000_000 + i * 0.5)
        w.add_scalar("acc", i / 300, i, walltime=1_700_000_000 + i * 0.5 + 0.25)
    w.add_text("notes", "a text summary", 0, walltime=1_700_000_100)
    w.add_histogram("weights", np.arange(10.0), 0, walltime=1_700_000_100)
    w.add_hparams({"lr": lr, "opt": "adam", "bs": 32}, {"hparam/score": 1 - lr})
    w.close()
# what the baseline run writes later (a resumed writer: a new event file), kept aside
w = SummaryWriter(log_dir=f"{root}-later/baseline")
w.add_scalar("acc", 0.5, 100, walltime=1_700_000_200)
w.close()
"""


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("torch")
    require("tensorboard")
    root = tmp_path_factory.mktemp("tb") / "runs"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def f32(x: float) -> float:
    """The value a 32-bit float scalar holds (what TensorBoard stores)."""
    import numpy as np

    return float(np.float32(x))


def test_scalars_and_hparams_import_exactly(logdir: Path, store: Store) -> None:
    # PyTorch's add_hparams writes a subdirectory of each run: 4 directories, 2 runs
    assert len(run_dirs(logdir)) == 4
    seen: list[int] = []
    report = import_tensorboard(store, logdir, progress=lambda d, t, w: seen.append(d))
    assert len(report.created) == 2 and not report.skipped, report.lines()
    assert report.not_mapped == {"text summaries": 2, "histograms": 2}
    assert seen[-1] == 4
    runs = {read.load_row(store, r)["name"]: r for r in report.created}
    assert set(runs) == {"baseline", "deep/wide"}
    for name, lr in (("baseline", 0.1), ("deep/wide", 0.01)):
        rid = runs[name]
        row = read.load_row(store, rid)
        assert row["mode"] == "import" and row["status"] == "finished"
        assert row["started_at"] <= 1_700_000_000 and row["ended_at"] >= 1_700_000_100
        tags = read.load_tags(store, [rid])[rid]
        assert tags == {"import.source": "tensorboard", "import.id": name, "experiment": "runs"}
        params = read.load_params(store, [rid])[rid]
        assert params == {
            "lr": (lr, "tensorboard"),
            "opt": ("adam", "tensorboard"),
            "bs": (32.0, "tensorboard"),
        }
        loss = external.metric_history(store, rid, "loss/train")
        assert loss == [(i, 1_700_000_000 + i * 0.5, f32(1.0 / (i + 1))) for i in range(100)]
        acc = external.metric_history(store, rid, "acc")
        assert acc == [(i, 1_700_000_000 + i * 0.5 + 0.25, f32(i / 300)) for i in range(100)]
        score = external.metric_history(store, rid, "hparam/score")
        assert [(s, v) for s, _t, v in score] == [(0, f32(1 - lr))]


def test_twice_imports_once(logdir: Path, store: Store) -> None:
    first = import_tensorboard(store, logdir, experiment="tb-import")
    chunks = store.db.query_one("SELECT count(*) FROM metric_chunks")
    second = import_tensorboard(store, logdir, experiment="tb-import")
    assert sorted(second.unchanged) == sorted(first.created) and not second.created
    assert not second.updated
    assert store.db.query_one("SELECT count(*) FROM metric_chunks") == chunks
    rid = first.created[0]
    assert read.load_tags(store, [rid])[rid]["experiment"] == "tb-import"


def test_more_events_later_update_the_run(logdir: Path, store: Store, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(logdir, copy)
    first = import_tensorboard(store, copy)
    for later in (logdir.parent / "runs-later" / "baseline").iterdir():
        shutil.copy(later, copy / "baseline" / later.name)
    again = import_tensorboard(store, copy)
    assert len(again.updated) == 1 and len(again.unchanged) == 1 and not again.created
    rid = again.updated[0]
    assert rid in first.created
    acc = external.metric_history(store, rid, "acc")
    assert len(acc) == 101 and acc[-1] == (100, 1_700_000_200.0, 0.5)
    assert read.load_row(store, rid)["ended_at"] >= 1_700_000_200.0  # (or the file's opening)


def test_clear_errors(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        import_tensorboard(store, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no TensorBoard event files"):
        import_tensorboard(store, tmp_path / "empty")
    bad = tmp_path / "bad" / "run1"
    bad.mkdir(parents=True)
    (bad / "events.out.tfevents.1.host").write_bytes(b"\x00" * 3)
    report = import_tensorboard(store, tmp_path / "bad")
    assert not report.created
    assert report.skipped == [  # a file of bytes that holds no event: damaged, said so
        ("event file run1/events.out.tfevents.1.host", "damaged: not one event record could be read"),
        ("TensorBoard run run1", "its event files hold no events"),
    ]
    (bad / "events.out.tfevents.1.host").write_bytes(os.urandom(4096))
    assert import_tensorboard(store, tmp_path / "bad").skipped[0][1].startswith("damaged")
    (bad / "events.out.tfevents.1.host").write_bytes(b"")  # empty: no events, not damaged
    assert import_tensorboard(store, tmp_path / "bad").skipped == [
        ("TensorBoard run run1", "its event files hold no events")
    ]
    report = import_tensorboard(store, tmp_path / "bad")
    assert json.loads(json.dumps(report.as_json()))["skipped"][0]["what"] == "TensorBoard run run1"
