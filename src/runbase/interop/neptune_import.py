"""``runbase import neptune PATH``: runs exported from Neptune by ``neptune-exporter``.

``neptune-exporter export`` (github.com/neptune-ai/neptune-exporter, the tool Neptune
users move out with) writes, per Neptune project, one directory of Parquet files
(``<data>/<project>/<run>_part_<n>.parquet``; a run is complete once its ``part_0``
exists) and the run's downloaded files under ``<files>/<project>/``. Every row is one
value of one attribute of one run, in one schema: ``project_id``, ``run_id``,
``attribute_path``, ``attribute_type`` (``float``, ``int``, ``string``, ``bool``,
``datetime``, ``string_set``, ``float_series``, ``string_series``,
``histogram_series``, ``file``, ``file_series``, ``file_set``, ``artifact``), ``step``
(decimal), ``timestamp``, one typed value column (``float_value`` ...), ``file_value``
(``{path}`` relative to the project's files directory). Read with pyarrow
(``pip install 'runbase[data]'``).

PATH is the exporter's output directory (holding ``data/`` and ``files/``), its data
directory, or one project directory in it.

What maps (docs/interop.md): each run (tag ``import.id`` = ``<project>/<run id>``;
the project is the tag ``experiment`` unless ``--experiment`` names one); ``sys/name``
as the name, ``sys/creation_time`` the start, the latest ``sys/modification_time`` /
``sys/ping_time`` the end, ``sys/owner`` the user, ``sys/hostname`` the host,
``sys/failed`` the status (failed, else finished), ``sys/tags`` runbase tags (empty
values), the other ``sys/*`` values tags by their path, a fork's parent
(``sys/forking/parent``) the parent run when it is imported with it; every other
single value a param (source ``neptune``: numbers, strings, booleans, times as ISO 8601,
string sets as JSON lists); every float series in full (its path the metric key; each
step, time and value; a fractional step is rounded down and counted in the report);
files, file series, file sets and artifacts' file lists as run outputs. Not mapped,
and counted: string series, histogram series.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from runbase.core.shapes import I64
from runbase.errors import NotFound, UsageError
from runbase.interop.imported import (
    SourceFile,
    SourceRun,
    ok_key,
    ok_time,
    ok_value,
    run_id_of,
    walk_files,
    write_run,
)
from runbase.interop.report import ImportReport, Progress, new_report, report_step
from runbase.store import Store

SYSTEM = "neptune"
PART = "_part_"
BATCH = 65_536  # rows per batch read
COLUMNS = (
    "project_id",
    "run_id",
    "attribute_path",
    "attribute_type",
    "step",
    "timestamp",
    "int_value",
    "float_value",
    "string_value",
    "bool_value",
    "datetime_value",
    "string_set_value",
    "file_value",
)
PARAM_TYPES = frozenset({"float", "int", "string", "bool", "datetime", "string_set"})
FILE_TYPES = frozenset({"file", "file_series", "file_set", "artifact"})
NOT_MAPPED = {"string_series": "string series values", "histogram_series": "histogram values"}
META = ("sys/creation_time", "sys/forking/parent")  # read first: a run's id and its parent's
STATE = "sys/state"  # Neptune 2's run state, where an export holds it (any attribute type)
RUNNING_STATES = frozenset({"active", "running"})  # as the API and the client spell it


@dataclass
class _RunFiles:
    """One exported run: its Parquet parts in order, where its files are."""

    project_dir: Path
    parts: list[Path]
    files_root: Path | None  # <files>/<project dir>, if there


@dataclass
class _Read:
    """What the rows of one run add up to."""

    project_id: str = ""
    run_id: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # single values by path
    types: dict[str, str] = field(default_factory=dict)
    points: list[tuple[str, int, float, float]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # (attribute path, file path)
    counters: dict[str, int] = field(default_factory=dict)  # per series key: the next step
    first: float | None = None  # the earliest point time read (a start when none exported)
    state: str | None = None  # sys/state where the export has it (Neptune 2: Active/running)


def import_neptune(
    store: Store,
    source: Path | str,
    *,
    experiment: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every complete run exported under ``source`` (see the module's docstring)."""
    runs = find_runs(Path(source))
    pq = _parquet()
    report = new_report(SYSTEM, progress)
    metas: list[tuple[_RunFiles, str, float | None, str | None]] = []
    for run in runs:
        try:
            metas.append((run, *_meta(pq, run)))
        except UsageError as e:
            report.skipped.append((f"Neptune run {run.parts[0].name}", str(e)))
    if not metas and runs:
        raise UsageError(
            "no Neptune run could be read: "
            + "; ".join(f"{what}: {why}" for what, why in report.skipped[:3])
        )
    # a run without a creation time has its id derived from 0: never from a file's
    # mtime, which a copy or a touch changes (the run would be imported twice)
    ids = {key: run_id_of(SYSTEM, key, created or 0.0) for _r, key, created, _p in metas}
    metas.sort(key=lambda m: m[2] or 0.0)  # by start: a fork's parent before it
    for i, (run, key, created, parent) in enumerate(metas):
        report_step(progress, i, len(metas), key)
        src = _read_run(pq, run, key, created, report)
        if src is None:
            continue
        src.experiment = experiment or src.experiment
        if parent is not None:
            src.parent_id = ids.get(f"{key.rsplit('/', 1)[0]}/{parent}")
        write_run(store, src, report)
    report_step(progress, len(metas), len(metas), "")
    return report


def _parquet() -> ModuleType:
    try:
        # lazy: pyarrow is an optional dependency (the data extra) and slow to import
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "importing Neptune exports needs pyarrow: pip install 'runbase[data]'"
        ) from None
    return pq


# -- finding the runs -----------------------------------------------------------------------


def find_runs(root: Path) -> list[_RunFiles]:
    """The complete runs under ``root`` (the exporter's output, its data directory, or
    one project directory), each run's parts in order."""
    if not root.exists():
        raise NotFound(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory (neptune-exporter's output)")
    if _parts_in(root):
        data, projects = root.parent, [root]
    else:
        data = root / "data" if (root / "data").is_dir() else root
        projects = sorted(d for d in data.iterdir() if d.is_dir() and not d.is_symlink())
    files = data.parent / "files"
    runs: list[_RunFiles] = []
    for project in projects:
        files_root = files / project.name if (files / project.name).is_dir() else None
        for _prefix, parts in sorted(_parts_in(project).items()):
            runs.append(_RunFiles(project, [parts[n] for n in sorted(parts)], files_root))
    if not runs:
        raise UsageError(
            f"no neptune-exporter runs under {root}: expected <project>/<run>_part_0.parquet "
            "files (the --data-path of `neptune-exporter export`)"
        )
    return runs


def _parts_in(project: Path) -> dict[str, dict[int, Path]]:
    """{run file prefix: {part number: path}} of the complete runs (with a part 0)."""
    found: dict[str, dict[int, Path]] = {}
    for p in project.glob(f"*{PART}*.parquet"):
        prefix, _, number = p.stem.rpartition(PART)
        if prefix and number.isdigit() and p.is_file() and not p.is_symlink():
            found.setdefault(prefix, {})[int(number)] = p
    return {k: v for k, v in found.items() if 0 in v}


# -- reading ------------------------------------------------------------------------------


def _batches(
    pq: ModuleType, path: Path, columns: list[str], only: tuple[str, ...] = ()
) -> Iterator[dict[str, list[Any]]]:
    """The rows of ``path`` as column lists, a batch at a time; UsageError naming the
    file when it is not the exporter's Parquet."""
    try:
        f = pq.ParquetFile(path)
        names = set(f.schema_arrow.names)
        missing = [
            c
            for c in ("project_id", "run_id", "attribute_path", "attribute_type")
            if c not in names
        ]
        if missing:
            raise UsageError(
                f"{path.name} is not a neptune-exporter Parquet file: it has no column "
                f"{', '.join(missing)}"
            )
        present = [c for c in columns if c in names]
        for batch in f.iter_batches(batch_size=BATCH, columns=present):
            cols = {c: batch.column(i).to_pylist() for i, c in enumerate(present)}
            n = batch.num_rows
            for c in columns:
                cols.setdefault(c, [None] * n)
            if only:
                keep = [i for i, a in enumerate(cols["attribute_path"]) if a in only]
                cols = {c: [v[i] for i in keep] for c, v in cols.items()}
            yield cols
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow's errors (not Parquet, bad types) name the file
        raise UsageError(
            f"{path.name} cannot be read as Parquet: {type(e).__name__}: {e}"
        ) from None


def _meta(pq: ModuleType, run: _RunFiles) -> tuple[str, float | None, str | None]:
    """A run's ``<project>/<run id>``, its creation time (None when not exported) and
    its fork parent's run id, from the few rows that say so."""
    project = run_id = ""
    created: float | None = None
    parent: str | None = None
    cols = ["project_id", "run_id", "attribute_path", "datetime_value", "string_value"]
    for path in run.parts:
        for b in _batches(pq, path, cols):
            if not project and b["project_id"]:
                project, run_id = str(b["project_id"][0] or ""), str(b["run_id"][0] or "")
            for attr, dt, text in zip(
                b["attribute_path"], b["datetime_value"], b["string_value"], strict=True
            ):
                if attr == "sys/creation_time" and isinstance(dt, datetime):
                    created = dt.timestamp()
                elif attr == "sys/forking/parent" and isinstance(text, str) and text:
                    parent = text
    if not project or not run_id:
        raise UsageError(f"{run.parts[0].name} holds no rows (no project or run id)")
    key = f"{project}/{run_id}"
    if created is not None and not ok_time(created):
        created = None
    return key, created, parent


def _read_run(
    pq: ModuleType, run: _RunFiles, key: str, created: float | None, report: ImportReport
) -> SourceRun | None:
    acc = _Read()
    try:
        for path in run.parts:
            for b in _batches(pq, path, list(COLUMNS)):
                _rows(acc, b, created or 0.0, report)
        if f"{acc.project_id}/{acc.run_id}" != key:
            raise UsageError("its Parquet parts name different runs")
        src = _source(acc, run, key, created if created is not None else acc.first or 0.0, report)
    except UsageError as e:
        report.skipped.append((f"Neptune run {key}", str(e)))
        return None
    except Exception as e:  # a file of values nothing foresaw: this run only, never the import
        report.skipped.append((f"Neptune run {key}", f"{type(e).__name__}: {str(e)[:500]}"))
        return None
    if created is None:
        src.id_time = 0.0  # the id as import_neptune derived it (ids)
    return src


def _rows(acc: _Read, b: dict[str, list[Any]], started: float, report: ImportReport) -> None:
    for i, attr in enumerate(b["attribute_path"]):
        kind = b["attribute_type"][i]
        if not acc.project_id:
            acc.project_id, acc.run_id = str(b["project_id"][i]), str(b["run_id"][i])
        elif (b["project_id"][i], b["run_id"][i]) != (acc.project_id, acc.run_id):
            raise UsageError("a Parquet part holds rows of another run")
        if not isinstance(attr, str) or not isinstance(kind, str):
            report.not_mapped_add("rows without an attribute path or type")
        elif attr == STATE and isinstance(b["string_value"][i], str):
            acc.state = b["string_value"][i]
        elif kind == "float_series":
            _point(acc, attr, b, i, started, report)
        elif kind in PARAM_TYPES:
            acc.values[attr] = _single(kind, b, i)
            acc.types[attr] = kind
        elif kind in FILE_TYPES:
            fv = b["file_value"][i]
            if isinstance(fv, dict) and isinstance(fv.get("path"), str):
                acc.files.append((attr, fv["path"]))
        else:
            report.not_mapped_add(NOT_MAPPED.get(kind, f"{kind} values"))


def _single(kind: str, b: dict[str, list[Any]], i: int) -> Any:
    column = {
        "float": "float_value",
        "int": "int_value",
        "string": "string_value",
        "bool": "bool_value",
        "datetime": "datetime_value",
        "string_set": "string_set_value",
    }[kind]
    return b[column][i]


def _point(
    acc: _Read, attr: str, b: dict[str, list[Any]], i: int, started: float, report: ImportReport
) -> None:
    value = b["float_value"][i]
    if value is None:
        value = b["int_value"][i]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        report.not_mapped_add("series points without a value")
        return
    if not ok_key(attr):
        report.not_mapped_add("series with paths over 250 characters")
        return
    raw = b["step"][i]
    if isinstance(raw, (Decimal, int, float)) and math.isfinite(raw):
        step = math.floor(raw)
        if step != raw:
            report.not_mapped_add("fractional steps (rounded down)")
    else:
        step = acc.counters.get(attr, 0)
    if not -I64 <= step < I64:  # runbase's steps are 64-bit: this point only is left
        report.not_mapped_add("metric points with steps outside 64 bits")
        return
    acc.counters[attr] = step + 1
    ts = b["timestamp"][i]
    t = ts.timestamp() if isinstance(ts, datetime) else None
    if t is None or not ok_time(t):
        t = started
    else:
        acc.first = t if acc.first is None else min(acc.first, t)
    acc.points.append((attr, int(step), t, float(value)))


def _text(kind: str, value: Any) -> str | None:
    """A single value as a param's text; None when the column holds a value of another
    type than its kind has (a file with wrong types: not mapped, never a traceback)."""
    if value is None:
        return None
    if kind == "string":
        return str(value)
    if kind == "bool":
        return ("true" if value else "false") if isinstance(value, bool) else None
    if kind == "datetime":
        return value.isoformat() if isinstance(value, datetime) else None
    if kind == "string_set":
        if not isinstance(value, (list, tuple)):
            return None
        return json.dumps(sorted(str(v) for v in value), ensure_ascii=False)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # float and int: a number only
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf: kept as text
    return json.dumps(value)


def _source(
    acc: _Read, run: _RunFiles, key: str, started: float, report: ImportReport
) -> SourceRun:
    v = acc.values
    ends = [
        t.timestamp()
        for k in ("sys/modification_time", "sys/ping_time")
        if isinstance(t := v.get(k), datetime)
    ]
    src = SourceRun(
        system=SYSTEM,
        original_id=key,
        started_at=started,
        ended_at=max([started, *(t for t in ends if ok_time(t)), *(p[2] for p in acc.points)]),
        name=_str(v.get("sys/name")) or acc.run_id,
        experiment=acc.project_id,
        user=_str(v.get("sys/owner")),
        host=_str(v.get("sys/hostname")),
        status=_status(acc),
        points=acc.points,
    )
    for attr, value in v.items():
        text = _text(acc.types[attr], value)
        if attr == "sys/tags" and isinstance(value, list):
            src.tags.update({str(t): "" for t in value if ok_key(str(t))})
        elif text is None:
            if value is not None:  # a column of another type than the attribute's
                report.not_mapped_add("values of another type than their attribute's")
            continue
        elif not ok_key(attr) or not ok_value(text):
            report.not_mapped_add("values over runbase's limits")
        elif attr.startswith("sys/"):
            src.tags[attr] = text
        else:
            src.params[attr] = text
    src.files = _files(acc, run, key, report)
    return src


def _status(acc: _Read) -> str:
    """failed (``sys/failed``), running (``sys/state`` Active or running: the run had
    not ended when it was exported; the next import completes it), else finished."""
    if acc.values.get("sys/failed") is True:
        return "failed"
    if (acc.state or "").strip().lower() in RUNNING_STATES:
        return "running"
    return "finished"


def _str(v: Any) -> str | None:
    return v[:256] if isinstance(v, str) and v and "\x00" not in v else None


def _files(acc: _Read, run: _RunFiles, key: str, report: ImportReport) -> list[SourceFile]:
    """The run's exported files as outputs: each under its path below the run's own
    directory (``<project>/<run id>/``), a directory (a file set, a series) file by file."""
    out: list[SourceFile] = []
    if not acc.files:
        return out
    if run.files_root is None:
        report.skipped.append(
            (
                f"files of Neptune run {key}",
                "no files directory beside the data (neptune-exporter's --files-path)",
            )
        )
        return out
    root = os.path.normpath(run.files_root)
    prefix = f"{acc.project_id}/{acc.run_id}/"
    for attr, rel in acc.files:
        name = rel[len(prefix) :] if rel.startswith(prefix) else rel
        full = os.path.normpath(os.path.join(root, rel))
        what = f"file {rel} of Neptune run {key}"
        if not full.startswith(root + os.sep) or os.path.islink(full):
            report.skipped.append((what, "a path out of the files directory"))
        elif os.path.isdir(full):
            inside = walk_files(Path(root), report, f"Neptune run {key}", sub=_rel(full, root))
            out += [SourceFile(f"{name}/{f.path}", f.root, f.rel) for f, _size in inside]
        elif os.path.exists(full):
            out.append(SourceFile(name, Path(root), _rel(full, root)))
        else:
            report.skipped.append((f"{what} ({attr})", "not in the files directory"))
    return out


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")
