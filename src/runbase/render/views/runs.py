"""The runs table: one page of runs, filtered, sorted and grouped, and the keys it can
show as columns."""

from __future__ import annotations

from typing import Any, NamedTuple

from runbase.capture.params import jsonable
from runbase.capture.sysmetrics import is_system_metric
from runbase.errors import UsageError
from runbase.records import listing
from runbase.records.listing import unknown_keys
from runbase.records.read import (
    EXPLAIN_TAG,
    count_runs,
    hide_explain,
    list_runs,
    load_runs,
    with_sweep,
)
from runbase.records.record import run_row
from runbase.render.views.common import user_sql, where_sql
from runbase.store import Store

MAX_PAGE = 1000  # runs per page
MAX_GROUPS = listing.MAX_GROUPS


def run_items(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs (in the order given; unknown ids left out) as rows of the runs table:
    ``{id, name, status, exit_code, user, host, started_at, ended_at, duration_s,
    sweep_id, tags, params, metrics}`` with ``metrics`` the summary values."""
    return jsonable([run_row(r) for r in load_runs(store, run_ids)])


def matching_ids(store: Store, where: str, run_ids: list[str]) -> list[str]:
    """Those of ``run_ids`` (order kept) that match the filter ``where``."""
    cond, args = where_sql(where)
    with user_sql():
        return listing.matching_ids(store, cond, args, run_ids)


def store_keys(store: Store) -> dict[str, list[str]]:
    """Every parameter, metric and tag key in the store, sorted."""
    return {
        "param_keys": listing.distinct_keys(store, "params"),
        # system metrics (sys/*) are not offered as columns, as in `runbase ls`
        "metric_keys": [
            k for k in listing.distinct_keys(store, "metrics") if not is_system_metric(k)
        ],
        "tag_keys": listing.tag_keys(store),
    }


class Listing(NamedTuple):
    """The runs of one page of the runs table: ``rows`` as :func:`list_runs` gives them
    (raw: numeric times, metric summaries with counts), ``total`` matching the filter,
    ``notes`` on the filter (or None without one), and the filter's SQL (``cond``,
    ``args``) for what else is asked of the same runs."""

    rows: list[dict[str, Any]]
    total: int
    notes: list[str] | None
    cond: str
    args: list[Any]


def list_page(
    store: Store,
    where: str | None,
    sort: str | None,
    limit: int,
    offset: int,
    sweep: str | None = None,
    hybrids: bool = True,
    tag_keys: list[str] | None = None,
) -> Listing:
    """The runs of the runs table's page (``where`` + ``sweep``, without the hybrid runs
    of ``runbase explain`` unless ``hybrids``; ``sort``; ``limit`` from ``offset``): what
    ``/api/runs`` and the chart panel (``runbase.render.views.panel``) both show.
    ``tag_keys``: every tag key of the store, when the caller has them; else, hiding the
    hybrids asks whether there are any (either way a store without hybrids pays nothing
    for hiding them)."""
    where = with_sweep(where, sweep)
    # the filter alone first: its errors name what the user wrote, and "a) or (b" cannot
    # pass as one expression once wrapped in the condition that hides the hybrids
    where_sql(where)
    # hiding hybrids costs a count over every run (2.5 -> 38 ms for 100,000): skipped
    # when the store has none (its tag keys say so, or one query without a sort)
    none = False
    if not hybrids:
        if tag_keys is not None:
            none = EXPLAIN_TAG not in tag_keys
        else:
            none = not listing.has_tag(store, EXPLAIN_TAG)
    shown = hide_explain(where, hybrids or none)
    cond, args = where_sql(shown)
    with user_sql():
        runs = list_runs(store, shown, sort, limit, offset)
        short = offset == 0 and len(runs) < limit  # the whole result is on this page
        total = len(runs) if short else count_runs(store, shown)
        # a misspelled key matches nothing, silently: say which and what is close
        notes = unknown_keys(store, where) if where else None
    return Listing(runs, total, notes, cond, args)


def runs_page(
    store: Store,
    where: str | None = None,
    sort: str | None = None,
    limit: int = 50,
    offset: int = 0,
    sweep: str | None = None,
    group_by: str | None = None,
    keys: bool = True,
    hybrids: bool = True,
) -> dict[str, Any]:
    """One page of the runs table, filtered and sorted like ``runbase ls --where/--sort``.

    ``{"total", "offset", "limit", "runs": [...], "param_keys", "metric_keys",
    "tag_keys"}`` (+ ``"groups": [{"key", "count"}]`` with ``group_by`` = ``sweep``,
    ``status``, ``user``, ``host``, ``tag:KEY`` or ``param:KEY``). The key lists cover
    the whole store; ``keys=False`` leaves them out (team search does not show them).
    ``hybrids=False`` leaves out the hybrid runs of ``runbase explain`` (as ``runbase
    ls`` without ``--all``; the runs page shows them when asked).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise UsageError("offset must be 0 or more")
    where_sql(with_sweep(where, sweep))  # a bad filter before the key lists are read
    key_lists = store_keys(store) if keys else {}
    page = list_page(store, where, sort, limit, offset, sweep, hybrids, key_lists.get("tag_keys"))
    with user_sql():
        groups = listing.group_counts(store, page.cond, page.args, group_by) if group_by else None
    out: dict[str, Any] = {
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "runs": jsonable([run_row(r) for r in page.rows]),
        **key_lists,
    }
    if groups is not None:
        out["groups"] = groups
    if page.notes is not None:
        out["notes"] = page.notes
    return out
