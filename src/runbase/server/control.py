"""The team server's own tables: users, API tokens, projects, members, UI sessions,
which objects each project holds, and notes on runs (docs/server.md).

They live next to the projects' run stores in the same database: on PostgreSQL in
the schema ``runbase_server`` (each project in its own schema, ``rbp_<name>``); on
SQLite in ``server.db`` (each project in ``projects/<name>.db`` beside it). The
control schema is versioned apart from the store schema and only
``runbase server migrate`` changes it: a server refuses to start on a version it
does not know, older or newer.

Tokens and session ids are random 256-bit secrets. Only their SHA-256 is stored
(a fast hash is right for random secrets: there is nothing to brute-force), so a
leaked database leaks no credential; the secret is shown once, when created.

This module holds the schema and the rules (names, roles, secrets, errors); the
reading and writing of the tables is :mod:`runbase.records.accounts`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from runbase.errors import (
    AuthError,
    Conflict,
    Forbidden,
    FormatVersionError,
    NotFound,
    RunbaseError,
    StoreError,
)
from runbase.records import accounts
from runbase.store.db import Database, open_database, sqlite_path
from runbase.store.tables import DOUBLE, INTEGER, TEXT, Column, Index, Schema, Table

CONTROL_VERSION = 2
NAMESPACE = "runbase_server"
PROJECT_NAMESPACE_PREFIX = "rbp_"
DEFAULT_PROJECT = "default"

ROLES = ("reader", "writer", "admin")  # project roles, each includes the ones before it
SERVER_ROLES = ("user", "admin")  # a server admin is admin of every project
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# a project's PostgreSQL schema is "rbp_" + its name, and PostgreSQL cuts identifiers at
# 63 bytes: a longer name would share a schema with another project
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,58}$")
TOKEN_PREFIX = "rbt_"
SESSION_TTL = 14 * 86400.0


def _key(name: str) -> Column:
    return Column(name, TEXT, not_null=True)


def _nn(name: str, type_: str, default: int | None = None) -> Column:
    return Column(name, type_, not_null=True, default=default)


# The control tables, declared once (runbase.store.tables): both dialects' DDL and the
# migrations come from here. Version 2: a UI session remembers the API token it was
# opened with, so revoking (or the expiry of) the token ends the session too.
CONTROL_SCHEMA = Schema(
    CONTROL_VERSION,
    [
        Table("server_meta", [_key("key"), _nn("value", TEXT)], key=("key",)),
        Table(
            "users",
            [
                _key("name"),
                _nn("role", TEXT),
                _nn("created_at", DOUBLE),
                _nn("disabled", INTEGER, default=0),
            ],
            key=("name",),
        ),
        Table(
            "tokens",
            [
                _key("id"),
                _nn("user_name", TEXT),
                Column("hash", TEXT, not_null=True, unique=True),
                _nn("label", TEXT),
                _nn("created_at", DOUBLE),
                Column("expires_at", DOUBLE),
                Column("revoked_at", DOUBLE),
                Column("last_used_at", DOUBLE),
            ],
            key=("id",),
            indexes=[Index("tokens_user", ("user_name",))],
        ),
        Table(
            "projects",
            [_key("name"), _nn("created_at", DOUBLE), Column("created_by", TEXT)],
            key=("name",),
        ),
        Table(
            "members",
            [_key("project"), _key("user_name"), _nn("role", TEXT)],
            key=("project", "user_name"),
            indexes=[Index("members_user", ("user_name",))],
        ),
        Table(
            "sessions",
            [
                _key("hash"),
                _nn("user_name", TEXT),
                _nn("csrf", TEXT),
                _nn("created_at", DOUBLE),
                _nn("expires_at", DOUBLE),
                Column("token_id", TEXT, since=2),
            ],
            key=("hash",),
        ),
        Table(
            "project_objects",
            [_key("project"), _key("oid"), Column("size", INTEGER)],
            key=("project", "oid"),
        ),
        Table(
            "notes",
            [
                _key("id"),
                _nn("project", TEXT),
                _nn("run_id", TEXT),
                _nn("author", TEXT),
                _nn("created_at", DOUBLE),
                _nn("text", TEXT),
            ],
            key=("id",),
            indexes=[Index("notes_run", ("project", "run_id"))],
        ),
    ],
)
# The SQLite DDL of version 1, the oldest control schema a migration starts from.
CONTROL_V1 = CONTROL_SCHEMA.create("sqlite", version=1)


@dataclass(frozen=True)
class User:
    name: str
    role: str  # "user" or "admin" (server-wide)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class NewToken:
    id: str
    secret: str  # shown once; only its hash is kept
    expires_at: float | None


def check_name(kind: str, name: str) -> str:
    pattern, most = (PROJECT_NAME_RE, 59) if kind == "project" else (NAME_RE, 63)
    if not isinstance(name, str) or not pattern.match(name):
        raise RunbaseError(
            f"bad {kind} name {name!r}: use 1-{most} of a-z, 0-9, '.', '_', '-' "
            "(starting with a letter or digit)"
        )
    return name


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def rank(role: str) -> int:
    return ROLES.index(role)


# -- the database -------------------------------------------------------------------------


def open_control(db_url: str, create: bool = False) -> Database:
    """The control tables at ``db_url`` (a server's ``--db``), schema checked:
    ``create=True`` (``runbase server migrate``) creates or migrates them."""
    if not db_url.startswith(("postgresql://", "postgres://")):
        path = sqlite_path(db_url)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise StoreError(
                f"no server database at {db_url}; run `runbase server migrate --db {db_url}`"
            )
    db = open_database(db_url, create=create, namespace=NAMESPACE, store_schema=False)
    try:
        if create:
            _create_or_migrate(db)
        check_control(db)
    except BaseException:
        db.close()
        raise
    return db


def control_version(db: Database) -> int | None:
    """The version of the server tables in ``db`` (None: never migrated)."""
    return accounts.control_version(db)


def check_control(db: Database) -> None:
    v = control_version(db)
    if v is None:
        raise StoreError(
            "this database has no runbase server tables; run `runbase server migrate --db URL`"
        )
    if v > CONTROL_VERSION:
        raise FormatVersionError(
            f"the server tables are version {v}, newer than this runbase understands "
            f"({CONTROL_VERSION}); upgrade runbase on this server"
        )
    if v < CONTROL_VERSION:
        raise FormatVersionError(
            f"the server tables are version {v}, older than this runbase ({CONTROL_VERSION}); "
            "run `runbase server migrate --db URL`"
        )


def _create_or_migrate(db: Database) -> None:
    v = control_version(db)
    if v is not None and v > CONTROL_VERSION:
        return  # check_control refuses it with the message
    accounts.create_or_migrate(db, CONTROL_SCHEMA, v, DEFAULT_PROJECT, time.time())


def project_db_location(db_url: str, project: str) -> tuple[str, str | None]:
    """Where project ``project``'s run store lives: ``(url, PostgreSQL namespace)``."""
    check_name("project", project)
    if db_url.startswith(("postgresql://", "postgres://")):
        return db_url, PROJECT_NAMESPACE_PREFIX + project
    path = sqlite_path(db_url)
    return str(path.parent / "projects" / f"{project}.db"), None


# -- users and tokens ---------------------------------------------------------------------


def add_user(db: Database, name: str, role: str = "user") -> User:
    check_name("user", name)
    if role not in SERVER_ROLES:
        raise RunbaseError(f"bad server role {role!r}: use one of {', '.join(SERVER_ROLES)}")
    if not accounts.insert_user(db, name, role, time.time()):
        raise Conflict(f"user {name!r} exists")
    return User(name, role)


def add_user_with_token(
    db: Database,
    name: str,
    role: str = "user",
    projects: list[str] | tuple[str, ...] = (DEFAULT_PROJECT,),
    project_role: str = "writer",
    ttl: float | None = None,
) -> NewToken:
    """A new user, ``project_role`` in each of ``projects``, and their first API token
    (the CLI's ``users add`` and the API's ``POST /api/v1/users``)."""
    for p in projects:
        if not accounts.project_exists(db, p):
            raise NotFound(f"no project {p!r}; create it first")
    if project_role not in ROLES:
        raise RunbaseError(f"bad role {project_role!r}: use one of {', '.join(ROLES)}")
    add_user(db, name, role)
    for p in projects:
        set_member(db, p, name, project_role)
    return create_token(db, name, label="first token", ttl=ttl)


def set_disabled(db: Database, name: str, disabled: bool) -> None:
    """Disable (or enable again) a user: their tokens and sessions stop working at once."""
    if not accounts.set_user_disabled(db, name, disabled):
        raise NotFound(f"no user {name!r}")


def get_user(db: Database, name: str) -> User | None:
    row = accounts.active_user(db, name)
    return User(*row) if row else None


def list_users(db: Database) -> list[dict[str, Any]]:
    return accounts.user_rows(db)


def create_token(db: Database, user: str, label: str = "", ttl: float | None = None) -> NewToken:
    """A new API token of ``user`` (``ttl`` seconds, None = no expiry)."""
    if get_user(db, user) is None:
        raise RunbaseError(f"no user {user!r}")
    if ttl is not None and not (0 < ttl < 1e11):
        raise RunbaseError("token lifetime must be positive seconds")
    tid = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{tid}_{secrets.token_urlsafe(32)}"
    now = time.time()
    expires = now + ttl if ttl is not None else None
    accounts.insert_token(db, tid, user, secret_hash(secret), label[:200], now, expires)
    return NewToken(tid, secret, expires)


def authenticate_token(db: Database, secret: str) -> User:
    """The user of a live API token; AuthError (the same message for every failure)."""
    return token_login(db, secret)[0]


def token_login(db: Database, secret: str) -> tuple[User, str]:
    """The user of a live API token and the token's id."""
    refused = AuthError("invalid, expired or revoked token")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise refused
    row = accounts.token_by_hash(db, secret_hash(secret))
    now = time.time()
    if row is None or row[2] is not None or (row[1] is not None and row[1] <= now):
        raise refused
    if row[3] is None or now - row[3] > 60:  # at most one write a minute per token
        accounts.touch_token(db, row[0], now)
    return User(row[4], row[5]), row[0]


def list_tokens(db: Database, user: str) -> list[dict[str, Any]]:
    return accounts.token_rows(db, user)


def revoke_token(db: Database, token_id: str, by: User) -> None:
    owner = accounts.token_owner(db, token_id)
    if owner is None or (owner != by.name and not by.is_admin):
        raise NotFound(f"no token {token_id!r}")
    accounts.revoke_token(db, token_id, time.time())


# -- UI sessions --------------------------------------------------------------------------


def create_session(
    db: Database, user: User, ttl: float = SESSION_TTL, token_id: str | None = None
) -> tuple[str, str]:
    """A new UI session opened with API token ``token_id``: ``(cookie secret, CSRF
    token)``. The session ends when that token is revoked or expires, or sooner."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = time.time()
    accounts.insert_session(db, secret_hash(secret), user.name, csrf, now, now + ttl, token_id)
    return secret, csrf


def session_user(db: Database, secret: str) -> tuple[User, str]:
    """The user and CSRF token of a live session cookie."""
    row = accounts.session_by_hash(db, secret_hash(secret[:200]))
    now = time.time()
    if row is None or row[3] <= now:
        raise AuthError("session expired; log in again")
    if row[4] is not None and (row[5] is not None or (row[6] is not None and row[6] <= now)):
        raise AuthError("the token this session was opened with is revoked or expired")
    return User(row[0], row[1]), row[2]


def end_session(db: Database, secret: str) -> None:
    accounts.delete_session(db, secret_hash(secret[:200]))


# -- projects and members -----------------------------------------------------------------


def add_project(db: Database, name: str, by: str | None = None) -> None:
    check_name("project", name)
    if not accounts.insert_project(db, name, time.time(), by):
        raise Conflict(f"project {name!r} exists")


def set_member(db: Database, project: str, user: str, role: str | None) -> None:
    """Give ``user`` ``role`` in ``project`` (None removes them)."""
    if role is not None and role not in ROLES:
        raise RunbaseError(f"bad role {role!r}: use one of {', '.join(ROLES)}")
    if not accounts.project_exists(db, project):
        raise NotFound(f"no project {project!r}")
    if get_user(db, user) is None:
        raise NotFound(f"no user {user!r}")
    if role is None:
        accounts.delete_member(db, project, user)
    else:
        accounts.upsert_member(db, project, user, role)


def members(db: Database, project: str) -> list[dict[str, str]]:
    return accounts.member_rows(db, project)


def role_in(db: Database, user: User, project: str) -> str | None:
    """``user``'s role in ``project``: a server admin is admin of every project; None
    when not a member (or no such project: the two are indistinguishable to a caller)."""
    if not accounts.project_exists(db, project):
        return None
    if user.is_admin:
        return "admin"
    return accounts.member_role(db, project, user.name)


def require_role(db: Database, user: User, project: str, needed: str) -> str:
    """``user``'s role in ``project`` if at least ``needed``, else Forbidden."""
    role = role_in(db, user, project)
    if role is None:
        raise Forbidden(f"not a member of project {project!r}")
    if rank(role) < rank(needed):
        raise Forbidden(f"{needed} role needed in project {project!r} (you are {role})")
    return role


def readable_projects(db: Database, user: User) -> list[dict[str, str]]:
    if user.is_admin:
        return [{"name": n, "role": "admin"} for n in accounts.project_names(db)]
    return accounts.memberships(db, user.name)


# -- notes --------------------------------------------------------------------------------


def add_note(db: Database, project: str, run_id: str, author: str, text: str) -> dict[str, Any]:
    text = text.strip()
    if not text or len(text) > 20_000:
        raise RunbaseError("a note is 1 to 20000 characters")
    note = {
        "id": secrets.token_hex(8),
        "run": run_id,
        "author": author,
        "created_at": time.time(),
        "text": text,
    }
    accounts.insert_note(db, project, note)
    return note


def notes(db: Database, project: str, run_id: str) -> list[dict[str, Any]]:
    return accounts.note_rows(db, project, run_id)
