"""``GET /api/panel``: the chart panel of the runs page (docs/api.md), a thin handler over
:func:`runbase.render.views.chart_panel`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from runbase.errors import UsageError
from runbase.render import views
from runbase.web.api import (
    MAX_EXPR,
    MAX_OFFSET,
    MAX_REF,
    ErrorBody,
    StoreDep,
    Where,
    csv_list,
    json_response,
)

router = APIRouter()

MAX_LIST = 20_000  # characters of one exclude / metrics value (500 run ids, comma-separated)
MAX_ITEMS = 1_000  # exclude / metrics values given (each may list several, comma-separated)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}}, "description": "JSON (see docs/api.md)"},
    400: {"model": ErrorBody, "description": "Malformed expression or argument"},
}


# The numbers of the answer, printed with what a chart can show: a panel is 100,000s of
# numbers, and json's shortest round-trip repr of each would be most of its time (and
# twice the bytes). Values: 8 significant digits; x: steps exact, epoch seconds to 10 us.
VALUE_FORMAT = "%.8g"
X_FORMATS = {"step": "%.10g", "time": "%.15g", "relative": "%.12g"}
_VALUE_KEYS = frozenset(("y", "min", "max", "mean", "lo", "hi"))


def panel_body(panel: dict[str, Any]) -> bytes:
    """The answer of :func:`runbase.render.views.chart_panel` as JSON (its numbers
    printed as :data:`VALUE_FORMAT` and :data:`X_FORMATS` say; the rest as
    :func:`json_response` does)."""
    head = bytes(json_response({k: v for k, v in panel.items() if k != "metrics"}).body)
    x_format = X_FORMATS.get(panel.get("x", ""), VALUE_FORMAT)
    metrics = ",".join(
        "{"
        + ",".join(
            f"{json.dumps(k)}:"
            + (
                "[" + ",".join(_object(item, x_format) for item in v) + "]"
                if k in ("series", "groups")
                else json.dumps(v, allow_nan=False)
            )
            for k, v in m.items()
        )
        + "}"
        for m in panel.get("metrics", [])
    )
    return head[:-1] + b',"metrics":[' + metrics.encode() + b"]}"


def _object(d: dict[str, Any], x_format: str) -> str:
    """One series or group: its number lists printed as formatted, the rest as JSON."""
    parts = []
    for k, v in d.items():
        if k in _VALUE_KEYS:
            text = _numbers(v, VALUE_FORMAT)
        elif k == "x":
            text = _numbers(v, x_format)
        else:
            text = json.dumps(v, allow_nan=False)
        parts.append(f"{json.dumps(k)}:{text}")
    return "{" + ",".join(parts) + "}"


def _numbers(values: list[Any], fmt: str) -> str:
    """A JSON array of finite numbers and None (null); ints exact."""
    if not values or type(values[0]) is int:
        return json.dumps(values, allow_nan=False)
    if None in values:
        return "[" + ",".join("null" if v is None else fmt % v for v in values) + "]"
    return "[" + ((fmt + ",") * len(values))[:-1] % tuple(values) + "]"


def _check_lengths(name: str, values: list[str] | None) -> None:
    if values and any(len(v) > MAX_LIST for v in values):
        raise UsageError(f"{name}: a value over {MAX_LIST} characters")


@router.get(
    "/panel",
    tags=["runs"],
    summary="The runs page's charts: every metric of the table's runs, downsampled",
    responses=_RESPONSES,
)
def get_panel(
    store: StoreDep,
    where: Where = None,
    sort: Annotated[
        str | None,
        Query(max_length=MAX_EXPR, description="Sort, as `/api/runs`: the table's order"),
    ] = None,
    runs: Annotated[
        int, Query(ge=1, le=views.MAX_PANEL_RUNS, description="How many runs of the table")
    ] = views.DEFAULT_PANEL_RUNS,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="From this row on")] = 0,
    sweep: Annotated[str | None, Query(max_length=MAX_REF, description="Sweep id")] = None,
    hybrids: Annotated[
        bool,
        Query(description="Include the hybrid runs of `runbase explain` (tagged `explain`)"),
    ] = True,
    exclude: Annotated[
        list[str] | None,
        Query(max_length=MAX_ITEMS, description="Run ids left out (comma-separated or repeated)"),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_ITEMS,
            description="Metric keys to chart (comma-separated or repeated); "
            "default: every metric the runs logged, at most 24",
        ),
    ] = None,
    points: Annotated[
        int,
        Query(
            ge=views.MIN_PANEL_POINTS,
            le=views.MAX_PANEL_POINTS,
            description="Buckets per series (server-side downsampling)",
        ),
    ] = views.DEFAULT_PANEL_POINTS,
    x: Annotated[
        Literal["step", "time", "relative"],
        Query(description="x axis: step, wall time (epoch s), seconds since the run started"),
    ] = "step",
    group_by: Annotated[
        str | None,
        Query(
            max_length=MAX_REF,
            description="Group runs by params.KEY, tags.KEY, status, user or sweep",
        ),
    ] = None,
    band: Annotated[
        Literal["minmax", "sd"],
        Query(description="A group's band: its runs' min to max, or the mean -+ sd"),
    ] = "minmax",
    bounds: Annotated[
        bool, Query(description="Each series' min and max too (false: the means alone)")
    ] = True,
) -> Response:
    _check_lengths("exclude", exclude)
    _check_lengths("metrics", metrics)
    panel = views.chart_panel(
        store,
        where=where,
        sort=sort,
        runs=runs,
        offset=offset,
        sweep=sweep,
        hybrids=hybrids,
        exclude=csv_list(exclude),
        metrics=csv_list(metrics) or None,
        points=points,
        x=x,
        group_by=group_by,
        band=band,
        bounds=bounds,
    )
    return Response(panel_body(panel), media_type="application/json")
