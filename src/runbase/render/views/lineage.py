"""The data lineage around a run, as a graph (the walk: :mod:`runbase.records.lineage`)."""

from __future__ import annotations

from typing import Any

from runbase.errors import UsageError
from runbase.records.lineage import run_lineage
from runbase.records.read import resolve
from runbase.store import Store

MAX_LINEAGE_DEPTH = 10


def lineage(store: Store, ref: str, depth: int = 3) -> dict[str, Any]:
    """The data lineage around a run, as a graph: ``{root, depth, truncated, nodes,
    edges}``. Nodes are runs (``{id: "run:ID", kind: "run", label, run, name, status,
    started_at}``) and files (``{id: "file:HASH", kind: "file", label, path, paths,
    hash, size, url?, directory?}``: one node per content, whatever its paths). An edge
    ``{from, to, kind}`` is ``input`` (file -> run that read it) or ``output`` (run ->
    file it wrote). Upstream: the run's inputs, the runs that wrote those exact bytes,
    their inputs, ...; downstream: its outputs, the runs that read them, their
    outputs, ...; up to ``depth`` runs away (at most 25 runs per file, 500 nodes)."""
    if not 0 <= depth <= MAX_LINEAGE_DEPTH:
        raise UsageError(f"depth must be between 0 and {MAX_LINEAGE_DEPTH}")
    return run_lineage(store, resolve(store, ref), depth)
