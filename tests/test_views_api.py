"""Saved views of the runs page (docs/views.md; docs/api.md, "Saved views"): the API of
`runbase ui` in process over a store made by a real `runbase run`, a real `runbase
server` subprocess with users of each role in two projects, and the `runbase views`
command against both."""

from __future__ import annotations

import getpass
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import GIT, commit, documented_keys, runbase_cmd, start_server, write
from runbase.core import viewspec
from runbase.store import Store
from runbase.web.app import create_app
from runbase.web.pages import CSRF_COOKIE

DOCS = Path(__file__).parent.parent / "docs"

TRAIN = """\
import runbase
runbase.param("lr", 0.1)
for i in range(3):
    runbase.log(loss=1.0 / (i + 1), step=i)
"""

# every key of the spec, each set (docs/views.md's example has them all but some panel keys)
FULL = {
    "version": 1,
    "where": "params.lr < 0.5",
    "sort": "-metrics.loss",
    "group_by": "status",
    "sweep": "",
    "hybrids": True,
    "columns": ["params.lr", "metrics.loss"],
    "hidden": [],  # set to the real run's id by the test
    "chart": {
        "x": "relative",
        "log": True,
        "smoothing": 0.99,
        "clip": True,
        "band": "sd",
        "runs": 500,
        "group_by": "params.lr",
    },
    "panels": [
        {"id": "p1", "type": "line", "metric": "loss", "width": 4, "height": 3},
        {"id": "p2", "type": "scatter", "x": "params.lr", "y": "metrics.loss", "width": 1},
        {"id": "p3", "type": "parallel", "metrics": ["params.lr", "metrics.loss"]},
        {"id": "p4", "type": "importance", "metric": "loss"},
        {"id": "p5", "type": "bar", "metric": "loss", "height": 1},
        {"id": "p6", "type": "media", "key": "samples"},
    ],
}


def _spec(**keys: Any) -> dict[str, Any]:
    return {"version": 1, **keys}


# -- `runbase ui`: a store made by a real run ---------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git project with one real run: its root and the run's id."""
    root = tmp_path_factory.mktemp("views") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    commit(root, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, check=True)
    shown = runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout
    return root, json.loads(shown)["id"]


@pytest.fixture
def local(made: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Path, TestClient, str]]:
    """A copy of the made project (a store of its own for each test) served by the app
    of `runbase ui`: its root, a client, the run's id."""
    root = tmp_path / "proj"
    shutil.copytree(made[0], root)
    with TestClient(create_app(str(root / ".runbase"))) as client:
        yield root, client, made[1]


def _url(name: str) -> str:
    return "/api/views/" + urllib.parse.quote(name, safe="")


def _names(c: Any, base: str = "/api") -> list[str]:
    r = c.get(f"{base}/views")
    assert r.status_code == 200, r.text
    return [v["name"] for v in r.json()["views"]]


def test_create_replace_list_get_delete(local: tuple[Path, TestClient, str]) -> None:
    _, c, run_id = local
    assert c.get("/api/views").json() == {"views": [], "default": None}
    spec = {**FULL, "hidden": [run_id]}
    r = c.put(_url("baseline"), json={"spec": spec})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["name"] == "baseline" and view["spec"] == spec and view["default"] is False
    assert view["user"] == getpass.getuser()
    assert view["created_at"] == view["updated_at"] and view["created_at"].endswith("+00:00")
    assert c.get(_url("baseline")).json() == view

    replaced = c.put(_url("baseline"), json={"spec": _spec(where="params.lr > 0")})
    assert replaced.status_code == 200, replaced.text
    got = c.get(_url("baseline")).json()
    assert got == replaced.json() and got["spec"] == _spec(where="params.lr > 0")  # whole
    assert got["created_at"] == view["created_at"] and got["updated_at"] > view["updated_at"]

    # names are any printable text but "/": percent-encoded in the path
    odd = ["lr ≤ 0.1 (ünïcødé ✓)", "a?b#c%d&e=f", "x" * 100, " spaced "]
    for name in odd:
        assert c.put(_url(name), json={"spec": _spec()}).status_code == 201, name
        assert c.get(_url(name)).json()["name"] == name
    listing = c.get("/api/views").json()
    assert [v["name"] for v in listing["views"]] == sorted(["baseline", *odd])
    assert set(listing["views"][0]) == {"name", "default", "user", "created_at", "updated_at"}

    r = c.delete(_url("baseline"))
    assert r.status_code == 204 and r.content == b""
    assert c.get(_url("baseline")).status_code == 404
    r = c.delete(_url("baseline"))
    assert r.status_code == 404 and "no saved view 'baseline'" in r.json()["detail"]
    assert "baseline" not in _names(c)


def test_one_default_view(local: tuple[Path, TestClient, str]) -> None:
    _, c, _ = local

    def default() -> str | None:
        listing = c.get("/api/views").json()
        flagged = [v["name"] for v in listing["views"] if v["default"]]
        assert flagged == ([listing["default"]] if listing["default"] else [])
        for v in listing["views"]:  # one view's answer agrees with the listing
            assert c.get(_url(v["name"])).json()["default"] == v["default"]
        return listing["default"]  # type: ignore[no-any-return]

    assert c.put(_url("a"), json={"spec": _spec(), "default": True}).json()["default"] is True
    assert default() == "a"
    assert c.put(_url("b"), json={"spec": _spec()}).json()["default"] is False  # new: not
    assert default() == "a"
    assert c.put(_url("b"), json={"spec": _spec(), "default": True}).status_code == 200
    assert default() == "b"  # moved: a is no longer the default
    c.put(_url("b"), json={"spec": _spec(where="status == 'finished'")})  # absent: kept
    assert default() == "b"
    c.put(_url("a"), json={"spec": _spec(), "default": False})  # not the default: no change
    assert default() == "b"
    c.put(_url("b"), json={"spec": _spec(), "default": False})  # unset
    assert default() is None
    c.put(_url("a"), json={"spec": _spec(), "default": True})
    assert c.delete(_url("a")).status_code == 204  # deleting the default leaves none
    assert default() is None


BAD_SPECS: list[tuple[Any, str]] = [
    (_spec(colour="red"), "spec.colour: unknown key"),
    (_spec(chart={"x": "step", "zoom": 2}), "spec.chart.zoom: unknown key"),
    (_spec(panels=[{"type": "line", "title": "t"}]), "spec.panels[0].title: unknown key"),
    (_spec(where=7), "spec.where: must be a string"),
    (_spec(hybrids="yes"), "spec.hybrids: must be true or false"),
    (_spec(columns="params.lr"), "spec.columns: must be a list"),
    (_spec(columns=[1]), "spec.columns[0]: must be a string"),
    (_spec(hidden=["not-a-run"]), "spec.hidden[0]: must be a run id"),
    (_spec(chart={"x": "epoch"}), "spec.chart.x: must be one of 'step', 'time', 'relative'"),
    (_spec(chart={"smoothing": 1}), "spec.chart.smoothing: must be a finite number from 0"),
    (_spec(chart={"smoothing": "high"}), "spec.chart.smoothing"),
    (_spec(chart={"runs": 501}), "spec.chart.runs: must be an integer from 1 to 500"),
    (_spec(chart={"band": None}), "spec.chart.band: may not be null"),
    (_spec(chart=[]), "spec.chart: must be an object"),
    (_spec(panels=[{"type": "pie"}]), "spec.panels[0].type: must be one of 'line'"),
    (_spec(panels=[{"width": 5}]), "spec.panels[0].width: must be an integer from 1 to 4"),
    (_spec(panels=[{"width": True}]), "spec.panels[0].width"),  # a boolean is no integer
    (_spec(panels=[{"height": 1.5}]), "spec.panels[0].height"),
    (_spec(panels=[None]), "spec.panels[0]: may not be null"),
    (_spec(panels=[{"type": "line"}] * 101), "spec.panels: must be a list of at most 100"),
    (_spec(columns=["c" * 4000] * 17), "bytes of JSON, over 65536"),
    (_spec(where="a\x00b"), "spec.where: contains a NUL character"),
    (_spec(where=None), "spec.where: may not be null"),
    ({"version": 2}, "spec.version: must be one of 1"),
    ({"where": ""}, "spec: needs version"),
    ([], "a view spec is a JSON object"),
    ("{}", "a view spec is a JSON object"),
]


def test_default_alone_changes_only_the_flag(local: tuple[Path, TestClient, str]) -> None:
    """The page's "default" box sends `{default}` alone: the spec someone saved since
    the page loaded it stays (the box once wrote back the page's stale spec)."""
    _, c, _ = local
    assert c.put(_url("shared"), json={"spec": _spec(where="x > 1")}).status_code == 201
    # a colleague replaces the view; this page still holds the spec of x > 1
    assert c.put(_url("shared"), json={"spec": _spec(where="x > 2")}).status_code == 200
    before = c.get(_url("shared")).json()
    r = c.put(_url("shared"), json={"default": True})
    assert r.status_code == 200, r.text
    assert r.json() == {**before, "default": True}  # spec, user and times as they were
    assert c.get("/api/views").json()["default"] == "shared"
    assert c.put(_url("other"), json={"spec": _spec()}).status_code == 201
    assert c.put(_url("other"), json={"default": True}).json()["default"] is True
    assert c.get(_url("shared")).json()["default"] is False  # one default
    r = c.put(_url("other"), json={"default": False})
    assert r.status_code == 200 and r.json()["spec"] == _spec()
    assert c.get("/api/views").json()["default"] is None
    # no such view: 404, and none is made; neither spec nor default: 400
    r = c.put(_url("nope"), json={"default": True})
    assert r.status_code == 404 and "no saved view 'nope'" in r.json()["detail"]
    r = c.put(_url("shared"), json={})
    assert r.status_code == 400 and "spec, a default, or both" in r.json()["detail"]
    assert c.put(_url("shared"), json={"default": "yes"}).status_code == 422
    assert _names(c) == ["other", "shared"]
    assert c.get(_url("shared")).json()["spec"] == _spec(where="x > 2")


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_specs_are_refused_naming_the_problem(
    local: tuple[Path, TestClient, str], spec: Any, message: str
) -> None:
    _, c, _ = local
    assert c.put(_url("kept"), json={"spec": _spec(where="status == 'x'")}).status_code == 201
    for name in ("new", "kept"):  # neither created nor replaced
        r = c.put(_url(name), json={"spec": spec, "default": True})
        assert r.status_code == 400, r.text
        assert message in r.json()["detail"], r.json()
    assert c.get(_url("new")).status_code == 404
    kept = c.get(_url("kept")).json()
    assert kept["spec"] == _spec(where="status == 'x'") and kept["default"] is False
    assert _names(c) == ["kept"]


def test_bodies_no_json_can_hold(local: tuple[Path, TestClient, str]) -> None:
    _, c, _ = local
    h = {"Content-Type": "application/json"}
    bodies = {
        b'{"spec": {"version": 1, "chart": {"smoothing": NaN}}}': "NaN or an infinity",
        b'{"spec": {"version": 1, "where": "\\ud800"}}': "lone surrogate",
        b'{"spec": {"version": 1, "hidden": [[[[[[[[[[1]]]]]]]]]]}}': "nests deeper",
    }
    for body, message in bodies.items():
        r = c.put(_url("v"), content=body, headers=h)
        assert r.status_code == 400 and message in r.json()["detail"], (body, r.text)
    # another shape of body, or no JSON at all: FastAPI's validation, a 4xx
    for body in (b'{"spec": {"version": 1}, "extra": 1}', b"{}", b"[" * 100_000,
                 b'{"spec": {"version": 1}, "default": "yes"}', b"not json"):  # fmt: skip
        r = c.put(_url("v"), content=body, headers=h)
        assert r.status_code in (400, 422), (body[:40], r.status_code, r.text[:200])
    assert _names(c) == []


def test_runbase_ui_reads_no_more_of_a_body_than_a_spec_can_be(
    local: tuple[Path, TestClient, str],
) -> None:
    """runbase ui's only bodies are saved views: a larger one is a 413 before it is read
    whole (declared or streamed), the largest spec escaped still fits."""
    _, c, _ = local
    h = {"Content-Type": "application/json"}
    too_big = json.dumps({"spec": _spec(where="x" * (512 << 10))}).encode()
    r = c.put(_url("v"), content=too_big, headers=h)
    assert r.status_code == 413, (r.status_code, r.text[:200])

    def chunked() -> Iterator[bytes]:
        yield too_big[: len(too_big) // 2]
        yield too_big[len(too_big) // 2 :]

    r = c.put(_url("v"), content=chunked(), headers=h)
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert _names(c) == []
    spec = _spec(columns=[f"params.{i}" + "\u00e9" * 3000 for i in range(10)])
    r = c.put(_url("v"), content=json.dumps({"spec": spec}, ensure_ascii=True).encode(), headers=h)
    assert r.status_code == 201, r.text[:200]


BAD_NAMES = [
    ("a%2Fb", "may not hold '/'"),
    ("a/b", "may not hold '/'"),
    ("tab%09here", "control characters"),
    ("%1B%5B31mred", "control characters"),
    ("nul%00", "control characters"),
    ("x" * 101, "at most 100 characters"),
    ("%2E%2E", "cannot name a view"),
    ("%2E", "cannot name a view"),
]


@pytest.mark.parametrize(("path", "message"), BAD_NAMES, ids=[p[:12] for p, _ in BAD_NAMES])
def test_bad_names_are_refused(
    local: tuple[Path, TestClient, str], path: str, message: str
) -> None:
    _, c, _ = local
    for method in ("PUT", "GET", "DELETE"):
        r = c.request(method, f"/api/views/{path}", json={"spec": _spec()})
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert message in r.json()["detail"], r.json()
    assert _names(c) == []


def test_stored_rows_are_not_trusted(local: tuple[Path, TestClient, str]) -> None:
    """Rows another tool (or a damaged file) left: listed and opened as what fits."""
    root, c, _ = local
    rows = [
        ("damaged", "{not json", 0),
        ("odd", json.dumps({"version": 1, "where": 7, "hybrids": "yes", "chart": {"x": "epoch",
         "runs": 2}, "panels": [1, None, {"type": "pie", "width": 2}], "extra": True}), 1),
        ("newer", json.dumps({"version": 2, "where": "x"}), 1),
        ("nulls", json.dumps({"version": 1, "where": None, "columns": None, "chart": {"x": None},
         "panels": [{"type": None, "metric": "loss"}]}), 0),
        ("bad/name", json.dumps({"version": 1}), 0),
        ("bell\x07", json.dumps({"version": 1}), 0),
    ]  # fmt: skip
    store = Store.open(root / ".runbase")
    try:
        store.db.executemany(
            "INSERT INTO views (name, spec, is_default, user_name, created_at, updated_at) "
            "VALUES (?, ?, ?, 'someone', 1e300, -5)",
            rows,
        )
    finally:
        store.close()
    listing = c.get("/api/views").json()
    assert [v["name"] for v in listing["views"]] == ["damaged", "newer", "nulls", "odd"]
    assert listing["default"] == "newer"  # two rows say so: the first by name is
    assert [v["default"] for v in listing["views"]] == [False, True, False, False]
    assert listing["views"][0]["created_at"] is None  # not a time
    assert c.get(_url("damaged")).json()["spec"] == {"version": 1}
    assert c.get(_url("newer")).json()["spec"] == {"version": 1}
    odd = c.get(_url("odd")).json()
    assert odd["default"] is False
    assert odd["spec"] == {
        "version": 1,
        "where": "7",
        "chart": {"runs": 2},
        "panels": [{"width": 2}],
    }
    nulls = c.get(_url("nulls")).json()["spec"]
    assert nulls == {"version": 1, "columns": None, "chart": {}, "panels": [{"metric": "loss"}]}
    for view in listing["views"]:  # what was read can be saved back as it is (the page does)
        spec = c.get(_url(view["name"])).json()["spec"]
        r = c.put(_url(view["name"]), json={"spec": spec, "default": view["default"]})
        assert r.status_code == 200 and r.json()["spec"] == spec, r.text
    assert c.get("/api/views").json()["default"] == "newer"


def test_the_documents_name_every_key(local: tuple[Path, TestClient, str]) -> None:
    _, c, run_id = local
    views_doc = (DOCS / "views.md").read_text()
    assert documented_keys("views.md", None, within="## The spec") == set(viewspec.SPEC_KEYS)
    assert documented_keys("views.md", "chart") == set(viewspec.CHART_KEYS)
    assert documented_keys("views.md", "panels[]") == set(viewspec.PANEL_KEYS)
    assert set(FULL) == set(viewspec.SPEC_KEYS) and set(FULL["chart"]) == set(viewspec.CHART_KEYS)
    assert {k for p in FULL["panels"] for k in p} == set(viewspec.PANEL_KEYS)
    # the document's example is a valid spec
    example = json.loads(re.search(r"```json\n(.*?)```", views_doc, re.S).group(1))  # type: ignore[union-attr]
    assert c.put(_url("example"), json={"spec": example}).status_code == 201

    listing = c.get("/api/views").json()
    assert documented_keys("api.md", "GET /api/views") == set(listing) | set(listing["views"][0])
    view = c.get(_url("example")).json()
    assert documented_keys("api.md", "GET /api/views/{name}") == set(view)
    assert view["spec"] == example


# -- the `runbase views` command ----------------------------------------------------------


def test_cli(local: tuple[Path, TestClient, str]) -> None:
    root, c, _ = local

    def views(*args: str, code: int = 0) -> str:
        proc = runbase_cmd("views", *args, cwd=root)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        return proc.stdout + proc.stderr

    assert "no saved views" in views()
    c.put(_url("alpha"), json={"spec": FULL, "default": True})
    c.put(_url("beta"), json={"spec": _spec(where="params.lr > 0.1")})
    table = views()
    lines = table.splitlines()
    assert lines[0].split() == ["name", "default", "user", "updated"]
    assert lines[1].split()[:3] == ["alpha", "*", getpass.getuser()]
    assert lines[2].split()[:2] == ["beta", getpass.getuser()]
    assert views("ls") == table
    assert json.loads(views("--json")) == c.get("/api/views").json()
    assert json.loads(views("ls", "--json")) == c.get("/api/views").json()

    assert json.loads(views("show", "alpha", "--json")) == c.get(_url("alpha")).json()
    shown = views("show", "alpha")
    assert "view:     alpha  (default)" in shown and '"smoothing": 0.99' in shown
    assert "no saved view 'nope'" in views("show", "nope", code=1)
    assert "may not hold '/'" in views("show", "a/b", code=2)

    assert "beta is the default view" in views("default", "beta")
    assert c.get("/api/views").json()["default"] == "beta"
    assert json.loads(views("default", "alpha", "--json"))["default"] == "alpha"
    assert "no default view" in views("default", "--none")
    assert c.get("/api/views").json()["default"] is None
    assert "give a view's NAME or --none" in views("default", code=2)
    assert "give a view's NAME or --none" in views("default", "alpha", "--none", code=2)
    assert "no saved view 'nope'" in views("default", "nope", code=1)

    assert "deleted view alpha" in views("rm", "alpha")
    assert c.get(_url("alpha")).status_code == 404
    assert "no saved view 'alpha'" in views("rm", "alpha", code=1)
    gone = json.loads(views("rm", "beta", "--json"))
    assert gone == {"deleted": "beta", "views": [], "default": None}


# -- the team server: a real `runbase server` ---------------------------------------------


def _token(proc: subprocess.CompletedProcess[str]) -> str:
    """The API token `runbase server users add` prints (its last stdout line)."""
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A `runbase server` with two projects: in `default`, alice writes and bob reads;
    carol writes in `other` only."""
    tmp = tmp_path_factory.mktemp("team")
    db, objects = str(tmp / "server.db"), str(tmp / "objects")
    opts = ["--db", db]
    runbase_cmd("server", "migrate", *opts, "--objects", objects, check=True)
    runbase_cmd("server", "projects", "add", "other", *opts, check=True)
    tokens = {
        "alice": _token(runbase_cmd("server", "users", "add", "alice", *opts, check=True)),
        "bob": _token(runbase_cmd("server", "users", "add", "bob", "--project-role", "reader",
                                  *opts, check=True)),
        "carol": _token(runbase_cmd("server", "users", "add", "carol", "--project", "other",
                                    *opts, check=True)),
    }  # fmt: skip
    server = start_server(db, objects, log_dir=tmp)
    try:
        yield {"url": server.url, "tokens": tokens, "tmp": tmp}
    finally:
        server.stop()


def _as(team: dict[str, Any], user: str) -> httpx.Client:
    return httpx.Client(
        base_url=team["url"], headers={"Authorization": f"Bearer {team['tokens'][user]}"}
    )


def test_server_roles_and_projects(team: dict[str, Any]) -> None:
    name = "shared name"
    path = "/api/views/" + urllib.parse.quote(name, safe="")
    with _as(team, "alice") as alice, _as(team, "bob") as bob, _as(team, "carol") as carol:
        r = alice.put(f"/p/default{path}", json={"spec": _spec(where="x > 1"), "default": True})
        assert r.status_code == 201, r.text
        assert r.json()["user"] == "alice"  # the account, not the server's OS user
        assert (
            alice.put(f"/p/default{path}", json={"spec": _spec(where="x > 2")}).status_code == 200
        )

        # a reader reads, and may not write
        assert bob.get(f"/p/default{path}").json()["spec"] == _spec(where="x > 2")
        assert name in _names(bob, "/p/default/api")
        assert bob.put(f"/p/default{path}", json={"spec": _spec()}).status_code == 403
        assert bob.put("/p/default/api/views/bobs", json={"spec": _spec()}).status_code == 403
        assert bob.delete(f"/p/default{path}").status_code == 403
        assert bob.get(f"/p/default{path}").json()["spec"] == _spec(where="x > 2")
        assert "bobs" not in _names(alice, "/p/default/api")

        # views of one project are invisible in another, even under the same name
        assert carol.get("/p/default/api/views").status_code == 403
        assert carol.get(f"/p/default{path}").status_code == 403
        assert carol.put(f"/p/default{path}", json={"spec": _spec()}).status_code == 403
        r = carol.put(f"/p/other{path}", json={"spec": _spec(where="carol")})
        assert r.status_code == 201 and r.json()["default"] is False, r.text
        assert carol.put("/p/other/api/views/only-other", json={"spec": _spec()}).status_code == 201
        assert _names(carol, "/p/other/api") == ["only-other", name]
        assert alice.get(f"/p/default{path}").json()["spec"] == _spec(where="x > 2")
        assert alice.get("/p/default/api/views/only-other").status_code == 404
        assert alice.get("/p/default/api/views").json()["default"] == name
        assert carol.get("/p/other/api/views").json()["default"] is None

        # the writer deletes
        assert alice.delete(f"/p/default{path}").status_code == 204
        assert alice.get(f"/p/default{path}").status_code == 404
        assert carol.get(f"/p/other{path}").json()["spec"] == _spec(where="carol")
        # bad input is a 4xx on the server too
        r = alice.put("/p/default/api/views/x", json={"spec": _spec(panels=[{}] * 101)})
        assert r.status_code == 400 and "spec.panels" in r.json()["detail"]
        assert alice.put("/p/default/api/views/a%00b", json={"spec": _spec()}).status_code == 400
        assert (
            alice.put("/p/default/api/views/a%ED%A0%80b", json={"spec": _spec()}).status_code < 500
        )


def test_server_session_needs_its_csrf_token(team: dict[str, Any]) -> None:
    with httpx.Client(base_url=team["url"]) as c:
        r = c.post("/login", data={"token": team["tokens"]["alice"], "next": "/p/default/"})
        assert r.status_code == 303, r.text
        csrf = c.cookies[CSRF_COOKIE]
        url = "/p/default/api/views/by-cookie"
        assert c.get("/p/default/api/views").status_code == 200  # reads: the cookie alone
        assert c.put(url, json={"spec": _spec()}).status_code == 403
        r = c.put(url, json={"spec": _spec()}, headers={"X-CSRF-Token": csrf + "x"})
        assert r.status_code == 403
        assert c.get(url).status_code == 404  # nothing saved
        r = c.put(url, json={"spec": _spec()}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201 and r.json()["user"] == "alice", r.text
        assert c.delete(url).status_code == 403
        assert c.get(url).status_code == 200
        assert c.delete(url, headers={"X-CSRF-Token": csrf}).status_code == 204


def test_cli_lists_and_shows_a_remote_projects_views(team: dict[str, Any], tmp_path: Path) -> None:
    url = team["url"]  # the login goes to this test's own config file (conftest)
    runbase_cmd("login", url, "--token", team["tokens"]["bob"], cwd=tmp_path, check=True)
    runbase_cmd("remote", "add", "team", url, cwd=tmp_path, check=True)
    with _as(team, "alice") as alice:
        spec = {**FULL, "hidden": []}
        assert alice.put("/p/default/api/views/remote-one", json={"spec": spec}).status_code == 201
        listing = alice.get("/p/default/api/views").json()
        view = alice.get("/p/default/api/views/remote-one").json()

    def views(*args: str, code: int = 0) -> str:
        proc = runbase_cmd("views", *args, cwd=tmp_path)  # no local store needed
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        return proc.stdout + proc.stderr

    assert json.loads(views("--remote", "team", "--json")) == listing
    assert "remote-one" in views("ls", "--remote", "team")
    assert json.loads(views("show", "remote-one", "--remote", "team", "--json")) == view
    assert "HTTP 404" in views("show", "nope", "--remote", "team", code=1)
    assert "no remote 'elsewhere'" in views("--remote", "elsewhere", code=1)


def test_server_reads_no_more_of_a_view_body_than_a_spec_can_be(team: dict[str, Any]) -> None:
    """The body limit of the team server goes by route, matched whole: a view named
    `live` or `bundle`, or whose name holds `/objects/`, gets a view's limit (a spec is
    at most 64 KiB), not the run bundle's 512 MiB or an object's, which were parsed whole
    before the spec's size was checked."""
    too_big = json.dumps({"spec": _spec(where="x" * (512 << 10))}).encode()
    headers = {"Content-Type": "application/json"}
    with _as(team, "alice") as alice:
        for name in ("live", "bundle", "a%2Fobjects%2Fb", "runs%2F0123456789abcdef%2Flive", "x"):
            r = alice.put(f"/p/default/api/views/{name}", content=too_big, headers=headers)
            assert r.status_code == 413, (name, r.status_code, r.text[:200])

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield too_big[: len(too_big) // 2]
            yield too_big[len(too_big) // 2 :]

        r = alice.put("/p/default/api/views/live", content=chunked(), headers=headers)
        assert r.status_code == 413, r.text[:200]
        saved = set(_names(alice, "/p/default/api"))
        assert not saved & {"live", "bundle", "a/objects/b", "runs/0123456789abcdef/live", "x"}
        # the largest spec, spelled with \uXXXX escapes (3x its UTF-8 size), still fits
        spec = _spec(columns=[f"params.{i}" + "\u00e9" * 3000 for i in range(10)])
        assert 60_000 < len(json.dumps(spec, ensure_ascii=False).encode()) < viewspec.MAX_SPEC_BYTES
        body = json.dumps({"spec": spec}, ensure_ascii=True).encode()
        assert len(body) > 3 * 60_000
        r = alice.put("/p/default/api/views/live", content=body, headers=headers)
        assert r.status_code == 201, r.text[:200]
        assert alice.delete("/p/default/api/views/live").status_code == 204
