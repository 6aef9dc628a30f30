"""The job runs of a process's run (runbase.tracking.jobs): one run per configuration.

A job run shares its process's code, environment and data policy, so they are copied
from the parent's row rather than captured again in the training process.
"""

from __future__ import annotations

from typing import Any

from runbase.store import Store

# what a job run takes from its process's run, besides its command, name and tags
_SHARED = ("code_commit", "code_json", "env_json", "packages_id", "data_policy")
_PARENT = ("name", "command", "project_root", *_SHARED, "cwd")


def parent_row(store: Store, parent_id: str) -> dict[str, Any] | None:
    """What a job run of ``parent_id`` is created from (its name, command, project
    root, cwd, and the columns it shares); None when the run is not in the store."""
    row = store.db.query_one(f"SELECT {', '.join(_PARENT)} FROM runs WHERE id = ?", (parent_id,))
    return dict(zip(_PARENT, row, strict=True)) if row is not None else None


def share_parent_setup(store: Store, job_id: str, parent: dict[str, Any]) -> None:
    """Give the job run its process's code, environment and data policy."""
    store.db.execute(
        f"UPDATE runs SET {', '.join(f'{c} = ?' for c in _SHARED)} WHERE id = ?",
        (*(parent[c] for c in _SHARED), job_id),
    )


def drop_argv_params(store: Store, run_id: str) -> None:
    """Forget the params guessed from the command line (a launcher's, not the program's)."""
    store.db.execute("DELETE FROM params WHERE run_id = ? AND source = 'argv'", (run_id,))


def inherit_parent_env(store: Store, run_id: str) -> None:
    """The process's environment, if its run has it by now (else the run shares it when
    it ends): no package scan in the training process."""
    store.db.execute(
        "UPDATE runs SET env_json = (SELECT p.env_json FROM runs p WHERE p.id = "
        "runs.parent_id), packages_id = (SELECT p.packages_id FROM runs p WHERE "
        "p.id = runs.parent_id) WHERE id = ? AND packages_id IS NULL AND EXISTS ("
        "SELECT 1 FROM runs p WHERE p.id = runs.parent_id AND p.packages_id IS NOT NULL)",
        (run_id,),
    )


def job_ids(store: Store, run_id: str, running_only: bool = False) -> list[str]:
    """The job runs of ``run_id`` (only those not ended yet, with ``running_only``)."""
    sql = "SELECT id FROM runs WHERE parent_id = ? AND mode = 'job'"
    if running_only:
        sql += " AND status = 'running'"
    return [str(row[0]) for row in store.db.query(sql, (run_id,))]
