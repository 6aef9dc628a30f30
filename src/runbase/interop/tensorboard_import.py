"""``runbase import tensorboard LOGDIR``: TensorBoard event files as runbase runs.

One run per directory holding event files (``*tfevents*``), found anywhere under
LOGDIR, as TensorBoard itself lists runs. Read with TensorBoard's own event file
loader (``tensorboard.backend.event_processing.event_file_loader``, which also brings
old ``simple_value`` summaries into today's tensor form), imported lazily
(``pip install tensorboard``).

What maps (docs/interop.md): every scalar (each tag a metric key; every step, wall
time and value as stored: a 32-bit float stays that float's exact value), the hparams
plugin's session (its hparams as params, source ``tensorboard``), the first and last
wall time as start and end. The run's original id (tag ``import.id``) is its directory
relative to LOGDIR (LOGDIR's own name for event files directly in it), which is also
its name; the tag ``experiment`` is LOGDIR's name unless ``--experiment`` names one.
An event whose wall time is not a valid time is left out and counted.

PyTorch's ``SummaryWriter.add_hparams`` writes its hparams and metrics into a new
subdirectory of the writer's directory: a directory holding an hparams session
directly below a run directory is taken as part of that run, not a run of its own.

Not mapped, and counted in the report: text summaries, histograms, images, audio, graphs
and other plugins' data, scalars that are not single numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runbase.errors import NotFound, UsageError
from runbase.interop.imported import SourceRun, ok_key, ok_time, ok_value, write_run
from runbase.interop.report import ImportReport, Progress, new_report, report_step
from runbase.store import Store

SYSTEM = "tensorboard"
EVENTS = "tfevents"  # in every event file's name: events.out.tfevents.<time>.<host>...
SESSION_START = "_hparams_/session_start_info"
SESSION_END = "_hparams_/session_end_info"
EXPERIMENT = "_hparams_/experiment"
# plugins' names as the report counts what they hold
PLUGIN_NAMES = {
    "text": "text summaries",
    "histograms": "histograms",
    "distributions": "histograms",
    "images": "images",
    "audio": "audio",
    "pr_curves": "PR curves",
    "mesh": "meshes",
    "projector": "embeddings",
    "custom_scalars": "custom scalar layouts",
}


@dataclass
class _Dir:
    """What the event files of one directory hold."""

    rel: str
    points: list[tuple[str, int, float, float]] = field(default_factory=list)
    hparams: dict[str, str] = field(default_factory=dict)
    session: bool = False  # holds an hparams session
    first: float | None = None
    last: float | None = None


def import_tensorboard(
    store: Store,
    source: Path | str,
    *,
    experiment: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every run under the TensorBoard log directory ``source``."""
    root = Path(source)
    rels = run_dirs(root)
    tb = _tensorboard()
    report = new_report(SYSTEM, progress)
    name = experiment or root.resolve().name or "tensorboard"
    # os.walk lists a directory's subdirectories right after it, so a run stays open
    # only while the directories read next are below it (where an hparams session of
    # PyTorch's add_hparams would be); each run is written once it is closed
    open_runs: dict[str, list[_Dir]] = {}
    for i, rel in enumerate(rels):
        report_step(progress, i, len(rels), _original_id(rel, root))
        d = _read_dir(root, rel, tb, report)
        parent = rel.rsplit("/", 1)[0] if "/" in rel else "."
        if d.session and rel != "." and parent in open_runs and not open_runs[parent][0].session:
            open_runs[parent].append(d)
            continue
        for other in [r for r in open_runs if not _below(rel, r)]:
            _write(store, root, other, open_runs.pop(other), name, report)
        open_runs[rel] = [d]
    for other in list(open_runs):
        _write(store, root, other, open_runs.pop(other), name, report)
    report_step(progress, len(rels), len(rels), "")
    return report


def _below(rel: str, other: str) -> bool:
    return other == "." or rel.startswith(other + "/")


def _write(
    store: Store, root: Path, rel: str, dirs: list[_Dir], experiment: str, report: ImportReport
) -> None:
    src = _source(_original_id(rel, root), dirs, experiment, report)
    if src is not None:
        write_run(store, src, report)


def _original_id(rel: str, root: Path) -> str:
    """A run's id at its source: its directory relative to LOGDIR; LOGDIR's own name
    for event files directly in LOGDIR (a single-run log directory), so two such
    directories are two runs, each named as the directory."""
    return rel if rel != "." else (root.resolve().name or "tensorboard")


def run_dirs(root: Path) -> list[str]:
    """The directories under ``root`` holding event files, relative to it, each
    followed by those below it. Links are not followed."""
    if not root.exists():
        raise NotFound(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory (a TensorBoard log directory)")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(EVENTS in f and not os.path.islink(os.path.join(dirpath, f)) for f in filenames):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            found.append(rel)
    if not found:
        raise UsageError(f"no TensorBoard event files (*tfevents*) under {root}")
    return found


def _tensorboard() -> SimpleNamespace:
    # TensorBoard reads files through TensorFlow when it is installed, whose C++ log
    # would print start-up notices on the import's terminal (a user's own setting wins)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        # lazy: tensorboard is optional and loads TensorFlow when that is installed
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.plugins.hparams import metadata as hparams
        from tensorboard.util import tensor_util
    except ImportError:
        raise UsageError(
            "importing TensorBoard logs needs the tensorboard package: pip install tensorboard"
        ) from None
    return SimpleNamespace(loader=event_file_loader, hparams=hparams, tensor_util=tensor_util)


def _events(path: Path, tb: SimpleNamespace) -> Iterator[Any]:
    # TensorBoard's loader: a truncated last record (a writer still running) ends it
    yield from tb.loader.EventFileLoader(str(path)).Load()


def _read_dir(root: Path, rel: str, tb: SimpleNamespace, report: ImportReport) -> _Dir:
    out = _Dir(rel)
    where = root / rel
    files = sorted(
        p for p in where.iterdir() if EVENTS in p.name and p.is_file() and not p.is_symlink()
    )
    for path in files:
        read = 0
        try:
            for event in _events(path, tb):
                read += 1
                _event(out, event, tb, report)
        except Exception as e:  # noqa: BLE001 - a damaged file is reported, the rest imported
            report.skipped.append((f"event file {rel}/{path.name}", f"{type(e).__name__}: {e}"))
            continue
        if read == 0 and _size(path) > 0:
            # the loader ends quietly at a record it cannot read (as at a writer's
            # unfinished last one): bytes and not one event is a damaged file
            report.skipped.append(
                (f"event file {rel}/{path.name}", "damaged: not one event record could be read")
            )
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _event(out: _Dir, event: Any, tb: SimpleNamespace, report: ImportReport) -> None:
    t = float(event.wall_time)
    if not ok_time(t):  # no time to record it at: never guessed (1970, a neighbour's)
        report.not_mapped_add("events without a valid wall time")
        return
    out.first = t if out.first is None else min(out.first, t)
    out.last = t if out.last is None else max(out.last, t)
    kind = event.WhichOneof("what")
    if kind in ("graph_def", "meta_graph_def", "tagged_run_metadata"):
        report.not_mapped_add("graphs and run metadata")
    if kind != "summary":
        return
    for value in event.summary.value:
        _value(out, event.step, t, value, tb, report)


def _value(
    out: _Dir, step: int, t: float, value: Any, tb: SimpleNamespace, report: ImportReport
) -> None:
    plugin = value.metadata.plugin_data.plugin_name
    if plugin == "hparams":
        _hparams(out, value, tb, report)
        return
    if plugin == "scalars" or (not plugin and value.WhichOneof("value") == "simple_value"):
        number = _scalar(value, tb)
        if number is None:
            report.not_mapped_add("scalars that are not one number")
        elif not ok_key(value.tag):
            report.not_mapped_add("scalars with tags over 250 characters")
        else:
            out.points.append((value.tag, int(step), t, number))
        return
    report.not_mapped_add(PLUGIN_NAMES.get(plugin, f"{plugin or 'untyped'} summaries"))


def _scalar(value: Any, tb: SimpleNamespace) -> float | None:
    if value.WhichOneof("value") == "simple_value":
        return float(value.simple_value)
    try:
        array = tb.tensor_util.make_ndarray(value.tensor)
    except Exception:  # noqa: BLE001 - a malformed tensor is not a scalar
        return None
    if array.size != 1 or array.dtype.kind not in "fiub":
        return None
    return float(array.reshape(()).item())


def _hparams(out: _Dir, value: Any, tb: SimpleNamespace, report: ImportReport) -> None:
    if value.tag != SESSION_START:
        return  # the experiment's declared domains and the session's end say nothing new
    try:
        info = tb.hparams.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
    except Exception:  # noqa: BLE001 - an unreadable session is reported, the scalars kept
        report.not_mapped_add("unreadable hparams sessions")
        return
    out.session = True
    for key, v in info.hparams.items():
        text = _hparam_text(v)
        if text is None or not ok_key(key) or not ok_value(text):
            report.not_mapped_add("hparams that are not a number, string or boolean")
        else:
            out.hparams[key] = text


def _hparam_text(v: Any) -> str | None:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return str(v.string_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "number_value":
        return json.dumps(float(v.number_value)) if v.number_value == v.number_value else "NaN"
    return None


def _source(rel: str, dirs: list[_Dir], experiment: str, report: ImportReport) -> SourceRun | None:
    firsts = [d.first for d in dirs if d.first is not None]
    if not firsts:
        report.skipped.append((f"TensorBoard run {rel}", "its event files hold no events"))
        return None
    src = SourceRun(
        system=SYSTEM,
        original_id=rel,
        started_at=min(firsts),
        ended_at=max(d.last for d in dirs if d.last is not None),
        name=rel,
        experiment=experiment,
    )
    for d in dirs:
        src.points += d.points
        for k, v in d.hparams.items():
            src.params.setdefault(k, v)
    return src
