"""Pages of runs in ``runbase ls --sort`` order: :func:`page_rows` serves ``runbase
ls``, ``runbase.runs()`` (through :func:`runbase.records.read.list_runs`) and the web UI's runs
table (:func:`runbase.render.views.runs_page`) alike.

The order is :func:`runbase.core.query.compile_sort`'s (runs without the sort key last,
then the latest first) with ``runs.id`` as the last tiebreak. A page sorted by one
``metrics.*``/``params.*``/``tags.*`` key walks the key's ``(key, value)`` index
instead of sorting every run: the first page of 100,000 runs sorted by a metric reads
about one page of index entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbase.core.query import compile_sort, parse_sort
from runbase.store import Store

# One ordered SELECT of runs: (FROM ... WHERE ..., its args, ORDER BY ..., its args).
Segment = tuple[str, list[Any], str, list[Any]]
_TIEBREAK = "runs.started_at DESC, runs.id DESC"
_ALL = "1=1"  # compile_where's condition without a filter
# A filtered walk is tried on the first 1/32 of the store's runs' index entries: walking
# an entry (and joining its run) costs about 7 µs, sorting all matching runs about 1-2
# µs per run of the store, so a walk that needs more entries would not pay.
_PROBE_SHARE = 32


@dataclass(frozen=True)
class _KeySort:
    table: str  # metrics, params or tags
    key: str
    parts: list[tuple[str, str]]  # the runs having the key: (condition on the row, ORDER BY)
    lacking: str  # the condition on the row that the other runs lack


def _key_sort(sort: str | None) -> _KeySort | None:
    fields = parse_sort(sort) if sort and sort.strip() else []
    if len(fields) != 1 or fields[0][0].scope not in ("metrics", "params", "tags"):
        return None
    f, desc = fields[0]
    d = "DESC" if desc else "ASC"
    if f.scope == "metrics":
        if f.agg != "value":  # min/max/last/count: no index to walk, one sort is faster
            return None
        has = " AND s.value IS NOT NULL"
        return _KeySort(f.scope, f.key, [(has, f"s.value {d}")], has)
    if f.scope == "params":  # numbers by value, then the other values as text
        parts = [(" AND s.num IS NOT NULL", f"s.num {d}, s.value {d}")]
        return _KeySort(f.scope, f.key, [*parts, (" AND s.num IS NULL", f"s.value {d}")], "")
    return _KeySort(f.scope, f.key, [("", f"s.value {d}")], "")


def segments(cond: str, args: list[Any], sort: str | None) -> list[Segment]:
    """The runs matching ``cond`` (a ``compile_where`` condition over ``runs``) in the
    order of ``sort``, as consecutive segments whose concatenation is that order: for
    one ``metrics.*``/``params.*``/``tags.*`` key, walks of the key's index (the runs
    with the key, by value) and then the runs without it; else :func:`sorted_segment`.
    """
    ks = _key_sort(sort)
    if ks is None:
        return [sorted_segment(cond, args, sort)]
    k = [ks.key, *args]
    having = f"FROM {ks.table} s JOIN runs ON runs.id = s.run_id WHERE s.key = ?"
    lacking = (
        f"FROM runs WHERE NOT EXISTS (SELECT 1 FROM {ks.table} s WHERE s.run_id = runs.id "
        f"AND s.key = ?{ks.lacking}) AND ({cond})"
    )
    return [
        *(
            (f"{having}{extra} AND ({cond})", k, f"{order}, {_TIEBREAK}", [])
            for extra, order in ks.parts
        ),
        (lacking, k, _TIEBREAK, []),
    ]


def sorted_segment(cond: str, args: list[Any], sort: str | None) -> Segment:
    """The same order as :func:`segments` in one segment, by sorting every matching run."""
    order, order_args = compile_sort(sort)
    if sort and sort.strip():
        order += ", runs.id DESC"
    return (f"FROM runs WHERE {cond}", args, order, order_args)


def page_rows(
    store: Store,
    cond: str,
    args: list[Any],
    sort: str | None,
    limit: int | None,
    offset: int = 0,
    columns: str = "runs.id",
    walk: bool | None = None,
) -> list[tuple[Any, ...]]:
    """``columns`` (qualified with ``runs.``) of the runs matching ``cond``, sorted by
    ``sort``, from ``offset`` on: at most ``limit`` of them, or all with None.

    ``walk``: None chooses between walking an index (:func:`segments`) and sorting
    the matching runs (:func:`sorted_segment`), which give the same rows: a walk for a
    page whose runs come early in the index (a probe checks when filtered), a sort for
    all runs, a far page or a filter that matches few of the first entries (a walk
    would pass mostly other runs' entries).
    """
    segs = segments(cond, args, sort)
    if len(segs) > 1 and not (
        walk if walk is not None else _walk_pays(store, cond, args, sort, limit, offset)
    ):
        segs = [sorted_segment(cond, args, sort)]
    rows: list[tuple[Any, ...]] = []
    skip = offset
    for from_where, seg_args, order, order_args in segs:
        sql, params = f"SELECT {columns} {from_where} ORDER BY {order}", [*seg_args, *order_args]
        if limit is not None:
            if len(rows) >= limit:
                break
            sql += " LIMIT ? OFFSET ?"
            params += [limit - len(rows), skip]
        elif skip:
            sql += f" {store.db.limit_all} OFFSET ?"  # (no limit: SQLite sorts every row faster)
            params.append(skip)
        got = store.db.query(sql, params)
        rows.extend(got)
        if got:
            skip = 0
        elif skip:  # the page starts past this segment: skip all of it
            skip = max(0, skip - _count(store, from_where, seg_args))
    return rows


def _walk_pays(
    store: Store, cond: str, args: list[Any], sort: str | None, limit: int | None, offset: int
) -> bool:
    ks = _key_sort(sort)
    if ks is None or limit is None:
        return False
    need = offset + limit
    runs = _count(store, "FROM runs", [])
    if cond == _ALL:  # every entry is a run of the page or one before it
        return need <= runs // 8
    budget = runs // _PROBE_SHARE  # entries the probe may pass
    if need > budget // 2:
        return False
    lacking = (
        f"SELECT runs.id AS run_id FROM runs WHERE NOT EXISTS (SELECT 1 FROM {ks.table} s "
        f"WHERE s.run_id = runs.id AND s.key = ?{ks.lacking}) ORDER BY {_TIEBREAK} LIMIT ?"
    )
    walks = [
        *(
            f"SELECT s.run_id FROM {ks.table} s WHERE s.key = ?{extra} ORDER BY {order} LIMIT ?"
            for extra, order in ks.parts
        ),
        lacking,
    ]
    for entries in walks:  # the segments' runs in order, unfiltered, up to the budget
        found = _count(
            store,
            f"FROM (SELECT 1 FROM ({entries}) e JOIN runs ON runs.id = e.run_id "
            f"WHERE {cond} LIMIT ?) m",
            [ks.key, budget, *args, need],
        )
        if found >= need:
            return True
        passed = _count(store, f"FROM ({entries}) w", [ks.key, budget])
        if passed >= budget:
            return False
        need, budget = need - found, budget - passed
    return True  # all of the matching runs lie within the budget


def _count(store: Store, from_where: str, args: list[Any]) -> int:
    row = store.db.query_one(f"SELECT count(*) {from_where}", args)
    return int(row[0]) if row else 0
