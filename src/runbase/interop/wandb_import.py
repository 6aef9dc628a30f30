"""``runbase import wandb PATH``: Weights & Biases runs from their local directories.

PATH is a ``wandb/`` directory (every ``run-*`` / ``offline-run-*`` directory in it)
or one run directory. Each run directory holds the run's transaction log,
``run-<id>.wandb``: the records W&B writes as the run goes (the run itself, config
changes, every history row, summary changes, the exit), and ``files/`` (what the run
saved). The log is what ``wandb sync`` uploads, so an offline run is complete in it.

The log is LevelDB's log format (32 KiB blocks of checksummed fragments) after a
7-byte W&B header, each record a ``wandb_internal_pb2.Record`` protobuf. wandb 0.31
no longer ships a Python reader of that file (its own reader is the Go ``wandb-core``),
so the framing is read here and every record decoded with the protobuf classes of the
installed ``wandb`` package, imported lazily (``pip install 'runbase[wandb]'``).

What maps (docs/interop.md): the run's id (tag ``import.id``), display name, start and
end, exit code (0: finished, other: failed, none: crashed), host, user, command; the
project (tag ``experiment``), entity, group, job type, notes, git commit and remote
(tags ``wandb.*``); W&B's tags (runbase tags with empty values); the config (params,
nested keys flattened ``a.b.c``, W&B's ``_wandb`` keys left out); every history row's
numeric values (full history: ``_step`` is the step, ``_timestamp`` the time); the
final summary where the history does not end with it (runbase summary values); the
files under ``files/`` (run outputs). Not mapped, and counted in the report: system
metrics, console output records, media and other non-numeric history values,
W&B Artifacts, alerts.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
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
    walk_files,
    write_run,
)
from runbase.interop.report import ImportReport, Progress, new_report, report_step
from runbase.store import Store

SYSTEM = "wandb"
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)  # ident, magic, version 0
BLOCK = 32 * 1024  # LevelDB's log block
FRAGMENT = 7  # a fragment's header: CRC-32 (uint32), length (uint16), type (uint8)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# records W&B keeps that runbase does not, by the name the report gives them
NOT_MAPPED = {
    "stats": "system metrics (stats records)",
    "output": "console output records",
    "output_raw": "console output records",
    "artifact": "W&B Artifacts",
    "use_artifact": "W&B Artifacts used",
    "alert": "alerts",
    "tbrecord": "TensorBoard sync records",
}


def import_wandb(
    store: Store,
    source: Path | str,
    *,
    experiment: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every W&B run under ``source`` (see the module's docstring)."""
    logs = find_logs(Path(source))
    pb = _protobuf()
    report = new_report(SYSTEM, progress)
    for i, log in enumerate(logs):
        report_step(progress, i, len(logs), log.parent.name)
        src = read_run(log, pb, report, experiment)
        if src is not None:
            write_run(store, src, report)
    report_step(progress, len(logs), len(logs), "")
    return report


def find_logs(root: Path) -> list[Path]:
    """The ``.wandb`` logs under ``root``: a run directory's, or those of every run
    directory in a ``wandb/`` directory (``latest-run``, a link, is not followed)."""
    if not root.exists():
        raise NotFound(f"{root} does not exist")
    if root.is_file():
        if root.suffix == ".wandb":
            return [root]
        raise UsageError(f"{root} is not a W&B run log (a run-<id>.wandb file)")
    logs = sorted(p for p in root.glob("*.wandb") if p.is_file() and not p.is_symlink())
    if not logs:
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.is_symlink():
                logs += sorted(p for p in d.glob("*.wandb") if p.is_file() and not p.is_symlink())
    if not logs:
        raise UsageError(
            f"no W&B runs in {root}: expected a wandb/ directory, or a run directory "
            "(offline-run-...) holding a run-<id>.wandb file"
        )
    return logs


def _protobuf() -> ModuleType:
    try:
        # lazy: wandb is an optional dependency and costs a second to import
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise UsageError(
            "importing W&B runs needs the wandb package: pip install 'runbase[wandb]'"
        ) from None
    return wandb_internal_pb2


# -- the log's framing ----------------------------------------------------------------------


def read_records(data: bytes | mmap.mmap, stopped: list[str]) -> Iterator[bytes]:
    """The records of a ``.wandb`` file's bytes, one at a time. Why reading stopped
    before the end, if it did, is appended to ``stopped``: a run still writing, or
    killed, ends mid-record."""
    if data[: len(HEADER)] != HEADER:
        raise UsageError("not a W&B transaction log (its header is not W&B's)")
    pending: bytearray | None = None
    pos = len(HEADER)
    while pos < len(data):
        room = BLOCK - pos % BLOCK
        if room < FRAGMENT:  # a block's tail too short for a header is padding
            pos += room
            continue
        if pos + FRAGMENT > len(data):
            stopped.append("the log ends inside a record header")
            return
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == 0 and length == 0 and kind == 0:  # zeros: the rest of the block is empty
            pos += room
            continue
        body = data[pos + FRAGMENT : pos + FRAGMENT + length]
        if length > room - FRAGMENT or len(body) < length:
            stopped.append("the log ends inside a record")
            return
        if zlib.crc32(body, zlib.crc32(bytes([kind]))) != crc:
            stopped.append(f"a record at byte {pos} fails its checksum")
            return
        pos += FRAGMENT + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = bytearray(body)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += body
            if kind == LAST:
                yield bytes(pending)
                pending = None
        else:
            stopped.append(f"a record fragment of unknown type {kind} at byte {pos}")
            return
    if pending is not None:
        stopped.append("the log ends inside a record")


# -- the records --------------------------------------------------------------------------


class _Run:
    """What the records of one log add up to."""

    def __init__(self) -> None:
        self.run: Any = None
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.points: list[tuple[str, int, float, float]] = []
        self.last: dict[str, float] = {}  # each key's last history value
        self.exit: Any = None
        self.env: dict[str, Any] = {}
        self.latest = 0.0  # the latest time any record carried
        self.step = -1


def read_run(
    log: Path, pb: ModuleType, report: ImportReport, experiment: str | None
) -> SourceRun | None:
    """The run of one ``.wandb`` log (None, reported skipped, when it cannot be read)."""
    what = f"W&B log {log}"
    acc = _Run()
    stopped: list[str] = []
    try:
        with open(log, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise UsageError("the file is empty")
            # mapped, not read: a long run's log may be larger than memory
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                for raw in read_records(data, stopped):
                    _parse(acc, raw, pb, report)
    except (OSError, UsageError) as e:
        report.skipped.append((what, getattr(e, "strerror", None) or str(e)))
        return None
    if stopped:
        report.skipped.append((f"the end of {what}", f"{stopped[0]}; what came before is imported"))
    if acc.run is None or not acc.run.run_id:
        report.skipped.append((what, "it holds no run record"))
        return None
    return _source(acc, log.parent, report, experiment)


def _parse(acc: _Run, raw: bytes, pb: ModuleType, report: ImportReport) -> None:
    rec = pb.Record()
    try:
        rec.ParseFromString(raw)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: a damaged record is counted
        report.not_mapped_add("unreadable records")
        return
    _apply(acc, rec, report)


def _apply(acc: _Run, rec: Any, report: ImportReport) -> None:
    kind = rec.WhichOneof("record_type")
    if kind == "run":
        acc.run = rec.run
        _update(acc.config, rec.run.config.update, rec.run.config.remove)
        _update(acc.summary, rec.run.summary.update, rec.run.summary.remove)
    elif kind == "config":
        _update(acc.config, rec.config.update, rec.config.remove)
    elif kind == "summary":
        _update(acc.summary, rec.summary.update, rec.summary.remove)
    elif kind == "history":
        _history(acc, rec.history, report)
    elif kind == "exit":
        acc.exit = rec.exit
    elif kind == "environment":
        env = rec.environment
        for name in ("username", "host", "program", "code_path", "code_path_local"):
            if getattr(env, name) and name not in acc.env:
                acc.env[name] = getattr(env, name)
        if env.args and "args" not in acc.env:
            acc.env["args"] = list(env.args)
        if env.git.commit and "git" not in acc.env:
            acc.env["git"] = env.git
    elif kind in NOT_MAPPED:
        report.not_mapped_add(NOT_MAPPED[kind])
        if kind == "stats" and rec.stats.timestamp.seconds:
            acc.latest = max(acc.latest, _ts(rec.stats.timestamp))


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _json(text: str) -> Any:
    try:
        return json.loads(text)  # W&B writes NaN and Infinity as Python's json does
    except ValueError:
        return text


def _update(into: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        into[_key(item)] = _json(item.value_json)
    for item in removes:
        into.pop(_key(item), None)


def _ts(stamp: Any) -> float:
    return float(stamp.seconds) + stamp.nanos / 1e9


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def _history(acc: _Run, hist: Any, report: ImportReport) -> None:
    row = {_key(item): _json(item.value_json) for item in hist.item}
    step = row.get("_step")
    if isinstance(step, bool) or not isinstance(step, int):
        step = hist.step.num if hist.HasField("step") and hist.step.num else acc.step + 1
    acc.step = step
    t = _number(row.get("_timestamp"))
    if t is None or not ok_time(t):
        t = acc.latest
    acc.latest = max(acc.latest, t)
    for key, value in _flat(row):
        if key.startswith("_"):
            continue  # _step, _timestamp, _runtime and W&B's own
        v = _number(value)
        if v is None:
            kind = value.get("_type") if isinstance(value, dict) else None
            report.not_mapped_add(
                f"history {kind}s" if isinstance(kind, str) else "non-numeric history values"
            )
        elif not ok_key(key):
            report.not_mapped_add("history keys over 250 characters")
        elif not -I64 <= step < I64:  # runbase's steps are 64-bit
            report.not_mapped_add("metric points with steps outside 64 bits")
        else:
            acc.points.append((key, step, t, v))
            acc.last[key] = v


def _flat(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys; a dict W&B typed (``_type``: an image, a table, a
    histogram) is one value."""
    out: list[tuple[str, Any]] = []
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and "_type" not in v:
            out += _flat(v, key + ".")
        else:
            out.append((key, v))
    return out


def _param_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def _source(acc: _Run, run_dir: Path, report: ImportReport, experiment: str | None) -> SourceRun:
    run = acc.run
    started = _ts(run.start_time) if run.start_time.seconds else 0.0
    id_time = None
    if not ok_time(started) or started == 0.0:
        # no start recorded: the first point's time (else 0) is shown, and the id is
        # derived from 0, which the next import of the same log finds again
        started, id_time = min((p[2] for p in acc.points), default=0.0), 0.0
    src = SourceRun(
        system=SYSTEM,
        original_id=run.run_id,
        started_at=started,
        id_time=id_time,
        name=run.display_name or None,
        experiment=experiment or run.project or None,
        host=run.host or acc.env.get("host") or None,
        user=acc.env.get("username") or None,
        points=acc.points,
    )
    program = acc.env.get("code_path_local") or acc.env.get("program")
    if program:
        src.command = [program, *acc.env.get("args", [])]
    _status(src, acc)
    _params(src, acc.config, report)
    _tags(src, run, acc.env)
    _summary(src, acc, report)
    src.files = _files(run_dir, report)
    return src


def _status(src: SourceRun, acc: _Run) -> None:
    if acc.exit is None:
        src.status = "crashed"  # the process ended (or is still running) without an exit record
        src.ended_at = max(acc.latest, src.started_at)
        return
    src.status = "finished" if acc.exit.exit_code == 0 else "failed"
    src.ended_at = max(acc.latest, src.started_at + max(acc.exit.runtime, 0))


def _params(src: SourceRun, config: dict[str, Any], report: ImportReport) -> None:
    for key, value in _flat({k: v for k, v in config.items() if k != "_wandb"}):
        text = _param_text(value)
        if ok_key(key) and ok_value(text):
            src.params[key] = text
        else:
            report.not_mapped_add("config values too long")


def _tags(src: SourceRun, run: Any, env: dict[str, Any]) -> None:
    for label in run.tags:
        if ok_key(label):
            src.tags[label] = ""
    named = {
        "wandb.project": run.project,
        "wandb.entity": run.entity,
        "wandb.group": run.run_group,
        "wandb.job_type": run.job_type,
        "wandb.notes": run.notes,
        "wandb.sweep_id": run.sweep_id,
        "wandb.git.commit": run.git.commit or (env["git"].commit if "git" in env else ""),
        "wandb.git.remote": run.git.remote_url or (env["git"].remote_url if "git" in env else ""),
    }
    src.tags.update({k: v for k, v in named.items() if v and ok_value(v)})


def _summary(src: SourceRun, acc: _Run, report: ImportReport) -> None:
    """Summary values W&B did not take from the history's last row: a key never
    logged (``run.summary["best"] = ...``) or one set to another value."""
    for key, value in _flat(acc.summary):
        if key.startswith("_"):
            continue
        v = _number(value)
        if v is None:
            report.not_mapped_add("non-numeric summary values")
        elif ok_key(key) and not (key in acc.last and _same(acc.last[key], v)):
            src.summary[key] = v


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _files(run_dir: Path, report: ImportReport) -> list[SourceFile]:
    """The files under ``files/``, each by its path there. A symlink (``wandb.save``
    links what it saves) is followed only to a file inside the run directory."""
    what = f"W&B run {run_dir.name}"
    found = walk_files(run_dir, report, what, sub="files", follow_inside=run_dir)
    return [f for f, _size in found]
