"""MLflow registry endpoints, mounted by server.mlflow_app (issue 20)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
