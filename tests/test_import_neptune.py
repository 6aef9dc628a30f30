"""``runbase import neptune``: the Parquet files neptune-exporter writes (its one schema,
written here with pyarrow: project_id, run_id, attribute_path, attribute_type, step
decimal(18,6), timestamp ms UTC, the typed value columns, file_value {path},
histogram_value), with its layout (data/<project>/<run>_part_<n>.parquet, files/<project>/
...). Runs, params, sys attributes, full float series and files import exactly; twice is
once; malformed files are clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from runbase.errors import NotFound, UsageError
from runbase.interop.neptune_import import import_neptune
from runbase.records import external, read
from runbase.records.files import list_files
from runbase.store import Store

T0 = 1_700_000_000.0
PROJECT = "ws/vision"
PROJECT_DIR = "ws_vision-0123456789abcdef"  # the exporter's sanitized name (any name works)


def schema() -> Any:
    pa = require("pyarrow")
    return pa.schema(
        [
            ("project_id", pa.string()),
            ("run_id", pa.string()),
            ("attribute_path", pa.string()),
            ("attribute_type", pa.string()),
            ("step", pa.decimal128(18, 6)),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("int_value", pa.int64()),
            ("float_value", pa.float64()),
            ("string_value", pa.string()),
            ("bool_value", pa.bool_()),
            ("datetime_value", pa.timestamp("ms", tz="UTC")),
            ("string_set_value", pa.list_(pa.string())),
            ("file_value", pa.struct([("path", pa.string())])),
            (
                "histogram_value",
                pa.struct(
                    [
                        ("type", pa.string()),
                        ("edges", pa.list_(pa.float64())),
                        ("values", pa.list_(pa.float64())),
                    ]
                ),
            ),
        ]
    )


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def row(run: str, path: str, kind: str, **values: Any) -> dict[str, Any]:
    return {
        "project_id": PROJECT,
        "run_id": run,
        "attribute_path": path,
        "attribute_type": kind,
        **values,
    }


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema()), path, compression="snappy")


def loss(i: int) -> float:
    return 1.0 / (i + 1)


def series(run: str, key: str, steps: range, value: Any = loss) -> list[dict[str, Any]]:
    return [
        row(
            run,
            key,
            "float_series",
            step=Decimal(i),
            timestamp=at(T0 + i * 0.25),
            float_value=value(i),
        )
        for i in steps
    ]


def sys_rows(run: str, name: str, created: float, **extra: Any) -> list[dict[str, Any]]:
    return [
        row(run, "sys/id", "string", string_value=run),
        row(run, "sys/name", "string", string_value=name),
        row(run, "sys/creation_time", "datetime", datetime_value=at(created)),
        row(run, "sys/modification_time", "datetime", datetime_value=at(created + 500)),
        row(run, "sys/owner", "string", string_value="ada"),
        row(run, "sys/hostname", "string", string_value="gpu-7"),
        row(run, "sys/tags", "string_set", string_set_value=["baseline", "resnet"]),
        row(run, "sys/failed", "bool", bool_value=False),
        *[row(run, k, t, **v) for k, (t, v) in extra.items()],
    ]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nep") / "exports"
    data, files = root / "data" / PROJECT_DIR, root / "files" / PROJECT_DIR
    run1 = [
        *sys_rows("VIS-1", "resnet-a", T0 - 10),
        row("VIS-1", "parameters/lr", "float", float_value=0.05),
        row("VIS-1", "parameters/epochs", "int", int_value=30),
        row("VIS-1", "parameters/optimizer", "string", string_value="adam"),
        row("VIS-1", "parameters/use_bn", "bool", bool_value=True),
        row("VIS-1", "parameters/started", "datetime", datetime_value=at(T0)),
        row("VIS-1", "parameters/labels", "string_set", string_set_value=["b", "a"]),
        *series("VIS-1", "metrics/loss", range(150)),
        row(
            "VIS-1",
            "logs/stdout",
            "string_series",
            step=Decimal(0),
            timestamp=at(T0),
            string_value="hi",
        ),
        row(
            "VIS-1",
            "metrics/hist",
            "histogram_series",
            step=Decimal(0),
            timestamp=at(T0),
            histogram_value={"type": "COUNTING", "edges": [0.0, 1.0], "values": [3.0]},
        ),
        row(
            "VIS-1", "model/weights", "file", file_value={"path": f"{PROJECT}/VIS-1/model/weights"}
        ),
        row(
            "VIS-1",
            "source_code/files",
            "file_set",
            file_value={"path": f"{PROJECT}/VIS-1/source_code/files"},
        ),
    ]
    write_parquet(data / "VIS-1-aa_part_0.parquet", run1)
    frac = [
        row(
            "VIS-1",
            "metrics/frac",
            "float_series",
            step=Decimal("0.5"),
            timestamp=at(T0),
            float_value=1.5,
        )
    ]
    write_parquet(
        data / "VIS-1-aa_part_1.parquet", series("VIS-1", "metrics/loss", range(150, 300)) + frac
    )
    run2 = [
        *sys_rows(
            "VIS-2",
            "resnet-b",
            T0 + 1000,
            **{"sys/forking/parent": ("string", {"string_value": "VIS-1"})},
        ),
        *series("VIS-2", "metrics/loss", range(100, 120), lambda i: -float(i)),
    ]
    run2[7] = row("VIS-2", "sys/failed", "bool", bool_value=True)
    write_parquet(data / "VIS-2-bb_part_0.parquet", run2)
    # neither a run without its part 0 (still exporting) nor a .tmp part is read
    write_parquet(data / "VIS-3-cc_part_1.parquet", sys_rows("VIS-3", "half", T0))
    (data / "VIS-3-cc_part_0.parquet.tmp").write_bytes(b"partial")
    (files / PROJECT / "VIS-1" / "model").mkdir(parents=True)
    (files / PROJECT / "VIS-1" / "model" / "weights").write_bytes(b"\x00weights\x01" * 100)
    src = files / PROJECT / "VIS-1" / "source_code" / "files"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('train')\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def by_name(s: Store, ids: list[str]) -> dict[str, str]:
    return {read.load_row(s, r)["name"]: r for r in ids}


def test_runs_params_series_files_import_exactly(exports: Path, store: Store) -> None:
    seen: list[tuple[int, int | None, str]] = []
    report = import_neptune(store, exports, progress=lambda d, t, w: seen.append((d, t, w)))
    assert len(report.created) == 2 and not report.skipped, report.lines()
    assert seen[0] == (0, 2, f"{PROJECT}/VIS-1") and seen[-1][:2] == (2, 2)
    assert report.not_mapped == {
        "string series values": 1,
        "histogram values": 1,
        "fractional steps (rounded down)": 1,
    }
    runs = by_name(store, report.created)
    r1, r2 = runs["resnet-a"], runs["resnet-b"]
    row1 = read.load_row(store, r1)
    assert (row1["started_at"], row1["ended_at"]) == (T0 - 10, T0 + 490)
    assert (row1["status"], row1["user_name"], row1["host"], row1["mode"]) == (
        "finished",
        "ada",
        "gpu-7",
        "import",
    )
    assert read.load_tags(store, [r1])[r1] == {
        "import.source": "neptune",
        "import.id": f"{PROJECT}/VIS-1",
        "experiment": PROJECT,
        "baseline": "",
        "resnet": "",
        "sys/id": "VIS-1",
        "sys/name": "resnet-a",
        "sys/owner": "ada",
        "sys/hostname": "gpu-7",
        "sys/creation_time": at(T0 - 10).isoformat(),
        "sys/modification_time": at(T0 + 490).isoformat(),
        "sys/failed": "false",
    }
    params = read.load_params(store, [r1])[r1]
    assert {k: v for k, (v, _s) in params.items()} == {
        "parameters/lr": 0.05,
        "parameters/epochs": 30,
        "parameters/optimizer": "adam",
        "parameters/use_bn": True,
        "parameters/started": at(T0).isoformat(),
        "parameters/labels": '["a", "b"]',
    }
    assert {s for _v, s in params.values()} == {"neptune"}
    # the whole series, across both Parquet parts
    assert external.metric_history(store, r1, "metrics/loss") == [
        (i, T0 + i * 0.25, loss(i)) for i in range(300)
    ]
    assert external.metric_history(store, r1, "metrics/frac") == [(0, T0, 1.5)]
    outputs = {f["path"]: f for f in list_files(store, r1)["outputs"]}
    assert set(outputs) == {
        "model/weights",
        "source_code/files/train.py",
        "source_code/files/pkg/util.py",
    }
    assert store.objects.get_bytes(outputs["model/weights"]["hash"]) == b"\x00weights\x01" * 100
    # the fork: its parent, status and its own series
    row2 = read.load_row(store, r2)
    assert row2["parent_id"] == r1 and row2["status"] == "failed"
    assert external.metric_history(store, r2, "metrics/loss") == [
        (i, T0 + i * 0.25, -float(i)) for i in range(100, 120)
    ]


def test_twice_imports_once(exports: Path, store: Store) -> None:
    first = import_neptune(store, exports / "data", experiment="from-neptune")
    chunks = store.db.query_one("SELECT count(*) FROM metric_chunks")
    second = import_neptune(store, exports / "data" / PROJECT_DIR, experiment="from-neptune")
    assert sorted(second.unchanged) == sorted(first.created) and not second.created
    assert not second.updated and not second.skipped
    assert store.db.query_one("SELECT count(*) FROM metric_chunks") == chunks
    assert all(read.load_tags(store, [r])[r]["experiment"] == "from-neptune" for r in first.created)
    # files found from the data directory too: <data>/../files/<project>
    assert sum(len(list_files(store, r)["outputs"]) for r in first.created) == 3


def test_malformed_files_are_clear_errors(exports: Path, store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        import_neptune(store, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no neptune-exporter runs"):
        import_neptune(store, tmp_path / "empty")
    bad = tmp_path / "bad" / "data" / "proj"
    bad.mkdir(parents=True)
    (bad / "junk_part_0.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(UsageError, match=r"junk_part_0.parquet cannot be read as Parquet"):
        import_neptune(store, tmp_path / "bad")
    pa, pq = require("pyarrow"), require("pyarrow.parquet")
    pq.write_table(pa.table({"run_id": ["X-1"], "value": [1.0]}), bad / "other_part_0.parquet")
    write_parquet(bad / "good_part_0.parquet", sys_rows("G-1", "good", T0))
    report = import_neptune(store, tmp_path / "bad")
    assert len(report.created) == 1
    assert (
        "Neptune run junk_part_0.parquet",
        "junk_part_0.parquet cannot be read as Parquet: ",
    ) in [
        (w, y[: len("junk_part_0.parquet cannot be read as Parquet: ")]) for w, y in report.skipped
    ]
    assert (
        "Neptune run other_part_0.parquet",
        "other_part_0.parquet is not a neptune-exporter Parquet file: it has no column project_id, "
        "attribute_path, attribute_type",
    ) in report.skipped
    assert json.dumps(report.as_json())


def _write_with(path: Path, rows: list[dict[str, Any]], **types: Any) -> None:
    """Parquet in the exporter's layout with some columns of another type (a file
    written by something else, or a later exporter)."""
    pa, pq = require("pyarrow"), require("pyarrow.parquet")
    sch = schema()
    for name, kind in types.items():
        sch = sch.set(sch.get_field_index(name), pa.field(name, kind))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=sch), path)


def test_columns_of_other_types_and_steps_beyond_64_bits(store: Store, tmp_path: Path) -> None:
    """A4: a string_set attribute whose column is int64 was a traceback of the whole
    import: it is not mapped now, the run imported. B2: a step outside 64 bits lost the
    run's every metric: that point is counted not mapped, the others kept."""
    pa = require("pyarrow")
    data = tmp_path / "data" / "proj"
    odd = [*sys_rows("S-1", "odd", T0)[:4], row("S-1", "parameters/set", "string_set",
           string_set_value=5), row("S-1", "parameters/lr", "float", float_value=0.5)]  # fmt: skip
    _write_with(data / "S-1_part_0.parquet", odd, string_set_value=pa.int64())
    big = [*sys_rows("B-1", "big", T0 + 1)[:4], *series("B-1", "metrics/loss", range(3))]
    for r in big[-3:]:
        r["step"] = float(r["step"])
    big.append(row("B-1", "metrics/loss", "float_series", step=1e20, float_value=9.0,
                   timestamp=at(T0 + 9)))  # fmt: skip
    _write_with(data / "B-1_part_0.parquet", big, step=pa.float64())
    report = import_neptune(store, tmp_path / "data")
    names = by_name(store, report.created)
    assert set(names) == {"odd", "big"} and report.skipped == []
    assert report.not_mapped["values of another type than their attribute's"] == 1
    assert read.load_params(store, [names["odd"]])[names["odd"]] == {"parameters/lr": (0.5, "neptune")}
    assert report.not_mapped["metric points with steps outside 64 bits"] == 1
    history = external.metric_history(store, names["big"], "metrics/loss")
    assert [(s, v) for s, _t, v in history] == [(i, loss(i)) for i in range(3)]
    assert read.load_row(store, names["big"])["status"] == "finished"


def test_a_source_that_disagrees_is_skipped_and_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    data = tmp_path / "data" / "proj"
    rows = [*sys_rows("D-1", "d", T0), row("D-1", "parameters/lr", "float", float_value=0.1)]
    write_parquet(data / "D-1_part_0.parquet", rows + series("D-1", "metrics/loss", range(10)))
    rid = import_neptune(store, tmp_path / "data").created[0]
    # another value for a param: refused, the run as first imported
    rows[-1] = row("D-1", "parameters/lr", "float", float_value=0.2)
    write_parquet(data / "D-1_part_0.parquet", rows + series("D-1", "metrics/loss", range(20)))
    report = import_neptune(store, tmp_path / "data")
    assert not report.created and not report.updated and not report.unchanged
    [(what, why)] = report.skipped
    assert what == "run ws/vision/D-1 (d)" and "differs from its earlier import" in why
    assert "parameters/lr" in why
    assert len(external.metric_history(store, rid, "metrics/loss")) == 10
    # other points where the stored ones were: refused too
    rows[-1] = row("D-1", "parameters/lr", "float", float_value=0.1)
    other = series("D-1", "metrics/loss", range(20), lambda i: 5.0)
    write_parquet(data / "D-1_part_0.parquet", rows + other)
    [(what, why)] = import_neptune(store, tmp_path / "data").skipped
    assert why == "metric 'metrics/loss' differs from its earlier import at point 10"
    assert len(external.metric_history(store, rid, "metrics/loss")) == 10


def test_cli(exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from runbase.cli import COMMANDS, main

    COMMANDS.setdefault("import", "interop")
    monkeypatch.delenv("RUNBASE_NO_PROGRESS", raising=False)
    base = ["--store", str(tmp_path / ".runbase"), "import", "neptune"]
    r = CliRunner().invoke(main, [*base, str(exports)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [  # not a terminal: a plain line per run (B6)
        "importing run 1/2: ws/vision/VIS-1",
        "importing run 2/2: ws/vision/VIS-2",
    ]
    assert r.stdout.splitlines() == [
        "neptune: 2 runs imported, 0 already there",
        "  not mapped: fractional steps (rounded down) (1), histogram values (1), "
        "string series values (1)",
    ]
    r = CliRunner().invoke(main, [*base, str(exports), "--json"], catch_exceptions=False)
    assert r.exit_code == 0 and len(json.loads(r.output)["unchanged"]) == 2
    assert r.stderr == ""  # no plain lines around JSON
    (tmp_path / "junk").mkdir()
    r = CliRunner().invoke(main, [*base, str(tmp_path / "junk")], catch_exceptions=False)
    assert r.exit_code == 2 and "no neptune-exporter runs under" in r.output


def test_a_running_run_and_one_without_a_creation_time(store: Store, tmp_path: Path) -> None:
    """sys/state Active (the run had not ended at export) imports as running, and the
    next import of the ended run completes it; a run whose creation time was not
    exported has its id derived from 0, never from the Parquet file's mtime."""
    data = tmp_path / "exports" / "data" / PROJECT_DIR
    live = [*sys_rows("VIS-7", "live", T0), row("VIS-7", "sys/state", "string", string_value="Active")]
    live += series("VIS-7", "metrics/loss", range(3))
    write_parquet(data / "VIS-7_part_0.parquet", live)
    bare = [row("VIS-8", "sys/name", "string", string_value="bare"),
            *series("VIS-8", "metrics/loss", range(2))]  # fmt: skip
    write_parquet(data / "VIS-8_part_0.parquet", bare)
    first = import_neptune(store, tmp_path / "exports")
    names = by_name(store, first.created)
    assert read.load_row(store, names["live"])["status"] == "running"
    assert read.load_row(store, names["live"])["ended_at"] is None
    assert names["bare"] == external.derived_id("neptune", f"{PROJECT}/VIS-8", 0.0)
    assert read.load_row(store, names["bare"])["started_at"] == T0  # its first point
    os.utime(data / "VIS-8_part_0.parquet", (T0 + 99, T0 + 99))  # a copy or a touch
    live[-4] = row("VIS-7", "sys/state", "string", string_value="Inactive")
    write_parquet(data / "VIS-7_part_0.parquet", live)
    again = import_neptune(store, tmp_path / "exports")
    assert again.updated == [names["live"]] and again.unchanged == [names["bare"]]
    assert read.load_row(store, names["live"])["status"] == "finished"
