"""What the team server does, as a library (the HTTP layer, ``app.py`` and its
``routes_*`` and ``auth`` modules, only maps requests onto these): who is calling,
what they may do, receiving and serving objects and run bundles, live updates, notes,
team-wide search, and the model registry's governance (protected stages, the actor a
registry change is made by, webhooks)."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.core.ids import split_id
from runbase.errors import (
    AuthError,
    Conflict,
    Forbidden,
    MissingObjects,
    NotFound,
    RunbaseError,
    StoreError,
)
from runbase.records import accounts, lineage
from runbase.records.bundle import export_run, import_run, import_sweep, run_objects, validate
from runbase.records.pushed_runs import owner_and_status, reference_columns
from runbase.records.read import resolve
from runbase.records.registry import Actor, Event
from runbase.records.sweeps import SWEEP_RUN_STATUSES, sweep_user
from runbase.render import views
from runbase.server import control, hooks
from runbase.server.control import User
from runbase.server.projects import ProjectStores, open_objects_checked
from runbase.store import Store
from runbase.store.db import Database, redact_url

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_OBJECT_BYTES = 64 << 30  # one object: far above any sane file, below a disk filler
MAX_OIDS = 100_000  # per "which do you lack?" question
VERIFY_BEFORE_SENDING = 64 << 20  # objects up to this size are read whole and checked first

log = logging.getLogger("runbase.server")


@dataclass
class ServerConfig:
    """``db``: ``postgresql://…`` or a SQLite path/URL; ``objects``: ``s3://bucket/prefix``
    or a directory. ``secure_cookies``: the UI is served over HTTPS (a TLS proxy)."""

    db: str
    objects: str
    scratch: Path | None = None
    secure_cookies: bool = False
    session_ttl: float = control.SESSION_TTL
    hook_backoff: float = hooks.BACKOFF  # seconds before a webhook's second attempt
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> ServerConfig:
        """The config ``runbase server`` hands its worker processes (environment)."""
        db = os.environ.get("RUNBASE_SERVER_DB")
        objects = os.environ.get("RUNBASE_SERVER_OBJECTS")
        if not db or not objects:
            raise StoreError("RUNBASE_SERVER_DB and RUNBASE_SERVER_OBJECTS must be set")
        return cls(db, objects, secure_cookies=os.environ.get("RUNBASE_SERVER_SECURE") == "1")

    def describe(self) -> str:
        return f"db={redact_url(self.db)} objects={self.objects}"


class Server:
    """The state one server process holds: the control database, the shared object
    store and the projects' stores. Nothing else: any number of processes can serve
    the same database and bucket."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.control: Database = control.open_control(config.db)
        try:
            self.objects = open_objects_checked(config.objects)
            self.stores = ProjectStores(config.db, self.objects, config.scratch)
        except BaseException:
            self.control.close()
            raise
        try:
            self.stores.check(accounts.project_names(self.control))
        except BaseException:
            self.close()
            raise
        # started by the app (its lifespan), not here: a Server used as a library sends
        # nothing unless asked (``self.deliverer.start()`` or ``.run_once()``); it reads
        # the projects' logs (the webhooks' outbox) through the stores requests borrow
        self.deliverer = hooks.DeliveryWorker(
            self.control, self.stores.borrow, backoff=config.hook_backoff
        )

    def close(self) -> None:
        worker = getattr(self, "deliverer", None)
        if worker is not None:
            worker.stop()
        self.stores.close()
        self.control.close()

    # -- who is calling -------------------------------------------------------------
    def authenticate(
        self, authorization: str | None, session: str | None, method: str, csrf: str | None
    ) -> User:
        """The caller: an ``Authorization: Bearer`` API token, else the UI session cookie
        (whose unsafe requests must carry the session's CSRF token)."""
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise AuthError("use `Authorization: Bearer <token>`")
            return control.authenticate_token(self.control, secret.strip())
        if session:
            user, expected = control.session_user(self.control, session)
            if method not in SAFE_METHODS and not hmac.compare_digest(
                (csrf or "").encode(), expected.encode()
            ):
                raise Forbidden("missing or wrong CSRF token (X-CSRF-Token header)")
            return user
        raise AuthError("authentication required: `runbase login URL` or log in to the UI")

    def require(self, user: User, project: str, role: str) -> str:
        return control.require_role(self.control, user, project, role)

    @contextlib.contextmanager
    def store(self, project: str) -> Iterator[Store]:
        with self.stores.borrow(project) as store:
            yield store

    def ready(self) -> dict[str, Any]:
        """Readiness: the database answers and the object store is reachable."""
        self.control.ping()
        self.objects.exists("blake3:" + "0" * 64)
        return {"ok": True, "db": self.control.dialect}

    # -- objects --------------------------------------------------------------------
    def missing(self, project: str, oids: list[str]) -> list[str]:
        """Which of ``oids`` the project lacks (the client sends those)."""
        if len(oids) > MAX_OIDS:
            raise RunbaseError(f"ask about at most {MAX_OIDS} objects at once")
        for oid in oids:
            check_oid(oid)
        held = accounts.held_objects(self.control, project, sorted(set(oids)))
        return [o for o in dict.fromkeys(oids) if o not in held]

    def begin_object(self, oid: str, size_hint: int) -> Any:
        """A writer for an upload claimed to be ``oid``: re-hashed as it arrives; closing
        it raises ObjectIdMismatch (nothing stored) when the bytes are not ``oid``."""
        check_oid(oid)
        if size_hint > MAX_OBJECT_BYTES:
            raise RunbaseError(f"an object is at most {MAX_OBJECT_BYTES} bytes")
        return self.objects.writer(size_hint, expect=oid)

    def accept_object(self, project: str, oid: str, size: int) -> None:
        accounts.hold_object(self.control, project, oid, size)

    def object_chunks(self, project: str, oid: str) -> Iterator[bytes]:
        check_oid(oid)
        if not accounts.held_objects(self.control, project, [oid]):
            raise NotFound(f"no object {oid} in project {project!r}")
        # verified before the first byte leaves while small (a damaged copy is a clear
        # error, not a cut stream); a large one is hashed as it streams, and its reader
        # re-hashes it (a pull stores nothing that does not match)
        try:
            size = self.objects.size(oid)
        except FileNotFoundError:
            raise NotFound(f"object {oid} is missing from the server's store") from None
        if size <= VERIFY_BEFORE_SENDING:
            return iter([self.objects.get_bytes(oid)])
        return self.objects.iter_bytes(oid)

    # -- runs -----------------------------------------------------------------------
    def receive_bundle(
        self, project: str, run_id: str, bundle: dict[str, Any], user: User, live: bool = False
    ) -> dict[str, Any]:
        """Store a pushed run (or, ``live``, a delta of a running one). Every object it
        references must already be held by the project (409 lists the missing)."""
        if not isinstance(bundle, dict) or not isinstance(bundle.get("run"), dict):
            raise RunbaseError("a bundle is a JSON object with a 'run' object")
        if bundle["run"].get("id", run_id) != run_id:
            raise RunbaseError("the bundle is for another run than the URL says")
        objects = bundle.get("objects") or {}
        if not isinstance(objects, dict):
            raise RunbaseError("'objects' must map object ids to kinds")
        lacking = self.missing(project, list(objects))
        if lacking:
            raise MissingObjects(lacking)
        with self.store(project) as store:
            bundle["run"] = {**bundle["run"], "id": run_id}
            _attribute(bundle, user)

            def verify(rid: str) -> None:
                # every object the run's rows point to (code tree and its blobs, logs,
                # packages, stored data), not only the ones the bundle lists: a project
                # never serves bytes it was not sent. The rows' own references first:
                # only manifests the project holds are read (and strictly: a malformed
                # one is refused, it must not hide the blobs it names), so no one learns
                # the contents of another project's manifest by naming it.
                for expand in (False, True):
                    refs = run_objects(store, rid, expand=expand, strict=expand)
                    lacking = self.missing(project, list(refs))
                    if lacking:
                        raise MissingObjects(lacking)

            needs_check = not live or _adds_references(store, run_id, bundle)
            parsed = validate(bundle, replace=not live)

            def before(rid: str) -> None:
                if self._check_owner(store, rid, user, project, live):
                    # a sweep stopped it (pruned) or gave it up (lost): its last deltas
                    # are its rows, never a status that would reopen it
                    parsed.run.pop("status", None)
                self._check_sweep(store, parsed.run.get("sweep_id"), user, project)

            import_run(
                store,
                parsed,
                replace=not live,
                verify=verify if needs_check else None,
                before=before,
                # verify reads (strictly, paths checked) only manifests the project holds
                manifests=False,
                # what the MLflow API received for the run (artifacts, datasets) stays
                keep_server_rows=True,
                # a live delta of a running run writes its own rows: it does not take
                # the project's write lock from the other runs' deltas (PostgreSQL)
                run_lock=live,
            )
        return {"id": run_id, "project": project, "url": f"/p/{project}/runs/{run_id}"}

    def _check_owner(self, store: Store, run_id: str, user: User, project: str, live: bool) -> bool:
        """Only a run's author (or a project admin) may replace it, and a live update
        never reopens a run that ended (a late one, after the final push, is refused).
        A run a sweep marked pruned or lost still takes its live updates (its process
        runs on until the signal lands): True then, its status is kept. Called inside
        the import's transaction: two first pushes of one id cannot both pass."""
        row = owner_and_status(store, run_id)
        if row is None:
            return False
        if row[0] != user.name and not self._admin(user, project):
            raise Forbidden(f"run {run_id} belongs to {row[0]}; only they or an admin may push it")
        if live and row[1] in SWEEP_RUN_STATUSES:
            return True
        if live and row[1] != "running":
            raise Conflict(f"run {run_id} has ended ({row[1]}); push it instead of a live update")
        return False

    def _check_sweep(self, store: Store, sweep_id: Any, user: User, project: str) -> None:
        """A run joins only its pusher's own sweep (or anyone's, pushed by an admin): no
        one adds trials to a colleague's sweep."""
        if not isinstance(sweep_id, str):
            return
        owner = sweep_user(store, sweep_id)
        if owner is not None and owner != user.name and not self._admin(user, project):
            raise Forbidden(
                f"sweep {sweep_id} belongs to {owner}; only they or an admin may add runs to it"
            )

    def _admin(self, user: User, project: str) -> bool:
        return control.role_in(self.control, user, project) == "admin"

    def receive_sweep(
        self, project: str, sweep_id: str, row: dict[str, Any], user: User
    ) -> dict[str, Any]:
        """Store a pushed sweep row (``PUT .../sweeps/{id}``): the newer ``updated_at``
        wins; another user's sweep is refused (403); its user is the pusher."""
        if not isinstance(row, dict):
            raise RunbaseError("a sweep is a JSON object (a sweeps row)")
        if row.get("id", sweep_id) != sweep_id:
            raise RunbaseError("the sweep is another than the URL says")
        row = {**row, "id": sweep_id, "user_name": user.name}

        def before(owner: str | None) -> None:
            if owner is not None and owner != user.name and not self._admin(user, project):
                raise Forbidden(f"sweep {sweep_id} belongs to {owner}; only they may push it")

        with self.store(project) as store:
            import_sweep(store, row, before=before)
        return {"id": sweep_id, "project": project, "url": f"/p/{project}/sweeps/{sweep_id}"}

    def bundle_of(self, project: str, ref: str, data: bool = True) -> dict[str, Any]:
        with self.store(project) as store:
            run_id = resolve(store, ref)
            return export_run(store, run_id, data=data)

    # -- notes and search -----------------------------------------------------------
    def add_note(self, project: str, ref: str, user: User, text: str) -> dict[str, Any]:
        with self.store(project) as store:
            run_id = resolve(store, ref)
        return control.add_note(self.control, project, run_id, user.name, text)

    def notes(self, project: str, ref: str) -> list[dict[str, Any]]:
        with self.store(project) as store:
            run_id = resolve(store, ref)
        return control.notes(self.control, project, run_id)

    def search(
        self, user: User, where: str | None, data: str | None, limit: int = 50
    ) -> dict[str, Any]:
        """Runs across every project ``user`` may read: by ``where`` (params, metrics,
        tags, user, command, commit, ...) and/or by the exact data hash ``data``."""
        if data is not None:
            check_oid(data)
        results: list[dict[str, Any]] = []
        total = 0
        for p in control.readable_projects(self.control, user):
            with self.store(p["name"]) as store:
                found = _search_project(store, where, data, limit)
            for item in found["runs"]:
                results.append({**item, "project": p["name"]})
            total += found["total"]
        # ISO 8601 strings sort by time; a run whose time is unknown (null) sorts last
        results.sort(key=lambda r: r.get("started_at") or "", reverse=True)
        return {"total": total, "runs": results[:limit]}

    # -- the model registry's governance ---------------------------------------------
    def protected_stages(self, project: str) -> dict[str, int]:
        """``{stage: approvals needed (1 or 2)}`` of ``project``'s models."""
        return control.protected_stages(self.control, project)

    def protect_stage(self, project: str, stage: str, approvals: int, by: str | None) -> None:
        control.protect_stage(self.control, project, stage, approvals, by)

    def unprotect_stage(self, project: str, stage: str) -> None:
        control.unprotect_stage(self.control, project, stage)

    def model_actor(self, user: User | str, project: str, role: str) -> Actor:
        """Who a registry change in ``project`` is made by: the account, its role there,
        the project's protected stages, and a nudge of the webhooks' delivery thread."""
        name = user.name if isinstance(user, User) else user
        if role not in control.ROLES:
            raise Forbidden(f"not a member of project {project!r}")

        def on_events(events: list[Event]) -> None:
            # only a nudge: the thread queues deliveries from the project's log itself
            # (server.hooks), so a change whose process dies before this is still sent
            del events
            self.deliverer.wake()

        return Actor(
            user=name, role=role, protected=self.protected_stages(project), on_events=on_events
        )

    def add_hook(
        self,
        project: str,
        url: str,
        events: str | list[str],
        secret: str | None = None,
        by: str | None = None,
    ) -> control.NewHook:
        """A webhook of ``project`` that receives its events from now on (its cursor
        starts at the project's last event: no history flood)."""
        if not accounts.project_exists(self.control, project):  # before a store is made for it
            raise NotFound(f"no project {project!r}; `runbase server projects list` lists them")
        with self.store(project) as store:
            after = hooks.start_seq(store)
        return control.add_hook(self.control, project, url, events, secret, by, after_seq=after)

    def list_hooks(self, project: str | None = None) -> list[dict[str, Any]]:
        return control.hooks(self.control, project)

    def remove_hook(self, hook_id: str) -> None:
        control.remove_hook(self.control, hook_id)

    def deliveries(
        self, project: str | None = None, hook_id: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        return control.deliveries(self.control, project, hook_id, state)


def _adds_references(store: Store, run_id: str, delta: dict[str, Any]) -> bool:
    """Whether a live delta could point the run at objects it did not point at: a new
    run, a changed object-bearing column, data files, or a parameter kept as an object.
    (A delta every 2 s from each running run must not re-read its code manifest.)"""
    old = reference_columns(store, run_id)
    if old is None or delta.get("run_files"):
        return True
    run = delta["run"]
    if any(c in run and run[c] != v for c, v in old.items()):
        return True
    params = delta.get("params") or []
    return any(
        not isinstance(p, dict) or str(p.get("value", "")).startswith('{"$object"') for p in params
    )


def check_oid(oid: str) -> str:
    try:
        split_id(oid)
    except (ValueError, TypeError) as e:
        raise RunbaseError(str(e)) from None
    return oid


def _attribute(bundle: dict[str, Any], user: User) -> None:
    """The server names a run's author by account (the pusher), not by the login name
    on their machine, which is kept as the tag ``host_user``."""
    run = bundle["run"]
    local = run.get("user_name")
    run["user_name"] = user.name
    if isinstance(local, str) and local and local != user.name:
        tags = bundle.get("tags")
        if isinstance(tags, list) and not any(
            isinstance(t, dict) and t.get("key") == "host_user" for t in tags
        ):
            tags.append({"run_id": run["id"], "key": "host_user", "value": local})
    sweep = bundle.get("sweep")
    if isinstance(sweep, dict):  # the sweep's record is the pusher's too: a sweep id names
        sweep["user_name"] = user.name  # one account's sweep (records.bundle._write_sweep)


def _search_project(
    store: Store, where: str | None, data: str | None, limit: int
) -> dict[str, Any]:
    if data is None:
        page = views.runs_page(store, where, "-started_at", limit, keys=False)
        return {"total": page["total"], "runs": page["runs"]}
    used = {r["run"]: "input" for r in lineage.consumers(store, data)}
    used.update({r["run"]: "output" for r in lineage.producers(store, data)})
    ids = list(used) if where is None else views.matching_ids(store, where, list(used))
    hits = views.run_items(store, ids)
    for item in hits:
        item["data_role"] = used[item["id"]]
    return {"total": len(hits), "runs": hits[:limit]}
