"""The runs of a project on a team server (``runbase ls --remote NAME``), read through
its read API (docs/api.md, ``GET /api/runs`` and ``GET /api/runs/{run}``): what the
runs page shows, filtered and sorted on the server with ``ls``'s own expressions.

A server's answer is not trusted: each run row is fitted to its documented shape (a
row without a run id is left out) and turned into the row ``runbase ls`` draws its
table from (records.read.list_runs's), so both tables are one code's."""

from __future__ import annotations

import math
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbase.core import shapes
from runbase.errors import RemoteError, UsageError
from runbase.remote.client import Client, Remote

PAGE = 1000  # the API's largest page (render.views.runs.MAX_PAGE)
# an interactive listing: a server that is down is said within seconds, not after the
# minute a push waits for one restarting
RETRY_FOR = 5.0
FETCHERS = 4  # run records read at once for --json (keep-alive connection each)

_ROW = shapes.Obj(
    {
        "id": shapes.RunId(),
        "name": shapes.NAME,
        "status": shapes.NAME,
        "exit_code": shapes.Int(),
        "user": shapes.NAME,
        "host": shapes.NAME,
        "sweep_id": shapes.NAME,
        "started_at": shapes.Str(64),
        "ended_at": shapes.Str(64),
        "duration_s": shapes.Num(finite=False),
        "params": shapes.MapOf(shapes.AnyJSON()),
        "metrics": shapes.MapOf(shapes.AnyJSON()),
        "tags": shapes.MapOf(shapes.Str()),
    },
    required=("id",),
)
# the fields of an ``ls --json`` line (records.record.ls_entry), in its order
LS_FIELDS = (
    "id",
    "name",
    "status",
    "exit_code",
    "exit_signal",
    "started_at",
    "ended_at",
    "duration_s",
    "user",
    "sweep_id",
    "params",
    "metrics",
    "tags",
)


@dataclass(frozen=True)
class RemoteListing:
    """``rows`` shaped as records.read.list_runs gives them (what render.table draws),
    ``total`` runs matching, ``hidden`` hybrid runs of ``runbase explain`` left out,
    ``notes`` on filter keys no run has."""

    rows: list[dict[str, Any]]
    total: int
    hidden: int
    notes: list[str]


def listing_client(remote: Remote) -> Client:
    return Client(remote.url, remote.token, retry_for=RETRY_FOR)


def remote_runs(
    remote: Remote,
    where: str | None,
    sort: str | None,
    limit: int | None,
    sweep: str | None = None,
    hybrids: bool = False,
    client: Client | None = None,
) -> RemoteListing:
    """At most ``limit`` (None: all) runs of the remote's project, newest first unless
    ``sort``, paged through ``GET /api/runs``."""
    client = client or listing_client(remote)
    params = {"where": where, "sort": sort, "sweep": sweep, "hybrids": _flag(hybrids)}
    rows: dict[str, dict[str, Any]] = {}  # by id: a run pushed between pages comes once
    offset, total, notes = 0, 0, []
    while limit is None or len(rows) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(rows))
        page = _page(remote, client, {**params, "limit": size, "offset": offset})
        if offset == 0:
            total, notes = _count(page.get("total")), _notes(page.get("notes"))
        items = page.get("runs")
        if not isinstance(items, list):
            raise RemoteError(f"{remote.url} answered no list of runs")
        for item in items:
            row = _row(item)
            if row is not None:
                rows.setdefault(row["id"], row)
        offset += len(items)
        if len(items) < size:
            break
    hidden = 0
    if not hybrids:  # as local ls says how many hybrids it left out
        everything = _page(remote, client, {**params, "hybrids": "true", "limit": 1})
        hidden = max(0, _count(everything.get("total")) - total)
    return RemoteListing(list(rows.values()), total, hidden, notes)


def remote_entries(remote: Remote, run_ids: list[str], client: Client | None = None) -> list[Any]:
    """The ``runbase ls --json`` lines of these runs, from their records (``GET
    /api/runs/{run}``, which has what a run row leaves out: ``exit_signal`` and each
    metric's whole summary)."""
    client = client or listing_client(remote)

    def entry(run_id: str) -> dict[str, Any] | None:
        path = f"{remote.api}/runs/{urllib.parse.quote(run_id, safe='')}?patch=false"
        try:
            rec = _get(remote, client, path)
        except RemoteError as e:
            if e.status == 404:  # deleted since it was listed: as if listed a moment later
                return None
            raise
        if not isinstance(rec, dict) or rec.get("id") != run_id:
            raise RemoteError(f"{remote.url} answered no record of run {run_id}")
        return {k: rec.get(k) for k in LS_FIELDS}

    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        return [e for e in pool.map(entry, run_ids) if e is not None]


def _page(remote: Remote, client: Client, params: dict[str, Any]) -> dict[str, Any]:
    answer = _get(remote, client, f"{remote.api}/runs", params)
    if not isinstance(answer, dict):
        raise RemoteError(f"{remote.url} answered no page of runs")
    return answer


def _get(remote: Remote, client: Client, path: str, params: dict[str, Any] | None = None) -> Any:
    """``GET path``, its refusals said as what they mean for a listing."""
    try:
        return client.get_json(path, params)
    except RemoteError as e:
        detail = e.body.get("detail") if isinstance(e.body, dict) else None
        if e.status == 400 and isinstance(detail, str):  # the filter or sort: the user's
            raise UsageError(detail) from e
        if e.status == 403:
            raise RemoteError(
                f"remote {remote.name}: this token may not read project {remote.project!r} "
                f"on {remote.url} (the reader role is needed): {detail or e}",
                e.status,
                e.body,
            ) from e
        raise


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _notes(value: Any) -> list[str]:
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []


def _row(item: Any) -> dict[str, Any] | None:
    """A run row of the API as list_runs's row (numeric times, metric summaries as
    ``{"value": v}``, ``user_name``), or None when it has no run id."""
    fitted = _ROW.fit(item)
    if not isinstance(fitted, dict):
        return None
    metrics = fitted.get("metrics") or {}
    return {
        "id": fitted["id"],
        "name": fitted.get("name"),
        "status": fitted.get("status"),
        "exit_code": fitted.get("exit_code"),
        "user_name": fitted.get("user"),
        "host": fitted.get("host"),
        "sweep_id": fitted.get("sweep_id"),
        "started_at": _time(fitted.get("started_at")),
        "ended_at": _time(fitted.get("ended_at")),
        "duration": _duration(fitted.get("duration_s")),
        "params": fitted.get("params") or {},
        "metrics": {k: {"value": v} for k, v in metrics.items()},
        "tags": fitted.get("tags") or {},
    }


def _time(text: str | None) -> float | None:
    """An ISO 8601 time of the API as seconds since 1970 (None when it is not one)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None


def _duration(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
