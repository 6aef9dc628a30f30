"""(placeholder: being written) routes of the JSON API under /api."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
# the routes that change saved views: the team server gives them the writer role
write_router = APIRouter()
