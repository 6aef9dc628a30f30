"""``GET /api/sweeps`` and ``GET /api/sweeps/{id}``: the sweeps and one sweep's trials,
best-so-far curve and parameter importance (docs/api.md, "Sweeps"), thin handlers over
:mod:`runbase.analysis.sweepstats`. The sweep page (``/sweeps/{id}``,
:func:`runbase.web.pages.sweep_page`) draws the second; :func:`page_problem` is its
check that the sweep exists before it serves a shell."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from runbase.analysis import sweepstats
from runbase.errors import StoreError, UsageError
from runbase.records import sweeps
from runbase.records.read import count_runs, with_sweep
from runbase.store import Store
from runbase.web.api import MAX_REF, ErrorBody, StoreDep, json_response

router = APIRouter()

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}}, "description": "JSON (see docs/api.md)"},
    400: {"model": ErrorBody, "description": "A bad sweep id, metric or direction"},
    404: {"model": ErrorBody, "description": "No such sweep"},
}


@router.get(
    "/sweeps",
    tags=["sweeps"],
    summary="The sweeps, newest first, with their trials' counts by status",
    responses=_RESPONSES,
)
def list_sweeps(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many sweeps")] = 50,
) -> Response:
    return json_response({"sweeps": sweepstats.sweep_list(store, limit)})


@router.get(
    "/sweeps/{sweep_id}",
    tags=["sweeps"],
    summary="A sweep: its trials by status, the best value so far, parameter importance",
    responses=_RESPONSES,
)
def get_sweep(
    store: StoreDep,
    sweep_id: str,
    metric: Annotated[
        str | None,
        Query(
            max_length=MAX_REF, description="Judge trials by this metric (default: the objective)"
        ),
    ] = None,
    direction: Annotated[
        str | None, Query(max_length=100, description="max or min (default: the objective's)")
    ] = None,
    importance: Annotated[
        bool, Query(description="Rank the parameters (false: leave it out, answer at once)")
    ] = True,
) -> Response:
    return json_response(
        sweepstats.sweep_stats(store, sweep_id, metric, direction or None, importance)
    )


def page_problem(store: Store, sweep_id: str) -> tuple[int, str] | None:
    """Why the page of ``sweep_id`` cannot be shown, as ``(HTTP status, message)``: a
    bad id (400), no sweep of that id (404); None when it can."""
    try:
        sweepstats.check_sweep_id(sweep_id)
    except UsageError as e:
        return 400, str(e)
    try:
        recorded = sweeps.get_sweep(store, sweep_id) is not None
    except StoreError:  # a damaged record: the page shows the API's message about it
        recorded = True
    if not recorded and not count_runs(store, with_sweep(None, sweep_id)):
        return 404, f"no sweep {sweep_id[:100]!r}"
    return None
