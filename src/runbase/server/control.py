"""The team server's own tables: users, API tokens, projects, members, UI sessions,
which objects each project holds, notes on runs, the model registry's protected
stages, and webhooks with their deliveries (docs/server.md).

They live next to the projects' run stores in the same database: on PostgreSQL in
the schema ``runbase_server`` (each project in its own schema, ``rbp_<name>``); on
SQLite in ``server.db`` (each project in ``projects/<name>.db`` beside it). The
control schema is versioned apart from the store schema and only
``runbase server migrate`` changes it: a server refuses to start on a version it
does not know, older or newer.

Tokens and session ids are random 256-bit secrets. Only their SHA-256 is stored
(a fast hash is right for random secrets: there is nothing to brute-force), so a
leaked database leaks no credential; the secret is shown once, when created. A
webhook's secret is the exception: the server signs each delivery with it, so it is
stored as it is (docs/server.md, "Webhooks").

This module holds the schema and the rules (names, roles, secrets, errors); the
reading and writing of the tables is :mod:`runbase.records.accounts`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runbase.core import modelref
from runbase.core.ids import new_run_id
from runbase.errors import (
    AuthError,
    Conflict,
    Forbidden,
    FormatVersionError,
    NotFound,
    RunbaseError,
    StoreError,
    UsageError,
)
from runbase.records import accounts
from runbase.store.db import Database, open_database, sqlite_path
from runbase.store.tables import DOUBLE, INTEGER, TEXT, Column, Index, Schema, Table

CONTROL_VERSION = 3
NAMESPACE = "runbase_server"
PROJECT_NAMESPACE_PREFIX = "rbp_"
DEFAULT_PROJECT = "default"

# project roles, each includes the ones before it (records.registry.ROLES: the same)
ROLES = ("reader", "writer", "approver", "admin")
SERVER_ROLES = ("user", "admin")  # a server admin is admin of every project
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# a project's PostgreSQL schema is "rbp_" + its name, and PostgreSQL cuts identifiers at
# 63 bytes: a longer name would share a schema with another project
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,58}$")
TOKEN_PREFIX = "rbt_"
SESSION_TTL = 14 * 86400.0
# the registry's actions a webhook can ask for (docs/models.md, "Events")
HOOK_EVENTS = ("register", "promote", "demote", "rollback", "request", "approve", "reject")
DELIVERY_STATES = ("pending", "delivered", "failed")
MAX_URL = 2000


def _key(name: str) -> Column:
    return Column(name, TEXT, not_null=True)


def _nn(name: str, type_: str, default: int | None = None) -> Column:
    return Column(name, type_, not_null=True, default=default)


# The control tables, declared once (runbase.store.tables): both dialects' DDL and the
# migrations come from here. Version 2: a UI session remembers the API token it was
# opened with, so revoking (or the expiry of) the token ends the session too.
# Version 3: the model registry's protected stages, and webhooks with their deliveries.
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
        Table(
            "protected_stages",
            [
                _key("project"),
                _key("stage"),
                _nn("approvals", INTEGER),
                _nn("created_at", DOUBLE),
                Column("created_by", TEXT),
            ],
            key=("project", "stage"),
            since=3,
        ),
        Table(
            "hooks",
            [
                _key("id"),
                _nn("project", TEXT),
                _nn("url", TEXT),
                _nn("events", TEXT),
                _nn("secret", TEXT),
                _nn("created_at", DOUBLE),
                Column("created_by", TEXT),
                _nn("disabled", INTEGER, default=0),
                # the outbox's cursor: the last model_events.seq of the project whose
                # deliveries are queued (NULL: not started, see server.hooks)
                Column("cursor_seq", INTEGER),
            ],
            key=("id",),
            indexes=[Index("hooks_project", ("project",))],
            since=3,
        ),
        Table(
            "hook_deliveries",
            [
                Column("id", TEXT, not_null=True, unique=True),
                _key("hook_id"),
                _nn("project", TEXT),
                _key("event_id"),
                _nn("body", TEXT),
                _nn("attempts", INTEGER, default=0),
                _nn("next_at", DOUBLE),
                _nn("state", TEXT),
                Column("last_status", INTEGER),
                Column("last_error", TEXT),
                Column("delivered_at", DOUBLE),
            ],
            # one delivery per hook and event: two processes queuing the same part of the
            # log cannot queue an event twice (server.hooks)
            key=("hook_id", "event_id"),
            indexes=[
                Index("hook_deliveries_due", ("state", "next_at")),
                Index("hook_deliveries_project", ("project",)),
            ],
            since=3,
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


# -- the model registry's protected stages --------------------------------------------------


def protect_stage(db: Database, project: str, stage: str, approvals: int, by: str | None) -> None:
    """Make ``stage`` of every model in ``project`` protected: promoting to it needs the
    approver role, and with ``approvals=2`` a second approver's consent (a request)."""
    modelref.check_stage(stage)
    if approvals not in (1, 2):
        raise UsageError(f"approvals must be 1 or 2, not {approvals!r}")
    _need_project(db, project)
    accounts.upsert_protected_stage(db, project, stage, approvals, time.time(), by)


def unprotect_stage(db: Database, project: str, stage: str) -> None:
    if not accounts.delete_protected_stage(db, project, stage):
        raise NotFound(f"stage {stage!r} is not protected in project {project!r}")


def protected_stages(db: Database, project: str) -> dict[str, int]:
    """``{stage: approvals}`` of ``project``."""
    return {r["stage"]: r["approvals"] for r in accounts.protected_stage_rows(db, project)}


def protected_stage_rows(db: Database, project: str) -> list[dict[str, Any]]:
    """``[{stage, approvals, created_at, created_by}]``, by stage."""
    _need_project(db, project)
    return accounts.protected_stage_rows(db, project)


# -- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewHook:
    id: str
    secret: str  # shown once by `hooks add`; kept, as the server signs with it


def check_hook_url(url: str) -> str:
    """A webhook URL: ``http(s)://host[:port]/path?query``, without credentials."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UsageError(f"a webhook URL is 1 to {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UsageError(f"bad webhook URL {url!r}: it contains spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad webhook URL {url!r}: use http://HOST/... or https://HOST/...")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number or too big
    except ValueError:
        raise UsageError(f"bad webhook URL {url!r}: the port is not a number 0-65535") from None
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"bad webhook URL {redact_userinfo(url)!r}: put no credentials in it (they would "
            "be listed by `hooks ls`); the receiver checks the signature header instead"
        )
    if parts.fragment:
        raise UsageError(f"bad webhook URL {url!r}: a #fragment is never sent; leave it out")
    return url


def redact_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + host))


def check_hook_events(events: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"promote,demote"`` (or a list): known actions, each once, in the order given."""
    items = events.split(",") if isinstance(events, str) else list(events)
    names = [e.strip() for e in items if isinstance(e, str) and e.strip()]
    unknown = [e for e in names if e not in HOOK_EVENTS]
    if unknown or not names:
        raise UsageError(
            f"bad webhook events {', '.join(unknown) or '(none)'}: use a comma list of "
            f"{', '.join(HOOK_EVENTS)}"
        )
    return list(dict.fromkeys(names))


def check_hook_secret(secret: str) -> str:
    if not isinstance(secret, str) or not 16 <= len(secret) <= 256:
        raise UsageError("a webhook secret is 16 to 256 characters (leave it out for a random one)")
    if not secret.isprintable() or not secret.isascii():
        raise UsageError("a webhook secret is printable ASCII")
    return secret


def add_hook(
    db: Database,
    project: str,
    url: str,
    events: str | list[str] | tuple[str, ...],
    secret: str | None = None,
    by: str | None = None,
    after_seq: int | None = None,
) -> NewHook:
    """A webhook of ``project``: each event whose action is in ``events`` is POSTed to
    ``url``, signed with ``secret`` (random 256 bits, hex, when not given).
    ``after_seq``: the project's last event seq now (its older events are not sent);
    None when the caller cannot read the project's log (a library caller; rows of an
    older version): the delivery thread then starts it at the events made after the
    hook's creation time."""
    check_hook_url(url)
    names = check_hook_events(events)
    secret = check_hook_secret(secret) if secret is not None else secrets.token_hex(32)
    if after_seq is not None and (not isinstance(after_seq, int) or after_seq < 0):
        raise UsageError(f"bad event seq {after_seq!r}: a whole number >= 0")
    _need_project(db, project)
    hook_id = secrets.token_hex(6)
    accounts.insert_hook(
        db, hook_id, project, url, ",".join(names), secret, time.time(), by, after_seq
    )
    return NewHook(hook_id, secret)


def remove_hook(db: Database, hook_id: str) -> None:
    """Delete a webhook; its deliveries still pending end ``failed`` (kept as history)."""
    if not accounts.delete_hook(db, hook_id, "the hook was removed"):
        raise NotFound(f"no webhook {hook_id!r}; `runbase server hooks ls` lists them")


def hooks(db: Database, project: str | None = None) -> list[dict[str, Any]]:
    """``[{id, project, url, events: [..], created_at, created_by, disabled}]`` (never
    the secrets), by project and creation time."""
    if project is not None:
        _need_project(db, project)
    return accounts.hook_rows(db, project)


def deliveries(
    db: Database,
    project: str | None = None,
    hook_id: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The webhook deliveries, newest first: ``[{id, hook, project, event, action,
    attempts, next_at, state, last_status, last_error, delivered_at}]``."""
    if state is not None and state not in DELIVERY_STATES:
        raise UsageError(f"bad delivery state {state!r}: use one of {', '.join(DELIVERY_STATES)}")
    if project is not None:
        _need_project(db, project)
    rows = accounts.delivery_rows(db, project, hook_id, state, max(1, min(limit, 10_000)))
    for row in rows:
        row["action"] = _action(row.pop("body"))
    return rows


def _action(body: Any) -> str | None:
    """The action of the event a delivery body carries (None when it is unreadable)."""
    try:
        action = json.loads(body)["event"]["action"]
    except (ValueError, KeyError, TypeError):
        return None
    return action if isinstance(action, str) else None


def delivery_rows(
    project: str, hook_id: str, wanted: str, events: Sequence[Mapping[str, Any]], now: float
) -> list[tuple[str, str, str, str, str, float]]:
    """The pending deliveries of ``events`` (their JSON shape, docs/models.md) to hook
    ``hook_id`` of ``project``, for those whose action is in ``wanted`` (a comma list):
    ``(id, hook_id, project, event_id, body, next_at)``. The body is kept as the exact
    bytes to send, so every attempt sends (and signs) the same."""
    actions = wanted.split(",")
    chosen = [e for e in events if e.get("action") in actions]
    # ids sort by time; sorted within one batch, they (and next_at) keep the events' order
    ids = sorted(new_run_id(now) for _ in chosen)
    out = []
    for i, (delivery_id, event) in enumerate(zip(ids, chosen, strict=True)):
        body = {"delivery": delivery_id, "project": project, "event": event}
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        out.append((delivery_id, hook_id, project, str(event.get("id")), text, now + i * 1e-6))
    return out


def _need_project(db: Database, project: str) -> None:
    if not accounts.project_exists(db, project):
        raise NotFound(f"no project {project!r}; `runbase server projects list` lists them")
