"""The JSON API of the web UI (docs/api.md), in process over ASGI, against real stores:
one filled by real `runbase run` commands in a git project, one filled through the
library (lifecycle + tracker, as a run fills it) with hundreds of runs and a
1,000,000-point series."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import HTTPException, Request

from conftest import GIT, commit, runbase_cmd, write
from runbase.analysis.diff import diff_runs
from runbase.capture.params import encode_value
from runbase.core.query import compile_sort, compile_where
from runbase.errors import RunbaseError, StoreError
from runbase.records import lifecycle, paging
from runbase.records.read import count_runs, list_runs, series
from runbase.records.record import build_record
from runbase.render import views
from runbase.store import Store
from runbase.tracking import tracker
from runbase.web import require_ui
from runbase.web.app import create_app

TRAIN = """\
import argparse
import sys

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--opt", default="adam")
a = p.parse_args()
for step in range(30):
    runbase.log(step=step, **{"loss": 1.0 / (step + 1) + a.lr, "val/loss": 2.0 / (step + 1)})
runbase.summary(acc=1.0 - a.lr)
print("héllo ✓ " * 3)
print("to stderr", file=sys.stderr)
for i in range(200):
    print(f"line {i} " + "x" * 40)
"""

PREP = """\
rows = open("raw.txt").read().splitlines()
open("clean.txt", "w").write("\\n".join(r for r in rows if r) + "\\n")
"""

FIT = """\
n = len(open("clean.txt").read().splitlines())
open("model.out", "w").write(str(n) * 10)
"""

EXPECTED_PATHS = {
    "/api/health",
    "/api/runs",
    "/api/runs/{ref}",
    "/api/runs/{ref}/series/{key}",
    "/api/runs/{ref}/code/tree",
    "/api/runs/{ref}/code/file",
    "/api/runs/{ref}/code/raw",
    "/api/runs/{ref}/code/diff",
    "/api/runs/{ref}/notebook",
    "/api/runs/{ref}/logs",
    "/api/runs/{ref}/lineage",
    "/api/compare",
    "/api/diff",
    "/api/importance",
    "/api/explain",
    "/api/highlight.css",
    "/api/panel",
    "/api/runs/{ref}/media",
    "/api/runs/{ref}/media/object/{oid}",
    "/api/runs/{ref}/media/table",
    "/api/views",
    "/api/views/{name}",
    "/api/sweeps",
    "/api/sweeps/{sweep_id}",
    "/api/models",
    "/api/models/resolve",
    "/api/models/verify",
    "/api/models/{name}",
    "/api/models/{name}/log",
}
# the routes that only write (POST): each has its own `## \`POST ...\`` section too
EXPECTED_WRITE_PATHS = {
    "/api/models/{name}/versions",
    "/api/models/{name}/promote",
    "/api/models/{name}/demote",
    "/api/models/{name}/rollback",
    "/api/models/requests/{request_id}/approve",
    "/api/models/requests/{request_id}/reject",
    "/api/models/events",
}


class Api:
    """GETs against an app in process (httpx over ASGI); an exception inside the app
    is raised here, so a would-be 500 fails the test loudly."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def _get_many(self, urls: list[str], headers: dict[str, str] | None) -> list[Any]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return list(await asyncio.gather(*(c.get(u, headers=headers) for u in urls)))

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return asyncio.run(self._get_many([url], headers))[0]

    def get_many(self, urls: list[str]) -> list[httpx.Response]:
        return asyncio.run(self._get_many(urls, None))

    def json(self, url: str, status: int = 200) -> Any:
        r = self.get(url)
        assert r.status_code == status, (url, r.status_code, r.text[:500])
        assert r.headers["content-type"].startswith("application/json")
        return r.json()


# -- the stores ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A git project with real runs: three of train.py, prep -> fit (lineage), one with
    an uncommitted change, one that fails."""
    root = tmp_path_factory.mktemp("webapi") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\n")
    write(root, "train.py", TRAIN)
    write(root, "prep.py", PREP)
    write(root, "fit.py", FIT)
    write(root, "raw.txt", "a\n\nb\nc\n")
    (root / "blob.dat").write_bytes(b"\x00\x01\x02binary\xff")
    write(root, "data/big.csv", "x\n1\n")  # a data file: left out of the snapshot
    write(root, "notes.txt", "".join(f"note {i:06d} <b>&</b>\n" for i in range(14_000)))
    write(root, "tool", "#!/bin/sh\necho hi\n")
    (root / "tool").chmod(0o755)
    commit(root, "initial")
    py = sys.executable
    ids = {}
    for name, lr, opt in (("a", "0.1", "adam"), ("b", "0.01", "adam"), ("c", "0.01", "sgd")):
        runbase_cmd(
            "run", "--name", f"train-{name}", "--tag", f"team={'vision' if name != 'c' else 'nlp'}",
            "--", py, "train.py", "--lr", lr, "--opt", opt, cwd=root, check=True,
        )  # fmt: skip
    runbase_cmd(
        "run", "--name", "prep", "-i", "raw.txt", "-o", "clean.txt", "--", py, "prep.py",
        cwd=root, check=True,
    )  # fmt: skip
    runbase_cmd(
        "run", "--name", "fit", "-i", "clean.txt", "-o", "model.out", "--", py, "fit.py",
        cwd=root, check=True,
    )  # fmt: skip
    with (root / "train.py").open("a") as f:
        f.write("# tuned by hand\n")
    runbase_cmd(
        "run", "--name", "dirty", "--", py, "train.py", "--lr", "0.05", cwd=root, check=True
    )
    failed = runbase_cmd("run", "--name", "boom", "--", py, "-c", "raise SystemExit(3)", cwd=root)
    assert failed.returncode == 3
    for r in json.loads(runbase_cmd("ls", "--json", "--limit", "0", cwd=root, check=True).stdout):
        ids[r["name"]] = r["id"]
    store = Store.open(root / ".runbase")
    app = create_app(str(root / ".runbase"))
    yield {"root": root, "ids": ids, "store": store, "api": Api(app), "app": app}
    app.state.store_pool.close()
    store.close()


N_GRID = 400
BIG_POINTS = 1_000_000


def _library_run(
    store: Store,
    project: Path,
    params: dict[str, Any],
    points: dict[str, list[float]],
    summary: dict[str, float],
    tags: dict[str, str] | None = None,
    sweep_id: str | None = None,
    status: str = "finished",
) -> str:
    """A run as `runbase.init()` records one: create, spool params/metrics, finalize."""
    rid = lifecycle.create_run(
        store,
        command=["python", "train.py"],
        mode="api",
        project_root=str(project),
        cwd=str(project),
        tags=tags,
        sweep_id=sweep_id,
    )
    t = tracker.Tracker(rid, str(store.root))
    tracker.activate(t)
    try:
        for k, v in params.items():
            t.event("param", key=k, value=encode_value(k, v), source="argparse")
        for key, vals in points.items():
            for step, v in enumerate(vals):
                tracker.log(step=step, **{key: v})
        if summary:
            t.event("summary", values=summary)
    finally:
        t.close()
        tracker.deactivate()
    lifecycle.finalize(store, rid, status, exit_code=0 if status == "finished" else 1)
    return rid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """400 library runs with ties, missing keys, NaN, text and mixed-type params, tags
    and two sweeps; plus one run with a 1,000,000-point series."""
    base = tmp_path_factory.mktemp("grid")
    project = base / "p"
    project.mkdir()
    store = Store.open(base / "store", create=True)
    rnd = random.Random(7)
    for i in range(N_GRID):
        params: dict[str, Any] = {
            "lr": rnd.choice([0.1, 0.01, 0.001]),
            "opt": rnd.choice(["adam", "sgd"]),
            "seed": i,
        }
        if i % 5:
            params["mixed"] = rnd.choice([1, 2.5, "auto", True, None])
        acc = rnd.choice([0.5, 0.75, 0.9, rnd.random()])
        summary = {"acc": float("nan") if i % 37 == 0 else acc}
        if i % 11 == 0:
            summary = {}  # no acc at all
        _library_run(
            store,
            project,
            params,
            {"loss": [1.0 / (s + 1) for s in range(3)]},
            summary,
            tags={"team": rnd.choice(["vision", "nlp"])} if i % 3 == 0 else None,
            sweep_id=("S1" if i % 8 == 0 else "S2") if i % 4 == 0 else None,
            status="failed" if i % 10 == 7 else "finished",
        )
    big_vals = [math.sin(i / 5000.0) for i in range(BIG_POINTS)]
    big_vals[123_457] = -50.0  # a lone spike each way: the envelope must keep them
    big_vals[876_543] = 75.0
    big_vals[500_000] = float("nan")
    big_vals[600_000] = float("inf")
    big = _library_run(store, project, {"lr": 0.5}, {"big": big_vals}, {})
    app = create_app(str(base / "store"))
    yield {"store": store, "api": Api(app), "app": app, "big": big, "root": base / "store"}
    app.state.store_pool.close()
    store.close()


# -- /api/health, /openapi.json, packaging -----------------------------------------------------------


def test_health_and_openapi_list_every_endpoint(site: dict[str, Any]) -> None:
    api = site["api"]
    h = api.json("/api/health")
    assert h["ok"] is True and h["version"] and h["api_version"] == 1
    spec = api.json("/openapi.json")
    paths = {p for p in spec["paths"] if p.startswith("/api")}
    assert paths == EXPECTED_PATHS | EXPECTED_WRITE_PATHS
    for p in EXPECTED_PATHS:
        assert "get" in spec["paths"][p]
        assert spec["paths"][p]["get"].get("summary")
    for p in EXPECTED_WRITE_PATHS:
        assert spec["paths"][p]["post"].get("summary")
    posts = set(re.findall(r"^## `POST ([^`?]+)`$", API_DOC.read_text(), flags=re.M))
    assert {p.replace("{id}", "{request_id}") for p in posts} == EXPECTED_WRITE_PATHS


def test_library_modules_stay_light() -> None:
    code = (
        "import sys, runbase.render.views, runbase.web\n"
        "heavy = {'fastapi', 'starlette', 'pydantic', 'uvicorn', 'plotly', 'pygments', 'httpx'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", f"runbase.render.views / runbase.web imported {out}"


def test_missing_extra_names_the_install_command() -> None:
    with pytest.raises(RunbaseError, match=r"pip install 'runbase\[ui\]'"):
        require_ui("fastapi", "no_such_module_for_runbase_tests")
    require_ui()  # the test extra installs all of them


def test_missing_store_fails_at_creation(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        create_app(str(tmp_path / "nowhere"))


def test_plotly_js_is_served_with_cache_headers(site: dict[str, Any]) -> None:
    api = site["api"]
    r = api.get("/static/vendor/plotly.min.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert "max-age" in r.headers["cache-control"]
    assert len(r.content) > 1_000_000 and b"plotly" in r.content[:5000].lower()
    again = api.get("/static/vendor/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_auth_hook_guards_every_api_route(site: dict[str, Any]) -> None:
    def auth(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer s3cret":
            raise HTTPException(status_code=401, detail="who are you?")

    app = create_app(str(site["root"] / ".runbase"), auth=auth)
    api = Api(app)
    try:
        for path in ("/api/health", "/api/runs", f"/api/runs/{site['ids']['fit']}/lineage"):
            assert api.get(path).status_code == 401
            assert api.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        app.state.store_pool.close()


def test_concurrent_requests_each_get_their_own_store(site: dict[str, Any]) -> None:
    api, ids = site["api"], site["ids"]
    urls = [
        "/api/runs?sort=-metrics.acc",
        f"/api/runs/{ids['train-a']}",
        f"/api/runs/{ids['train-b']}/series/loss",
        f"/api/runs/{ids['fit']}/lineage",
        f"/api/runs/{ids['dirty']}/code/diff",
    ] * 6
    rs = api.get_many(urls)
    assert [r.status_code for r in rs] == [200] * len(urls)
    first = {u: r.json() for u, r in zip(urls, rs, strict=True)}
    for u, r in zip(urls, rs, strict=True):
        assert r.json() == first[u]


# -- /api/runs -------------------------------------------------------------------------------------


def test_runs_page_shape(site: dict[str, Any]) -> None:
    api, ids, store = site["api"], site["ids"], site["store"]
    page = api.json("/api/runs")
    assert page["total"] == len(ids) and page["offset"] == 0 and page["limit"] == 50
    assert [r["id"] for r in page["runs"]] == [r["id"] for r in list_runs(store)]
    a = next(r for r in page["runs"] if r["name"] == "train-a")
    assert set(a) >= {
        "id", "name", "status", "user", "host", "started_at", "duration_s", "sweep_id",
        "tags", "params", "metrics", "exit_code",
    }  # fmt: skip
    assert a["params"] == {"lr": 0.1, "opt": "adam"}
    assert a["metrics"]["acc"] == pytest.approx(0.9)
    assert a["metrics"]["loss"] == pytest.approx(1 / 30 + 0.1)
    assert a["tags"] == {"team": "vision"}
    assert a["status"] == "finished" and a["exit_code"] == 0 and a["duration_s"] > 0
    assert a["started_at"].startswith("20") and "T" in a["started_at"]
    boom = next(r for r in page["runs"] if r["name"] == "boom")
    assert boom["status"] == "failed" and boom["exit_code"] == 3
    assert page["param_keys"] == ["lr", "opt"]
    assert page["metric_keys"] == ["acc", "loss", "val/loss"]
    assert page["tag_keys"] == ["team"]


def test_runs_filter_sort_group(site: dict[str, Any]) -> None:
    api = site["api"]
    page = api.json("/api/runs?where=params.lr%20%3C%200.1&sort=-metrics.acc")
    # b and c tie on acc (0.99): the later run first, as in `runbase ls`
    assert [r["name"] for r in page["runs"]] == ["train-c", "train-b", "dirty"]
    assert page["total"] == 3
    g = api.json("/api/runs?group_by=tag:team")
    assert sorted((x["key"], x["count"]) for x in g["groups"] if x["key"]) == [
        ("nlp", 1),
        ("vision", 2),
    ]
    assert sum(x["count"] for x in g["groups"]) == g["total"]
    g = api.json("/api/runs?group_by=param:opt&where=params.opt")
    assert {x["key"]: x["count"] for x in g["groups"]} == {"adam": 3, "sgd": 1}
    g = api.json("/api/runs?group_by=status")
    assert {x["key"]: x["count"] for x in g["groups"]} == {"finished": 6, "failed": 1}


WHERES = [
    None,
    "params.lr < 0.05",
    'params.opt == "adam" and metrics.acc > 0.6',
    "not params.mixed",
    "params.mixed == 1 or tags.team",
    'tags.team == "nlp"',
    "metrics.loss.min < 0.5",
    'status == "failed"',
    "sweep == S1",
    "params.seed >= 390",
    "params.lr == 99",  # matches nothing
]
SORTS = [
    None,
    "-metrics.acc",
    "metrics.acc",
    "metrics.loss.min",
    "-metrics.loss.count",
    "params.lr",
    "-params.mixed",
    "params.mixed",
    "tags.team",
    "-tags.team",
    "name",
    "-duration",
    "status, -params.seed",
    "-metrics.nosuchkey",
]


def test_runs_paging_matches_the_cli(grid: dict[str, Any]) -> None:
    """Every filter x sort, several pages: exactly `runbase ls --where --sort`."""
    api, store = grid["api"], grid["store"]
    for where in WHERES:
        total = count_runs(store, where)
        for sort in SORTS:
            expected = [r["id"] for r in list_runs(store, where, sort, None)]
            assert len(expected) == total
            for limit, offset in ((50, 0), (7, 3), (100, 150), (1000, 0), (10, total - 4)):
                offset = max(offset, 0)
                page = views.runs_page(store, where, sort, limit, offset)
                got = [r["id"] for r in page["runs"]]
                assert got == expected[offset : offset + limit], (where, sort, limit, offset)
                assert page["total"] == total, (where, sort)
    q = "/api/runs?where=params.lr%20%3D%3D%200.01&sort=-metrics.acc&limit=20&offset=20"
    page = api.json(q)
    assert [r["id"] for r in page["runs"]] == [
        r["id"] for r in list_runs(store, "params.lr == 0.01", "-metrics.acc", 20, 20)
    ]


def test_paging_walk_and_sort_give_the_order_of_compile_sort(grid: dict[str, Any]) -> None:
    """The index walk and the one sort that paging chooses between both give exactly
    the order of `compile_sort` (the single ORDER BY `runbase ls` ran before), for every
    filter x sort, whole and by pages starting in each segment."""
    store = grid["store"]
    for where in WHERES:
        cond, args = compile_where(where)
        for sort in SORTS:
            order, order_args = compile_sort(sort)
            expected = [
                r[0]
                for r in store.db.query(
                    f"SELECT runs.id FROM runs WHERE {cond} ORDER BY {order}, runs.id DESC",
                    [*args, *order_args],
                )
            ]
            n = len(expected)
            for walk in (True, False, None):
                got = [r[0] for r in paging.page_rows(store, cond, args, sort, None, walk=walk)]
                assert got == expected, (where, sort, walk)
                for limit, offset in ((50, 0), (7, 3), (100, 150), (10, n - 4), (5, n + 1)):
                    offset = max(offset, 0)
                    page = paging.page_rows(store, cond, args, sort, limit, offset, walk=walk)
                    assert [r[0] for r in page] == expected[offset : offset + limit], (
                        where, sort, walk, limit, offset,
                    )  # fmt: skip
    rows = list_runs(store, "params.lr < 0.05", "-metrics.acc", None, 10)
    assert [r["id"] for r in rows] == [
        r["id"] for r in list_runs(store, "params.lr < 0.05", "-metrics.acc", None)
    ][10:]


def test_paging_walks_only_where_it_pays(grid: dict[str, Any]) -> None:
    """A walk for a page among the first runs of the index; a sort for all runs, a far
    page, or a filter that few of the first index entries match (a walk would pass
    most entries of the index)."""
    store = grid["store"]

    def pays(where: str | None, sort: str, limit: int | None, offset: int = 0) -> bool:
        cond, args = compile_where(where)
        return paging._walk_pays(store, cond, args, sort, limit, offset)

    assert pays(None, "-metrics.acc", 20)
    assert not pays(None, "-metrics.acc", None)  # all runs: one sort
    assert not pays(None, "-metrics.acc", 50, N_GRID // 2)  # far on
    assert not pays(None, "name", 50)  # no index to walk
    # 401 runs: the probe passes 12 index entries, a page of at most 6 may walk
    assert pays('params.opt == "adam" or params.opt == "sgd"', "-metrics.acc", 5)
    assert not pays("params.seed == 390", "-metrics.acc", 5)  # one run matches
    assert not pays("metrics.acc < 0.2", "-metrics.acc", 5)  # the last entries match
    assert pays("metrics.acc < 0.2", "metrics.acc", 5)  # the first ones do


def test_runs_page_values_nan_and_sweeps(grid: dict[str, Any]) -> None:
    api, store = grid["api"], grid["store"]
    page = api.json("/api/runs?sweep=S1&limit=1000&group_by=sweep")
    assert page["total"] == count_runs(store, "sweep == S1") == N_GRID // 8
    assert {r["sweep_id"] for r in page["runs"]} == {"S1"}
    assert page["groups"] == [{"key": "S1", "count": page["total"]}]
    every = api.json("/api/runs?limit=1000&group_by=sweep")
    counts = {g["key"]: g["count"] for g in every["groups"]}
    assert counts == {None: N_GRID + 1 - N_GRID // 4, "S1": N_GRID // 8, "S2": N_GRID // 8}
    nan_runs = [r for r in every["runs"] if r["metrics"].get("acc") == "NaN"]
    assert nan_runs  # NaN as in the run record: strict JSON
    assert every["param_keys"] == ["lr", "mixed", "opt", "seed"]
    assert every["metric_keys"] == ["acc", "big", "loss"]
    assert every["tag_keys"] == ["team"]
    with_mixed = {json.dumps(r["params"].get("mixed", "<none>")) for r in every["runs"]}
    assert {"1", "2.5", '"auto"', "true", "null", '"<none>"'} <= with_mixed


def test_runs_page_sorted_by_a_metric_walks_the_index(grid: dict[str, Any]) -> None:
    """The first page sorted by a metric, filtered by a param, reads the metric's
    (key, value) index in order instead of sorting every run (fast at 100,000 runs)."""
    store = grid["store"]
    cond, args = compile_where("params.lr < 0.05")
    from_where, seg_args, order, _ = paging.segments(cond, args, "-metrics.acc")[0]
    plan = " | ".join(
        str(r[3])
        for r in store.db.query(
            f"EXPLAIN QUERY PLAN SELECT runs.id {from_where} ORDER BY {order} LIMIT 50", seg_args
        )
    )
    assert "USING INDEX metrics_key_value" in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan  # only for the tiebreak, if at all
    keys = " | ".join(
        str(r[3])
        for r in store.db.query(
            "EXPLAIN QUERY PLAN WITH RECURSIVE k(key) AS (SELECT min(key) FROM params UNION ALL "
            "SELECT (SELECT min(key) FROM params WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
            "SELECT key FROM k"
        )
    )
    assert "SCAN params" not in keys.replace("COVERING INDEX", ""), keys


# -- /api/runs/{ref} -----------------------------------------------------------------------------------


def test_run_detail_is_the_record_plus_series(site: dict[str, Any]) -> None:
    api, ids, store = site["api"], site["ids"], site["store"]
    rec = api.json(f"/api/runs/{ids['dirty']}")
    expected = build_record(store, ids["dirty"])
    expected["duration_s"] = rec["duration_s"]
    liveness = {"heartbeat_at", "heartbeat_age_s", "stalled", "stall_after_s"}
    assert {k: v for k, v in rec.items() if k != "series" and k not in liveness} == expected
    assert rec["stalled"] is False and rec["heartbeat_age_s"] is None  # a finished run
    assert rec["series"] == [{"key": "loss", "count": 30}, {"key": "val/loss", "count": 30}]
    assert "tuned by hand" in rec["code"]["patch"]
    assert api.json(f"/api/runs/{ids['dirty']}?patch=false")["code"]["patch"] is None
    by_prefix = api.json(f"/api/runs/{ids['dirty'][:12]}")
    by_name = api.json("/api/runs/dirty")
    assert by_prefix["id"] == by_name["id"] == ids["dirty"]
    assert api.json("/api/runs/latest")["id"] == ids["boom"]


# -- series ---------------------------------------------------------------------------------------------


def test_series_short_is_whole_and_keys_may_have_slashes(site: dict[str, Any]) -> None:
    api, ids = site["api"], site["ids"]
    s = api.json(f"/api/runs/{ids['train-a']}/series/val/loss")
    assert s["key"] == "val/loss" and s["count"] == 30 and s["downsampled"] is False
    assert s["steps"] == list(range(30))
    assert s["values"] == pytest.approx([2.0 / (i + 1) for i in range(30)])
    assert s["min"] == s["max"] == s["values"]
    tail = api.json(f"/api/runs/{ids['train-a']}/series/loss?since_step=26")
    assert tail["steps"] == [27, 28, 29] and tail["last_step"] == 29
    none = api.json(f"/api/runs/{ids['train-a']}/series/loss?since_step=29")
    assert none["steps"] == [] and none["last_step"] == 29
    down = api.json(f"/api/runs/{ids['train-a']}/series/loss?points=4")
    assert down["downsampled"] is True and len(down["steps"]) == 4
    assert down["steps"] == [0, 7, 15, 22]
    assert down["max"][0] == pytest.approx(1.0 + 0.1) and down["min"][-1] == pytest.approx(
        1 / 30 + 0.1
    )


def test_million_point_series_is_downsampled_small_and_exact(grid: dict[str, Any]) -> None:
    api, store, big = grid["api"], grid["store"], grid["big"]
    raw = series(store, big, "big")
    assert len(raw) == BIG_POINTS
    finite = [v for v in raw.values if math.isfinite(v)]
    # its speed is measured in benchmarks/bench_ui.py (never timed in tests)
    url = f"/api/runs/{big}/series/big"
    r = api.get(url)
    assert r.status_code == 200
    assert len(r.content) < 200_000, len(r.content)
    s = r.json()
    assert s["count"] == BIG_POINTS and s["returned"] == 1000 and s["downsampled"] is True
    assert len(s["steps"]) == len(s["values"]) == len(s["min"]) == len(s["max"]) == 1000
    assert s["steps"] == [i * BIG_POINTS // 1000 for i in range(1000)]  # bucket starts
    # the envelope keeps the global extremes, NaN/inf are left out of it
    assert min(x for x in s["min"] if x is not None) == min(finite) == -50.0
    assert max(x for x in s["max"] if x is not None) == max(finite) == 75.0
    for i, (lo, v, hi) in enumerate(zip(s["min"], s["values"], s["max"], strict=True)):
        assert lo - 1e-12 <= v <= hi + 1e-12, i
        a, b = i * BIG_POINTS // 1000, (i + 1) * BIG_POINTS // 1000
        vals = [x for x in raw.values[a:b] if math.isfinite(x)]
        if i % 97 == 0 or i in (123, 876, 500, 600):
            assert lo == min(vals) and hi == max(vals)
            assert v == pytest.approx(sum(vals) / len(vals))
    tail = api.json(f"{url}?since_step={BIG_POINTS - 3}")
    assert tail["steps"] == [BIG_POINTS - 2, BIG_POINTS - 1] and tail["downsampled"] is False
    more = api.json(f"{url}?points=5000")
    assert more["returned"] == 5000


def test_downsample_nan_and_inf_become_null() -> None:
    nan, inf = float("nan"), float("inf")
    steps, vals, lo, hi = views.downsample([0, 1, 2], [1.0, nan, inf], 10)
    assert vals == lo == hi == [1.0, None, None]
    steps, vals, lo, hi = views.downsample(range(6), [nan, nan, 1.0, inf, -2.0, 4.0], 3)
    assert steps == [0, 2, 4]
    assert vals == [None, 1.0, 1.0] and lo == [None, 1.0, -2.0] and hi == [None, 1.0, 4.0]


# -- code -------------------------------------------------------------------------------------------------


def test_code_tree_file_raw_and_diff(site: dict[str, Any]) -> None:
    api, ids, root = site["api"], site["ids"], site["root"]
    tree = api.json(f"/api/runs/{ids['dirty']}/code/tree")
    assert tree["kind"] == "git" and tree["dirty"] is True and len(tree["commit"]) == 40
    paths = {f["path"]: f for f in tree["files"]}
    assert {"train.py", "prep.py", "fit.py", "blob.dat", ".gitignore"} <= set(paths)
    assert paths["train.py"]["size"] == (root / "train.py").stat().st_size
    assert paths["train.py"]["type"] == "f"
    assert {s["path"] for s in tree["skipped"]} >= {"data/big.csv"}

    f = api.json(f"/api/runs/{ids['dirty']}/code/file?path=train.py")
    assert f["binary"] is False and f["language"] == "Python" and f["truncated"] is False
    assert 'class="highlight"' in f["html"] and 'href="#L-1"' in f["html"]
    assert '<span class="kn">import</span>' in f["html"]  # highlighted, server-side
    assert "tuned by hand" in f["html"]
    raw = api.get(f"/api/runs/{ids['dirty']}/code/raw?path=train.py")
    assert raw.status_code == 200 and raw.content == (root / "train.py").read_bytes()
    assert raw.headers["x-content-type-options"] == "nosniff"

    big = api.json(f"/api/runs/{ids['dirty']}/code/file?path=notes.txt")
    assert big["truncated"] is True and big["size"] == (root / "notes.txt").stat().st_size
    assert "note 000000 &lt;b&gt;&amp;&lt;/b&gt;" in big["html"] and "<b>" not in big["html"]
    assert "note 013999" not in big["html"] and "note 010000" in big["html"]
    tool = api.json(f"/api/runs/{ids['dirty']}/code/file?path=tool")
    assert tool["type"] == "x" and tool["language"] == "Bash" and paths["tool"]["type"] == "x"

    b = api.json(f"/api/runs/{ids['dirty']}/code/file?path=blob.dat")
    assert b["binary"] is True and b["html"] is None and b["size"] == 10
    raw = api.get(f"/api/runs/{ids['dirty']}/code/raw?path=blob.dat")
    assert raw.content == (root / "blob.dat").read_bytes()
    assert raw.headers["content-type"] == "application/octet-stream"

    d = api.json(f"/api/runs/{ids['dirty']}/code/diff")
    assert d["dirty"] is True and d["commit"] == tree["commit"]
    assert "+# tuned by hand" in d["patch"] and 'class="highlight"' in d["html"]
    assert '<span class="gi">+# tuned by hand</span>' in d["html"]
    clean = api.json(f"/api/runs/{ids['train-a']}/code/diff")
    assert clean["patch"] is None and clean["html"] is None and clean["kind"] == "git"

    css = api.get("/api/highlight.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".highlight .kn" in css.text
    assert ".highlight" in api.get("/api/highlight.css?style=monokai").text


def test_code_of_a_run_without_snapshot(grid: dict[str, Any]) -> None:
    api, big = grid["api"], grid["big"]
    tree = api.json(f"/api/runs/{big}/code/tree")
    assert tree["kind"] is None and tree["files"] == []
    assert api.json(f"/api/runs/{big}/code/diff")["patch"] is None
    assert api.json(f"/api/runs/{big}/code/file?path=x.py", 404)["detail"]


# -- logs ------------------------------------------------------------------------------------------------


def test_logs_whole_and_paged(site: dict[str, Any]) -> None:
    api, ids, root = site["api"], site["ids"], site["root"]
    rid = ids["train-b"]
    expected = runbase_cmd("logs", rid, cwd=root, check=True).stdout
    whole = api.json(f"/api/runs/{rid}/logs")
    assert whole["text"] == expected and whole["done"] is True
    assert whole["next_offset"] == whole["size"] == len(expected.encode())
    err = api.json(f"/api/runs/{rid}/logs?stream=stderr")
    assert err["text"] == "to stderr\n" and err["done"] is True
    # small pages, cut in the middle of multi-byte characters, put back together exactly
    for limit in (1, 2, 3, 7, 1000):
        text, offset = "", 0
        for _ in range(20_000):
            page = api.json(f"/api/runs/{rid}/logs?offset={offset}&limit={limit}")
            text += page["text"]
            assert page["next_offset"] >= offset
            offset = page["next_offset"]
            if page["done"]:
                break
            if limit < 1000 and offset > 150:
                break  # the start (with the non-ASCII line) is enough at these sizes
        assert expected.startswith(text) and "héllo ✓" in text, limit
    past = api.json(f"/api/runs/{rid}/logs?offset=99999999")
    assert past["text"] == "" and past["done"] is True


def test_logs_of_a_live_run_then_finished(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    app = create_app(str(tmp_path / "store"))
    api = Api(app)
    rid = lifecycle.create_run(
        store, command=["x"], mode="api", project_root=str(tmp_path), cwd=str(tmp_path)
    )
    (store.spool_dir(rid) / "output.log").write_bytes("first ✓\n".encode())
    live = api.json(f"/api/runs/{rid}/logs")
    assert live == {
        "run": rid,
        "stream": "output",
        "status": "running",
        "offset": 0,
        "next_offset": len("first ✓\n".encode()),
        "size": len("first ✓\n".encode()),
        "text": "first ✓\n",
        "done": False,
    }
    with (store.spool_dir(rid) / "output.log").open("ab") as f:
        f.write("second\nthird ✓".encode()[:-1])  # a character still being written
    more = api.json(f"/api/runs/{rid}/logs?offset={live['next_offset']}")
    assert more["text"] == "second\nthird " and more["done"] is False
    with (store.spool_dir(rid) / "output.log").open("ab") as f:
        f.write("✓".encode()[-1:] + b"\n")
    lifecycle.finalize(store, rid, "finished", exit_code=0)
    end = api.json(f"/api/runs/{rid}/logs?offset={more['next_offset']}")
    assert end["text"] == "✓\n" and end["done"] is True and end["status"] == "finished"
    app.state.store_pool.close()
    store.close()


# -- lineage ----------------------------------------------------------------------------------------------


def test_lineage_graph(site: dict[str, Any]) -> None:
    api, ids = site["api"], site["ids"]
    g = api.json(f"/api/runs/{ids['fit']}/lineage")
    nodes = {n["id"]: n for n in g["nodes"]}
    runs = {n["name"] for n in g["nodes"] if n["kind"] == "run"}
    files = {n["path"] for n in g["nodes"] if n["kind"] == "file"}
    assert g["root"] == f"run:{ids['fit']}" and nodes[g["root"]]["root"] is True
    assert runs == {"fit", "prep"}
    assert {"clean.txt", "model.out", "raw.txt"} <= files
    label = {nid: n.get("path") or n.get("name") for nid, n in nodes.items()}
    edges = {(label[e["from"]], label[e["to"]], e["kind"]) for e in g["edges"]}
    assert ("clean.txt", "fit", "input") in edges
    assert ("fit", "model.out", "output") in edges
    assert ("prep", "clean.txt", "output") in edges
    assert ("raw.txt", "prep", "input") in edges
    assert all(e["from"] in nodes and e["to"] in nodes for e in g["edges"])
    down = api.json(f"/api/runs/{ids['prep']}/lineage?depth=1")
    assert {n["name"] for n in down["nodes"] if n["kind"] == "run"} == {"prep", "fit"}
    alone = api.json(f"/api/runs/{ids['prep']}/lineage?depth=0")
    assert {n["name"] for n in alone["nodes"] if n["kind"] == "run"} == {"prep"}
    assert {n["path"] for n in alone["nodes"] if n["kind"] == "file"} >= {"raw.txt", "clean.txt"}


# -- several runs --------------------------------------------------------------------------------------------


def test_compare_diff_importance(site: dict[str, Any], grid: dict[str, Any]) -> None:
    api, ids, store = site["api"], site["ids"], site["store"]
    c = api.json(f"/api/compare?runs={ids['train-a']},{ids['train-b']}&runs=train-c")
    assert [r["name"] for r in c["runs"]] == ["train-a", "train-b", "train-c"]
    assert c["params"] == ["lr", "opt"] and c["params_differ"] == ["lr", "opt"]
    assert c["metrics_differ"] == ["acc", "loss"] and c["metrics"] == ["acc", "loss", "val/loss"]
    assert c["series"] == ["loss", "val/loss"]
    c2 = api.json(f"/api/compare?runs=train-b,{ids['train-c']}")
    assert c2["params"] == ["opt", "lr"] and c2["params_differ"] == ["opt"]
    assert api.json(f"/api/compare?runs=train-a,{ids['prep']}")["series"] == []

    d = api.json(f"/api/diff?a={ids['train-a']}&b=dirty")
    assert d == json.loads(json.dumps(diff_runs(store, ids["train-a"], ids["dirty"])))
    assert d["params"]["changed"][0]["key"] == "lr"
    head = api.json("/api/diff?a=dirty")
    assert head["b"] is None and "tuned by hand" in head["head"]["patch"]
    only = api.json(f"/api/diff?a={ids['train-a']}&b=dirty&sections=params,metrics")
    assert set(only) == {"diff_version", "a", "b", "params", "metrics"}

    imp = grid["api"].json("/api/importance?metric=acc&where=params.opt%20%3D%3D%20%22adam%22")
    assert imp["metric"] == "acc" and imp["n_runs"] > 10
    assert {r["param"] for r in imp["rows"]} >= {"lr"} and "seed" not in imp["dropped"]
    by_sweep = grid["api"].json("/api/importance?metric=acc&sweep=S1")
    assert by_sweep["n_runs"] <= N_GRID // 8
    few = api.json("/api/importance?metric=acc&runs=train-a,train-b", 400)
    assert "at least 4 runs" in few["detail"]


# -- bad input: always a 4xx with a message, never a 500 --------------------------------------------------


def test_unknown_runs_are_404(site: dict[str, Any]) -> None:
    api, ids = site["api"], site["ids"]
    for path in (
        "/api/runs/nosuchrun",
        "/api/runs/nosuchrun/series/loss",
        "/api/runs/nosuchrun/code/tree",
        "/api/runs/nosuchrun/code/file?path=train.py",
        "/api/runs/nosuchrun/code/raw?path=train.py",
        "/api/runs/nosuchrun/code/diff",
        "/api/runs/nosuchrun/logs",
        "/api/runs/nosuchrun/lineage",
        f"/api/compare?runs={ids['train-a']},nosuchrun",
        f"/api/diff?a={ids['train-a']}&b=nosuchrun",
        "/api/diff?a=nosuchrun",
        "/api/importance?metric=acc&runs=nosuchrun",
    ):
        body = api.json(path, 404)
        assert "nosuchrun" in body["detail"], path


def test_bad_input_is_4xx_never_500(site: dict[str, Any]) -> None:
    api, ids = site["api"], site["ids"]
    rid = ids["train-a"]
    q = compile_where
    with pytest.raises(Exception) as e:
        q("params.lr <")
    body = api.json("/api/runs?where=params.lr%20%3C", 400)
    assert body["detail"] == str(e.value)
    cases = {
        "/api/runs?where=params.lr%20%3C%20%22x%22": 400,
        "/api/runs?where=bogus%20%3D%3D%201": 400,
        "/api/runs?where=(((": 400,
        "/api/runs?sort=-": 400,
        "/api/runs?sort=params.lr%20%3E%201": 400,
        "/api/runs?sort=nosuchfield": 400,
        "/api/runs?group_by=bogus": 400,
        "/api/runs?group_by=tag:": 400,
        "/api/runs?limit=5000": 422,
        "/api/runs?limit=0": 422,
        "/api/runs?limit=abc": 422,
        "/api/runs?offset=-1": 422,
        f"/api/runs?offset={10**30}": 422,
        "/api/runs/0": 400,  # every run id starts with 0: ambiguous
        f"/api/runs/{rid}/series/nosuchkey": 404,
        f"/api/runs/{rid}/series/loss?points=1": 422,
        f"/api/runs/{rid}/series/loss?points=1000000": 422,
        f"/api/runs/{rid}/series/loss?since_step=abc": 422,
        f"/api/runs/{rid}/series/loss?since_step={10**30}": 422,
        f"/api/runs/{rid}/code/file?path=nosuch.py": 404,
        f"/api/runs/{rid}/code/file?path=../../etc/passwd": 404,
        f"/api/runs/{rid}/code/file?path=/etc/passwd": 404,
        f"/api/runs/{rid}/code/file?path=data/big.csv": 404,
        f"/api/runs/{rid}/code/file?path=": 422,
        f"/api/runs/{rid}/code/file": 422,
        f"/api/runs/{rid}/code/raw?path=nosuch.py": 404,
        f"/api/runs/{rid}/logs?stream=bogus": 422,
        f"/api/runs/{rid}/logs?offset=-5": 422,
        f"/api/runs/{rid}/logs?limit=0": 422,
        f"/api/runs/{rid}/logs?limit={10**9}": 422,
        f"/api/runs/{rid}/lineage?depth=99": 422,
        f"/api/runs/{rid}/lineage?depth=-1": 422,
        "/api/compare": 400,
        "/api/compare?runs=": 400,
        "/api/compare?runs=" + ",".join([rid] * 101): 400,
        "/api/diff": 422,
        f"/api/diff?a={rid}&b={rid}&sections=bogus": 400,
        "/api/importance": 422,
        "/api/importance?metric=nosuchmetric": 400,
        "/api/importance?metric=acc&where=(((": 400,
        "/api/highlight.css?style=nosuchstyle": 400,
        "/api/nosuchendpoint": 404,
    }
    for path, status in cases.items():
        r = api.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.json()["detail"], path
    skipped = api.json(f"/api/runs/{rid}/code/file?path=data/big.csv", 404)["detail"]
    assert "left out" in skipped and "data/big.csv" in skipped


def test_pathological_expressions_are_400(site: dict[str, Any]) -> None:
    api = site["api"]
    import urllib.parse

    nasty = [
        "(" * 3000 + "params.lr" + ")" * 3000,
        "not " * 2400 + "params.lr",
        "params.lr in (" + ",".join(str(i) for i in range(1900)) + ")",
        " or ".join(f"params.p{i} < {i}" for i in range(600)),
        "x" * 20_000,  # over the length limit
    ]
    for expr in nasty:
        for param in ("where", "sort"):
            r = api.get(f"/api/runs?{param}=" + urllib.parse.quote(expr))
            assert r.status_code in (200, 400, 422), (param, expr[:40], r.status_code, r.text[:200])
    rnd = random.Random(3)
    alphabet = "params.metrics.tags.lr acc()\"`~<>=!,-* and or not in 0.1 1e9 \\'%_"
    for _ in range(300):
        expr = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 40)))
        for param in ("where", "sort"):
            r = api.get(f"/api/runs?{param}=" + urllib.parse.quote(expr))
            assert r.status_code in (200, 400), (param, expr, r.status_code, r.text[:200])


# -- docs/api.md is the spec ----------------------------------------------------------------------------

API_DOC = Path(__file__).parent.parent / "docs" / "api.md"


def _doc_sections() -> dict[str, str]:
    parts = re.split(r"^## `GET ([^`?]+)[^`]*`$", API_DOC.read_text(), flags=re.M)
    return {
        parts[i].replace("{run}", "{ref}"): parts[i + 1].split("\n## ")[0]
        for i in range(1, len(parts), 2)
    }


def _doc_keys(endpoint: str) -> set[str]:
    """Keys in the first column of the section's `| key | meaning |` tables."""
    keys: set[str] = set()
    in_keys = False
    for line in _doc_sections()[endpoint].splitlines():
        if line.startswith("| key |"):
            in_keys = True
        elif not line.startswith("|"):
            in_keys = False
        elif in_keys:
            m = re.match(r"\|\s*((?:`[^`]+`(?:,\s*)?)+)\s*\|", line)
            if m:
                keys |= set(re.findall(r"`([^`]+)`", m.group(1)))
    return keys


def test_api_doc_names_every_endpoint_and_key(site: dict[str, Any]) -> None:
    api, ids, store = site["api"], site["ids"], site["store"]
    assert set(_doc_sections()) == EXPECTED_PATHS
    fit, dirty = ids["fit"], ids["dirty"]

    assert set(api.json("/api/health")) == _doc_keys("/api/health")
    page = api.json("/api/runs?group_by=sweep&where=status%20!%3D%20%22nope%22")  # + notes
    assert set(page) | set(page["runs"][0]) == _doc_keys("/api/runs")
    rec = api.json(f"/api/runs/{dirty}")
    assert set(rec) - set(build_record(store, dirty)) == _doc_keys("/api/runs/{ref}")
    s = api.json(f"/api/runs/{dirty}/series/loss")
    assert set(s) == _doc_keys("/api/runs/{ref}/series/{key}")
    assert set(api.json(f"/api/runs/{dirty}/code/tree")) == _doc_keys("/api/runs/{ref}/code/tree")
    f = api.json(f"/api/runs/{dirty}/code/file?path=train.py")
    assert _doc_keys("/api/runs/{ref}/code/file") - set(f) == {"target"}
    d = api.json(f"/api/runs/{dirty}/code/diff")
    assert set(d) == _doc_keys("/api/runs/{ref}/code/diff")
    logs = api.json(f"/api/runs/{dirty}/logs")
    assert set(logs) == _doc_keys("/api/runs/{ref}/logs")
    nb = api.json(f"/api/runs/{fit}/notebook")
    assert set(nb) == _doc_keys("/api/runs/{ref}/notebook")
    assert nb["notebook"] is None and nb["cells"] == [] and nb["truncated"] is False
    g = api.json(f"/api/runs/{fit}/lineage")
    seen = set(g).union(*(set(n) for n in g["nodes"]))
    optional = {"url", "directory", "more_producers", "more_consumers"}
    assert seen <= _doc_keys("/api/runs/{ref}/lineage")
    assert _doc_keys("/api/runs/{ref}/lineage") - seen <= optional
    c = api.json(f"/api/compare?runs={fit},{dirty}")
    assert set(c) == _doc_keys("/api/compare")
    imp = api.json("/api/importance?metric=acc")  # train-a, -b, -c and dirty
    assert set(imp) == _doc_keys("/api/importance")


def test_importance_warns_when_the_runs_are_too_few(grid: dict[str, Any]) -> None:
    many = grid["api"].json("/api/importance?metric=acc")
    assert many["n_runs"] > 100 and many["warning"] is None
    few = grid["api"].json("/api/importance?metric=acc&where=params.seed%20%3C%2012")
    assert 4 <= few["n_runs"] < 12
    assert few["warning"].startswith(f"only {few['n_runs']} runs for ")
    assert "this ranking is mostly noise" in few["warning"]


def test_runs_filter_names_a_key_no_run_has(grid: dict[str, Any]) -> None:
    page = grid["api"].json("/api/runs?where=params.lrr%20%3C%200.05")
    assert page["total"] == 0
    assert page["notes"] == ["params.lrr exists in no run (did you mean params.lr?)"]
    ok = grid["api"].json("/api/runs?where=params.lr%20%3C%200.05&limit=1")
    assert ok["total"] > 0 and ok["notes"] == []
    assert "notes" not in grid["api"].json("/api/runs?limit=1")
