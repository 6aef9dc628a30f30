"""A job's code tree and inputs moved by hash through a team server, for a Ray worker
that does not see the driver's store (docs/ray.md, "Where a worker gets the code"),
and a running run's points read back from the server (the pruner of such a sweep).

    send_tree(driver_store, remote, code, inputs)   # driver: what the server lacks
    fetch_tree(node_store, remote, code, inputs)    # worker: what the node lacks
    series_after(remote, run_id, "loss", after=4)   # a live run's points on the server

A tree is the code record a run would record (its ``tree`` manifest and ``patch``) and
the declared inputs (``[{"path", "oid", "kind": "file"|"dir"}]``, a dir a manifest of
blobs). Every object fetched is re-hashed as it arrives (:func:`remote.sync.fetch_objects`):
a manifest is read only once its bytes are verified, so a server cannot make a worker
write a file it did not hash.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from typing import Any

from runbase.capture.manifest import load_manifest
from runbase.core.executorinfo import retry_chain, retry_of
from runbase.errors import RemoteError
from runbase.remote.client import Client, Remote
from runbase.remote.sync import fetch_objects, send_objects
from runbase.store import Store

SERIES_POINTS = 10_000  # the most the series route returns unmerged (web.views.MAX_POINTS)


def _roots(
    code: dict[str, Any] | None, inputs: list[dict[str, str]]
) -> tuple[list[str], list[str]]:
    """The tree's manifests (the code tree, input dirs) and its single objects (the
    code patch, input files)."""
    manifests: list[str] = []
    singles: list[str] = []
    if code:
        if isinstance(code.get("tree"), str):
            manifests.append(code["tree"])
        if isinstance(code.get("patch"), str):
            singles.append(code["patch"])
    for item in inputs:
        (manifests if item["kind"] == "dir" else singles).append(item["oid"])
    return manifests, singles


def _blobs(store: Store, manifests: list[str]) -> list[str]:
    """The objects the ``manifests`` (in ``store``) name."""
    return [e["oid"] for m in manifests for e in load_manifest(store, m) if e.get("type") != "link"]


def tree_objects(
    store: Store, code: dict[str, Any] | None, inputs: list[dict[str, str]]
) -> list[str]:
    """Every object of a job's tree, read from ``store`` (which holds them all)."""
    manifests, singles = _roots(code, inputs)
    return list(dict.fromkeys([*manifests, *singles, *_blobs(store, manifests)]))


def send_tree(
    store: Store,
    remote: Remote,
    code: dict[str, Any] | None,
    inputs: list[dict[str, str]],
    jobs: int = 8,
) -> int:
    """Upload the objects of a job's tree that ``remote``'s project lacks (it is asked
    first: a second send of the same tree is one request); how many were sent."""
    client = Client(remote.url, remote.token, retry_for=30.0)
    return send_objects(store, client, remote, tree_objects(store, code, inputs), jobs)


def fetch_tree(
    store: Store,
    remote: Remote,
    code: dict[str, Any] | None,
    inputs: list[dict[str, str]],
    jobs: int = 8,
) -> int:
    """Download the objects of a job's tree that ``store`` lacks from ``remote``: the
    manifests and single objects first, each verified, then the blobs those manifests
    name. How many were fetched; RunbaseError/RemoteError when one cannot be (a
    corrupted copy on the server stores nothing)."""
    client = Client(remote.url, remote.token, retry_for=30.0)
    manifests, singles = _roots(code, inputs)
    first = _absent(store, [*manifests, *singles])
    n, _ = fetch_objects(store, client, remote, first, jobs, "of a job's code tree or inputs")
    blobs = _absent(store, _blobs(store, manifests))  # read only now: verified above
    m, _ = fetch_objects(store, client, remote, blobs, jobs, "of a job's code tree or inputs")
    return n + m


def _absent(store: Store, oids: list[str]) -> list[str]:
    return [o for o in dict.fromkeys(oids) if not store.objects.exists(o)]


def series_after(
    remote: Remote, run_id: str, key: str, after: int | None = None
) -> tuple[list[int], list[float]]:
    """The steps and values of metric ``key`` of run ``run_id`` on ``remote`` whose step
    is greater than ``after`` (all: None), as :func:`records.series.series_points` reads
    them locally; empty while the server has no such run or metric yet. NaN and
    infinities (sent as null) come back NaN. More than :data:`SERIES_POINTS` new points
    at once come back merged into that many buckets (each its first step and mean)."""
    client = Client(remote.url, remote.token, retry_for=0.0, timeout=10.0)
    path = (
        f"{remote.api}/runs/{urllib.parse.quote(run_id, safe='')}"
        f"/series/{urllib.parse.quote(key, safe='/')}"
    )
    try:
        doc = client.get_json(path, {"points": SERIES_POINTS, "since_step": after})
    except RemoteError as e:
        if e.status == 404:  # not published yet, or nothing logged of it yet...
            _project_exists(client, remote)  # ...unless the project itself is not there
            return [], []
        raise
    steps = doc.get("steps") if isinstance(doc, dict) else None
    values = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(steps, list) or not isinstance(values, list) or len(steps) != len(values):
        raise RemoteError(f"GET {path}: {remote.url} answered no series (steps, values)")
    if not all(_is_step(s) for s in steps):
        raise RemoteError(f"GET {path}: {remote.url} answered steps that are not integers")
    return [int(s) for s in steps], [_number(v) for v in values]


def _project_exists(client: Client, remote: Remote) -> None:
    """RemoteError naming the route when ``remote``'s project does not answer (a wrong
    project or server): a 404 of a run's series then is no "no points yet"."""
    path = f"{remote.api}/runs"
    try:
        client.get_json(path, {"limit": 1})
    except RemoteError as e:
        raise RemoteError(
            f"GET {path}: {remote.url} has no project {remote.project!r} to read points from ({e})",
            e.status,
            e.body,
        ) from None


def _is_step(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and float(value).is_integer()


def remote_attempts(remote: Remote, first: str) -> list[str]:
    """Run ``first`` on ``remote`` and the retries that followed it (each's
    ``executor.retry_of`` the one before; a retry keeps its run's name and sweep), as
    the team server holds them: what a Ray retry on a node without the driver's store
    reads of the attempts its lost node published live. Empty when ``first`` is not
    there."""
    client = Client(remote.url, remote.token, retry_for=10.0, timeout=10.0)
    rec = _run_record(client, remote, first)
    if rec is None:
        return []
    params: dict[str, Any] = {"limit": 1000, "hybrids": "true", "sweep": rec.get("sweep_id")}
    if isinstance(rec.get("name"), str):
        params["where"] = f"name == {json.dumps(rec['name'])}"
    path = f"{remote.api}/runs"
    page = client.get_json(path, params)
    rows = page.get("runs") if isinstance(page, dict) else None
    if not isinstance(rows, list):
        raise RemoteError(f"GET {path}: {remote.url} answered no list of runs")
    later = [
        r["id"]
        for r in rows
        if isinstance(r, dict) and isinstance(r.get("id"), str) and r["id"] != first
    ]
    retries = {
        str(rid): retry_of((_run_record(client, remote, str(rid)) or {}).get("executor"))
        for rid in later
    }
    return retry_chain(first, retries)


def _run_record(client: Client, remote: Remote, run_id: str) -> dict[str, Any] | None:
    path = f"{remote.api}/runs/{urllib.parse.quote(run_id, safe='')}"
    try:
        rec = client.get_json(path, {"patch": "false"})
    except RemoteError as e:
        if e.status == 404:
            return None
        raise
    return rec if isinstance(rec, dict) else None


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


__all__ = ["fetch_tree", "remote_attempts", "send_tree", "series_after", "tree_objects"]
