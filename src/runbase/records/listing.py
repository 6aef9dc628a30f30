"""What the runs table reads besides the rows themselves: which runs match a filter,
the keys offered as columns, and the counts of a grouping (``runbase ui``'s runs page).

``cond``/``args`` are a compiled filter (:func:`runbase.core.query.compile_where`).
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any

from runbase.capture.params import jsonable
from runbase.core.query import named_keys
from runbase.core.shapes import loads
from runbase.errors import UsageError
from runbase.store import Store

MAX_GROUPS = 1000
_IDS_PER_QUERY = 500  # SQLite's host-parameter limit is far above; PostgreSQL's too
_GROUP_COLUMNS = {"sweep": "sweep_id", "status": "status", "user": "user_name", "host": "host"}


def matching_ids(store: Store, cond: str, args: list[Any], run_ids: list[str]) -> list[str]:
    """Those of ``run_ids`` (order kept) that match the compiled filter ``cond``."""
    found: set[str] = set()
    for i in range(0, len(run_ids), _IDS_PER_QUERY):
        part = run_ids[i : i + _IDS_PER_QUERY]
        marks = ",".join("?" * len(part))
        rows = store.db.query(
            f"SELECT runs.id FROM runs WHERE ({cond}) AND runs.id IN ({marks})", [*args, *part]
        )
        found.update(r[0] for r in rows)
    return [r for r in run_ids if r in found]


def distinct_keys(store: Store, table: str) -> list[str]:
    """Distinct keys of ``params`` or ``metrics`` by skipping along its ``(key, ...)``
    index: one index seek per key, not a scan of every row."""
    if table not in ("params", "metrics"):
        raise ValueError(f"no key index on {table!r}")
    q = (
        f"WITH RECURSIVE k(key) AS (SELECT min(key) FROM {table} UNION ALL "
        f"SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
        "SELECT key FROM k WHERE key IS NOT NULL"
    )
    return [r[0] for r in store.db.query(q)]


def tag_keys(store: Store) -> list[str]:
    """Every tag key in the store, sorted."""
    return [r[0] for r in store.db.query("SELECT DISTINCT key FROM tags ORDER BY key")]


def has_tag(store: Store, key: str) -> bool:
    """Whether any run has tag ``key``: one row found, or one pass over the tags without
    sorting them (cheaper than :func:`tag_keys` when only one key matters)."""
    return store.db.query_one("SELECT 1 FROM tags WHERE key = ? LIMIT 1", (key,)) is not None


def group_counts(store: Store, cond: str, args: list[Any], group_by: str) -> list[dict[str, Any]]:
    """``[{key, count}]`` of the matching runs grouped by ``sweep``, ``status``,
    ``user``, ``host``, ``tag:KEY`` or ``param:KEY`` (largest first, at most
    :data:`MAX_GROUPS`); a parameter's value comes decoded."""
    gb = group_by.strip()
    decode = False
    if gb in _GROUP_COLUMNS:
        col = _GROUP_COLUMNS[gb]
        sql = f"SELECT runs.{col}, count(*) FROM runs WHERE {cond} GROUP BY runs.{col}"
        sql_args = list(args)
    elif gb.startswith(("tag:", "param:")) and gb.partition(":")[2]:
        scope, _, key = gb.partition(":")
        table = "tags" if scope == "tag" else "params"
        decode = scope == "param"
        sql = (
            f"SELECT g.value, count(*) FROM runs LEFT JOIN {table} g "
            f"ON g.run_id = runs.id AND g.key = ? WHERE {cond} GROUP BY g.value"
        )
        sql_args = [key, *args]
    else:
        raise UsageError(
            f"cannot group by {group_by!r}; use sweep, status, user, host, tag:KEY or param:KEY"
        )
    rows = store.db.query(f"{sql} ORDER BY 2 DESC, 1 LIMIT {MAX_GROUPS}", sql_args)
    out = []
    for key, count in rows:
        if decode and key is not None:
            with contextlib.suppress(ValueError):  # too deep (TooDeep): its text
                key = loads(key)
        out.append({"key": key, "count": count})
    return jsonable(out)


def unknown_keys(store: Store, where: str | None) -> list[str]:
    """One line per ``params.``/``metrics.``/``tags.`` key of ``where`` that no run in
    ``store`` has (a misspelling matches nothing, silently), with the close keys that
    exist: ``params.lrr exists in no run (did you mean params.lr?)``."""
    notes: list[str] = []
    known_keys: dict[str, list[str]] = {}  # scope -> its keys, read once per scope
    for scope, key in named_keys(where):
        q = f"SELECT 1 FROM {scope} WHERE key = ? LIMIT 1"  # scope: params|metrics|tags
        if store.db.query_one(q, (key,)) is not None:
            continue
        if scope not in known_keys:
            sql = f"SELECT DISTINCT key FROM {scope}"
            known_keys[scope] = [r[0] for r in store.db.query(sql)]
        known = known_keys[scope]
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = " or ".join(f"{scope}.{k}" for k in close)
        notes.append(
            f"{scope}.{key} exists in no run"
            + (f" (did you mean {hint}?)" if hint else f" ({len(known)} {scope} keys in all)")
        )
    return notes
