"""The team server's security requirements, tested for real against the ASGI app
(in-process, over SQLite and PostgreSQL): who may call which route (a table over every
route of the OpenAPI schema, so a new route fails until it is classified), sessions and
CSRF, API tokens (hashed, expiring, revocable, shown once), tampered uploads and
cross-project objects, secrets kept out of logs, and fuzzing of the schema (no 5xx)."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, commit, require, runbase_cmd, write
from runbase.core import ids
from runbase.errors import RunbaseError
from runbase.records.bundle import export_run, run_objects
from runbase.store import Store
from runbase.store.hashing import hash_bytes

require("fastapi")
require("httpx")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from runbase.server import (  # noqa: E402
    admin,
    control,
    middleware,
    routes_pages,
    uploads,
)
from runbase.server.app import CSRF_COOKIE, SESSION_COOKIE, create_server_app  # noqa: E402
from runbase.server.logs import ACCESS_LOGGER  # noqa: E402
from runbase.server.service import ServerConfig  # noqa: E402
from runbase.web import pages  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]
PROJECT = "alpha"
OTHER = "beta"

TRAIN = """
import numpy as np
import runbase
runbase.param("lr", 0.1)
for i in range(5):
    runbase.log(loss=1.0 / (i + 1), step=i)
runbase.summary(best=0.5)
runbase.tag(stage="dev")
runbase.log_image("samples", np.zeros((4, 4, 3), dtype=np.uint8), step=0)
runbase.log_table("preds", [{"x": 1, "y": 2}], step=0)
"""


# -- a real run, made by the real CLI -----------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, str]]:
    root = tmp_path_factory.mktemp("src") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    commit(root, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, check=True)
    shown = runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout
    store = Store.open(root / ".runbase")
    yield store, json.loads(shown)["id"]
    store.close()


# -- a server with users of every role ----------------------------------------------------


@dataclass
class Env:
    app: FastAPI
    client: TestClient
    db: str
    db_path: Path | None  # SQLite: the control database file
    objects: Path
    tokens: dict[str, str]  # user -> API token secret
    run_id: str
    oid: str  # an object the project holds (of the pushed run)
    oid_bytes: bytes
    bundle: dict[str, Any]  # the pushed run's bundle, as sent
    media_oid: str = ""  # the image the pushed run logged

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def fresh_bundle(self) -> tuple[str, dict[str, Any]]:
        """The pushed run's bundle as a new run (its own id): for pushes by anyone."""
        new_id = ids.new_run_id()
        b = copy.deepcopy(self.bundle)
        b["run"]["id"] = new_id
        for table in ("params", "tags", "metrics", "metric_chunks", "run_files", "media"):
            for row in b.get(table) or []:
                row["run_id"] = new_id
        return new_id, b


# server admin; project admin, writers, reader of PROJECT; outsider (member of OTHER only)
USERS = {
    "root": ("admin", ()),
    "padmin": ("user", ((PROJECT, "admin"),)),
    "wanda": ("user", ((PROJECT, "writer"),)),
    "walt": ("user", ((PROJECT, "writer"),)),
    "rita": ("user", ((PROJECT, "reader"),)),
    "olga": ("user", ((OTHER, "writer"),)),
    "spare": ("user", ()),  # the target of member management
}


def _pg_url(server: str, password: str | None = None) -> str:
    psycopg = require("psycopg")
    name = f"srvauth_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    if password:  # the cluster trusts every login: any password works, and must never leak
        server = server.replace("postgres@", f"postgres:{password}@", 1)
    return f"{server}/{name}"


def make_env(
    backend: str,
    tmp: Path,
    request: pytest.FixtureRequest,
    source: tuple[Store, str],
    password: str | None = None,
) -> Env:
    if backend == "sqlite":
        db_path: Path | None = tmp / "srv" / "server.db"
        db = str(db_path)
    else:
        db_path = None
        db = _pg_url(request.getfixturevalue("pg_server"), password)
    objects = tmp / "objects"
    admin.migrate(db, str(objects))
    with admin.opened(db) as c:
        control.add_project(c, PROJECT)
        control.add_project(c, OTHER)
    tokens: dict[str, str] = {}
    for name, (role, memberships) in USERS.items():
        tokens[name] = admin.add_user(db, name, role, projects=()).secret
        with admin.opened(db) as c:
            for project, prole in memberships:
                control.set_member(c, project, name, prole)
    app = create_server_app(ServerConfig(db=db, objects=str(objects), scratch=tmp / "scratch"))
    client = TestClient(app)
    client.__enter__()
    local, run_id = source
    bundle = json.loads(json.dumps(export_run(local, run_id), allow_nan=False))
    env = Env(app, client, db, db_path, objects, tokens, run_id, "", b"", bundle)
    # push the run as wanda: objects first, then the record
    oids = list(run_objects(local, run_id))
    auth = env.auth("wanda")
    r = client.post(f"/p/{PROJECT}/api/objects/missing", json={"oids": oids}, headers=auth)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["missing"]) == sorted(oids)
    for oid in oids:
        data = local.objects.get_bytes(oid)
        r = client.put(f"/p/{PROJECT}/api/objects/{oid}", content=data, headers=auth)
        assert r.status_code == 201, r.text
    r = client.put(f"/p/{PROJECT}/api/runs/{run_id}/bundle", json=bundle, headers=auth)
    assert r.status_code == 200, r.text
    # more runs, another lr each (parameter importance needs a few)
    for i in range(4):
        more_id, more = env.fresh_bundle()
        for row in more["params"]:
            if row["key"] == "lr":
                row["value"], row["num"] = str(0.2 + i / 10), 0.2 + i / 10
        for row in more["metrics"]:
            if row["key"] == "best":
                row["summary"] = row["value"] = 0.6 + i / 10
        r = client.put(f"/p/{PROJECT}/api/runs/{more_id}/bundle", json=more, headers=auth)
        assert r.status_code == 200, r.text
    env.oid = min(oids, key=lambda o: len(local.objects.get_bytes(o)))
    env.oid_bytes = local.objects.get_bytes(env.oid)
    env.media_oid = next(r["oid"] for r in bundle["media"] if r["kind"] == "image")
    return env


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path, source: tuple[Store, str]) -> Iterator[Env]:
    e = make_env(request.param, tmp_path, request, source)
    yield e
    e.client.__exit__(None, None, None)


@pytest.fixture
def lite(
    request: pytest.FixtureRequest, tmp_path: Path, source: tuple[Store, str]
) -> Iterator[Env]:
    e = make_env("sqlite", tmp_path, request, source)
    yield e
    e.client.__exit__(None, None, None)


# -- the authorization table --------------------------------------------------------------

PUBLIC = "public"  # anyone, no credential
USER = "user"  # any valid credential
SERVER_ADMIN = "server-admin"
READER, WRITER, ADMIN = "reader", "writer", "admin"  # a role in the project of the path

# every route of the OpenAPI schema: who may call it
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/api/v1/me"): USER,
    ("GET", "/api/v1/projects"): USER,
    ("POST", "/api/v1/projects"): SERVER_ADMIN,
    ("POST", "/api/v1/users"): SERVER_ADMIN,
    ("GET", "/api/v1/tokens"): USER,
    ("POST", "/api/v1/tokens"): USER,
    ("DELETE", "/api/v1/tokens/{token_id}"): USER,
    ("GET", "/api/v1/search"): USER,
    ("GET", "/api/v1/projects/{project}/members"): READER,
    ("PUT", "/api/v1/projects/{project}/members/{user_name}"): ADMIN,
    ("DELETE", "/api/v1/projects/{project}/members/{user_name}"): ADMIN,
    ("POST", "/p/{project}/api/objects/missing"): WRITER,
    ("PUT", "/p/{project}/api/objects/{oid}"): WRITER,
    ("GET", "/p/{project}/api/objects/{oid}"): READER,
    ("PUT", "/p/{project}/api/runs/{run_id}/bundle"): WRITER,
    ("POST", "/p/{project}/api/runs/{run_id}/live"): WRITER,
    ("GET", "/p/{project}/api/runs/{ref}/bundle"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/notes"): READER,
    ("POST", "/p/{project}/api/runs/{ref}/notes"): WRITER,
    # the read API of `runbase ui`, per project
    ("GET", "/p/{project}/api/health"): READER,
    ("GET", "/p/{project}/api/runs"): READER,
    ("GET", "/p/{project}/api/runs/{ref}"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/series/{key}"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/code/tree"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/code/file"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/code/raw"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/code/diff"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/notebook"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/logs"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/lineage"): READER,
    ("GET", "/p/{project}/api/compare"): READER,
    ("GET", "/p/{project}/api/diff"): READER,
    ("GET", "/p/{project}/api/importance"): READER,
    ("GET", "/p/{project}/api/explain"): READER,
    ("GET", "/p/{project}/api/highlight.css"): READER,
    # the chart workspace (issue 18): the chart panel, media, saved views
    ("GET", "/p/{project}/api/panel"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/media"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/media/object/{oid}"): READER,
    ("GET", "/p/{project}/api/runs/{ref}/media/table"): READER,
    ("GET", "/p/{project}/api/views"): READER,
    ("GET", "/p/{project}/api/views/{name}"): READER,
    ("PUT", "/p/{project}/api/views/{name}"): WRITER,
    ("DELETE", "/p/{project}/api/views/{name}"): WRITER,
    # the model registry (issue 19): the registry checks the approver role itself
    ("GET", "/p/{project}/api/models"): READER,
    ("GET", "/p/{project}/api/models/resolve"): READER,
    ("GET", "/p/{project}/api/models/verify"): READER,
    ("GET", "/p/{project}/api/models/{name}"): READER,
    ("GET", "/p/{project}/api/models/{name}/log"): READER,
    ("POST", "/p/{project}/api/models/{name}/versions"): WRITER,
    ("POST", "/p/{project}/api/models/{name}/promote"): WRITER,
    ("POST", "/p/{project}/api/models/{name}/demote"): WRITER,
    ("POST", "/p/{project}/api/models/{name}/rollback"): WRITER,
    ("POST", "/p/{project}/api/models/events"): WRITER,
    # an approver (here: the admins) other than who asked; a writer gets 403
    ("POST", "/p/{project}/api/models/requests/{request_id}/approve"): ADMIN,
    # an approver, or who asked (here: padmin, an admin) withdrawing it
    ("POST", "/p/{project}/api/models/requests/{request_id}/reject"): ADMIN,
    # sweeps (issue 21): the sweep page's data
    ("GET", "/p/{project}/api/sweeps"): READER,
    ("GET", "/p/{project}/api/sweeps/{sweep_id}"): READER,
    ("PUT", "/p/{project}/api/sweeps/{sweep_id}"): WRITER,
}

# the routes outside the schema (HTML pages, login): path -> who may see it
PAGES: dict[tuple[str, str], str] = {
    ("GET", "/"): "login-redirect",
    ("GET", "/search"): "login-redirect",
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/p/{project}/"): READER,
    ("GET", "/p/{project}/runs/{ref}"): READER,
    ("GET", "/p/{project}/compare"): READER,
    ("GET", "/p/{project}/explain"): READER,
    ("GET", "/p/{project}/models"): READER,
    ("GET", "/p/{project}/models/{name}"): READER,
    ("GET", "/p/{project}/sweeps/{sweep_id}"): READER,
}

RANK = {READER: 0, WRITER: 1, ADMIN: 2}
# each user's role in PROJECT (None: not a member)
ROLE_IN_PROJECT = {
    "root": ADMIN,
    "padmin": ADMIN,
    "wanda": WRITER,
    "walt": WRITER,
    "rita": READER,
    "olga": None,
    "spare": None,
}


def expected_status(kind: str, user: str | None) -> str:
    """``ok`` (2xx), ``401`` or ``403``: what ``user`` (None: no credential) gets."""
    if kind == PUBLIC:
        return "ok"
    if user is None:
        return "401"
    if kind == USER:
        return "ok"
    if kind == SERVER_ADMIN:
        return "ok" if USERS[user][0] == "admin" else "403"
    role = ROLE_IN_PROJECT[user]
    return "ok" if role is not None and RANK[role] >= RANK[kind] else "403"


def build_request(env: Env, method: str, path: str, user: str | None) -> dict[str, Any]:
    """A valid request to ``method path`` as ``user``: real project, run, object, body."""
    run_id = env.run_id
    params: dict[str, str] = {
        "project": PROJECT,
        "ref": run_id,
        "run_id": run_id,
        "oid": env.oid,
        "user_name": "spare",
        "key": "loss",
        "token_id": "0" * 12,
    }
    query: dict[str, Any] = {}
    kw: dict[str, Any] = {}
    tail = path.split("/api/", 1)[-1]
    if path == "/api/v1/tokens/{token_id}" and user is not None:
        params["token_id"] = control_token(env, user)
    if method == "PUT" and path.endswith("/objects/{oid}"):
        kw["content"] = env.oid_bytes
    elif path.endswith("/runs/{run_id}/bundle") or path.endswith("/runs/{run_id}/live"):
        params["run_id"], kw["json"] = env.fresh_bundle()
    elif method == "POST" and path.endswith("/notes"):
        kw["json"] = {"text": "a note"}
    elif path.endswith("/objects/missing"):
        kw["json"] = {"oids": [env.oid]}
    elif path == "/api/v1/projects" and method == "POST":
        kw["json"] = {"name": f"p{uuid.uuid4().hex[:10]}"}
    elif path == "/api/v1/users":
        kw["json"] = {"name": f"u{uuid.uuid4().hex[:10]}"}
    elif path == "/api/v1/tokens" and method == "POST":
        kw["json"] = {"label": "table"}
    elif method == "PUT" and "/members/" in path:
        kw["json"] = {"role": "reader"}
    elif tail in ("runs/{ref}/code/file", "runs/{ref}/code/raw"):
        query["path"] = "train.py"
    elif tail == "compare":
        query["runs"] = run_id
    elif tail == "diff":
        query["a"] = run_id
    elif tail == "importance":
        query["metric"] = "best"
    elif tail == "explain":
        query["a"] = query["b"] = run_id
    elif tail == "panel":
        query.update(where="params.lr > 0", metrics="loss", group_by="params.lr", x="relative")
    elif tail == "runs/{ref}/media":
        query["key"] = "samples"
    elif tail == "runs/{ref}/media/object/{oid}":
        params["oid"] = env.media_oid
    elif tail == "runs/{ref}/media/table":
        query["key"] = "preds"
    elif tail == "views/{name}":
        params["name"], kw = _view_to(env, method)
    elif tail.startswith("models"):
        _model_request(env, method, tail, params, query, kw)
    elif tail == "sweeps/{sweep_id}" and method == "PUT":
        params["sweep_id"] = sweep_id = f"sw{uuid.uuid4().hex[:14]}"
        kw["json"] = {"id": sweep_id, "created_at": 1.0e9, "updated_at": 1.0e9,
                      "status": "running", "spec_json": '{"command": ["true"]}'}  # fmt: skip
    elif tail == "sweeps/{sweep_id}":
        params["sweep_id"] = _sweep_of_runs(env)
    url = path.format(**params)
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return {"method": method, "url": url, **kw}


def _sweep_of_runs(env: Env) -> str:
    """The id of a sweep the project holds: a run a writer pushed just now carries it
    (a sweep without a record, read from its runs)."""
    run_id, bundle = env.fresh_bundle()
    bundle["run"]["sweep_id"] = sweep_id = f"sw{uuid.uuid4().hex[:14]}"
    r = env.client.put(
        f"/p/{PROJECT}/api/runs/{run_id}/bundle", json=bundle, headers=env.auth("wanda")
    )
    assert r.status_code in (200, 201), r.text
    return sweep_id


def _view_to(env: Env, method: str) -> tuple[str, dict[str, Any]]:
    """The name and body of a request to a saved view: one that exists (a writer saved
    it just now) unless the request creates it."""
    name = f"view {uuid.uuid4().hex[:8]}"
    spec = {"version": 1, "where": "params.lr > 0", "panels": [{"type": "line", "metric": "loss"}]}
    if method == "PUT":
        return urllib.parse.quote(name), {"json": {"spec": spec, "default": True}}
    r = env.client.put(
        f"/p/{PROJECT}/api/views/{urllib.parse.quote(name)}",
        json={"spec": spec},
        headers=env.auth("wanda"),
    )
    assert r.status_code == 201, r.text
    return urllib.parse.quote(name), {}


def _registry(env: Env, user: str, tail: str, body: dict[str, Any]) -> dict[str, Any]:
    r = env.client.post(f"/p/{PROJECT}/api/{tail}", json=body, headers=env.auth(user))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _fresh_model(env: Env, versions: int = 1, staging: int = 0) -> str:
    """A new model registered (external bytes the project holds) by wanda, its first
    ``staging`` versions promoted to staging in turn."""
    name = f"m-{uuid.uuid4().hex[:10]}"
    for oid in [env.oid, env.media_oid][:versions]:
        _registry(env, "wanda", f"models/{name}/versions", {"oid": oid, "external": True})
    for n in range(1, staging + 1):
        _registry(
            env, "wanda", f"models/{name}/promote", {"version": f"v0.0.{n}", "stage": "staging"}
        )
    return name


def _open_request(env: Env, requester: str) -> str:
    """An open request (by ``requester``) to promote a new model to a two-person stage."""
    with admin.opened(env.db) as c:
        if "prod2" not in control.protected_stages(c, PROJECT):
            control.protect_stage(c, PROJECT, "prod2", 2, "root")
    name = _fresh_model(env)
    body = {"version": "v0.0.1", "stage": "prod2"}
    events = _registry(env, requester, f"models/{name}/promote", body)["events"]
    assert [e["action"] for e in events] == ["request"], events
    return str(events[0]["data"]["request"])


def _model_request(
    env: Env,
    method: str,
    tail: str,
    params: dict[str, str],
    query: dict[str, Any],
    kw: dict[str, Any],
) -> None:
    """A valid request to a registry route: a model, version, stage or request that
    exists (set up just now) and a body the route accepts."""
    if tail.endswith("/approve"):
        params["request_id"] = _open_request(env, "wanda")
        kw["json"] = {"message": "ok"}
    elif tail.endswith("/reject"):
        params["request_id"] = _open_request(env, "padmin")
        kw["json"] = {"message": "no"}
    elif tail == "models/events":
        event = {"id": uuid.uuid4().hex, "action": "register", "model": f"m-{uuid.uuid4().hex[:10]}",
                 "version": "v1.0.0", "oid": env.oid, "data": {"kind": "file", "external": True}}  # fmt: skip
        kw["json"] = {"events": [event]}
    elif tail.endswith("/versions"):
        params["name"] = f"m-{uuid.uuid4().hex[:10]}"
        kw["json"] = {"oid": env.oid, "external": True, "message": "first"}
    elif tail.endswith("/promote"):
        params["name"] = _fresh_model(env)
        kw["json"] = {"version": "v0.0.1", "stage": "staging"}
    elif tail.endswith("/demote"):
        params["name"] = _fresh_model(env, staging=1)
        kw["json"] = {"stage": "staging"}
    elif tail.endswith("/rollback"):
        params["name"] = _fresh_model(env, versions=2, staging=2)
        kw["json"] = {"stage": "staging", "message": "broke"}
    elif tail == "models/resolve":
        query["ref"] = f"{_fresh_model(env)}@latest"
    elif "{name}" in tail:
        params["name"] = _fresh_model(env)


def control_token(env: Env, user: str) -> str:
    with admin.opened(env.db) as c:
        return control.create_token(c, user, label="to revoke").id


def schema_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if method.lower() in ("get", "put", "post", "delete", "patch", "head", "options")
    }


def test_every_route_is_classified(lite: Env) -> None:
    """A route that the tables do not know fails here: classify it (and so test it)."""
    found = schema_routes(lite.app)
    assert found == set(ROUTES), (
        f"unclassified routes: {sorted(found - set(ROUTES))}; gone: {sorted(set(ROUTES) - found)}"
    )
    outside: set[tuple[str, str]] = set()
    for router, prefix in ((routes_pages.ui, ""), (pages.router, "/p/{project}")):
        for route in router.routes:
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    outside.add((method, prefix + route.path))  # type: ignore[attr-defined]
    assert outside == set(PAGES), f"unclassified pages: {sorted(outside - set(PAGES))}"


ALL_USERS: list[str | None] = [None, *USERS]


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_authz_table(env: Env, route: tuple[str, str]) -> None:
    method, path = route
    kind = ROUTES[route]
    c = env.client
    for user in ALL_USERS:
        req = build_request(env, method, path, user)
        headers = env.auth(user) if user else {}
        r = c.request(headers=headers, **req)
        want = expected_status(kind, user)
        where = f"{method} {req['url']} as {user}"
        if want == "ok":
            assert 200 <= r.status_code < 300, f"{where}: {r.status_code} {r.text[:300]}"
        else:
            assert r.status_code == int(want), f"{where}: {r.status_code} {r.text[:300]}"
        if r.status_code == 401:
            assert r.headers.get("www-authenticate") == "Bearer"
    if kind == PUBLIC:
        return
    # bad credentials of every sort: 401, whatever the route
    expired = _expired_token(env)
    revoked = _revoked_token(env)
    bad = [
        "Bearer rbt_0123456789ab_garbage",
        "Bearer garbage",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        f"Bearer {expired}",
        f"Bearer {revoked}",
        f"Bearer {env.tokens['root']}x",
    ]
    for authorization in bad:
        req = build_request(env, method, path, None)
        r = c.request(headers={"Authorization": authorization}, **req)
        assert r.status_code == 401, f"{method} {req['url']} with {authorization[:12]}…"
    # a forged session cookie is no credential either
    req = build_request(env, method, path, None)
    c.cookies.set(SESSION_COOKIE, "forged")
    r = c.request(**req)
    assert r.status_code == 401
    c.cookies.clear()


def _expired_token(env: Env) -> str:
    with admin.opened(env.db) as c:
        t = control.create_token(c, "root", label="short", ttl=1e-6)
    _wait_past(t.expires_at)
    return t.secret


def _wait_past(moment: float | None) -> None:
    import time

    assert moment is not None
    while time.time() <= moment:
        time.sleep(0.001)


def _revoked_token(env: Env) -> str:
    with admin.opened(env.db) as c:
        t = control.create_token(c, "root", label="revoked")
        control.revoke_token(c, t.id, control.User("root", "admin"))
    return t.secret


def test_pages_need_a_session(lite: Env) -> None:
    c = lite.client
    run_id = lite.run_id
    for page in (f"/p/{PROJECT}/", f"/p/{PROJECT}/runs/{run_id}", f"/p/{PROJECT}/compare"):
        for cookies in ({}, {SESSION_COOKIE: "forged-session"}):
            c.cookies.clear()
            for name, value in cookies.items():
                c.cookies.set(name, value)
            r = c.get(page, follow_redirects=False)
            assert r.status_code == 303, (page, r.status_code)
            loc = urllib.parse.urlsplit(r.headers["location"])
            assert loc.path == "/login" and not loc.netloc
            assert urllib.parse.parse_qs(loc.query)["next"] == [page]
        # an API token works for pages too; a non-member is refused
        r = c.get(page, headers=lite.auth("rita"), follow_redirects=False)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        r = c.get(page, headers=lite.auth("olga"), follow_redirects=False)
        assert r.status_code == 403
    c.cookies.clear()
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = c.get("/search", params={"where": "status == 'finished'"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_search_page_lists_only_readable_projects(lite: Env) -> None:
    c = lite.client
    c.cookies.clear()
    params = {"data": lite.oid}
    seen = c.get("/search", params={"where": "status == 'finished'"}, headers=lite.auth("rita"))
    assert seen.status_code == 200 and lite.run_id in seen.text and f"/p/{PROJECT}/" in seen.text
    hidden = c.get("/search", params={"where": "status == 'finished'"}, headers=lite.auth("olga"))
    assert hidden.status_code == 200 and lite.run_id not in hidden.text
    # hostile input is shown escaped, and a bad expression is a message, not an error page
    r = c.get("/search", params={"where": "<script>x", **params}, headers=lite.auth("rita"))
    assert r.status_code == 200 and "<script>x" not in r.text and 'id="search-error"' in r.text


# -- sessions and CSRF --------------------------------------------------------------------


def _login(c: TestClient, token: str, next_url: str = "/") -> Any:
    return c.post(
        "/login",
        content=urllib.parse.urlencode({"token": token, "next": next_url}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def test_session_and_csrf(env: Env) -> None:
    c = env.client
    c.cookies.clear()
    r = _login(c, "rbt_nope_nope")
    assert r.status_code == 401 and SESSION_COOKIE not in r.cookies
    r = _login(c, env.tokens["wanda"], f"/p/{PROJECT}/")
    assert r.status_code == 303 and r.headers["location"] == f"/p/{PROJECT}/"
    set_cookies = r.headers.get_list("set-cookie")
    session_line = next(s for s in set_cookies if s.startswith(f"{SESSION_COOKIE}="))
    csrf_line = next(s for s in set_cookies if s.startswith(f"{CSRF_COOKIE}="))
    assert "httponly" in session_line.lower() and "samesite=lax" in session_line.lower()
    assert "httponly" not in csrf_line.lower()  # the page's script echoes it
    session = r.cookies[SESSION_COOKIE]
    csrf = r.cookies[CSRF_COOKIE]
    assert session and csrf and session != csrf
    assert env.tokens["wanda"] not in session_line + csrf_line

    # reads with the cookie alone
    assert c.get("/api/v1/me").json()["user"] == "wanda"
    assert c.get(f"/p/{PROJECT}/", follow_redirects=False).status_code == 200
    assert c.get(f"/p/{PROJECT}/api/runs/{env.run_id}/notes").status_code == 200

    # unsafe requests need the CSRF token in the header
    url = f"/p/{PROJECT}/api/runs/{env.run_id}/notes"
    assert c.post(url, json={"text": "no csrf"}).status_code == 403
    r = c.post(url, json={"text": "wrong csrf"}, headers={"X-CSRF-Token": csrf + "x"})
    assert r.status_code == 403
    r = c.post(url, json={"text": "empty"}, headers={"X-CSRF-Token": ""})
    assert r.status_code == 403
    # another session's CSRF token does not fit this session
    other = TestClient(env.app)
    other_csrf = _login(other, env.tokens["walt"]).cookies[CSRF_COOKIE]
    assert c.post(url, json={"text": "x"}, headers={"X-CSRF-Token": other_csrf}).status_code == 403
    r = c.post(url, json={"text": "with csrf"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["author"] == "wanda"
    texts = [n["text"] for n in c.get(url).json()["notes"]]
    assert texts == ["with csrf"]
    # a cross-site logout (no CSRF token) is refused and does not end the session
    r = c.post("/logout", follow_redirects=False)
    assert r.status_code == 403
    assert c.get("/api/v1/me").status_code == 200

    # logout ends it: the old cookie is refused from then on
    c.cookies.set(SESSION_COOKIE, session)
    r = c.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    c.cookies.clear()
    c.cookies.set(SESSION_COOKIE, session)
    assert c.get("/api/v1/me").status_code == 401
    r = c.get(f"/p/{PROJECT}/", follow_redirects=False)
    assert r.status_code == 303
    c.cookies.clear()


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/x",
        "https://evil.example/",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_login_refuses_open_redirects(lite: Env, next_url: str) -> None:
    c = lite.client
    r = _login(c, lite.tokens["rita"], next_url)
    assert r.status_code == 303
    loc = r.headers["location"]
    parts = urllib.parse.urlsplit(loc)
    assert not parts.scheme and not parts.netloc, loc
    # browsers drop tabs and newlines and read backslashes as slashes
    cleaned = loc.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    assert cleaned.startswith("/") and not cleaned.startswith("//"), loc
    page = c.get("/login", params={"next": next_url}).text
    assert "evil.example" not in page or 'name="next" value="/"' in page
    c.cookies.clear()


# -- tokens -------------------------------------------------------------------------------


def _all_control_rows(env: Env) -> str:
    with admin.opened(env.db) as c:
        out = []
        for table in ("users", "tokens", "sessions", "members", "projects", "server_meta"):
            out.extend(repr(row) for row in c.query(f"SELECT * FROM {table}"))
        return "\n".join(out)


def test_tokens_hashed_expiring_revocable_shown_once(env: Env) -> None:
    c = env.client
    root = env.auth("root")
    # a new user's first token, and tokens made through the API
    r = c.post("/api/v1/users", json={"name": "newbie"}, headers=root)
    assert r.status_code == 201
    first = r.json()["token"]
    r = c.post(
        "/api/v1/tokens", json={"label": "laptop"}, headers={"Authorization": f"Bearer {first}"}
    )
    assert r.status_code == 201
    made = r.json()
    second, second_id = made["token"], made["id"]
    assert second.startswith("rbt_") and made["expires_at"] is None
    login = _login(c, second)
    session, csrf = login.cookies[SESSION_COOKIE], login.cookies[CSRF_COOKIE]
    c.cookies.clear()
    secrets = [first, second, session, *env.tokens.values()]

    # stored hashed: no secret in any table, nor in the database's bytes
    rows = _all_control_rows(env)
    for s in secrets:
        assert s not in rows
        assert control.secret_hash(s) in rows  # what is kept instead
    assert csrf in rows  # (the CSRF token is no credential by itself: kept as is)
    if env.db_path is not None:
        blobs = b"".join(p.read_bytes() for p in env.db_path.parent.rglob("*") if p.is_file())
        for s in secrets:
            assert s.encode() not in blobs
            assert s[-32:].encode() not in blobs  # not even the random part

    # shown once: the list never has a secret (nor its hash)
    listed = c.get("/api/v1/tokens", headers={"Authorization": f"Bearer {second}"})
    assert listed.status_code == 200
    ids_listed = {t["id"] for t in listed.json()["tokens"]}
    assert second_id in ids_listed and len(ids_listed) == 2
    for s in secrets:
        assert s not in listed.text and control.secret_hash(s) not in listed.text
    for t in listed.json()["tokens"]:
        assert set(t) == {"id", "label", "created_at", "expires_at", "revoked_at", "last_used_at"}

    # revocation: the token stops working at once; another user cannot revoke it
    other = c.delete(f"/api/v1/tokens/{second_id}", headers=env.auth("wanda"))
    assert other.status_code == 404  # "no token": no hint that it exists
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    r = c.delete(f"/api/v1/tokens/{second_id}", headers={"Authorization": f"Bearer {first}"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert _login(c, second).status_code == 401
    revoked = {
        t["id"]: t
        for t in c.get("/api/v1/tokens", headers={"Authorization": f"Bearer {first}"}).json()[
            "tokens"
        ]
    }
    assert revoked[second_id]["revoked_at"] is not None

    # expiry: a token with a tiny lifetime stops working when it is over
    r = c.post(
        "/api/v1/tokens", json={"ttl_days": 1e-9}, headers={"Authorization": f"Bearer {first}"}
    )
    assert r.status_code == 201
    short = r.json()
    _wait_past(short["expires_at"])
    assert (
        c.get("/api/v1/me", headers={"Authorization": f"Bearer {short['token']}"}).status_code
        == 401
    )
    assert _login(c, short["token"]).status_code == 401
    # bad lifetimes are refused
    for ttl in (0, -1, 1e9):
        r = c.post("/api/v1/tokens", json={"ttl_days": ttl}, headers=root)
        assert r.status_code == 422
    c.cookies.clear()


# -- tampered uploads, missing objects, ownership, cross-project ---------------------------


def test_tampered_upload_and_missing_objects(env: Env) -> None:
    c = env.client
    w = env.auth("wanda")
    claimed = hash_bytes(b"the real bytes " + uuid.uuid4().bytes)
    r = c.put(f"/p/{PROJECT}/api/objects/{claimed}", content=b"other bytes", headers=w)
    assert r.status_code == 422, r.text
    # nothing stored, and the project does not hold it
    assert not any(claimed.split(":")[1] in p.name for p in env.objects.rglob("*"))
    r = c.post(f"/p/{PROJECT}/api/objects/missing", json={"oids": [claimed]}, headers=w)
    assert r.json()["missing"] == [claimed]
    assert c.get(f"/p/{PROJECT}/api/objects/{claimed}", headers=w).status_code == 404
    # an empty body is no object either
    r = c.put(f"/p/{PROJECT}/api/objects/{claimed}", content=b"", headers=w)
    assert r.status_code == 422

    # a bundle referencing objects the project lacks: 409 listing them, nothing stored
    new_id, bundle = env.fresh_bundle()
    bundle["objects"] = {**bundle["objects"], claimed: "data"}
    r = c.put(f"/p/{PROJECT}/api/runs/{new_id}/bundle", json=bundle, headers=w)
    assert r.status_code == 409, r.text
    assert r.json()["missing"] == [claimed]
    assert c.get(f"/p/{PROJECT}/api/runs/{new_id}/bundle", headers=w).status_code == 404
    r = c.post(f"/p/{PROJECT}/api/runs/{new_id}/live", json=bundle, headers=w)
    assert r.status_code == 409 and r.json()["missing"] == [claimed]
    # a bundle for another run than the URL's
    other_id = ids.new_run_id()
    r = c.put(f"/p/{PROJECT}/api/runs/{other_id}/bundle", json=env.bundle, headers=w)
    assert r.status_code == 400


def test_a_run_cannot_point_at_objects_its_project_does_not_hold(
    env: Env, source: tuple[Store, str]
) -> None:
    """The rows of a run (code tree, logs, packages, data) are checked, not only the
    bundle's ``objects`` list: another project's bytes cannot be read by naming them."""
    c = env.client
    olga = env.auth("olga")  # a writer of OTHER only, who knows the hashes of PROJECT's run
    new_id, bundle = env.fresh_bundle()
    bundle["objects"] = {}  # claims to need nothing
    r = c.put(f"/p/{OTHER}/api/runs/{new_id}/bundle", json=bundle, headers=olga)
    assert r.status_code == 409, r.text
    # the objects the rows name directly (the manifests' blobs are asked for once the
    # project holds the manifests: another project's manifest is never read for it)
    direct = run_objects(source[0], source[1], expand=False)
    assert set(r.json()["missing"]) == set(direct)
    assert c.get(f"/p/{OTHER}/api/runs/{new_id}/logs", headers=olga).status_code == 404
    r = c.post(f"/p/{OTHER}/api/runs/{new_id}/live", json=bundle, headers=olga)
    assert r.status_code == 409


def test_body_limits(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware, "MAX_BUNDLE", 1000)
    monkeypatch.setattr(middleware, "MAX_OBJECT_BYTES", 100)
    monkeypatch.setattr(uploads, "MAX_OBJECT_BYTES", 100)
    c, w = env.client, env.auth("wanda")
    new_id, bundle = env.fresh_bundle()
    r = c.put(f"/p/{PROJECT}/api/runs/{new_id}/bundle", json=bundle, headers=w)
    assert r.status_code == 413, r.text
    big = b"x" * 101
    r = c.put(f"/p/{PROJECT}/api/objects/{hash_bytes(big)}", content=big, headers=w)
    assert r.status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield big[:60]
        yield big[60:]

    r = c.put(f"/p/{PROJECT}/api/objects/{hash_bytes(big)}", content=chunked(), headers=w)
    assert r.status_code == 413
    r = c.post(f"/p/{PROJECT}/api/objects/missing", json={"oids": [hash_bytes(big)]}, headers=w)
    assert r.json()["missing"] == [hash_bytes(big)]


def test_disabled_user_is_refused_at_once(env: Env) -> None:
    c = env.client
    with admin.opened(env.db) as db:
        control.set_disabled(db, "walt", True)
    assert c.get("/api/v1/me", headers=env.auth("walt")).status_code == 401
    with admin.opened(env.db) as db:
        control.set_disabled(db, "walt", False)
    assert c.get("/api/v1/me", headers=env.auth("walt")).status_code == 200


def test_run_ownership(env: Env) -> None:
    c = env.client
    url = f"/p/{PROJECT}/api/runs/{env.run_id}/bundle"
    # walt (another writer) cannot replace wanda's run, nor publish into it
    r = c.put(url, json=env.bundle, headers=env.auth("walt"))
    assert r.status_code == 403, r.text
    live = f"/p/{PROJECT}/api/runs/{env.run_id}/live"
    r = c.post(
        live,
        json={"bundle_version": 1, "run": {"id": env.run_id, "status": "failed"}},
        headers=env.auth("walt"),
    )
    assert r.status_code == 403
    got = c.get(url, headers=env.auth("rita")).json()
    assert (
        got["run"]["user_name"] == "wanda" and got["run"]["status"] == env.bundle["run"]["status"]
    )
    # wanda can, and so can a project admin
    assert c.put(url, json=env.bundle, headers=env.auth("wanda")).status_code == 200
    assert c.put(url, json=env.bundle, headers=env.auth("padmin")).status_code == 200
    assert c.get(url, headers=env.auth("rita")).json()["run"]["user_name"] == "padmin"


def test_objects_are_not_lent_across_projects(env: Env) -> None:
    c = env.client
    oid, data = env.oid, env.oid_bytes
    a, b = env.auth("wanda"), env.auth("olga")  # wanda: alpha only; olga: beta only
    root = env.auth("root")
    assert (
        c.post(f"/p/{PROJECT}/api/objects/missing", json={"oids": [oid]}, headers=a).json()[
            "missing"
        ]
        == []
    )
    r = c.post(f"/p/{OTHER}/api/objects/missing", json={"oids": [oid]}, headers=b)
    assert r.status_code == 200 and r.json()["missing"] == [oid]
    # not by hash, not even for a server admin: the object is not beta's
    assert c.get(f"/p/{OTHER}/api/objects/{oid}", headers=b).status_code == 404
    assert c.get(f"/p/{OTHER}/api/objects/{oid}", headers=root).status_code == 404
    assert c.get(f"/p/{PROJECT}/api/objects/{oid}", headers=b).status_code == 403
    # a run in beta referencing it is refused until beta proves it has the bytes
    new_id, bundle = env.fresh_bundle()
    r = c.put(f"/p/{OTHER}/api/runs/{new_id}/bundle", json=bundle, headers=b)
    assert r.status_code == 409 and oid in r.json()["missing"]
    r = c.put(f"/p/{OTHER}/api/objects/{oid}", content=data, headers=b)
    assert r.status_code == 201
    assert c.get(f"/p/{OTHER}/api/objects/{oid}", headers=b).content == data
    # a project's runs are its own
    assert c.get(f"/p/{OTHER}/api/runs/{env.run_id}/bundle", headers=b).status_code == 404
    assert c.get(f"/p/{OTHER}/api/runs/{env.run_id}", headers=root).status_code == 404


def test_hostile_values_are_client_errors(env: Env) -> None:
    """What PostgreSQL or UTF-8 cannot store (NUL, lone surrogates) is a 4xx on both
    backends, never a database error; so is a live delta for a run the server lacks."""
    c = env.client
    h = {**env.auth("wanda"), "Content-Type": "application/json"}
    p, run = f"/p/{PROJECT}/api", env.run_id
    bodies = [
        ("POST", f"{p}/runs/{run}/notes", '{"text": "a\\u0000b"}'),
        ("POST", f"{p}/runs/{run}/notes", '{"text": "a\\ud800b"}'),
        ("POST", "/api/v1/tokens", '{"label": "a\\u0000b"}'),
        ("POST", "/api/v1/tokens", '{"label": "\\udfff"}'),
        (
            "POST",
            f"{p}/runs/{run}/live",
            json.dumps({"bundle_version": 1, "run": {"id": run, "name": "a\x00"}}),
        ),
        (
            "PUT",
            f"{p}/runs/{run}/bundle",
            json.dumps({**env.bundle, "tags": [{"run_id": run, "key": "k", "value": "\ud800"}]}),
        ),
        ("PUT", f"{p}/views/v", '{"spec": {"version": 1, "where": "a\\u0000b"}}'),
        ("PUT", f"{p}/views/v", '{"spec": {"version": 1, "panels": [{"metric": "\\udfff"}]}}'),
    ]
    for method, url, body in bodies:
        r = c.request(method, url, content=body.encode("utf-8", "surrogatepass"), headers=h)
        assert 400 <= r.status_code < 500, (
            f"{method} {url} {body[:80]}: {r.status_code} {r.text[:200]}"
        )
    gets = [
        f"{p}/runs/a%00b",
        f"{p}/runs/{run}/notes".replace(run, "x%00"),
        f"{p}/runs?where=params.lr%20%3D%3D%20%27%00%27",
        f"{p}/runs/{run}/series/lo%00ss",
        f"{p}/runs/{run}/code/file?path=a%00b",
        f"{p}/compare?runs=%00",
        f"{p}/diff?a={run}&b=%00",
        f"{p}/importance?metric=b%00est",
        "/api/v1/search?where=user%20%3D%3D%20%27%00%27",
        f"{p}/runs/{run}/bundle?data=%00",
        f"{p}/views/a%00b",
        f"{p}/panel?where=params.lr%20%3D%3D%20%27%00%27",
        f"{p}/panel?metrics=lo%00ss",
        f"{p}/runs/{run}/media?key=sam%00ples",
        f"{p}/runs/{run}/media/table?key=pr%00eds",
    ]
    for url in gets:
        r = c.get(url, headers=h)
        assert 400 <= r.status_code < 500, f"{url}: {r.status_code} {r.text[:200]}"
    # bytes that are no UTF-8 in a query: decoded with replacement characters
    r = c.get(f"{p}/runs?where=params.lr%20%3D%3D%20%27%ED%A0%80%27", headers=h)
    assert r.status_code == 200 and r.json()["runs"] == []
    # a live delta for a run the server does not have: refused, nothing half-written
    new_id = ids.new_run_id()
    r = c.post(
        f"{p}/runs/{new_id}/live",
        json={"bundle_version": 1, "run": {"id": new_id, "status": "running"}},
        headers=h,
    )
    assert 400 <= r.status_code < 500, r.text
    assert c.get(f"{p}/runs/{new_id}", headers=h).status_code == 404
    assert c.get(f"{p}/views/v", headers=h).status_code == 404  # no refused view was saved


# -- secrets never in logs ----------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[_Capture]:
    cap = _Capture()
    names = [
        None,
        ACCESS_LOGGER,
        "runbase",
        "runbase.server",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "fastapi",
    ]
    saved = []
    for name in names:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level, lg.propagate))
        lg.setLevel(logging.DEBUG)
        lg.addHandler(cap)
    yield cap
    for lg, level, propagate in saved:
        lg.removeHandler(cap)
        lg.setLevel(level)
        lg.propagate = propagate


def test_no_secret_in_logs(
    request: pytest.FixtureRequest, tmp_path: Path, source: tuple[Store, str], captured: _Capture
) -> None:
    password = "Pw-" + uuid.uuid4().hex
    env = make_env("postgresql", tmp_path, request, source, password=password)
    assert password in env.db
    c = env.client
    try:
        secrets = [password, *env.tokens.values()]
        tok = env.tokens["wanda"]
        c.get("/api/v1/me", headers={"Authorization": f"Bearer {tok}"})
        c.get(
            "/api/v1/search",
            params={"where": f"params.token == '{tok}'", "token": tok, "password": password},
            headers=env.auth("root"),
        )
        c.get(f"/p/{PROJECT}/api/runs?access_token={tok}", headers=env.auth("rita"))
        c.get("/api/v1/me", headers={"Authorization": f"Bearer {tok}x"})  # refused
        c.get(f"/login?next=/p/{PROJECT}/?token={tok}")
        login = _login(c, tok, f"/?token={tok}")
        session, csrf = login.cookies[SESSION_COOKIE], login.cookies[CSRF_COOKIE]
        secrets += [session, csrf]
        _login(c, tok + "wrong")
        c.cookies.set(SESSION_COOKIE, session)
        c.get("/api/v1/me")
        c.post(
            f"/p/{PROJECT}/api/runs/{env.run_id}/notes",
            json={"text": "hi"},
            headers={"X-CSRF-Token": csrf},
        )
        c.post(
            f"/p/{PROJECT}/api/runs/{env.run_id}/notes",
            json={"text": "hi"},
            headers={"X-CSRF-Token": csrf + "bad"},
        )
        r = c.post("/api/v1/tokens", json={"label": "x"}, headers=env.auth("wanda"))
        secrets.append(r.json()["token"])
        r = c.post("/api/v1/users", json={"name": "logged"}, headers=env.auth("root"))
        secrets.append(r.json()["token"])
        c.get("/readyz")
        c.post("/logout", headers={"X-CSRF-Token": csrf})
        c.cookies.clear()
        server = env.app.state.server
        logging.getLogger("runbase.server").info("config %s", server.config.describe())
        # an unreachable database: its error names no password either
        with pytest.raises(Exception) as failed:
            from runbase.server.service import Server

            Server(
                ServerConfig(
                    db=f"postgresql://bob:{password}@127.0.0.1:1/none", objects=str(tmp_path / "o2")
                )
            )
        assert password not in str(failed.value)
    finally:
        c.__exit__(None, None, None)

    # client-side logs (httpx logs the URLs it requests) are not the server's
    server_records = [r for r in captured.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(_formatted(r) for r in server_records)
    for s in secrets:
        assert s not in text
    access = [r.getMessage() for r in server_records if r.name == ACCESS_LOGGER]
    assert len(access) >= 15
    for line in access:
        entry = json.loads(line)
        assert {"method", "path", "status", "ms", "user"} <= set(entry)
        assert isinstance(entry["status"], int) and isinstance(entry["ms"], float | int)
        assert "?" not in entry["path"]
    users = {json.loads(line)["user"] for line in access}
    assert {"wanda", "root", "rita"} <= users


def _formatted(record: logging.LogRecord) -> str:
    out = record.getMessage()
    if record.exc_info:
        out += "\n" + logging.Formatter().formatException(record.exc_info)
    return out + " " + repr(record.__dict__.get("args"))


# -- fuzzing the schema -------------------------------------------------------------------


def _fuzz(
    env: Env, headers: dict[str, str], max_examples: int, pin: bool
) -> tuple[list[str], Counter[int]]:
    schemathesis = require("schemathesis")
    hypothesis = require("hypothesis")
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", env.app)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(ROUTES)
    for operation in operations:

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases each run: a failure reproduces
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=_cases(operation))
        def run(case: Any) -> None:
            if pin:  # mostly the real project and run: deeper than "no such project"
                params = case.path_parameters or {}
                if "project" in params:
                    params["project"] = PROJECT
                if "ref" in params and len(params["ref"]) % 2:
                    params["ref"] = env.run_id
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            route = (case.operation.method.upper(), case.operation.path)
            if not headers and response.status_code < 300 and ROUTES[route] != PUBLIC:
                failures.append(f"{case.method} {case.formatted_path}: no credential, but 2xx")
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: {response.text[:300]}"
                )
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as e:  # keep fuzzing the other operations; report all at the end
            failures.append(f"{operation.label}: {type(e).__name__}: {str(e)[:500]}")
    # the fuzzing reached the handlers: most requests were answered, not refused
    assert sum(statuses.values()) >= len(operations) * 3, statuses
    return failures, statuses


def _cases(operation: Any) -> Any:
    """Valid requests, and invalid ones (the server must answer those with a 4xx)."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


def test_fuzz_as_admin_no_server_errors(env: Env) -> None:
    failures, statuses = _fuzz(env, env.auth("root"), 20, pin=True)
    assert not failures, "\n".join(failures)
    assert sum(n for code, n in statuses.items() if 200 <= code < 300) >= len(ROUTES), statuses
    assert not statuses[401] and not statuses[403], statuses  # all of it reached handlers


def test_fuzz_unauthenticated_no_server_errors(lite: Env) -> None:
    failures, statuses = _fuzz(lite, {}, 10, pin=False)
    assert not failures, "\n".join(failures)
    assert statuses[401] > 0 and set(statuses) <= {200, 400, 401, 404, 422}, statuses


# -- review findings: each a regression test ------------------------------------------------


def test_a_manifest_cannot_hide_the_blobs_it_names(env: Env) -> None:
    """A writer of OTHER knows the hash of PROJECT's secret: a run of OTHER whose code
    tree names it must not make the server show it (a malformed manifest is refused, a
    well-formed one asks for the secret to be sent)."""
    c, olga = env.client, env.auth("olga")
    secret = b"weights of another project " + uuid.uuid4().bytes
    x = hash_bytes(secret)
    assert (
        c.put(
            f"/p/{PROJECT}/api/objects/{x}", content=secret, headers=env.auth("wanda")
        ).status_code
        == 201
    )
    for manifest, status in (
        ({"entries": [{"path": "loot.txt", "type": "f", "oid": x}]}, 422),  # no format
        (
            {
                "format": "runbase-tree",
                "version": 1,
                "entries": [{"path": "loot.txt", "type": "f", "oid": x}],
            },
            409,
        ),
    ):
        raw = json.dumps(manifest).encode()
        m = hash_bytes(raw)
        assert c.put(f"/p/{OTHER}/api/objects/{m}", content=raw, headers=olga).status_code == 201
        new_id, bundle = env.fresh_bundle()
        run = bundle["run"]
        run.update(code_json=json.dumps({"kind": "git", "tree": m}), logs_json=None)
        run.update(packages_id=None, notebook_json=None)
        for table in ("params", "run_files", "media"):  # only the manifest names objects
            bundle[table] = []
        bundle["objects"] = {m: "code"}
        r = c.put(f"/p/{OTHER}/api/runs/{new_id}/bundle", json=bundle, headers=olga)
        assert r.status_code == status, r.text
        if status == 409:
            assert r.json()["missing"] == [x]
        raw_file = c.get(
            f"/p/{OTHER}/api/runs/{new_id}/code/raw", params={"path": "loot.txt"}, headers=olga
        )
        assert raw_file.status_code == 404 and secret not in raw_file.content


def test_a_live_update_never_reopens_an_ended_run(env: Env) -> None:
    c, w = env.client, env.auth("wanda")
    new_id, bundle = env.fresh_bundle()
    assert (
        c.put(f"/p/{PROJECT}/api/runs/{new_id}/bundle", json=bundle, headers=w).status_code == 200
    )
    late = {**bundle, "run": {**bundle["run"], "status": "running", "ended_at": None}}
    late.pop("run_files")
    r = c.post(f"/p/{PROJECT}/api/runs/{new_id}/live", json=late, headers=w)
    assert r.status_code == 409 and "has ended" in r.json()["detail"]
    assert c.get(f"/p/{PROJECT}/api/runs/{new_id}", headers=w).json()["status"] == "finished"


def test_revoking_a_token_ends_the_sessions_opened_with_it(env: Env) -> None:
    c = env.client
    made = c.post("/api/v1/tokens", json={"label": "browser"}, headers=env.auth("rita")).json()
    c.cookies.clear()
    _login(c, made["token"])
    assert c.get("/api/v1/me").status_code == 200  # the session cookie
    r = c.delete(f"/api/v1/tokens/{made['id']}", headers=env.auth("rita"))
    assert r.status_code == 200
    assert c.get("/api/v1/me").status_code == 401
    c.cookies.clear()


def test_project_names_fit_a_postgresql_schema_name(env: Env) -> None:
    c, root = env.client, env.auth("root")
    long = "x" * 57 + "-alpha"  # 63 characters: "rbp_" + it would be cut at 63 bytes
    assert c.post("/api/v1/projects", json={"name": long}, headers=root).status_code == 422
    with admin.opened(env.db) as db, pytest.raises(RunbaseError, match="1-59"):
        control.add_project(db, long)
    ok = "x" * 59
    assert c.post("/api/v1/projects", json={"name": ok}, headers=root).status_code == 201


def test_bodies_without_a_credential_are_cut_short(env: Env) -> None:
    new_id = ids.new_run_id()
    big = b"{" + b" " * (100 << 10) + b"}"
    r = env.client.put(f"/p/{PROJECT}/api/runs/{new_id}/bundle", content=big)
    assert r.status_code == 413
    r = env.client.put(f"/p/{PROJECT}/api/runs/{new_id}/bundle", content=b"{}")
    assert r.status_code == 401


def test_control_tables_of_version_1_are_migrated_not_guessed(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old" / "server.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    for stmt in control.CONTROL_V1:
        conn.execute(stmt)
    conn.execute("INSERT INTO server_meta VALUES ('control_version', '1')")
    conn.execute("INSERT INTO projects VALUES ('default', 0, NULL)")
    conn.commit()
    conn.close()
    with pytest.raises(RunbaseError, match="older than this runbase.*runbase server migrate"):
        create_server_app(ServerConfig(db=str(db), objects=str(tmp_path / "o")))
    admin.migrate(str(db), str(tmp_path / "o"))
    with admin.opened(str(db)) as c:
        assert control.control_version(c) == control.CONTROL_VERSION == 3
        assert c.query("SELECT token_id FROM sessions") == []


def test_environment_token_goes_only_to_known_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbase.remote import client as remote

    monkeypatch.setenv("RUNBASE_TOKEN", "rbt_envtoken")
    assert remote.token_for("https://evil.example") is None
    remote.add_remote("team", "https://runbase.example.com")
    assert remote.token_for("https://runbase.example.com/") == "rbt_envtoken"
    found = remote.split_remote_ref("https://evil.example/p/x/runs/0m97t8h8sc3wvjvs")
    assert found is not None and found[0].token is None
    with pytest.raises(RunbaseError, match="plain http"):
        remote.Client("http://runbase.internal:8080", "rbt_x")
    remote.Client("http://127.0.0.1:8080", "rbt_x")  # loopback: fine
    monkeypatch.setenv("RUNBASE_ALLOW_HTTP", "1")
    remote.Client("http://runbase.internal:8080", "rbt_x")


def test_pending_marks_are_cleared_per_remote(tmp_path: Path) -> None:
    from runbase.records.outbox import clear_pending, mark_pending, pending

    store = Store.open(tmp_path / ".runbase", create=True)
    mark_pending(store, "team-a", "r1")
    clear_pending(store, "r1", "team-b")  # pushed elsewhere: still owed to team-a
    assert pending(store) == [("r1", "team-a")]
    clear_pending(store, "r1", "team-a")
    assert pending(store) == []
    store.close()


def test_object_bytes_are_sent_as_they_are(env: Env) -> None:
    """Objects go out as stored (never gzipped on the fly: data is often compressed
    already, and gzip made large downloads 10x slower); JSON answers are still gzipped."""
    c, a = env.client, env.auth("wanda")
    data = b"compressible " * 4096
    oid = hash_bytes(data)
    assert c.put(f"/p/{PROJECT}/api/objects/{oid}", content=data, headers=a).status_code == 201
    r = c.get(f"/p/{PROJECT}/api/objects/{oid}", headers={**a, "Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == data
    assert "content-encoding" not in r.headers
    r = c.get(
        f"/p/{PROJECT}/api/runs/{env.run_id}/bundle", headers={**a, "Accept-Encoding": "gzip"}
    )
    assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"


def test_sweep_page_and_api_on_the_team_server(lite: Env) -> None:
    """The sweep page and its API (issue 21) are served per project, as the runs pages."""
    c = lite.client
    c.cookies.clear()
    sweep_id = _sweep_of_runs(lite)
    r = c.get(f"/p/{PROJECT}/sweeps/{sweep_id}", headers=lite.auth("rita"))
    assert r.status_code == 200 and "sweep.js" in r.text
    data = c.get(f"/p/{PROJECT}/api/sweeps/{sweep_id}", headers=lite.auth("rita")).json()
    assert data["total"] == 1 and not data["recorded"]
    listed = c.get(f"/p/{PROJECT}/api/sweeps", headers=lite.auth("rita")).json()
    assert sweep_id in {s["id"] for s in listed["sweeps"]}
    assert c.get(f"/p/{PROJECT}/sweeps/nosuch", headers=lite.auth("rita")).status_code == 404
    assert c.get(f"/p/{PROJECT}/sweeps/{sweep_id}", headers=lite.auth("olga")).status_code == 403
