"""The API's routers beyond :mod:`runbase.web.api`, by resource, and who may use them:
``runbase ui`` serves them all under ``/api``; the team server under
``/p/{project}/api``, the read routers to a project's readers and the write routers to
its writers."""

from __future__ import annotations

from fastapi import APIRouter

from runbase.web import routes_media, routes_models, routes_panel, routes_sweeps, routes_views


def read_routers() -> list[APIRouter]:
    """Routes that only read: the chart panel, media, saved views, the model registry,
    the sweeps."""
    return [
        routes_panel.router,
        routes_media.router,
        routes_views.router,
        routes_models.router,
        routes_sweeps.router,
    ]


def write_routers() -> list[APIRouter]:
    """Routes that change the project: saving, deleting and defaulting views; registering,
    promoting, demoting and rolling back model versions, deciding promotion requests and
    replaying pushed registry events (the registry checks the approver role itself)."""
    return [routes_views.write_router, routes_models.write_router]
