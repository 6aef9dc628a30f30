"""A run read from another tracker, and its idempotent write into a store.

The W&B, TensorBoard and Neptune importers each read their system's files into
:class:`SourceRun` values (what the run was: its original id, name, times, params,
tags, every metric point, summary values, files) and hand each to :func:`write_run`.
That keeps the rules of an import in one place:

- the run's id is ``records.external.derived_id(system, original id, start time)``,
  so importing the same source again finds the run instead of making a second one;
- tags ``import.source``, ``import.id`` and ``experiment`` keep where it came from;
- a run already in the store is compared with its source: identical is "unchanged";
  what the source has added since (metric points past the ones stored, new tags,
  params or files, an end) is appended and the run is "updated"; a source that
  disagrees with what was imported (a metric's stored points no longer its prefix,
  a param with another value) is "skipped" with why, and nothing of it is changed.

File bytes are read through :class:`runbase.core.safepath.SafeRoot` (no component
followed through a symlink) and stored as objects (BLAKE3, deduplicated), then
recorded as run outputs.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from runbase.core import progress
from runbase.core.safepath import SafeRoot, check_relpath
from runbase.errors import Conflict, RunbaseError, UnsafePathError
from runbase.interop.report import ImportReport
from runbase.records import external
from runbase.records.experiments import MAX_KEY, MAX_VALUE
from runbase.records.files import list_files
from runbase.records.read import load_metrics, load_params, load_row, load_tags
from runbase.store import Store

MODE = "import"  # runs.mode of every imported run
POINTS_PER_CALL = 200_000  # external.log_points takes at most a million in one call


@dataclass(frozen=True)
class SourceFile:
    """A file of the source run: stored as output ``path``, read from ``rel`` under
    ``root`` (never through a symlink)."""

    path: str
    root: Path
    rel: str


@dataclass
class SourceRun:
    """One run as another system recorded it. ``params`` values are text (a number's
    or a boolean's JSON text is stored as that number or boolean, as external.set_params
    does for MLflow); ``points`` are ``(key, step, time in seconds, value)`` in the
    order logged; ``summary`` holds values the run reported as its result that its
    metric history does not end with."""

    system: str
    original_id: str
    started_at: float
    name: str | None = None
    experiment: str | None = None
    ended_at: float | None = None
    status: str = "finished"
    user: str | None = None
    host: str | None = None
    command: list[str] = field(default_factory=list)
    parent_id: str | None = None  # a runbase run id (the importer derives it)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    points: list[tuple[str, int, float, float]] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    files: list[SourceFile] = field(default_factory=list)

    @property
    def what(self) -> str:
        """How the report names this run."""
        return f"run {self.original_id}" + (f" ({self.name})" if self.name else "")


def ok_key(key: str) -> bool:
    """Whether ``key`` can name a param, tag or metric here (external's rules)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY and "\x00" not in key


def ok_value(value: str) -> bool:
    return isinstance(value, str) and len(value) <= MAX_VALUE and "\x00" not in value


def ok_time(t: float) -> bool:
    return math.isfinite(t) and 0 <= t < 1e11  # after 1970, before the year 5000


def run_id_of(system: str, original_id: str, started_at: float) -> str:
    return external.derived_id(system, original_id, started_at)


def write_run(store: Store, src: SourceRun, report: ImportReport) -> str | None:
    """Create ``src`` in ``store``, or bring its earlier import up to date; record the
    outcome in ``report``. Returns the run's id (None when it was skipped)."""
    try:
        run_id = run_id_of(src.system, src.original_id, src.started_at)
        tags = dict(src.tags)
        tags.update({"import.source": src.system, "import.id": src.original_id})
        if src.experiment:
            tags["experiment"] = src.experiment
        if not external.exists(store, run_id):
            _create(store, run_id, src, tags, report)
            report.created.append(run_id)
        elif _update(store, run_id, src, tags, report):
            report.updated.append(run_id)
        else:
            report.unchanged.append(run_id)
    except RunbaseError as e:
        report.skipped.append((src.what, str(e)))
        return None
    return run_id


def _create(
    store: Store, run_id: str, src: SourceRun, tags: dict[str, str], report: ImportReport
) -> None:
    # the run is created "running" and given its status last: an import cut short
    # leaves a run that a second import completes (its points, files, end)
    external.create_run(
        store,
        run_id=run_id,
        name=src.name,
        started_at=src.started_at,
        user=src.user,
        mode=MODE,
        command=src.command,
        host=src.host,
        parent_id=src.parent_id,
        tags=tags,
    )
    if src.params:
        external.set_params(store, run_id, src.params, src.system)
    _log(store, run_id, src.points)
    _summary(store, run_id, src.summary)
    _files(store, run_id, src, report)
    external.set_status(store, run_id, src.status, _ended(src))


def _ended(src: SourceRun) -> float | None:
    if src.status == "running":
        return None
    return src.ended_at if src.ended_at is not None else src.started_at


def _update(
    store: Store, run_id: str, src: SourceRun, tags: dict[str, str], report: ImportReport
) -> bool:
    """Append what ``src`` has that the stored run lacks; True if anything was added.
    Conflict (nothing written) when the source disagrees with what is stored."""
    tails = _metric_tails(store, run_id, src.points)  # checks everything before writing
    have_params = load_params(store, [run_id])[run_id]
    new_params = {k: v for k, v in src.params.items() if k not in have_params}
    try:
        external.set_params(store, run_id, src.params, src.system)
    except Conflict as e:
        raise Conflict(f"it differs from its earlier import: {e}") from None
    have_tags = load_tags(store, [run_id])[run_id]
    new_tags = {k: v for k, v in tags.items() if have_tags.get(k) != v}
    if new_tags:
        external.set_tags(store, run_id, new_tags)
    tail_points = [p for tail in tails.values() for p in tail]
    _log(store, run_id, tail_points)
    have_summary = load_metrics(store, [run_id])[run_id]
    new_summary = {
        k: v
        for k, v in src.summary.items()
        if not _same_float(have_summary.get(k, {}).get("value"), v)
    }
    wrote_summary = _summary(store, run_id, new_summary)
    new_files = _files(store, run_id, src, report)
    row = load_row(store, run_id)
    ended = _ended(src)
    moved = row.get("status") != src.status or (
        ended is not None and not _same_float(row.get("ended_at"), ended)
    )
    if moved:
        external.set_status(store, run_id, src.status, ended)
    return bool(new_params or new_tags or tail_points or wrote_summary or new_files or moved)


def _metric_tails(
    store: Store, run_id: str, points: list[tuple[str, int, float, float]]
) -> dict[str, list[tuple[str, int, float, float]]]:
    """Per key, the source's points past those already stored. Conflict when the
    stored points are not where the source has them (not the same run any more)."""
    by_key: dict[str, list[tuple[str, int, float, float]]] = {}
    for p in points:
        by_key.setdefault(p[0], []).append(p)
    counts = {k: int(m.get("count") or 0) for k, m in load_metrics(store, [run_id])[run_id].items()}
    tails: dict[str, list[tuple[str, int, float, float]]] = {}
    for key, pts in by_key.items():
        n = counts.get(key, 0)
        if n > len(pts):
            raise Conflict(
                f"metric {key!r} has {n} points here and {len(pts)} at the source: "
                "it differs from its earlier import"
            )
        if n:
            step, _t, value = external.metric_history(store, run_id, key)[n - 1]
            if step != pts[n - 1][1] or not _same_float(value, pts[n - 1][3]):
                raise Conflict(f"metric {key!r} differs from its earlier import at point {n}")
        if len(pts) > n:
            tails[key] = pts[n:]
    return tails


def _same_float(a: object, b: float) -> bool:
    if not isinstance(a, (int, float)):
        return False
    return a == b or (math.isnan(a) and math.isnan(b))


def _log(store: Store, run_id: str, points: list[tuple[str, int, float, float]]) -> None:
    for i in range(0, len(points), POINTS_PER_CALL):
        external.log_points(store, run_id, points[i : i + POINTS_PER_CALL])


def _summary(store: Store, run_id: str, values: dict[str, float]) -> bool:
    """Set summary values; whether any was written."""
    if values:
        external.set_summary(store, run_id, values)
    return bool(values)


def _files(store: Store, run_id: str, src: SourceRun, report: ImportReport) -> int:
    """Store ``src``'s files as outputs of the run; how many it did not have yet. A
    file that cannot be read or kept is reported skipped; the run goes on."""
    have = {f["path"]: f["hash"] for f in list_files(store, run_id)["outputs"]}
    added = 0
    for f in src.files:
        try:
            check_relpath(f.path)
            oid, size = _put(store, f)
        except (RunbaseError, OSError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            report.skipped.append((f"file {f.path} of {src.what}", why))
            continue
        if have.get(f.path) != oid:
            external.add_output(store, run_id, f.path, oid, size, src.system)
            added += 1
    return added


def _put(store: Store, f: SourceFile) -> tuple[str, int]:
    """The bytes of ``f`` as an object of the store: (id, size)."""
    fd = SafeRoot(f.root).open_read(f.rel)
    with os.fdopen(fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f.rel, "is not a regular file")
        with store.objects.writer(st.st_size) as w:
            while chunk := fin.read(1 << 20):
                w.write(chunk)
                progress.advance(len(chunk))
    return w.oid, w.size
