"""The notebook a run came from and the cells it executed."""

from __future__ import annotations

from typing import Any

from runbase.capture.params import jsonable
from runbase.records.notebook import load_cells, notebook_section
from runbase.records.read import resolve
from runbase.store import Store

MAX_CELLS = 10_000  # cells of one run in one answer (the newest are cut)


def notebook(store: Store, ref: str) -> dict[str, Any]:
    """The notebook a run came from and the cells it executed, in order:
    ``{run, notebook, cells, truncated}``; ``notebook`` is the run record's section
    (null for a run that was not in IPython/Jupyter) and each cell is as in
    docs/run-record.md (``index, execution_count, cell_id, source, started_at,
    duration_s, success, error``)."""
    run_id = resolve(store, ref)
    cells = load_cells(store, run_id)
    return jsonable(
        {
            "run": run_id,
            "notebook": notebook_section(store, run_id),
            "cells": cells[:MAX_CELLS],
            "truncated": len(cells) > MAX_CELLS,
        }
    )
