"""Plain-text tables and human formats for the CLI (no dependency, fast to import)."""

from __future__ import annotations

import math
import shutil
import time
from typing import Any


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
        import json

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
    import datetime as dt

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


def runs_table(store: Any, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The ``runbase ls`` table: id, name, status, age, duration, params, metrics."""
    from .read import abbreviate

    short = abbreviate(store, [r["id"] for r in rows])
    pkeys = sorted({k for r in rows for k in r["params"]})
    from .capture.sysmetrics import is_system_metric

    # system metrics (sys/*) are many and rarely what a listing compares: `show` has them
    mkeys = sorted({k for r in rows for k in r["metrics"] if not is_system_metric(k)})
    headers = ["id", "name", "status", "started", "duration"]
    headers += [f"{k}" if k not in mkeys else f"params.{k}" for k in pkeys]
    headers += [f"{k}" if k not in pkeys else f"metrics.{k}" for k in mkeys]
    now = time.time()
    table = []
    for r in rows:
        cells = [
            short[r["id"]],
            r["name"],
            r["status"],
            fmt_age(r["started_at"], now),
            fmt_duration(r["duration"]),
        ]
        cells += [fmt_value(r["params"].get(k)) for k in pkeys]
        cells += [fmt_value(r["metrics"][k]["value"]) if k in r["metrics"] else "" for k in mkeys]
        table.append(cells)
    return headers, table


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
