"""A run read from another tracker, and its idempotent write into a store.

The W&B, TensorBoard and Neptune importers each read their system's files into
:class:`SourceRun` values (what the run was: its original id, name, times, params,
tags, every metric point, summary values, files) and hand each to :func:`write_run`.
That keeps the rules of an import in one place:

- the run's id is ``records.external.derived_id(system, original id, start time)``,
  so importing the same source again finds the run instead of making a second one;
- tags ``import.source``, ``import.id`` and ``experiment`` keep where it came from;
- a run already in the store is compared with its source: identical is "unchanged";
  otherwise the run mirrors its source and is "updated": metric points past the ones
  stored are appended, tags and files take the source's value (a tag or file changed
  there is changed here; one deleted there is kept), new params are added, the status
  and end follow. A source that disagrees with what was imported in a way a run never
  changes (a metric's stored points no longer its prefix, a param with another value)
  is "skipped" with why, and nothing of it is changed;
- a run that fails half way through its first write (a value the store refuses) is
  not left "running": it is marked failed with tag ``import.incomplete`` (why), and the
  next import completes it (and removes the tag) or reports it again.

Files are found by :func:`walk_files` (one symlink policy for every importer), read
through :class:`runbase.core.safepath.SafeRoot` (no component followed through a
symlink) and stored as objects (BLAKE3, deduplicated), then recorded as run outputs.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from runbase.core.safepath import SafeRoot, check_relpath
from runbase.errors import Conflict, RunbaseError, UnsafePathError
from runbase.interop.report import ImportReport
from runbase.records import external
from runbase.records.experiments import MAX_KEY, MAX_VALUE
from runbase.records.files import list_files
from runbase.records.read import load_metrics, load_params, load_row, load_tags
from runbase.store import Store

MODE = "import"  # runs.mode of every imported run
INCOMPLETE_TAG = "import.incomplete"  # a first write that failed half way: why
POINTS_PER_CALL = 200_000  # external.log_points takes at most a million in one call
_log_error = logging.getLogger(__name__)


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
    # the time the run's id is derived from, when the source has no start time of its
    # own (started_at is then a guess, e.g. its first point): a fixed 0, never a file's
    # mtime, so a copied or touched source still finds the run it made
    id_time: float | None = None
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
    def run_id(self) -> str:
        """The runbase id of this run (the same on every import of the same source)."""
        at = self.started_at if self.id_time is None else self.id_time
        return run_id_of(self.system, self.original_id, at)

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
        run_id = src.run_id
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
    except Exception as e:  # a bug or a value nothing foresaw: this run only, never the import
        _log_error.warning("importing %s failed", src.what, exc_info=True)
        report.skipped.append((src.what, f"{type(e).__name__}: {str(e)[:500]}"))
        return None
    return run_id


def _create(
    store: Store, run_id: str, src: SourceRun, tags: dict[str, str], report: ImportReport
) -> None:
    # the run is created "running" and given its status last: an import cut short
    # (killed) leaves a run that a second import completes (its points, files, end)
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
    try:
        if src.params:
            external.set_params(store, run_id, src.params, src.system)
        _log(store, run_id, src.points, report)
        _summary(store, run_id, src.summary)
        _files(store, run_id, src, report)
    except Exception as e:
        _incomplete(store, run_id, src, e)
        raise
    external.set_status(store, run_id, src.status, _ended(src))


def _incomplete(store: Store, run_id: str, src: SourceRun, error: Exception) -> None:
    """A run whose first write failed half way: failed (not "running" for ever), with
    why in tag ``import.incomplete``; the next import retries what is missing."""
    why = (str(error) or type(error).__name__)[:1000]
    try:
        external.set_tags(store, run_id, {INCOMPLETE_TAG: why})
        external.set_status(store, run_id, "failed", src.started_at)
    except RunbaseError:
        pass  # the store refuses writes now: the run stays as the failure left it


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
    _log(store, run_id, tail_points, report)
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
    completed = INCOMPLETE_TAG in have_tags  # an earlier first write that failed: done now
    if completed:
        external.delete_tag(store, run_id, INCOMPLETE_TAG)
    changed = new_params or new_tags or tail_points or wrote_summary or new_files
    return bool(changed or moved or completed)


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


def _log(
    store: Store, run_id: str, points: list[tuple[str, int, float, float]], report: ImportReport
) -> None:
    for i in range(0, len(points), POINTS_PER_CALL):
        batch = points[i : i + POINTS_PER_CALL]
        external.log_points(store, run_id, batch)
        report.advance("points stored", len(batch))


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
            oid, size = _put(store, f, report)
        except (RunbaseError, OSError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            report.skipped.append((f"file {f.path} of {src.what}", why))
            continue
        if have.get(f.path) != oid:
            external.add_output(store, run_id, f.path, oid, size, src.system)
            added += 1
    return added


def walk_files(
    root: Path,
    report: ImportReport,
    what: str,
    *,
    sub: str = "",
    follow_inside: Path | None = None,
) -> list[tuple[SourceFile, int]]:
    """Every regular file under ``root/sub`` (``sub`` a relative path), in path order:
    ``(SourceFile(path below root/sub, root, path below root), size)``. The one symlink
    policy of every importer: a directory being imported may come from anyone, so a
    link is never followed, except, with ``follow_inside``, a link to a regular file
    inside that directory (W&B's ``wandb.save`` links what it saves), which is read from
    where it points. Every link not followed, and anything that is not a regular file
    (a FIFO, a socket), is reported skipped, named by ``what``."""
    base = root / sub if sub else root
    if not base.is_dir() or base.is_symlink():
        return []
    inside = os.path.realpath(follow_inside) if follow_inside is not None else None
    out: list[tuple[SourceFile, int]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            try:
                st = os.lstat(full)
            except OSError:
                continue  # gone since it was listed
            if stat.S_ISREG(st.st_mode):
                out.append((SourceFile(rel, root, _below(full, root)), st.st_size))
            elif stat.S_ISLNK(st.st_mode):
                linked = _linked(full, inside)
                if linked is None:
                    why = _LINK_WHY + (_LINK_INSIDE if inside is not None else "")
                    report.skipped.append((f"file {rel} of {what}", why))
                else:
                    out.append((SourceFile(rel, Path(inside or ""), linked[0]), linked[1]))
            elif not stat.S_ISDIR(st.st_mode):  # a FIFO, a socket, a device: never read
                report.skipped.append((f"file {rel} of {what}", "not a regular file"))
    out.sort(key=lambda fs: fs[0].path)
    return out


_LINK_WHY = "a symbolic link: not followed"
_LINK_INSIDE = " (only a link to a file inside the run's directory is)"


def _below(full: str, root: Path) -> str:
    return os.path.relpath(full, root).replace(os.sep, "/")


def _linked(link: str, inside: str | None) -> tuple[str, int] | None:
    """(path below ``inside``, size) of the regular file ``link`` points to, when that
    is inside ``inside``; else None."""
    if inside is None:
        return None
    target = os.path.realpath(link)
    if not target.startswith(inside + os.sep):
        return None
    try:
        st = os.stat(target, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return os.path.relpath(target, inside).replace(os.sep, "/"), st.st_size


def _put(store: Store, f: SourceFile, report: ImportReport) -> tuple[str, int]:
    """The bytes of ``f`` as an object of the store: (id, size)."""
    fd = SafeRoot(f.root).open_read(f.rel)
    with os.fdopen(fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f.rel, "is not a regular file")
        with store.objects.writer(st.st_size) as w:
            while chunk := fin.read(1 << 20):
                w.write(chunk)
                report.advance("bytes", len(chunk))
    return w.oid, w.size
