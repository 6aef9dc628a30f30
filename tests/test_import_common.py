"""What every importer shares (runbase.interop.imported): the one file walker and its
symlink policy, a first write that fails half way, re-import mirroring the source; and
the small per-system rules the review found (TensorBoard's single-run log directory and
bad wall times, ids never from a file's mtime)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from runbase.interop.imported import INCOMPLETE_TAG, SourceFile, SourceRun, walk_files, write_run
from runbase.interop.mlruns import is_mlruns
from runbase.interop.report import ImportReport, new_report
from runbase.records import external, read
from runbase.records.files import list_files
from runbase.store import Store

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def test_one_walker_one_symlink_policy(tmp_path: Path) -> None:
    """Regular files in path order with their sizes; a link is never followed (reported),
    except with follow_inside a link to a file inside that directory."""
    run = tmp_path / "run"
    (run / "files" / "sub").mkdir(parents=True)
    (run / "files" / "b.txt").write_bytes(b"bb")
    (run / "files" / "sub" / "a.bin").write_bytes(b"a" * 5)
    (run / "saved.txt").write_bytes(b"saved")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("PRIVATE")
    os.symlink(outside / "key", run / "files" / "leak")
    os.symlink(outside, run / "files" / "leakdir")
    os.symlink(run / "saved.txt", run / "files" / "saved.txt")  # as wandb.save links

    report = ImportReport("test")
    plain = walk_files(run, report, "run r", sub="files")
    assert [(f.path, f.rel, n) for f, n in plain] == [("b.txt", "files/b.txt", 2),
                                                       ("sub/a.bin", "files/sub/a.bin", 5)]  # fmt: skip
    assert all(f.root == run for f, _n in plain)
    assert sorted(w for w, _why in report.skipped) == [
        "file leak of run r",
        "file leakdir of run r",
        "file saved.txt of run r",
    ]

    report = ImportReport("test")
    inside = walk_files(run, report, "run r", sub="files", follow_inside=run)
    saved = [(f, n) for f, n in inside if f.path == "saved.txt"]
    assert len(saved) == 1 and saved[0][1] == 5
    f = saved[0][0]
    assert (Path(f.root) / f.rel).read_bytes() == b"saved"
    assert sorted(w for w, _why in report.skipped) == ["file leak of run r", "file leakdir of run r"]
    assert walk_files(tmp_path / "nope", ImportReport("test"), "x") == []


def _source(points: list[tuple[str, int, float, float]]) -> SourceRun:
    return SourceRun(
        system="neptune",
        original_id="proj/RUN-1",
        started_at=T0,
        ended_at=T0 + 10,
        params={"lr": "0.1"},
        tags={"a": "1"},
        points=points,
    )


def test_a_first_write_failing_half_way_is_not_left_running(store: Store) -> None:
    """A value the store refuses after the run is created (a step over int64): the run
    is failed with why, not "running" for ever; a corrected source completes it."""
    report = ImportReport("neptune")
    assert write_run(store, _source([("loss", 2**70, T0, 1.0)]), report) is None
    ((what, why),) = report.skipped
    assert what == "run proj/RUN-1"
    rid = _source([]).run_id
    row = read.load_row(store, rid)
    assert row["status"] == "failed"
    assert read.load_tags(store, [rid])[rid][INCOMPLETE_TAG] == why

    again = ImportReport("neptune")
    assert write_run(store, _source([("loss", 0, T0, 1.0)]), again) == rid
    assert again.updated == [rid] and again.skipped == []
    assert read.load_row(store, rid)["status"] == "finished"
    assert INCOMPLETE_TAG not in read.load_tags(store, [rid])[rid]
    assert external.metric_history(store, rid, "loss") == [(0, T0, 1.0)]

    third = ImportReport("neptune")
    write_run(store, _source([("loss", 0, T0, 1.0)]), third)
    assert third.unchanged == [rid]


class _Exploding(list):  # type: ignore[type-arg]
    """Points whose reading fails with an error nothing foresaw (not a RunbaseError)."""

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("the source broke")

    def __len__(self) -> int:
        return 1


def test_any_error_of_one_run_is_a_skip_never_a_traceback(store: Store) -> None:
    """A3: write_run turns ANY exception of one run into a skip with why (logged); a run
    created before it is failed with tag import.incomplete, not left running."""
    report = ImportReport("neptune")
    src = _source([])
    src.points = _Exploding()
    assert write_run(store, src, report) is None
    assert report.skipped == [("run proj/RUN-1", "RuntimeError: the source broke")]
    rid = src.run_id
    assert read.load_row(store, rid)["status"] == "failed"
    assert "the source broke" in read.load_tags(store, [rid])[rid][INCOMPLETE_TAG]
    again = ImportReport("neptune")
    assert write_run(store, _source([("loss", 0, T0, 1.0)]), again) == rid
    assert again.updated == [rid] and read.load_row(store, rid)["status"] == "finished"


def test_a_fifo_among_files_is_reported_skipped(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    (root / "a.txt").write_text("a")
    os.mkfifo(root / "pipe")
    report = ImportReport("wandb")
    found = walk_files(root, report, "run X")
    assert [f.path for f, _n in found] == ["a.txt"]
    assert report.skipped == [("file pipe of run X", "not a regular file")]


def test_within_run_progress_reaches_the_display(store: Store, tmp_path: Path) -> None:
    """B6: metric points stored (per batch) and artifact bytes go to progress.within."""
    seen: list[tuple[str, int]] = []

    class Shown:
        def __call__(self, done: int, total: int | None, what: str) -> None: ...

        def within(self, what: str, n: int) -> None:
            seen.append((what, n))

    report = new_report("neptune", Shown())
    (tmp_path / "f.bin").write_bytes(b"x" * 3000)
    src = _source([("loss", i, T0, 1.0) for i in range(5)])
    src.files = [SourceFile("f.bin", tmp_path, "f.bin")]
    assert write_run(store, src, report) is not None
    assert seen == [("points stored", 5), ("bytes", 3000)]
    assert new_report("x", lambda *a: None).within is None  # a plain callback: none


def test_reimport_mirrors_tags_and_files_but_never_a_param(store: Store, tmp_path: Path) -> None:
    """docs/interop.md: tags and files follow the source (updated); a param with another
    value is a Conflict (skipped, nothing changed)."""
    (tmp_path / "f.txt").write_text("one")
    src = _source([("loss", 0, T0, 1.0)])
    src.files = [SourceFile("f.txt", tmp_path, "f.txt")]
    rid = write_run(store, src, ImportReport("neptune"))
    assert rid is not None
    (tmp_path / "f.txt").write_text("two")
    src.tags["a"] = "2"
    report = ImportReport("neptune")
    write_run(store, src, report)
    assert report.updated == [rid]
    assert read.load_tags(store, [rid])[rid]["a"] == "2"
    (out,) = list_files(store, rid)["outputs"]
    assert store.objects.get_bytes(out["hash"]) == b"two"
    src.params["lr"] = "0.2"
    src.tags["a"] = "3"
    report = ImportReport("neptune")
    assert write_run(store, src, report) is None and "differs" in report.skipped[0][1]
    assert read.load_tags(store, [rid])[rid]["a"] == "2"  # nothing of it changed


def test_a_source_without_a_start_time_derives_its_id_from_0(store: Store) -> None:
    """Never from a file's mtime: the same source, copied or touched, finds its run."""
    src = SourceRun(system="wandb", original_id="abc", started_at=T0 + 5, id_time=0.0)
    assert src.run_id == external.derived_id("wandb", "abc", 0.0)
    assert write_run(store, src, ImportReport("wandb")) == src.run_id
    assert read.load_row(store, src.run_id)["started_at"] == T0 + 5


def test_the_one_mlruns_check(tmp_path: Path) -> None:
    """An experiment directory's meta.yaml must parse and name experiment_id and name:
    the importer and the export agree on what an MLflow file store is."""
    d = tmp_path / "mlruns"
    (d / "1").mkdir(parents=True)
    (d / "1" / "meta.yaml").write_text("# experiment_id: in a comment only\nfoo: 1\n")
    assert not is_mlruns(d)
    (d / "1" / "meta.yaml").write_text("experiment_id: '1'\nname: e\n")
    assert is_mlruns(d)
    (d / "1" / "meta.yaml").unlink()
    os.symlink(tmp_path / "elsewhere", d / "2")
    assert not is_mlruns(d) and not is_mlruns(tmp_path / "absent")


# -- TensorBoard ----------------------------------------------------------------------------


def _events(path: Path, events: list[tuple[float, int, float]]) -> None:
    """An event file of simple scalars ``loss`` at (wall time, step, value)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        w = RecordWriter(f)
        for wall, step, value in events:
            summary = Summary(value=[Summary.Value(tag="loss", simple_value=value)])
            w.write(Event(wall_time=wall, step=step, summary=summary).SerializeToString())


def test_tensorboard_single_run_logdir_and_bad_wall_times(store: Store, tmp_path: Path) -> None:
    """Event files directly in LOGDIR: the run is LOGDIR's name (not "."), so two such
    directories are two runs; an event without a valid wall time is left out, counted."""
    require("tensorboard")
    from runbase.interop.tensorboard_import import import_tensorboard

    nan = float("nan")
    for name in ("exp1", "exp2"):
        _events(tmp_path / name / "events.out.tfevents.1.host",
                [(T0, 0, 1.0), (nan, 1, 0.5), (-5.0, 2, 0.25), (T0 + 3, 3, 0.125)])  # fmt: skip
    first = import_tensorboard(store, tmp_path / "exp1")
    second = import_tensorboard(store, tmp_path / "exp2")
    (a,), (b,) = first.created, second.created
    assert a != b
    tags = read.load_tags(store, [a])[a]
    assert tags["import.id"] == "exp1" and read.load_row(store, a)["name"] == "exp1"
    assert first.not_mapped == {"events without a valid wall time": 2}
    assert external.metric_history(store, a, "loss") == [(0, T0, 1.0), (3, T0 + 3, 0.125)]
    assert read.load_row(store, a)["ended_at"] == T0 + 3


def test_time_0_is_a_time_in_show(store: Store) -> None:
    """B3: an import with no start and no end keeps time 0; duration is from 0 to 0
    (not to the last heartbeat: 499073h), show prints the end, and a run without a
    host shows its user alone (not alice@None)."""
    from runbase.records.record import build_record
    from runbase.render.show import render_record

    src = SourceRun(system="neptune", original_id="p/T-0", started_at=0.0, ended_at=0.0)
    src.user = "alice"
    rid = write_run(store, src, ImportReport("neptune"))
    assert rid is not None
    rec = build_record(store, rid)
    assert rec["duration_s"] == 0.0 and rec["ended_at"] == "1970-01-01T00:00:00+00:00"
    lines = {ln.split()[0]: ln for ln in render_record(rec).splitlines() if ln.strip()}
    assert lines["duration"].split() == ["duration", "0.0s"]
    assert lines["ended"].split() == ["ended", "1970-01-01T00:00:00+00:00"]
    assert lines["user@host"].split() == ["user@host", "alice"]
    assert read.duration({"started_at": 10.0, "ended_at": None, "heartbeat_at": 12.0}) == 2.0


def test_the_import_bar_on_a_terminal_and_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """B6: on a terminal a bar of the runs whose text follows the work inside a run
    (points, bytes); elsewhere one plain line per run; nothing with RUNBASE_NO_PROGRESS."""
    import io

    from runbase.cli.interop import _Progress

    monkeypatch.delenv("RUNBASE_NO_PROGRESS", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    shown = _Progress.on(term, plain=True)
    assert shown is not None and shown.tty
    shown(0, 2, "first")
    shown.within("points stored", 200_000)
    shown.REDRAW_S = 0.0  # every change drawn (the real bar draws five times a second)
    shown.within("bytes", 3 << 20)
    shown(1, 2, "second")
    shown.close()
    out = term.getvalue()
    assert "importing:" in out and "0/2" in out and "1/2" in out
    assert "first: 200,000 points stored, 3.0 MiB" in out and "second" in out
    plain = io.StringIO()
    lines = _Progress.on(plain, plain=True)
    assert lines is not None and not lines.tty
    lines(0, 2, "first")
    lines.within("bytes", 10)
    lines(1, 2, "second")
    lines(2, 2, "")
    assert plain.getvalue() == "importing run 1/2: first\nimporting run 2/2: second\n"
    assert _Progress.on(io.StringIO(), plain=False) is None  # --json: no plain lines
    monkeypatch.setenv("RUNBASE_NO_PROGRESS", "1")
    assert _Progress.on(term, plain=True) is None
