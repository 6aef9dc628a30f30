"""Notebook storage: the notebook file a run came from, and the cells that actually ran.

The run record's ``notebook`` section (docs/run-record.md): the notebook file's bytes
stored as an object, with its path and how it was found; the cells executed while
the run was active, appended to ``spool/<run>/cells.jsonl`` by the kernel as they run
(runbase.tracking.cells: a kernel that dies keeps them) and stored as one object (a
JSON list) when the run is finalized. The IPython side (finding the notebook,
recording cells, ``%load_ext runbase``) is in runbase.tracking.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from runbase.core._safe import warn_once
from runbase.core.runfiles import CELLS_FILE
from runbase.core.shapes import NOTEBOOK, load_column, loads
from runbase.records.read import project_root_of

if TYPE_CHECKING:
    from runbase.store import Store

NOTEBOOK_MAX_BYTES = 100 << 20  # a larger notebook is recorded by path and size only
NOTEBOOK_KEYS = ("path", "source", "oid", "size", "cells_oid", "cells_count")


# -- the store side ------------------------------------------------------------------


def load_notebook(store: Store, run_id: str) -> dict[str, Any] | None:
    row = store.db.query_one("SELECT notebook_json FROM runs WHERE id = ?", (run_id,))
    nb = load_column(row[0] if row else None, NOTEBOOK)  # null when malformed
    return {k: nb.get(k) for k in NOTEBOOK_KEYS} if isinstance(nb, dict) else None


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(NOTEBOOK_KEYS), "cells_count": 0}


def record_notebook_file(store: Store, run_id: str, path: str, source: str) -> None:
    """Store the notebook file's bytes and reference them from the run."""
    try:
        size = os.path.getsize(path)
        oid: str | None = None
        if size <= NOTEBOOK_MAX_BYTES:
            oid, size = store.objects.put_file(path, size=size)
    except OSError as e:
        warn_once("notebook", f"could not store the notebook {path}: {e}")
        return
    root = os.path.realpath(project_root_of(store, run_id))
    rel = os.path.relpath(os.path.realpath(path), root)
    nb = load_notebook(store, run_id) or _empty()
    nb.update(path=path if rel.startswith("..") else rel, source=source, oid=oid, size=size)
    store.db.execute("UPDATE runs SET notebook_json = ? WHERE id = ?", (json.dumps(nb), run_id))


def read_cell_lines(path: Any) -> list[dict[str, Any]]:
    """The cells of a spooled ``cells.jsonl``, in order, each in its last state."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    by_index: dict[int, dict[str, Any]] = {}
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(e, dict) and isinstance(e.get("index"), int):
            by_index[e["index"]] = e  # the cell's last state
    return [by_index[i] for i in sorted(by_index)]


def spooled_cells(store: Store, run_id: str) -> list[dict[str, Any]]:
    return read_cell_lines(store.spool_dir(run_id) / CELLS_FILE)


def notebook_with_cells(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's notebook section with its spooled cells stored as one object (at
    finalization); None when there is nothing to record."""
    nb = load_notebook(store, run_id)
    cells = spooled_cells(store, run_id)
    if not cells:
        return nb
    nb = nb or _empty()
    body = json.dumps(cells, ensure_ascii=False, separators=(",", ":")).encode()
    nb["cells_oid"] = store.objects.put_bytes(body)
    nb["cells_count"] = len(cells)
    return nb


def notebook_section(store: Store, run_id: str) -> dict[str, Any] | None:
    """The ``notebook`` key of the run record (cells counted from the spool while live)."""
    nb = load_notebook(store, run_id)
    if nb is None or not nb.get("cells_oid"):
        live = spooled_cells(store, run_id)
        if live:
            nb = nb or _empty()
            nb["cells_count"] = len(live)
    return nb


def load_cells(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The cells the run executed, in order (docs/run-record.md); [] for a run that
    did not run in IPython."""
    nb = load_notebook(store, run_id)
    if nb and nb.get("cells_oid"):
        try:
            cells = loads(store.objects.get_bytes(nb["cells_oid"]))
        except ValueError:
            return []
        return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []
    return spooled_cells(store, run_id)
