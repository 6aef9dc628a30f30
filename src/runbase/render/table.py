"""Plain-text tables and human formats for the CLI (no third-party dependency)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import time
from fnmatch import fnmatchcase
from typing import Any

from runbase.capture.sysmetrics import is_system_metric
from runbase.core import fsname
from runbase.core.shapes import TIME
from runbase.errors import UsageError
from runbase.records.read import abbreviate


def fmt_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        s = json.dumps(v)
        return s if len(s) <= 30 else s[:29] + "…"
    s = str(v)
    return s if len(s) <= 30 else s[:29] + "…"


def fmt_age(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return ""
    d = max(0.0, (now or time.time()) - ts)
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= secs:
            return f"{int(d // secs)}{unit} ago"
    return f"{int(d)}s ago"


def fmt_count(m: dict[str, Any]) -> str:
    """A metric summary's point count; a value set only by ``runbase.summary`` has no
    points (and no min/max), which "0" would misstate as a metric that lost its points."""
    return str(m.get("count")) if m.get("count") else "summary"


def fmt_clock(ts: float) -> str:
    """An epoch time as the UTC time of day with milliseconds: ``14:03:07.412``."""
    if TIME.fit(ts) is None:  # NaN, inf, 1e300: what a store may hold is no time
        return ""
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def fmt_duration(d: float | None) -> str:
    if d is None:
        return ""
    if d < 60:
        return f"{d:.1f}s"
    m, s = divmod(int(d), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def render(headers: list[str], rows: list[list[str]], max_width: int | None = None) -> str:
    """Columns padded to their widest cell; columns beyond ``max_width`` are dropped and
    counted in a last line."""
    # stored names of bytes that are not UTF-8 are shown with U+FFFD (runbase.core.fsname)
    headers = [fsname.display(h) for h in headers]
    rows = [[fsname.display(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    keep = len(headers)
    if max_width:
        total = 0
        for i, w in enumerate(widths):
            total += w + 2
            if total > max_width and i > 0:
                keep = i
                break
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers[:keep])).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:keep])).rstrip())
    if keep < len(headers):
        lines.append(
            f"… {len(headers) - keep} more columns: {', '.join(headers[keep:])[:200]} (use --json or a wider terminal)"
        )
    return "\n".join(lines)


def terminal_width(is_tty: bool) -> int | None:
    return shutil.get_terminal_size((200, 24)).columns if is_tty else None


RUN_COLUMNS = ("id", "name", "status", "started", "duration", "user", "host", "sweep")
DEFAULT_RUN_COLUMNS = RUN_COLUMNS[:5]
_SCOPES = ("params", "metrics", "tags")

Column = tuple[str, str]  # (scope: "run"|"params"|"metrics"|"tags", key)


def varying_params(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(differing, constant)`` param keys of ``rows``: a key differs when two runs
    have different values for it, or some runs lack it. With fewer than two runs
    nothing is compared: every key counts as differing."""
    keys = sorted({k for r in rows for k in r["params"]})
    if len(rows) < 2:
        return keys, []
    differing: list[str] = []
    constant: list[str] = []
    for k in keys:
        seen = {
            json.dumps(r["params"][k], sort_keys=True, default=str) if k in r["params"] else None
            for r in rows
        }
        (differing if len(seen) > 1 else constant).append(k)
    return differing, constant


def choose_columns(rows: list[dict[str, Any]], spec: str | None = None) -> tuple[list[Column], int]:
    """The columns of a runs listing and how many constant params the default left out.

    ``spec``: comma-separated run columns (``id``, ``name``, ``status``, ``started``,
    ``duration``, ``user``, ``host``, ``sweep``) and ``params.KEY``/``metrics.KEY``/
    ``tags.KEY`` where KEY may be a glob (``params.*``, ``metrics.val_*``). Without it:
    the usual run columns, the params that differ between ``rows`` and every metric
    but the system ones (``sys/*``, which ``show`` has)."""
    if spec is None or not spec.strip():
        differing, constant = varying_params(rows)
        mkeys = sorted({k for r in rows for k in r["metrics"] if not is_system_metric(k)})
        cols: list[Column] = [("run", c) for c in DEFAULT_RUN_COLUMNS]
        cols += [("params", k) for k in differing] + [("metrics", k) for k in mkeys]
        return cols, len(constant)
    cols = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        scope, dot, pattern = item.partition(".")
        if not dot and item in RUN_COLUMNS:
            cols.append(("run", item))
            continue
        if not dot or scope not in _SCOPES or not pattern:
            raise UsageError(
                f"unknown column {item!r}: use {', '.join(RUN_COLUMNS)} or params.KEY, "
                "metrics.KEY, tags.KEY (KEY may be a glob: params.*)"
            )
        if any(ch in pattern for ch in "*?["):
            present = sorted({k for r in rows for k in r[scope]})
            cols += [(scope, k) for k in present if fnmatchcase(k, pattern)]
        else:
            cols.append((scope, pattern))
    return list(dict.fromkeys(cols)), 0  # a key named twice is shown once


def runs_table(
    store: Any,
    rows: list[dict[str, Any]],
    columns: list[Column] | None = None,
    short: dict[str, str] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """The ``runbase ls`` table: ``columns`` (default: :func:`choose_columns`); run ids
    abbreviated against ``store``, or as ``short`` gives them (a listing of no store)."""
    if columns is None:
        columns = choose_columns(rows)[0]
    if short is None:
        short = abbreviate(store, [r["id"] for r in rows])
    keys_by_scope: dict[str, set[str]] = {}
    for scope, key in columns:
        keys_by_scope.setdefault(scope, set()).add(key)
    headers = []
    for scope, key in columns:  # a bare key, unless a param and a metric share it
        clash = any(key in keys for s, keys in keys_by_scope.items() if s not in (scope, "run"))
        headers.append(f"{scope}.{key}" if scope != "run" and clash else key)
    now = time.time()
    return headers, [[_cell(r, c, short, now) for c in columns] for r in rows]


def _cell(r: dict[str, Any], col: Column, short: dict[str, str], now: float) -> str:
    scope, key = col
    if scope == "params":
        return fmt_value(r["params"].get(key))
    if scope == "metrics":
        return fmt_value(r["metrics"][key]["value"]) if key in r["metrics"] else ""
    if scope == "tags":
        return fmt_value(r["tags"].get(key))
    if key == "id":
        return short[r["id"]]
    if key == "status":
        # a running run with an error: its supervisor was killed (lifecycle)
        lost = r["status"] == "running" and r.get("error")
        return str(r["status"]) + (" (supervisor lost)" if lost else "")
    if key == "started":
        return fmt_age(r["started_at"], now)
    if key == "duration":
        return fmt_duration(r["duration"])
    if key == "user":
        return str(r.get("user_name") or "")
    if key == "sweep":
        return str(r.get("sweep_id") or "")
    return str(r.get(key) or "")


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
