"""The data lineage around one run, both ways, as the web UI draws it: its inputs, the
runs that wrote those exact bytes, their inputs ...; its outputs, the runs that read
them, their outputs ... (:mod:`runbase.records.lineage` traces one file upstream).
"""

from __future__ import annotations

from typing import Any

from runbase.capture.params import jsonable
from runbase.records.read import load_row
from runbase.records.record import iso
from runbase.store import Store

LINEAGE_FANOUT = 25  # producers / consumers shown per file
LINEAGE_MAX_NODES = 500


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


def _run_files(store: Store, run_id: str, role: str) -> list[tuple[Any, ...]]:
    return store.db.query(
        "SELECT path, oid, size, url, kind FROM run_files WHERE run_id = ? AND role = ? "
        "ORDER BY path",
        (run_id, role),
    )


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
