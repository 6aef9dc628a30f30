"""What this store still owes a remote, kept in the ``meta`` table.

- the pending-publish queue: runs whose live publishing did not complete, with the
  remote they were meant for (``runbase push`` sends them later);
- the fingerprint of what was last pushed of a run to a remote, so an unchanged run
  is not sent again.

Below both remote.publish (which marks and clears) and remote.sync (which pushes and
reads the queue): neither imports the other for it.
"""

from __future__ import annotations

from runbase.store import Store

PENDING_PREFIX = "publish-pending:"

_UPSERT = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def mark_pending(store: Store, remote_name: str, run_id: str) -> None:
    store.db.execute(_UPSERT, (PENDING_PREFIX + run_id, remote_name))


def clear_pending(store: Store, run_id: str, remote_name: str | None = None) -> None:
    """The run is on the server: no longer pending (only for ``remote_name`` if given:
    a push to another remote does not publish it where it was meant to go)."""
    if remote_name is None:
        store.db.execute("DELETE FROM meta WHERE key = ?", (PENDING_PREFIX + run_id,))
    else:
        store.db.execute(
            "DELETE FROM meta WHERE key = ? AND value = ?", (PENDING_PREFIX + run_id, remote_name)
        )


def pending(store: Store) -> list[tuple[str, str]]:
    """``(run id, remote name)`` of runs whose publishing did not complete."""
    rows = store.db.query("SELECT key, value FROM meta WHERE key LIKE ?", (PENDING_PREFIX + "%",))
    return [(k[len(PENDING_PREFIX) :], v) for k, v in rows]


def pushed_digest(store: Store, key: str) -> str | None:
    """The digest of what was last pushed under ``key`` (a remote and a run), if any."""
    row = store.db.query_one("SELECT value FROM meta WHERE key = ?", (key,))
    return row[0] if row else None


def mark_pushed(store: Store, key: str, digest: str) -> None:
    store.db.execute(_UPSERT, (key, digest))
