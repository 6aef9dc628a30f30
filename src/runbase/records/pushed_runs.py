"""What the team server reads of a run that a push or a live update would replace:
who owns it and whether it still runs, and the columns that point at objects."""

from __future__ import annotations

from typing import Any

from runbase.store import Store

# the runs columns whose values name objects (a changed one: re-check what is held)
REF_COLUMNS = ("code_json", "packages_id", "logs_json", "notebook_json")


def owner_and_status(store: Store, run_id: str) -> tuple[str, str] | None:
    """``(user_name, status)`` of the run, None when the store has no such run."""
    row = store.db.query_one("SELECT user_name, status FROM runs WHERE id = ?", (run_id,))
    return None if row is None else (row[0], row[1])


def reference_columns(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's :data:`REF_COLUMNS` as stored, None when the store has no such run."""
    cols = ", ".join(REF_COLUMNS)
    row = store.db.query_one(f"SELECT {cols} FROM runs WHERE id = ?", (run_id,))
    return None if row is None else dict(zip(REF_COLUMNS, row, strict=True))
