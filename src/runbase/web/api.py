"""The JSON API under ``/api`` (docs/api.md): thin handlers over :mod:`runbase.render.views`.

Every handler is a plain ``def`` (FastAPI runs it in its thread pool) that borrows a
:class:`Store` from the app's :class:`~runbase.store.pool.StorePool` for the duration of the request, so
no two threads ever share a database connection at once. Errors are mapped by the app
(``runbase.web.app``): unknown run, metric or file -> 404; malformed filter, sort or
argument -> 400; a parameter out of range -> 422; the store cannot be opened -> 503.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from runbase.capture.params import jsonable
from runbase.core import fsname
from runbase.core.shapes import I64
from runbase.render import views
from runbase.store import Store
from runbase.store.pool import StorePool

MAX_EXPR = 10_000  # characters of a where / sort expression
MAX_OFFSET = 10**12
MAX_REF = 1_000


def get_store(request: Request) -> Iterator[Store]:
    """FastAPI dependency: a store of the app, this request's alone until it ends.

    ``def page(store: Store = Depends(get_store)): ...``
    """
    borrow = getattr(request.app.state, "borrow_store", None)
    if borrow is not None:  # the team server: the store of the project in the path
        with borrow(request) as store:
            yield store
        return
    pool: StorePool = request.app.state.store_pool
    with pool.borrow() as store:
        yield store


StoreDep = Annotated[Store, Depends(get_store)]


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Strict JSON (NaN/inf as the strings the run record uses), compact, UTF-8."""
    try:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        body = json.dumps(jsonable(data), ensure_ascii=False, separators=(",", ":"))
    if fsname.needs_encoding(body):  # a lone surrogate an older version stored: never a 500
        body = json.dumps(fsname.clean(jsonable(data)), ensure_ascii=False, separators=(",", ":"))
    return Response(
        body.encode(), status_code=status_code, media_type="application/json", headers=headers
    )


class ErrorBody(BaseModel):
    detail: str


_Responses = dict[int | str, dict[str, Any]]
_E404: _Responses = {
    404: {"model": ErrorBody, "description": "No such run (or metric, file, object)"}
}
_E400: _Responses = {400: {"model": ErrorBody, "description": "Malformed expression or argument"}}
_JSON: _Responses = {
    200: {"content": {"application/json": {}}, "description": "JSON (see docs/api.md)"}
}


def _r(*parts: _Responses) -> _Responses:
    return {k: v for part in parts for k, v in part.items()}


router = APIRouter()

RunRef = Annotated[
    str,
    Path(
        max_length=MAX_REF,
        description="Run id, unique id prefix, name, or `latest`",
    ),
]
Where = Annotated[
    str | None,
    Query(
        max_length=MAX_EXPR,
        description="Filter, as `runbase ls --where`: `params.lr < 0.1 and metrics.acc > 0.9`",
    ),
]


def csv_list(values: list[str] | None) -> list[str]:
    """``a,b`` and repeated parameters alike."""
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


@router.get("/health", tags=["meta"], summary="Liveness and version", responses=_JSON)
def health() -> Response:
    return json_response(views.health())


@router.get(
    "/runs",
    tags=["runs"],
    summary="A page of runs, filtered and sorted",
    responses=_r(_JSON, _E400),
)
def list_runs(
    store: StoreDep,
    where: Where = None,
    sort: Annotated[
        str | None,
        Query(
            max_length=MAX_EXPR,
            description="Sort, as `runbase ls --sort`: `-metrics.acc` (descending), `name`",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    sweep: Annotated[str | None, Query(max_length=MAX_REF, description="Sweep id")] = None,
    group_by: Annotated[
        str | None,
        Query(
            max_length=MAX_REF,
            description="Also count runs per group: sweep, status, user, host, tag:KEY, param:KEY",
        ),
    ] = None,
    hybrids: Annotated[
        bool,
        Query(description="Include the hybrid runs of `runbase explain` (tagged `explain`)"),
    ] = True,
) -> Response:
    return json_response(
        views.runs_page(store, where, sort, limit, offset, sweep, group_by, hybrids=hybrids)
    )


@router.get(
    "/runs/{ref}",
    tags=["runs"],
    summary="A run record (docs/run-record.md) and its series",
    responses=_r(_JSON, _E404),
)
def get_run(
    store: StoreDep,
    ref: RunRef,
    patch: Annotated[bool, Query(description="Include the code patch text")] = True,
) -> Response:
    return json_response(views.run_detail(store, ref, include_patch=patch))


@router.get(
    "/runs/{ref}/series/{key:path}",
    tags=["runs"],
    summary="One metric over steps, downsampled to at most `points` buckets",
    responses=_r(_JSON, _E404),
)
def get_series(
    store: StoreDep,
    ref: RunRef,
    key: Annotated[str, Path(max_length=MAX_REF, description="Metric key (may contain /)")],
    points: Annotated[
        int, Query(ge=2, le=views.MAX_POINTS, description="At most this many buckets")
    ] = views.DEFAULT_POINTS,
    since_step: Annotated[
        int | None,
        Query(ge=-I64, le=I64 - 1, description="Only points with a greater step"),
    ] = None,
) -> Response:
    return json_response(views.metric_series(store, ref, key, points, since_step))


@router.get(
    "/runs/{ref}/code/tree",
    tags=["code"],
    summary="The files of the run's code snapshot",
    responses=_r(_JSON, _E404),
)
def get_code_tree(store: StoreDep, ref: RunRef) -> Response:
    return json_response(views.code_tree(store, ref))


CodePath = Annotated[str, Query(min_length=1, max_length=4096, description="Path in the snapshot")]


@router.get(
    "/runs/{ref}/code/file",
    tags=["code"],
    summary="One file of the snapshot, syntax-highlighted HTML",
    responses=_r(_JSON, _E404),
)
def get_code_file(store: StoreDep, ref: RunRef, path: CodePath) -> Response:
    return json_response(views.code_file(store, ref, path))


@router.get(
    "/runs/{ref}/code/raw",
    tags=["code"],
    summary="One file of the snapshot, its bytes",
    responses={
        200: {"content": {"text/plain": {}, "application/octet-stream": {}}},
        **_E404,
    },
)
def get_code_raw(store: StoreDep, ref: RunRef, path: CodePath) -> Response:
    data = views.code_file_bytes(store, ref, path)
    binary = b"\0" in data[:8192]
    if not binary:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            binary = True
    name = path.rsplit("/", 1)[-1].replace('"', "")
    return Response(
        data,
        media_type="application/octet-stream" if binary else "text/plain; charset=utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{name}"',
        },
    )


@router.get(
    "/runs/{ref}/code/diff",
    tags=["code"],
    summary="The uncommitted change the run ran with, highlighted",
    responses=_r(_JSON, _E404),
)
def get_code_diff(store: StoreDep, ref: RunRef) -> Response:
    return json_response(views.code_diff(store, ref))


@router.get(
    "/runs/{ref}/notebook",
    tags=["runs"],
    summary="The notebook a run came from and the cells it executed",
    responses=_r(_JSON, _E404),
)
def get_notebook(store: StoreDep, ref: RunRef) -> Response:
    return json_response(views.notebook(store, ref))


@router.get(
    "/runs/{ref}/logs",
    tags=["runs"],
    summary="Part of the run's output, for tailing",
    responses=_r(_JSON, _E404),
)
def get_logs(
    store: StoreDep,
    ref: RunRef,
    stream: Annotated[
        Literal["output", "stderr"],
        Query(description="output: stdout and stderr interleaved; stderr: stderr only"),
    ] = "output",
    offset: Annotated[int, Query(ge=0, le=2**53, description="Byte offset")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=views.MAX_LOG_CHUNK, description="At most this many bytes")
    ] = views.DEFAULT_LOG_CHUNK,
) -> Response:
    return json_response(views.log_chunk(store, ref, stream, offset, limit))


@router.get(
    "/runs/{ref}/lineage",
    tags=["runs"],
    summary="The data lineage graph around the run",
    responses=_r(_JSON, _E404),
)
def get_lineage(
    store: StoreDep,
    ref: RunRef,
    depth: Annotated[
        int, Query(ge=0, le=views.MAX_LINEAGE_DEPTH, description="Runs away from this one")
    ] = 3,
) -> Response:
    return json_response(views.lineage(store, ref, depth))


RunList = Annotated[
    list[str] | None,
    Query(max_length=MAX_EXPR, description="Run references, comma-separated or repeated"),
]


@router.get(
    "/compare",
    tags=["runs"],
    summary="Runs side by side: params and metrics, differing keys first",
    responses=_r(_JSON, _E400, _E404),
)
def get_compare(store: StoreDep, runs: RunList = None) -> Response:
    return json_response(views.compare(store, csv_list(runs)))


@router.get(
    "/diff",
    tags=["runs"],
    summary="runbase diff A B --json (docs/diff-format.md)",
    responses=_r(_JSON, _E400, _E404),
)
def get_diff(
    store: StoreDep,
    a: Annotated[str, Query(min_length=1, max_length=MAX_REF, description="Run A")],
    b: Annotated[
        str | None,
        Query(max_length=MAX_REF, description="Run B; without it, A against its commit"),
    ] = None,
    sections: Annotated[
        str | None,
        Query(max_length=MAX_REF, description="params,metrics,code,data,env,run (all if none)"),
    ] = None,
) -> Response:
    chosen = csv_list([sections]) if sections else None
    return json_response(views.diff(store, a, b or None, chosen))


@router.get(
    "/importance",
    tags=["runs"],
    summary="Which parameters move a metric (runbase importance)",
    responses=_r(_JSON, _E400, _E404),
)
def get_importance(
    store: StoreDep,
    metric: Annotated[
        str, Query(min_length=1, max_length=MAX_REF, description="acc, or loss.min ...")
    ],
    where: Where = None,
    runs: RunList = None,
    sweep: Annotated[str | None, Query(max_length=MAX_REF)] = None,
) -> Response:
    refs = csv_list(runs) or None
    return json_response(views.importance(store, metric, where, refs, sweep))


@router.get(
    "/explain",
    tags=["runs"],
    summary="The saved `runbase explain A B`: waterfall, factors, hybrids",
    responses=_r(_JSON, _E400, _E404),
)
def get_explain(
    store: StoreDep,
    a: Annotated[str, Query(min_length=1, max_length=MAX_REF, description="Run A")],
    b: Annotated[str, Query(min_length=1, max_length=MAX_REF, description="Run B")],
    metric: Annotated[
        str | None,
        Query(max_length=MAX_REF, description="The metric explained (default: the newest)"),
    ] = None,
) -> Response:
    return json_response(views.explanation(store, a, b, metric or None))


@router.get(
    "/highlight.css",
    tags=["code"],
    summary="CSS for the highlighted HTML of code/file and code/diff",
    responses={200: {"content": {"text/css": {}}}, **_E400},
)
def get_highlight_css(
    style: Annotated[str, Query(max_length=100, description="A pygments style")] = "default",
) -> Response:
    return Response(
        views.highlight_css(style),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )
