"""The team server's accounts, as its control database holds them: users, API tokens,
UI sessions, projects and their members, the objects each project holds, notes, the
model registry's protected stages, and webhooks with their deliveries.
Only the reading and writing is here (one function per statement or transaction);
the rules (names, roles, secrets, what a caller may see) are ``runbase.server.control``'s.
Secrets never reach this module: tokens and sessions are looked up by their hash.
(A webhook's secret does: the server signs with it, so it is stored as given.)
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


# -- protected stages (the model registry) ---------------------------------------------------


def upsert_protected_stage(
    db: Database, project: str, stage: str, approvals: int, now: float, by: str | None
) -> None:
    """Protect a stage, or change how many approvals an already protected one needs."""
    db.execute(
        "INSERT INTO protected_stages (project, stage, approvals, created_at, created_by) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, stage) DO UPDATE SET "
        "approvals = excluded.approvals, created_at = excluded.created_at, "
        "created_by = excluded.created_by",
        (project, stage, approvals, now, by),
    )


def delete_protected_stage(db: Database, project: str, stage: str) -> bool:
    """Unprotect a stage; False when it was not protected."""
    with db.transaction() as cur:
        cur.execute(
            "DELETE FROM protected_stages WHERE project = ? AND stage = ?", (project, stage)
        )
        return bool(cur.rowcount)


def protected_stage_rows(db: Database, project: str) -> list[dict[str, Any]]:
    """``[{stage, approvals, created_at, created_by}]`` of a project, by stage."""
    rows = db.query(
        "SELECT stage, approvals, created_at, created_by FROM protected_stages "
        "WHERE project = ? ORDER BY stage",
        (project,),
    )
    keys = ("stage", "approvals", "created_at", "created_by")
    return [dict(zip(keys, r, strict=True)) for r in rows]


# -- webhooks and their deliveries -----------------------------------------------------------


def insert_hook(
    db: Database,
    hook_id: str,
    project: str,
    url: str,
    events: str,
    secret: str,
    now: float,
    by: str | None,
    cursor_seq: int | None,
) -> None:
    db.execute(
        "INSERT INTO hooks (id, project, url, events, secret, created_at, created_by, disabled, "
        "cursor_seq) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        (hook_id, project, url, events, secret, now, by, cursor_seq),
    )


def delete_hook(db: Database, hook_id: str, why: str) -> bool:
    """Delete a hook; its pending deliveries end failed with ``why`` (the others stay, as
    history). False when there is no such hook."""
    with db.transaction() as cur:
        cur.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))
        if not cur.rowcount:
            return False
        cur.execute(
            "UPDATE hook_deliveries SET state = 'failed', last_error = ? "
            "WHERE hook_id = ? AND state = 'pending'",
            (why, hook_id),
        )
    return True


def hook_rows(db: Database, project: str | None) -> list[dict[str, Any]]:
    """``[{id, project, url, events: [..], created_at, created_by, disabled}]`` (never
    the secret), of one project or all, by project and creation time."""
    sql = "SELECT id, project, url, events, created_at, created_by, disabled FROM hooks"
    params: tuple[Any, ...] = ()
    if project is not None:
        sql, params = sql + " WHERE project = ?", (project,)
    rows = db.query(sql + " ORDER BY project, created_at, id", params)
    return [
        {
            "id": i,
            "project": p,
            "url": u,
            "events": [e for e in str(ev).split(",") if e],
            "created_at": c,
            "created_by": by,
            "disabled": bool(d),
        }
        for i, p, u, ev, c, by, d in rows
    ]


def hook_cursors(db: Database) -> list[tuple[str, str, str, int | None, float]]:
    """``(id, project, events comma list, cursor_seq, created_at)`` of every hook that
    is not disabled, by project and creation time: where each one's outbox stands."""
    rows = db.query(
        "SELECT id, project, events, cursor_seq, created_at FROM hooks WHERE disabled = 0 "
        "ORDER BY project, created_at, id"
    )
    return [(r[0], r[1], r[2], None if r[3] is None else int(r[3]), float(r[4])) for r in rows]


def start_cursor(db: Database, hook_id: str, seq: int) -> bool:
    """Set the cursor of a hook that has none yet; False when another process did."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE hooks SET cursor_seq = ? WHERE id = ? AND cursor_seq IS NULL", (seq, hook_id)
        )
        return cur.rowcount == 1


def queue_deliveries(
    db: Database, hook_id: str, cursor: int, new_cursor: int, rows: list[tuple[Any, ...]]
) -> bool:
    """In one transaction: move hook ``hook_id``'s cursor from ``cursor`` to
    ``new_cursor`` and insert ``rows``, its pending deliveries of the events between
    (``(id, hook_id, project, event_id, body, next_at)`` each). The UPDATE is guarded
    on the old cursor: of two processes queuing the same events, one moves it and the
    other gets False and writes nothing; the key (hook_id, event_id) refuses a second
    delivery of one event to one hook whatever happens to the cursor."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE hooks SET cursor_seq = ? WHERE id = ? AND cursor_seq = ? AND disabled = 0",
            (new_cursor, hook_id, cursor),
        )
        if cur.rowcount != 1:
            return False
        if not rows:
            return True
        cur.executemany(
            "INSERT INTO hook_deliveries (id, hook_id, project, event_id, body, attempts, "
            "next_at, state) VALUES (?, ?, ?, ?, ?, 0, ?, 'pending') "
            "ON CONFLICT (hook_id, event_id) DO NOTHING",
            rows,
        )
    return True


_DELIVERY_KEYS = (
    "id", "hook", "project", "event", "attempts", "next_at", "state", "last_status",
    "last_error", "delivered_at", "body",
)  # fmt: skip


def delivery_rows(
    db: Database, project: str | None, hook_id: str | None, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` deliveries (ids sort by creation time), filtered: ``{id,
    hook, project, event, attempts, next_at, state, last_status, last_error,
    delivered_at, body}``."""
    where, params = [], []
    for column, value in (("project", project), ("hook_id", hook_id), ("state", state)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT id, hook_id, project, event_id, attempts, next_at, state, last_status, "
        "last_error, delivered_at, body FROM hook_deliveries"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.query(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [dict(zip(_DELIVERY_KEYS, r, strict=True)) for r in rows]


def due_deliveries(db: Database, now: float, limit: int) -> list[str]:
    """Ids of pending deliveries due at ``now``, the earliest first."""
    rows = db.query(
        "SELECT id FROM hook_deliveries WHERE state = 'pending' AND next_at <= ? "
        "ORDER BY next_at, id LIMIT ?",
        (now, limit),
    )
    return [r[0] for r in rows]


def next_due(db: Database) -> float | None:
    """When the earliest pending delivery is due (None: none is pending)."""
    row = db.query_one("SELECT MIN(next_at) FROM hook_deliveries WHERE state = 'pending'")
    return float(row[0]) if row and row[0] is not None else None


def claim_delivery(
    db: Database, delivery_id: str, now: float, lease_until: float
) -> tuple[Any, ...] | None:
    """Take a due delivery for one attempt: counted, and not due again before
    ``lease_until`` (so if this process dies mid-attempt another retries it then).
    The UPDATE is guarded on the state and the due time: of two processes claiming
    one delivery, one changes the row and the other none, so it is sent once.
    ``(attempts, body, hook url, hook secret)``, or None when another process has it,
    or (then it is marked failed) when its hook is gone or disabled."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE hook_deliveries SET attempts = attempts + 1, next_at = ? "
            "WHERE id = ? AND state = 'pending' AND next_at <= ?",
            (lease_until, delivery_id, now),
        )
        if cur.rowcount != 1:
            return None
        row = cur.execute(
            "SELECT d.attempts, d.body, h.url, h.secret FROM hook_deliveries d "
            "LEFT JOIN hooks h ON h.id = d.hook_id AND h.disabled = 0 WHERE d.id = ?",
            (delivery_id,),
        ).fetchone()
        if row is None or row[2] is None:
            cur.execute(
                "UPDATE hook_deliveries SET state = 'failed', "
                "last_error = 'the hook was removed or disabled' WHERE id = ?",
                (delivery_id,),
            )
            return None
        return tuple(row)


def finish_attempt(
    db: Database,
    delivery_id: str,
    state: str,
    next_at: float,
    status: int | None,
    error: str | None,
    delivered_at: float | None,
) -> None:
    """Record an attempt's outcome: delivered, pending again at ``next_at``, or failed."""
    db.execute(
        "UPDATE hook_deliveries SET state = ?, next_at = ?, last_status = ?, last_error = ?, "
        "delivered_at = ? WHERE id = ? AND state = 'pending'",
        (state, next_at, status, error, delivered_at, delivery_id),
    )
