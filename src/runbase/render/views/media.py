"""The images and tables a run logged (``runbase.log_image``, ``runbase.log_table``,
TensorBoard image summaries): their keys and steps, one object's bytes, one table.

The rows come from :mod:`runbase.records.media`; an object's bytes from the store, read
whole (images and tables are at most 16 MiB when logged) and hashed as they are read.
A table object is JSON written by runbase, but read as untrusted input all the same.
"""

from __future__ import annotations

import json
from typing import Any

from runbase.core.shapes import loads
from runbase.errors import NotFound, UsageError
from runbase.records.media import (
    KINDS,
    media_items,
    media_keys,
    media_row,
    table_row,
    table_steps,
)
from runbase.records.read import resolve
from runbase.records.record import iso
from runbase.render.views.common import get_object
from runbase.store import Store

MAX_MEDIA_ITEMS = 10_000  # items of one key in one answer (the newest steps are kept)
MAX_MEDIA_ROWS = 10_000  # rows of a table in one answer


def run_media(
    store: Store, ref: str, kind: str | None = None, key: str | None = None
) -> dict[str, Any]:
    """The run's media: ``{run, keys: [{kind, key, count, steps, steps_truncated,
    width, height}]}`` (``steps``: the last 10,000 at most),
    and, for one ``key``, ``items: [{kind, key, step, idx, oid, mime, size, width,
    height, caption, time, url}]`` in step order (at most 10,000: the newest steps;
    ``truncated`` says whether some were left out). ``kind``: ``image`` or ``table``
    only. ``url`` is the object's route, relative to the API's base."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    run_id = resolve(store, ref)
    out: dict[str, Any] = {"run": run_id, "keys": media_keys(store, run_id, kind)}
    if key is not None:
        items, truncated = media_items(store, run_id, key, kind, MAX_MEDIA_ITEMS)
        out["items"] = [_item(run_id, row) for row in items]
        out["truncated"] = truncated
    return out


def _item(run_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "time": iso(row["time"]),
        "url": f"runs/{run_id}/media/object/{row['oid']}",
    }


def media_object(store: Store, ref: str, oid: str) -> tuple[bytes, str]:
    """``(bytes, media type)`` of an object the run logged as an image or a table;
    NotFound for any other object (another run's included) or one the store lacks."""
    run_id = resolve(store, ref)
    row = media_row(store, run_id, oid)
    if row is None:
        raise NotFound(f"run {run_id} logged no image or table {oid[:100]}")
    what = f"{row['kind']} {row['key']!r} of run {run_id} (step {row['step']})"
    return get_object(store, oid, what), str(row["mime"])


def media_table(store: Store, ref: str, key: str, step: int | None = None) -> dict[str, Any]:
    """Table ``key`` at ``step`` (default: the last step it was logged at): ``{run, key,
    step, steps, columns, rows, total_rows, truncated}``; at most 10,000 rows come back
    (``total_rows``: how many the table had when logged; ``truncated``: fewer rows are
    here than that)."""
    run_id = resolve(store, ref)
    steps = table_steps(store, run_id, key)
    if not steps:
        raise NotFound(f"run {run_id} logged no table {key[:200]!r}")
    at = steps[-1] if step is None else step
    row = table_row(store, run_id, key, at)
    if row is None:
        raise NotFound(f"table {key[:200]!r} of run {run_id} was not logged at step {at}")
    data = get_object(store, row["oid"], f"table {key[:200]!r} of run {run_id} (step {at})")
    columns, rows, total = _parse_table(data, f"table {key[:200]!r} of run {run_id}")
    return {
        "run": run_id,
        "key": key,
        "step": at,
        "steps": steps,
        "columns": columns,
        "rows": rows,
        "total_rows": total,
        "truncated": len(rows) < total,
    }


def _parse_table(data: bytes, what: str) -> tuple[list[str], list[list[Any]], int]:
    """A stored table's columns, rows and row count; what does not have the documented
    shape is refused (UsageError names it), and cells are JSON scalars."""
    try:
        value = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{what} is not a JSON table ({e})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} is not a JSON object")
    columns, rows = value.get("columns"), value.get("rows")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise UsageError(f"{what}: 'columns' is not a list of names")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise UsageError(f"{what}: 'rows' is not a list of rows")
    total = value.get("total_rows")
    if type(total) is not int or total < len(rows):
        total = len(rows)
    width = len(columns)
    shown = [[_scalar(c) for c in (r + [None] * width)[:width]] for r in rows[:MAX_MEDIA_ROWS]]
    return columns, shown, total


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return json.dumps(v, separators=(",", ":"))  # nested: shown as its JSON text
