"""The team server's accounts, as its control database holds them: users, API tokens,
UI sessions, projects and their members, the objects each project holds, and notes.
Only the reading and writing is here (one function per statement or transaction);
the rules (names, roles, secrets, what a caller may see) are ``runbase.server.control``'s.
Secrets never reach this module: tokens and sessions are looked up by their hash.
"""

from __future__ import annotations

from typing import Any

from runbase.store.db import Database
from runbase.store.tables import Schema

_IDS_PER_QUERY = 500

# -- the tables themselves ------------------------------------------------------------------


def control_version(db: Database) -> int | None:
    """The server tables' version in ``db`` (None: no ``server_meta`` table, never migrated)."""
    try:
        row = db.query_one("SELECT value FROM server_meta WHERE key = 'control_version'")
    except db.errors:
        return None
    return int(row[0]) if row else None


def create_or_migrate(
    db: Database, schema: Schema, current: int | None, default_project: str, now: float
) -> None:
    """Bring the server tables from version ``current`` (None: none yet) to
    ``schema.version`` in one transaction, and make sure the default project exists."""
    with db.transaction() as cur:
        v = current
        if v is None:
            for stmt in schema.create(db.dialect, version=1):
                cur.execute(stmt)
            cur.execute(
                "INSERT INTO server_meta (key, value) VALUES ('control_version', '1') "
                "ON CONFLICT (key) DO NOTHING"
            )
            v = 1
        while v < schema.version:
            for stmt in schema.migration(v, db.dialect):
                cur.execute(stmt)
            v += 1
        cur.execute("UPDATE server_meta SET value = ? WHERE key = 'control_version'", (str(v),))
        cur.execute(
            "INSERT INTO projects (name, created_at, created_by) VALUES (?, ?, NULL) "
            "ON CONFLICT (name) DO NOTHING",
            (default_project, now),
        )


# -- users ---------------------------------------------------------------------------------


def insert_user(db: Database, name: str, role: str, now: float) -> bool:
    """Add a user; False (nothing written) when the name is taken."""
    with db.transaction() as cur:
        if cur.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            return False
        cur.execute(
            "INSERT INTO users (name, role, created_at, disabled) VALUES (?, ?, ?, 0)",
            (name, role, now),
        )
    return True


def set_user_disabled(db: Database, name: str, disabled: bool) -> bool:
    """Disable (ending their sessions) or enable a user; False when there is no such user."""
    with db.transaction() as cur:
        if not cur.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            return False
        cur.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))
        if disabled:
            cur.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
    return True


def active_user(db: Database, name: str) -> tuple[str, str] | None:
    """``(name, server role)`` of a user who is not disabled."""
    row = db.query_one("SELECT name, role FROM users WHERE name = ? AND disabled = 0", (name,))
    return (row[0], row[1]) if row else None


def user_rows(db: Database) -> list[dict[str, Any]]:
    """Every user: ``{name, role, created_at, disabled}``, by name."""
    rows = db.query("SELECT name, role, created_at, disabled FROM users ORDER BY name")
    return [{"name": n, "role": r, "created_at": c, "disabled": bool(d)} for n, r, c, d in rows]


# -- API tokens ----------------------------------------------------------------------------


def insert_token(
    db: Database,
    token_id: str,
    user: str,
    secret_hash: str,
    label: str,
    now: float,
    expires_at: float | None,
) -> None:
    db.execute(
        "INSERT INTO tokens (id, user_name, hash, label, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (token_id, user, secret_hash, label, now, expires_at),
    )


def token_by_hash(db: Database, secret_hash: str) -> tuple[Any, ...] | None:
    """``(id, expires_at, revoked_at, last_used_at, user name, user role)`` of the token
    with this hash whose user is not disabled."""
    return db.query_one(
        "SELECT t.id, t.expires_at, t.revoked_at, t.last_used_at, u.name, u.role "
        "FROM tokens t JOIN users u ON u.name = t.user_name "
        "WHERE t.hash = ? AND u.disabled = 0",
        (secret_hash,),
    )


def touch_token(db: Database, token_id: str, now: float) -> None:
    db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))


def token_rows(db: Database, user: str) -> list[dict[str, Any]]:
    """A user's tokens (never their hashes), oldest first."""
    rows = db.query(
        "SELECT id, label, created_at, expires_at, revoked_at, last_used_at FROM tokens "
        "WHERE user_name = ? ORDER BY created_at",
        (user,),
    )
    keys = ("id", "label", "created_at", "expires_at", "revoked_at", "last_used_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def token_owner(db: Database, token_id: str) -> str | None:
    row = db.query_one("SELECT user_name FROM tokens WHERE id = ?", (token_id,))
    return row[0] if row else None


def revoke_token(db: Database, token_id: str, now: float) -> None:
    """Revoke a token and end the sessions opened with it."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, token_id),
        )
        cur.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,))


# -- UI sessions ---------------------------------------------------------------------------


def insert_session(
    db: Database,
    secret_hash: str,
    user: str,
    csrf: str,
    now: float,
    expires_at: float,
    token_id: str | None,
) -> None:
    """A new session (the expired ones are dropped on the way)."""
    db.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
    db.execute(
        "INSERT INTO sessions (hash, user_name, csrf, created_at, expires_at, token_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (secret_hash, user, csrf, now, expires_at, token_id),
    )


def session_by_hash(db: Database, secret_hash: str) -> tuple[Any, ...] | None:
    """``(user name, user role, csrf, expires_at, token id, token revoked_at, token
    expires_at)`` of the session with this hash whose user is not disabled."""
    return db.query_one(
        "SELECT u.name, u.role, s.csrf, s.expires_at, s.token_id, t.revoked_at, t.expires_at "
        "FROM sessions s JOIN users u ON u.name = s.user_name "
        "LEFT JOIN tokens t ON t.id = s.token_id WHERE s.hash = ? AND u.disabled = 0",
        (secret_hash,),
    )


def delete_session(db: Database, secret_hash: str) -> None:
    db.execute("DELETE FROM sessions WHERE hash = ?", (secret_hash,))


# -- projects and members ------------------------------------------------------------------


def insert_project(db: Database, name: str, now: float, by: str | None) -> bool:
    """Add a project; False (nothing written) when the name is taken."""
    with db.transaction() as cur:
        if cur.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone():
            return False
        cur.execute(
            "INSERT INTO projects (name, created_at, created_by) VALUES (?, ?, ?)",
            (name, now, by),
        )
    return True


def project_names(db: Database) -> list[str]:
    return [r[0] for r in db.query("SELECT name FROM projects ORDER BY name")]


def project_exists(db: Database, name: str) -> bool:
    return db.query_one("SELECT 1 FROM projects WHERE name = ?", (name,)) is not None


def delete_member(db: Database, project: str, user: str) -> None:
    db.execute("DELETE FROM members WHERE project = ? AND user_name = ?", (project, user))


def upsert_member(db: Database, project: str, user: str, role: str) -> None:
    db.execute(
        "INSERT INTO members (project, user_name, role) VALUES (?, ?, ?) "
        "ON CONFLICT (project, user_name) DO UPDATE SET role = excluded.role",
        (project, user, role),
    )


def member_rows(db: Database, project: str) -> list[dict[str, str]]:
    """``[{user, role}]`` of a project, by user name."""
    rows = db.query(
        "SELECT user_name, role FROM members WHERE project = ? ORDER BY user_name", (project,)
    )
    return [{"user": u, "role": r} for u, r in rows]


def member_role(db: Database, project: str, user: str) -> str | None:
    row = db.query_one(
        "SELECT role FROM members WHERE project = ? AND user_name = ?", (project, user)
    )
    return row[0] if row else None


def memberships(db: Database, user: str) -> list[dict[str, str]]:
    """``[{name, role}]``: the projects ``user`` is a member of, by name."""
    rows = db.query(
        "SELECT m.project, m.role FROM members m JOIN projects p ON p.name = m.project "
        "WHERE m.user_name = ? ORDER BY m.project",
        (user,),
    )
    return [{"name": p, "role": r} for p, r in rows]


# -- objects held per project --------------------------------------------------------------


def held_objects(db: Database, project: str, oids: list[str]) -> set[str]:
    """Which of ``oids`` project ``project`` holds (an object another project holds is
    not lent: a client proves it has the bytes by sending them, see docs/server.md)."""
    held: set[str] = set()
    for i in range(0, len(oids), _IDS_PER_QUERY):
        part = oids[i : i + _IDS_PER_QUERY]
        marks = ",".join("?" * len(part))
        held.update(
            r[0]
            for r in db.query(
                f"SELECT oid FROM project_objects WHERE project = ? AND oid IN ({marks})",
                (project, *part),
            )
        )
    return held


def hold_object(db: Database, project: str, oid: str, size: int | None) -> None:
    db.execute(
        "INSERT INTO project_objects (project, oid, size) VALUES (?, ?, ?) "
        "ON CONFLICT (project, oid) DO NOTHING",
        (project, oid, size),
    )


# -- notes ---------------------------------------------------------------------------------


def insert_note(db: Database, project: str, note: dict[str, Any]) -> None:
    """Store ``note`` (``{id, run, author, created_at, text}``) on a run of ``project``."""
    db.execute(
        "INSERT INTO notes (id, project, run_id, author, created_at, text) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (note["id"], project, note["run"], note["author"], note["created_at"], note["text"]),
    )


def note_rows(db: Database, project: str, run_id: str) -> list[dict[str, Any]]:
    """The notes on a run, oldest first: ``{id, run, author, created_at, text}``."""
    rows = db.query(
        "SELECT id, author, created_at, text FROM notes WHERE project = ? AND run_id = ? "
        "ORDER BY created_at",
        (project, run_id),
    )
    return [
        {"id": i, "run": run_id, "author": a, "created_at": c, "text": t} for i, a, c, t in rows
    ]
