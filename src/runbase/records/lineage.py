"""Provenance: which run produced these bytes, from which inputs, recursively.

Files are matched by content (object id), not by name. Two walks: ``trace`` follows one
file's exact bytes upstream, through the run that wrote them and that run's inputs
(``runbase trace``); ``run_lineage`` draws the graph around one run both ways, its
inputs' producers and its outputs' consumers, with a fan-out limit (the web UI).
"""

from __future__ import annotations

import os
from typing import Any

from runbase.capture.files import snapshot_path
from runbase.capture.params import jsonable
from runbase.core.modelref import parse_ref
from runbase.errors import UsageError
from runbase.records.modelrefs import ref_target
from runbase.records.read import load_row
from runbase.records.record import iso
from runbase.store import Store

LINEAGE_FANOUT = 25  # producers / consumers shown per file (run_lineage)
LINEAGE_MAX_NODES = 500


def producers(store: Store, oid: str) -> list[dict[str, Any]]:
    """Runs that wrote an output with these exact bytes, newest first."""
    rows = store.db.query(
        "SELECT r.id, r.name, r.status, r.started_at, f.path FROM run_files f JOIN runs r ON r.id = f.run_id "
        "WHERE f.oid = ? AND f.role = 'output' ORDER BY r.started_at DESC",
        (oid,),
    )
    return [
        {"run": r[0], "name": r[1], "status": r[2], "started_at": r[3], "path": r[4]} for r in rows
    ]


def consumers(store: Store, oid: str) -> list[dict[str, Any]]:
    """Runs that read these exact bytes."""
    rows = store.db.query(
        "SELECT r.id, r.name, r.status, f.path FROM run_files f JOIN runs r ON r.id = f.run_id "
        "WHERE f.oid = ? AND f.role = 'input' ORDER BY r.started_at",
        (oid,),
    )
    return [{"run": r[0], "name": r[1], "status": r[2], "path": r[3]} for r in rows]


def makers(store: Store, oid: str) -> list[dict[str, Any]]:
    """The runs that made these bytes, newest first (``producers`` less copies): a run
    that read these bytes and wrote them elsewhere did not produce them, and following
    it would make it its own producer and consumer (a loop)."""
    return [p for p in producers(store, oid) if not _read_by(store, p["run"], oid)]


def registered_as(store: Store, oid: str) -> list[tuple[str, str]]:
    """``(model, version)`` of each registered model version that is exactly these bytes
    (``runbase trace`` says which versions a file is), by model, highest version first."""
    rows = store.db.query(
        "SELECT name, version FROM model_versions WHERE oid = ? "
        "ORDER BY name, major DESC, minor DESC, patch DESC",
        (oid,),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def _read_by(store: Store, run_id: str, oid: str) -> bool:
    return (
        store.db.query_one(
            "SELECT 1 FROM run_files WHERE run_id = ? AND role = 'input' AND oid = ?",
            (run_id, oid),
        )
        is not None
    )


def _run_files(store: Store, run_id: str, role: str) -> list[tuple[Any, ...]]:
    """``(path, oid, size, url, kind)`` of each file the run read (``input``) or wrote."""
    return store.db.query(
        "SELECT path, oid, size, url, kind FROM run_files WHERE run_id = ? AND role = ? "
        "ORDER BY path",
        (run_id, role),
    )


def _inputs(store: Store, run_id: str) -> list[tuple[str, str | None, str | None]]:
    return [(r[0], r[1], r[3]) for r in _run_files(store, run_id, "input")]


_HEX = frozenset("0123456789abcdef")
_FULL_HEX = 64  # a blake3 object id: "blake3:" + 64 hex digits


def oid_of(store: Store, target: str) -> tuple[str, str]:
    """``(object id, label)`` of a path (hashed now), a model reference (``churn@v1.2.0``)
    or an object id, whole or any unique prefix (with or without ``blake3:``), as
    ``trace`` and ``diff`` print them."""
    if not os.path.exists(target):
        model = ref_target(store, target) if "@" in target else None
        if model is not None:  # churn@production: that version's bytes
            return model.oid, str(model)
        oid = _oid_by_prefix(store, target)
        return oid, oid
    snap = snapshot_path(store, target, policy="hash-only")
    assert snap is not None
    return snap[0], target


def _oid_by_prefix(store: Store, target: str) -> str:
    """The object id a hash prefix names among the files runs read or wrote."""
    hexpart = target.lower().removeprefix("blake3:")
    ref = parse_ref(target)
    if ref is not None:  # shaped like churn@production, but no model has that name
        raise UsageError(
            f"no such file: {target}, and no model is named {ref.name!r} (see `runbase model ls`)"
        )
    if not hexpart or not set(hexpart) <= _HEX or len(hexpart) > _FULL_HEX:
        raise UsageError(f"no such file: {target} (nor a blake3:… hash or prefix of one)")
    if len(hexpart) == _FULL_HEX:
        return f"blake3:{hexpart}"  # a whole id: its history may be empty, and trace says so
    # a range, not LIKE, so the run_files_oid index answers it ("g" sorts after every hex digit)
    low = f"blake3:{hexpart}"
    found = [
        r[0]
        for r in store.db.query(
            "SELECT DISTINCT oid FROM run_files WHERE oid >= ? AND oid < ? ORDER BY oid LIMIT 11",
            (low, low + "g"),
        )
    ]
    if not found:
        raise UsageError(
            f"no such file: {target}, and no file any run read or wrote has a hash starting so"
        )
    if len(found) > 1:
        shown = ", ".join(f[: len("blake3:") + len(hexpart) + 4] for f in found[:10])
        more = " and more" if len(found) > 10 else ""
        raise UsageError(f"hash prefix {target} matches several files: {shown}{more}")
    return str(found[0])


def trace(store: Store, target: str, max_depth: int = 50) -> dict[str, Any]:
    """The lineage graph of a file: ``{"root", "nodes", "edges"}``.

    Nodes are ``{"id", "type": "file"|"run", ...}``; an edge ``{"from", "to", "kind"}``
    is ``produced`` (run -> file) or ``read`` (file -> run).
    """
    # a model reference starts at its version's own run: other runs that wrote the same
    # bytes are listed beside it (also_produced_by), as for any file
    model = None if os.path.exists(target) or "@" not in target else ref_target(store, target)
    oid, label = (model.oid, str(model)) if model is not None else oid_of(store, target)
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    file_id = f"file:{oid}"
    nodes[file_id] = {"id": file_id, "type": "file", "hash": oid, "path": label}
    first = model.run_id if model is not None else None
    _walk_file(store, oid, file_id, nodes, edges, 0, max_depth, first)
    return {"root": file_id, "nodes": list(nodes.values()), "edges": edges}


def _walk_file(
    store: Store,
    oid: str,
    file_id: str,
    nodes: dict[str, Any],
    edges: list[dict[str, str]],
    depth: int,
    max_depth: int,
    first: str | None = None,
) -> None:
    if depth >= max_depth:
        return
    made_by = makers(store, oid)
    if not made_by:
        return
    if first is not None:  # the run a model version names, ahead of the newest producer
        made_by.sort(key=lambda p: p["run"] != first)
    p = made_by[0]  # the earliest bytes-identical producer is a duplicate; the newest made it last
    run_id = f"run:{p['run']}"
    edges.append({"from": run_id, "to": file_id, "kind": "produced"})
    if run_id in nodes:
        return
    nodes[run_id] = {
        "id": run_id,
        "type": "run",
        "run": p["run"],
        "name": p["name"],
        "status": p["status"],
        "also_produced_by": [q["run"] for q in made_by[1:]],
    }
    for path, in_oid, url in _inputs(store, p["run"]):
        key = in_oid or url or path
        in_id = f"file:{key}"
        if in_id not in nodes:
            nodes[in_id] = {"id": in_id, "type": "file", "hash": in_oid, "path": path}
            if url:
                nodes[in_id]["url"] = url
        edges.append({"from": in_id, "to": run_id, "kind": "read"})
        if in_oid:
            _walk_file(store, in_oid, in_id, nodes, edges, depth + 1, max_depth)


def render_tree(graph: dict[str, Any]) -> str:
    """``model.pkl <- run train (…) <- clean.csv <- run prep <- raw.csv`` as an indented tree."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    made = {e["to"]: e["from"] for e in graph["edges"] if e["kind"] == "produced"}
    reads: dict[str, list[str]] = {}
    for e in graph["edges"]:
        if e["kind"] == "read":
            reads.setdefault(e["to"], []).append(e["from"])
    lines: list[str] = []
    shown: set[str] = set()

    def file_line(fid: str, indent: str) -> None:
        n = nodes[fid]
        h = (n.get("hash") or "")[:19]
        lines.append(f"{indent}{n.get('url') or n['path']}  {h}")
        run = made.get(fid)
        if run is None:
            lines.append(f"{indent}  (no recorded run produced these bytes)")
            return
        r = nodes[run]
        lines.append(f"{indent}  <- run {r['run'][:10]} {r['name']} [{r['status']}]")
        for other in r.get("also_produced_by") or []:  # the same bytes, written again
            lines.append(f"{indent}     also produced by run {other[:10]}")
        if run in shown:
            lines.append(f"{indent}      (shown above)")
            return
        shown.add(run)
        for inp in reads.get(run, []):
            file_line(inp, indent + "      ")

    file_line(graph["root"], "")
    return "\n".join(lines)


# -- the graph around one run, both ways (the web UI) ----------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str, str], dict[str, str]] = {}
        self.truncated = False

    def full(self) -> bool:
        if len(self.nodes) >= LINEAGE_MAX_NODES:
            self.truncated = True
        return self.truncated

    def run(self, rid: str, name: str, status: str, started_at: float | None) -> str:
        nid = f"run:{rid}"
        if nid not in self.nodes:
            self.nodes[nid] = {
                "id": nid,
                "kind": "run",
                "label": name,
                "run": rid,
                "name": name,
                "status": status,
                "started_at": iso(started_at),
            }
        return nid

    def file(self, run_id: str, path: str, oid: str | None, size: Any, url: Any, kind: Any) -> str:
        key = oid or (f"url:{url}" if url else f"path:{run_id}:{path}")
        nid = f"file:{key}"
        node = self.nodes.get(nid)
        if node is None:
            node = self.nodes[nid] = {
                "id": nid,
                "kind": "file",
                "label": path.rstrip("/").rsplit("/", 1)[-1] or path,
                "path": path,
                "paths": [path],
                "hash": oid,
                "size": size,
            }
            if url:
                node["url"] = url
            if kind == "dir":
                node["directory"] = True
        elif path not in node["paths"]:
            node["paths"].append(path)
        return nid

    def edge(self, src: str, dst: str, kind: str) -> None:
        self.edges.setdefault((src, dst, kind), {"from": src, "to": dst, "kind": kind})


def _runs_with_file(store: Store, oid: str, role: str, other_than: str) -> list[tuple[Any, ...]]:
    order = "DESC" if role == "output" else "ASC"  # newest producers, earliest consumers
    return store.db.query(
        "SELECT DISTINCT r.id, r.name, r.status, r.started_at FROM run_files f "
        "JOIN runs r ON r.id = f.run_id WHERE f.oid = ? AND f.role = ? AND r.id <> ? "
        f"ORDER BY r.started_at {order} LIMIT ?",
        (oid, role, other_than, LINEAGE_FANOUT + 1),
    )


def run_lineage(store: Store, run_id: str, depth: int) -> dict[str, Any]:
    """``{root, depth, truncated, nodes, edges}`` around run ``run_id`` (an id), up to
    ``depth`` runs away; see :func:`runbase.render.views.lineage` for the shape."""
    r = load_row(store, run_id)
    g = _Graph()
    root = g.run(run_id, r["name"], r["status"], r["started_at"])
    g.nodes[root]["root"] = True
    for role in ("input", "output"):
        other = "output" if role == "input" else "input"
        queue, seen = [(run_id, 0)], {run_id}
        while queue and not g.truncated:
            rid, hops = queue.pop(0)
            rnode = f"run:{rid}"
            for path, oid, size, url, kind in _run_files(store, rid, role):
                if g.full():
                    break
                fnode = g.file(rid, path, oid, size, url, kind)
                g.edge(*((fnode, rnode) if role == "input" else (rnode, fnode)), role)
                if hops >= depth or not oid:
                    continue
                linked = _runs_with_file(store, oid, other, rid)
                if len(linked) > LINEAGE_FANOUT:
                    key = "more_producers" if role == "input" else "more_consumers"
                    g.nodes[fnode][key] = True
                for lid, name, status, started in linked[:LINEAGE_FANOUT]:
                    if g.full():
                        break
                    lnode = g.run(lid, name, status, started)
                    g.edge(*((lnode, fnode) if role == "input" else (fnode, lnode)), other)
                    if lid not in seen:
                        seen.add(lid)
                        queue.append((lid, hops + 1))
    return jsonable(
        {
            "root": root,
            "depth": depth,
            "truncated": g.truncated,
            "nodes": list(g.nodes.values()),
            "edges": list(g.edges.values()),
        }
    )
