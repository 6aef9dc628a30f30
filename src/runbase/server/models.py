"""The JSON bodies the server's own API accepts (pydantic models: validated before a
handler runs, a 422 otherwise)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from runbase.core import fsname
from runbase.server import control
from runbase.server.auth import OID_PATH, PROJECT_PATH, USER_PATH


def _db_text(value: str) -> str:
    """Text a database can store: no NUL (PostgreSQL), no lone surrogate (UTF-8)."""
    problem = fsname.text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


DbText = Annotated[str, AfterValidator(_db_text)]


class OidList(BaseModel):
    oids: list[Annotated[str, Field(pattern=OID_PATH)]] = Field(max_length=100_000)


class NewUser(BaseModel):
    name: str = Field(pattern=USER_PATH)
    role: str = Field(default="user", pattern="^(user|admin)$")
    # as `runbase server users add`: a writer of the default project unless told otherwise
    projects: list[Annotated[str, Field(pattern=PROJECT_PATH)]] = Field(
        default=[control.DEFAULT_PROJECT], max_length=100
    )
    project_role: str = Field(default="writer", pattern="^(reader|writer|approver|admin)$")


class NewProject(BaseModel):
    name: str = Field(pattern=PROJECT_PATH)


class MemberRole(BaseModel):
    role: str = Field(pattern="^(reader|writer|approver|admin)$")


class NewToken(BaseModel):
    label: DbText = Field(default="", max_length=200)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class NoteBody(BaseModel):
    text: DbText = Field(min_length=1, max_length=20_000)
