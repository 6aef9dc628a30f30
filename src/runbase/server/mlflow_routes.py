"""The MLflow tracking API's routes (``/api/2.0/mlflow/...`` under a project's
``/mlflow``): experiments, runs, logging and metric histories, each mapped onto a
function of server.mlflow_service. Paths, methods and fields are those the MLflow
client (3.x) calls: POSTs carry JSON, GETs query parameters. Reads (GETs and the two
searches) need the reader role, everything else writer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from runbase.server import mlflow_service as svc
from runbase.server.mlflow_base import (
    Caller,
    json_body,
    mlflow_reader,
    mlflow_writer,
    query_body,
)
from runbase.store import Store
from runbase.web.api import json_response

PREFIX = "/api/2.0/mlflow"

Handler = Callable[[Store, Caller, dict[str, Any]], dict[str, Any]]

router = APIRouter(prefix=PREFIX)


def _no_caller(fn: Callable[[Store, dict[str, Any]], dict[str, Any]]) -> Handler:
    def handler(store: Store, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return fn(store, body)

    return handler


def _call(fn: Handler, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    with caller.server.store(caller.project) as store:
        return fn(store, caller, body)


def _route(path: str, method: str, role: str, fn: Handler) -> None:
    dep = mlflow_reader if role == "reader" else mlflow_writer

    if method == "GET":

        def get(request: Request, caller: Caller = Depends(dep)) -> Response:  # noqa: B008
            return json_response(_call(fn, caller, query_body(request)))

        endpoint: Callable[..., Any] = get
    else:

        async def post(request: Request, caller: Caller = Depends(dep)) -> Response:  # noqa: B008
            # the body is read after the role check (a dependency): no one without a
            # role makes the server parse it
            body = await json_body(request)
            return json_response(await run_in_threadpool(_call, fn, caller, body))

        endpoint = post
    name = path.strip("/").replace("/", "_").replace("-", "_")
    router.add_api_route(path, endpoint, methods=[method], name=f"mlflow_{name}")


def _stage(stage: str) -> Handler:
    return lambda store, caller, body: svc.set_experiment_stage(store, caller, body, stage)


def _deleted(deleted: bool) -> Handler:
    return lambda store, caller, body: svc.delete_run(store, caller, body, deleted)


ROUTES: list[tuple[str, str, str, Handler]] = [
    ("/experiments/create", "POST", "writer", _no_caller(svc.create_experiment)),
    ("/experiments/get", "GET", "reader", _no_caller(svc.get_experiment)),
    ("/experiments/get-by-name", "GET", "reader", _no_caller(svc.get_experiment_by_name)),
    ("/experiments/search", "POST", "reader", _no_caller(svc.search_experiments)),
    ("/experiments/update", "POST", "writer", svc.update_experiment),
    ("/experiments/delete", "POST", "writer", _stage("deleted")),
    ("/experiments/restore", "POST", "writer", _stage("active")),
    ("/experiments/set-experiment-tag", "POST", "writer", _no_caller(svc.set_experiment_tag)),
    (
        "/experiments/delete-experiment-tag",
        "POST",
        "writer",
        _no_caller(svc.delete_experiment_tag),
    ),
    ("/runs/create", "POST", "writer", svc.create_run),
    ("/runs/get", "GET", "reader", _no_caller(svc.get_run)),
    ("/runs/update", "POST", "writer", svc.update_run),
    ("/runs/delete", "POST", "writer", _deleted(True)),
    ("/runs/restore", "POST", "writer", _deleted(False)),
    ("/runs/search", "POST", "reader", _no_caller(svc.search_runs)),
    ("/runs/set-tag", "POST", "writer", svc.set_tag),
    ("/runs/delete-tag", "POST", "writer", svc.delete_tag),
    ("/runs/log-parameter", "POST", "writer", svc.log_param),
    ("/runs/log-metric", "POST", "writer", svc.log_metric),
    ("/runs/log-batch", "POST", "writer", svc.log_batch),
    ("/runs/log-inputs", "POST", "writer", svc.log_inputs),
    ("/runs/outputs", "POST", "writer", svc.log_outputs),
    ("/runs/log-model", "POST", "writer", svc.log_model),
    ("/metrics/get-history", "GET", "reader", _no_caller(svc.get_metric_history)),
    (
        "/metrics/get-history-bulk-interval",
        "GET",
        "reader",
        _no_caller(svc.get_metric_history_bulk_interval),
    ),
]

for _path, _method, _role, _fn in ROUTES:
    _route(_path, _method, _role, _fn)
