"""The rows of the ``media`` table: the images and tables a run logged.

A training process stores each image's (or table's) bytes as an object itself and
spools one ``media`` entry per ``log_image``/``log_table`` call (runbase.tracking.media);
:func:`apply_event` turns that entry into rows when the spool is ingested. The readers
below serve the web views (runbase.render.views.media). Everything read back, from a
spool or a store, is checked against the shapes documented in docs/store-format.md.
"""

from __future__ import annotations

from typing import Any

from runbase.core._safe import warn_once
from runbase.core.shapes import COLUMNS, MEDIA_KINDS
from runbase.errors import ShapeError
from runbase.store import Store

KINDS = MEDIA_KINDS
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TABLE_MIME = "application/json"
MIMES = {"image": IMAGE_MIMES, "table": (TABLE_MIME,)}
MAX_ITEMS = 10_000  # items of one entry (images logged at one step under one key)
MAX_KEY_STEPS = 10_000  # steps of a key listed (its last ones)
_COLUMNS = "kind, key, step, idx, oid, mime, size, width, height, caption, time"


# -- the shape of a row (ingest and bundle import check it alike) ----------------------


def row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a ``media`` row (column -> value), or None: each column as
    ``core.shapes.COLUMNS["media"]`` declares it (``kind`` image or table; ``key`` 1 to
    4,096 characters; ``step`` a 64-bit integer; ``idx``, ``size``, ``width``,
    ``height`` integers >= 0, the last two may be null; ``oid`` an object id;
    ``caption`` at most 4,096 characters; ``time`` a finite time), the columns that
    may not be null given, and ``mime`` one of the kind's media types."""
    for name in _NOT_NULL:
        if row.get(name) is None:
            return f"{name}: must not be null"
    for name, shape in _SHAPES.items():
        try:
            shape.check(row.get(name), name)
        except ShapeError as e:
            return f"{e.where}: {e.message}"
    return mime_problem(row)


def mime_problem(row: dict[str, Any]) -> str | None:
    """Whether the row's ``mime`` is one its ``kind`` may have: the object route serves
    the bytes with it, so only the documented ones (``column: message``, or None)."""
    kind = row.get("kind")
    mimes = MIMES.get(kind, ()) if isinstance(kind, str) else ()
    if row.get("mime") not in mimes:
        return f"mime: {str(row.get('mime'))[:80]!r} is not one of {', '.join(mimes)}"
    return None


_SHAPES = COLUMNS["media"]
_NOT_NULL = ("kind", "key", "step", "idx", "oid", "mime", "size", "time")


# -- ingest: a spooled ``media`` entry -> rows -------------------------------------------


def apply_event(cur: Any, run_id: str, e: dict[str, Any]) -> None:
    """Write one ``log_image``/``log_table`` call's rows: they replace what the key had
    at that step (a call logs the whole list of images of its step). A malformed entry
    is skipped with a warning: the spool is written by the tracked program's process."""
    items = e.get("items")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
        warn_once("media-entry", f"a media entry of run {run_id} has no items; skipped")
        return
    base = {"kind": e.get("media"), "key": e.get("key"), "step": e.get("step"), "time": e.get("at")}
    rows = []
    for idx, item in enumerate(items):
        if not isinstance(item, dict):
            item = {}
        row = {**base, "idx": idx, **{k: item.get(k) for k in _ITEM_KEYS}}
        problem = row_problem(row)
        if problem is not None:
            warn_once("media-entry", f"a media entry of run {run_id} is malformed ({problem})")
            return
        rows.append(row)
    cur.execute(
        "DELETE FROM media WHERE run_id = ? AND kind = ? AND key = ? AND step = ?",
        (run_id, base["kind"], base["key"], base["step"]),
    )
    cur.executemany(
        f"INSERT INTO media (run_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, *(r[c] for c in _COLUMN_NAMES)) for r in rows],
    )


_ITEM_KEYS = ("oid", "mime", "size", "width", "height", "caption")
_COLUMN_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))


# -- reading -------------------------------------------------------------------------------


def media_keys(
    store: Store, run_id: str, kind: str | None = None, max_steps: int = MAX_KEY_STEPS
) -> list[dict[str, Any]]:
    """The run's media keys, by kind then key: ``{kind, key, count, steps,
    steps_truncated, width, height}`` (``count``: rows; ``steps``: the distinct steps,
    sorted, at most ``max_steps``: the last ones; ``steps_truncated``: whether earlier
    steps were left out; ``width`` and ``height``: those of the last step's first
    item). Counted in SQL, one query for the keys and one per key for its last steps
    (through the primary key's index): a run that logged an image at each of a million
    steps costs what one with ``max_steps`` does."""
    cond, args = ("AND kind = ?", [kind]) if kind else ("", [])
    keys = store.db.query(
        "SELECT kind, key, count(*), max(step) FROM media "
        f"WHERE run_id = ? {cond} GROUP BY kind, key ORDER BY kind, key",
        (run_id, *args),
    )
    out = []
    for k, key, count, last in keys:
        steps = [
            int(s)
            for (s,) in store.db.query(
                "SELECT DISTINCT step FROM media WHERE run_id = ? AND kind = ? AND key = ? "
                "ORDER BY step DESC LIMIT ?",
                (run_id, k, key, max_steps + 1),
            )
        ]
        first = store.db.query_one(
            "SELECT width, height FROM media WHERE run_id = ? AND kind = ? AND key = ? "
            "AND step = ? ORDER BY idx LIMIT 1",
            (run_id, k, key, last),
        )
        width, height = first if first else (None, None)
        out.append(
            {
                "kind": k,
                "key": key,
                "count": int(count),
                "steps": steps[max_steps - 1 :: -1] if len(steps) > max_steps else steps[::-1],
                "steps_truncated": len(steps) > max_steps,
                "width": width,
                "height": height,
            }
        )
    return out


def media_items(
    store: Store, run_id: str, key: str, kind: str | None = None, limit: int = MAX_ITEMS
) -> tuple[list[dict[str, Any]], bool]:
    """The rows of one key (of ``kind``, else of any kind) in step and idx order, at
    most ``limit`` (the newest steps are kept), and whether some were left out."""
    cond, args = ("AND kind = ?", [kind]) if kind else ("", [])
    rows = store.db.query(
        f"SELECT {_COLUMNS} FROM media WHERE run_id = ? AND key = ? {cond} "
        "ORDER BY step DESC, idx DESC, kind LIMIT ?",
        (run_id, key, *args, limit + 1),
    )
    items = [dict(zip(_COLUMN_NAMES, r, strict=True)) for r in rows[:limit]]
    items.reverse()
    return items, len(rows) > limit


def media_row(store: Store, run_id: str, oid: str) -> dict[str, Any] | None:
    """A row of the run that holds object ``oid`` (its ``mime`` says how to serve it)."""
    row = store.db.query_one(
        f"SELECT {_COLUMNS} FROM media WHERE run_id = ? AND oid = ? LIMIT 1", (run_id, oid)
    )
    return dict(zip(_COLUMN_NAMES, row, strict=True)) if row else None


def table_steps(store: Store, run_id: str, key: str) -> list[int]:
    """The steps at which table ``key`` was logged, sorted."""
    return [
        int(s)
        for (s,) in store.db.query(
            "SELECT DISTINCT step FROM media WHERE run_id = ? AND kind = 'table' AND key = ? "
            "ORDER BY step",
            (run_id, key),
        )
    ]


def table_row(store: Store, run_id: str, key: str, step: int) -> dict[str, Any] | None:
    """Table ``key``'s row at ``step`` (its first, should a step hold several)."""
    row = store.db.query_one(
        f"SELECT {_COLUMNS} FROM media WHERE run_id = ? AND kind = 'table' AND key = ? "
        "AND step = ? ORDER BY idx LIMIT 1",
        (run_id, key, step),
    )
    return dict(zip(_COLUMN_NAMES, row, strict=True)) if row else None
