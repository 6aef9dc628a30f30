"""Moving runs between the local store and a team server: push, pull, and live
publishing of a running run (docs/server.md, "Push and pull").

Push asks the server which objects its project lacks, uploads those in parallel (the
server re-hashes each), then sends each run's record. The record goes last, so an
interrupted push leaves no half-run on the server, and pushing again sends only what
is still missing: resumable and idempotent. A run pushed unchanged since its last
push is skipped without a request for its record.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from runbase.errors import ObjectIdMismatch, RemoteError, RunbaseError
from runbase.records.bundle import export_run, import_run, run_objects, validate
from runbase.records.outbox import clear_pending, mark_pushed, pending, pushed_digest
from runbase.records.read import all_run_ids, resolve
from runbase.remote.client import Client, Remote
from runbase.store import Store

ASK_BATCH = 10_000  # object ids per "which do you lack?"


@dataclass
class PushReport:
    runs: list[str] = field(default_factory=list)  # pushed (record sent)
    unchanged: list[str] = field(default_factory=list)  # already on the server as is
    objects_sent: int = 0
    bytes_sent: int = 0
    objects_skipped: int = 0  # the server already had them
    sweeps: list[str] = field(default_factory=list)  # sweep records sent (after their runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "unchanged": self.unchanged,
            "objects_sent": self.objects_sent,
            "bytes_sent": self.bytes_sent,
            "objects_skipped": self.objects_skipped,
            "sweeps": self.sweeps,
        }


def _push_key(remote: Remote, run_id: str) -> str:
    return f"pushed:{remote.url}/p/{remote.project}:{run_id}"


def _fingerprint(remote: Remote, bundle: dict[str, Any]) -> tuple[str, str]:
    """The key and digest of what was pushed of a run. Its sweep's row is left out: it
    changes after every trial (its best run, its status) and is sent on its own, once
    per push (:func:`_push_sweeps`), not with every trial again."""
    key = _push_key(remote, bundle["run"]["id"])
    own = {k: v for k, v in bundle.items() if k != "sweep"}
    return key, _digest(own)


def _digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


def push(
    store: Store,
    remote: Remote,
    run_ids: Iterable[str],
    data: bool = True,
    jobs: int = 8,
    progress: Callable[[str], None] | None = None,
    retry_for: float = 60.0,
) -> PushReport:
    """Push ``run_ids`` (finished or not) with the objects they reference to ``remote``.
    ``data=False`` keeps data files local: the server records their hashes only.
    Requests the server fails (restarting, overloaded) are retried for ``retry_for`` s."""
    client = Client(remote.url, remote.token, retry_for=retry_for)
    report = PushReport()
    todo: list[tuple[dict[str, Any], str, str]] = []
    sweeps: dict[str, dict[str, Any]] = {}  # the sweeps of the runs, each sent once
    for run_id in run_ids:
        bundle = export_run(store, run_id, data=data)
        if "sweep" in bundle:
            sweeps.setdefault(bundle["sweep"]["id"], bundle["sweep"])
        key, digest = _fingerprint(remote, bundle)
        if pushed_digest(store, key) == digest:
            report.unchanged.append(run_id)
        else:
            todo.append((bundle, key, digest))
    wanted = list(dict.fromkeys(o for b, _, _ in todo for o in b["objects"]))
    report.objects_skipped = len(wanted) - send_objects(
        store, client, remote, wanted, jobs, report, progress
    )
    for bundle, key, digest in todo:
        run_id = bundle["run"]["id"]
        _send_bundle(store, client, remote, bundle, jobs, report, progress)
        mark_pushed(store, key, digest)
        clear_pending(store, run_id, remote.name)
        report.runs.append(run_id)
        if progress:
            progress(f"pushed {run_id} -> {remote.run_url(run_id)}")
    _push_sweeps(store, client, remote, sweeps, report)
    return report


def _push_sweeps(
    store: Store,
    client: Any,
    remote: Remote,
    sweeps: dict[str, dict[str, Any]],
    report: PushReport,
) -> None:
    """Send each sweep's row not yet sent as it is now (after its runs: the server's
    sweep then names trials it holds)."""
    for sweep_id, row in sweeps.items():
        key = f"pushed-sweep:{remote.url}/p/{remote.project}:{sweep_id}"
        digest = _digest(row)
        if pushed_digest(store, key) == digest:
            continue
        try:
            client.send_json(
                "PUT", f"{remote.api}/sweeps/{urllib.parse.quote(sweep_id, safe='')}", row
            )
        except RemoteError as e:
            if e.status in (404, 405):  # a server older than sweeps' own route: the
                continue  # trials' bundles brought the row, as it was then
            raise
        mark_pushed(store, key, digest)
        report.sweeps.append(sweep_id)


def send_objects(
    store: Store,
    client: Any,
    remote: Remote,
    oids: list[str],
    jobs: int = 8,
    report: PushReport | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Upload those of ``oids`` the server's project lacks; how many it lacked."""
    missing = _ask_missing(client, remote, oids)
    _upload(store, client, remote, missing, jobs, report or PushReport(), progress)
    return len(missing)


def _ask_missing(client: Any, remote: Remote, oids: list[str]) -> list[str]:
    missing: list[str] = []
    for i in range(0, len(oids), ASK_BATCH):
        answer = client.send_json(
            "POST", f"{remote.api}/objects/missing", {"oids": oids[i : i + ASK_BATCH]}
        )
        missing.extend(answer["missing"])
    return missing


def _upload(
    store: Store,
    client: Any,
    remote: Remote,
    oids: list[str],
    jobs: int,
    report: PushReport,
    progress: Callable[[str], None] | None,
) -> None:
    if not oids:
        return
    lock = threading.Lock()

    def one(oid: str) -> None:
        path = store.local_objects.path(oid)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise RunbaseError(
                f"object {oid} is referenced but missing from the local store (run `runbase fsck`)"
            ) from None
        client.request(
            "PUT",
            f"{remote.api}/objects/{oid}",
            lambda: open(path, "rb"),  # noqa: SIM115 - closed by the client after sending
            {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        with lock:
            report.objects_sent += 1
            report.bytes_sent += size

    if progress:
        progress(f"uploading {len(oids)} objects")
    _run_all(one, oids, jobs)


def _run_all(fn: Callable[[str], None], items: list[str], jobs: int) -> None:
    """``fn`` over ``items`` on ``jobs`` threads; the first failure cancels what has not
    started (a dead server must not cost one timeout per remaining object) and raises."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for f in as_completed(futures):
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _send_bundle(
    store: Store,
    client: Any,
    remote: Remote,
    bundle: dict[str, Any],
    jobs: int,
    report: PushReport,
    progress: Callable[[str], None] | None,
) -> None:
    path = f"{remote.api}/runs/{bundle['run']['id']}/bundle"
    try:
        client.send_json("PUT", path, bundle)
    except RemoteError as e:
        # the server lost objects it had said it held (a concurrent gc): send, retry once
        if e.status != 409 or not isinstance(e.body, dict):
            raise
        _upload(store, client, remote, list(e.body.get("missing") or []), jobs, report, progress)
        client.send_json("PUT", path, bundle)


@dataclass
class PullReport:
    run_id: str
    objects_fetched: int = 0
    bytes_fetched: int = 0
    data: bool = False


def pull(
    store: Store,
    remote: Remote,
    ref: str,
    data: bool = False,
    jobs: int = 8,
    progress: Callable[[str], None] | None = None,
) -> PullReport:
    """Bring run ``ref`` of ``remote`` into the local store with the objects needed to
    show and diff it (code, environment, logs); ``data=True`` also its data files."""
    client = remote.client()
    path = f"{remote.api}/runs/{urllib.parse.quote(ref, safe='')}/bundle"
    bundle = client.get_json(path, {"data": "true"})
    # nothing read from a server is trusted: the whole bundle is checked (BundleError
    # naming the field) before a byte of its objects is fetched
    parsed = validate(bundle)
    report = PullReport(parsed.run_id, data=data)
    objects: dict[str, str] = bundle.get("objects") or {}
    wanted = [o for o, kind in objects.items() if data or kind != "data"]
    absent = [o for o in wanted if not store.objects.exists(o)]
    if progress and absent:
        progress(f"downloading {len(absent)} objects")
    report.objects_fetched, report.bytes_fetched = fetch_objects(
        store, client, remote, absent, jobs, f"of run {report.run_id}"
    )
    if not data:  # data files not fetched are recorded as not stored here
        for row in parsed.rows["run_files"]:
            if not store.objects.exists(str(row.get("oid"))):
                row["stored"] = 0
    import_run(store, parsed, replace=True)  # checked once, above
    return report


def fetch_objects(
    store: Store, client: Any, remote: Remote, oids: list[str], jobs: int = 8, what: str = ""
) -> tuple[int, int]:
    """Download ``oids`` from the remote's project into ``store``, each re-hashed as it
    arrives (a bad copy on the server is never stored here): ``(objects, bytes)``.
    ``what`` says whose objects they are in an error (``of run X``)."""
    lock = threading.Lock()
    done = [0, 0]

    def one(oid: str) -> None:
        try:
            with store.objects.writer(expect=oid) as w:
                n = client.download(f"{remote.api}/objects/{oid}", w.write)
        except ObjectIdMismatch:
            raise RunbaseError(
                f"the copy of object {oid}{f' ({what})' if what else ''} on {remote.url} is "
                "corrupted: nothing was stored here; the server's admin must restore it"
            ) from None
        with lock:
            done[0] += 1
            done[1] += n

    _run_all(one, oids, jobs)
    return done[0], done[1]


def was_pushed(store: Store, remote: Remote, run_id: str) -> bool:
    """Whether this store pushed run ``run_id`` to ``remote``'s project before."""
    return pushed_digest(store, _push_key(remote, run_id)) is not None


def search(remote: Remote, where: str | None, data: str | None, limit: int = 50) -> Any:
    """Team search on ``remote``'s server (every project the user can read):
    ``{"total", "runs"}``, each run with ``project`` (and ``data_role`` with ``data``)."""
    params = {"where": where, "data": data, "limit": limit}
    return remote.client().get_json("/api/v1/search", params)


def pushable_runs(
    store: Store, refs: Iterable[str], all_runs: bool, remote_name: str | None = None
) -> list[str]:
    """The runs ``runbase push`` sends: ``refs``; every run; or, with neither, the
    latest run and those whose live publishing to ``remote_name`` did not complete."""
    if all_runs:
        return all_run_ids(store)
    refs = list(refs)
    if refs:
        return [resolve(store, ref) for ref in refs]
    ids = [run for run, remote in pending(store) if remote_name in (None, remote)]
    return list(dict.fromkeys([*ids, resolve(store, "latest")]))


__all__ = [
    "push",
    "pull",
    "fetch_objects",
    "send_objects",
    "was_pushed",
    "PushReport",
    "PullReport",
    "pushable_runs",
    "run_objects",
]
