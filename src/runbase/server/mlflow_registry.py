"""MLflow's model registry API (``/api/2.0/mlflow/registered-models/...`` and
``/model-versions/...``) on runbase's registry, mounted by
:mod:`runbase.server.mlflow_app` (docs/mlflow.md, "Model registry"). Every change is a
runbase registry change made by the caller (:meth:`Server.model_actor`: their role and
the project's protected stages), so it lands in the audit log and sends webhooks. What
the requests mean is :mod:`runbase.server.mlflow_reg_store`'s business.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runbase.records.registry import Actor
from runbase.server import mlflow_reg_store as reg
from runbase.server.mlflow_artifacts import in_store
from runbase.server.mlflow_base import (
    RESOURCE_ALREADY_EXISTS,
    Caller,
    MlflowError,
    ReaderCaller,
    WriterCaller,
    check_text,
    error_response,
    json_body,
    query_body,
)
from runbase.store import Store
from runbase.web.api import json_response

router = APIRouter()
MAX_REQUEST_TEXT = 2000  # a name, alias or version field (names are checked again, tighter)

MODELS = "/api/2.0/mlflow/registered-models"
VERSIONS = "/api/2.0/mlflow/model-versions"
NOT_KEPT = (
    "runbase's registry keeps versions immutable and names no model without a version: "
    "{what} is not supported through the MLflow API (docs/mlflow.md)"
)


def _actor(c: Caller) -> Actor:
    """The registry's actor: the caller, their role, the project's protected stages."""
    return c.server.model_actor(c.user, c.project, c.role)


def _text(body: dict[str, Any], key: str) -> str:
    return check_text(body.get(key), key, limit=MAX_REQUEST_TEXT, required=True)


# ---------------------------------------------------------------- registered models


@router.post(MODELS + "/create", tags=["mlflow"], summary="Create a registered model")
async def create_registered_model(request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    name = reg.check_model_name(body.get("name"))
    if await in_store(c, reg.exists, name):
        return error_response(400, RESOURCE_ALREADY_EXISTS, f"model {name!r} exists")
    return json_response({"registered_model": reg.empty_model_json(name, time.time())})


@router.get(MODELS + "/get", tags=["mlflow"], summary="Get a registered model")
async def get_registered_model(request: Request, c: ReaderCaller) -> Response:
    name = _text(query_body(request), "name")
    return json_response({"registered_model": await in_store(c, reg.model_json, name)})


@router.get(MODELS + "/search", tags=["mlflow"], summary="Search registered models")
async def search_registered_models(request: Request, c: ReaderCaller) -> Response:
    return json_response(await in_store(c, reg.search_models, query_body(request)))


@router.post(MODELS + "/get-latest-versions", tags=["mlflow"], summary="Latest versions")
async def get_latest_versions(request: Request, c: ReaderCaller) -> Response:
    body = await json_body(request)
    found = await in_store(c, reg.latest_versions, _text(body, "name"), body.get("stages"))
    return json_response({"model_versions": found})


@router.post(MODELS + "/alias", tags=["mlflow"], summary="Set an alias (promote to a stage)")
async def set_alias(request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    actor = _actor(c)
    await in_store(
        c,
        reg.set_alias,
        _text(body, "name"),
        body.get("alias"),
        body.get("version"),
        actor,
    )
    return json_response({})


@router.delete(MODELS + "/alias", tags=["mlflow"], summary="Delete an alias (demote)")
async def delete_alias(request: Request, c: WriterCaller) -> Response:
    body = await json_body(request) or query_body(request)
    actor = _actor(c)
    await in_store(c, reg.delete_alias, _text(body, "name"), body.get("alias"), actor)
    return json_response({})


@router.get(MODELS + "/alias", tags=["mlflow"], summary="The version an alias names")
async def get_by_alias(request: Request, c: ReaderCaller) -> Response:
    query = query_body(request)
    found = await in_store(c, reg.by_alias, _text(query, "name"), query.get("alias"))
    return json_response({"model_version": found})


# ---------------------------------------------------------------- model versions


def _create(store: Store, body: dict[str, Any], hold: Any, actor: Actor) -> dict[str, Any]:
    name = reg.check_model_name(body.get("name"))
    if body.get("tags"):
        raise MlflowError("model version tags are not kept by runbase's registry (docs/mlflow.md)")
    source = reg.source_of(
        store, body.get("source"), body.get("run_id"), body.get("model_id"), hold
    )
    return reg.create_version(store, name, source, body.get("description"), actor)


@router.post(VERSIONS + "/create", tags=["mlflow"], summary="Register a model version")
async def create_model_version(request: Request, c: WriterCaller) -> Response:
    body = await json_body(request)
    actor = _actor(c)

    def hold(oid: str, size: int) -> None:
        c.server.accept_object(c.project, oid, size)

    found = await in_store(c, _create, body, hold, actor)
    return json_response({"model_version": found})


def _get_version(store: Store, name: str, number: Any) -> dict[str, Any]:
    versions, version = reg.by_number(store, name, number)
    return reg.version_json(store, versions, version)


@router.get(VERSIONS + "/get", tags=["mlflow"], summary="Get a model version")
async def get_model_version(request: Request, c: ReaderCaller) -> Response:
    query = query_body(request)
    found = await in_store(c, _get_version, _text(query, "name"), query.get("version"))
    return json_response({"model_version": found})


def _download_uri(store: Store, name: str, number: Any) -> str:
    _, version = reg.by_number(store, name, number)
    return reg.source_uri(store, version)


@router.get(VERSIONS + "/get-download-uri", tags=["mlflow"], summary="Where a version's files are")
async def get_download_uri(request: Request, c: ReaderCaller) -> Response:
    query = query_body(request)
    uri = await in_store(c, _download_uri, _text(query, "name"), query.get("version"))
    return json_response({"artifact_uri": uri})


@router.get(VERSIONS + "/search", tags=["mlflow"], summary="Search model versions")
async def search_model_versions(request: Request, c: ReaderCaller) -> Response:
    return json_response(await in_store(c, reg.search_versions, query_body(request)))


def _refuse(what: str) -> Any:
    def endpoint(_: WriterCaller) -> Response:
        raise MlflowError(NOT_KEPT.format(what=what))

    return endpoint


for _path, _method, _what in (
    (MODELS + "/rename", "POST", "renaming a registered model"),
    (MODELS + "/update", "PATCH", "a registered model's description"),
    (MODELS + "/delete", "DELETE", "deleting a registered model"),
    (MODELS + "/set-tag", "POST", "a registered model's tags"),
    (MODELS + "/delete-tag", "DELETE", "a registered model's tags"),
    (VERSIONS + "/update", "PATCH", "changing a model version"),
    (VERSIONS + "/delete", "DELETE", "deleting a model version"),
    (VERSIONS + "/set-tag", "POST", "a model version's tags"),
    (VERSIONS + "/delete-tag", "DELETE", "a model version's tags"),
    (VERSIONS + "/transition-stage", "POST", "MLflow's legacy stages (use aliases)"),
):
    router.add_api_route(
        _path, _refuse(_what), methods=[_method], tags=["mlflow"], include_in_schema=False
    )
