"""The chart panel of the runs page (`GET /api/panel`, `runbase.render.views.chart_panel`)
against a store filled by real `runbase run` commands, through the real app: one series
per run and metric, checked against the stored points; the table's filter, sort and
hidden runs; x as step, wall time and time since the start; groups with both bands;
downsampling; NaN; bad arguments."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import GIT, commit, documented_keys, runbase_cmd, write
from runbase.errors import QueryError, UsageError
from runbase.records import lifecycle
from runbase.records.ingest import ingest
from runbase.records.read import load_row, series
from runbase.render import views
from runbase.store import Store
from runbase.tracking import tracker
from runbase.web.app import create_app

TRAIN = """\
import argparse

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--n", type=int, default=30)
p.add_argument("--acc", action="store_true")
p.add_argument("--nan-at", type=int, default=-1)
a = p.parse_args()
for s in range(a.n):
    v = float("nan") if s == a.nan_at else a.lr * s + a.seed
    extra = {"acc": s / a.n} if a.acc else {}
    runbase.log(step=s, loss=v, **{"val/loss": 2 * v}, **extra)
"""

N = 30  # points of the short runs
LONG = 1000  # points of the long one

# name -> (tag team or None, arguments)
RUNS = {
    "s0": ("a", ["--lr", "0.1", "--seed", "0", "--acc"]),
    "s1": ("a", ["--lr", "0.1", "--seed", "1"]),
    "s5": ("b", ["--lr", "0.1", "--seed", "5"]),
    "long": ("b", ["--lr", "0.01", "--seed", "0", "--n", str(LONG)]),
    "nan": (None, ["--lr", "0.5", "--seed", "0", "--nan-at", "5"]),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("panel") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\n")
    write(root, "train.py", TRAIN)
    commit(root, "initial")
    for name, (team, args) in RUNS.items():
        tag = ["--tag", f"team={team}"] if team else []
        runbase_cmd(
            "run", "--name", name, *tag, "--", sys.executable, "train.py", *args,
            cwd=root, check=True,
        )  # fmt: skip
    listed = json.loads(runbase_cmd("ls", "--json", "--limit", "0", cwd=root, check=True).stdout)
    ids = {r["name"]: r["id"] for r in listed}
    store = Store.open(root / ".runbase")
    app = create_app(str(root / ".runbase"))
    with TestClient(app) as client:
        yield {"root": root, "ids": ids, "store": store, "client": client}
    app.state.store_pool.close()
    store.close()


def get(site: dict[str, Any], status: int = 200, **params: Any) -> Any:
    r = site["client"].get("/api/panel", params=params)
    assert r.status_code == status, (params, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def by_key(panel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in panel["metrics"]}


def runs_of(metric: dict[str, Any]) -> list[str]:
    return [s["run"] for s in metric["series"]]


def stored(site: dict[str, Any], name: str, key: str = "loss") -> Any:
    return series(site["store"], site["ids"][name], key)


def nulled(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def same(got: list[Any], want: list[Any]) -> bool:
    """Equal to the 8 significant digits the API prints (None where None)."""
    assert [v is None for v in got] == [v is None for v in want], (got, want)
    return [v for v in got if v is not None] == pytest.approx(
        [v for v in want if v is not None], rel=1e-7, abs=1e-12
    )


# -- the runs and their series ---------------------------------------------------------------


def test_one_series_per_run_and_metric_in_table_order(site: dict[str, Any]) -> None:
    p = get(site)
    ids = site["ids"]
    table = site["client"].get("/api/runs", params={"limit": 100}).json()
    assert p["x"] == "step"
    assert p["total"] == table["total"] == len(RUNS)
    assert [r["id"] for r in p["runs"]] == [r["id"] for r in table["runs"]]
    for row, trow in zip(p["runs"], table["runs"], strict=True):
        assert row == {**trow, "group": None}  # the table's rows, as /api/runs has them
    assert p["missing"] == [] and p["notes"] == []
    m = by_key(p)
    # every metric a shown run logged points of, sorted; system metrics never
    assert list(m) == sorted(m) and {"acc", "loss", "val/loss"} <= set(m)
    assert not any(k.startswith("sys/") for k in m)
    order = [r["id"] for r in p["runs"]]
    assert runs_of(m["loss"]) == order
    assert runs_of(m["val/loss"]) == order
    assert runs_of(m["acc"]) == [ids["s0"]]  # only the run that logged it
    assert "groups" not in m["loss"]
    short = next(s for s in m["loss"]["series"] if s["run"] == ids["s5"])
    pts = stored(site, "s5")
    assert short["count"] == N and short["downsampled"] is False
    assert short["x"] == pts.steps == list(range(N))
    assert same(short["y"], pts.values) and short["y"] == short["min"] == short["max"]
    # the library's answer has the stored values themselves; the API prints 8 digits
    lib = views.chart_panel(site["store"], metrics=["loss"])
    assert next(s for s in lib["metrics"][0]["series"] if s["run"] == ids["s5"])["y"] == (
        pts.values
    )
    assert any(len(repr(v)) > 10 for v in pts.values)  # 7.300000000000001
    assert all(len(repr(v)) <= 12 for v in short["y"])
    assert short["y"][3] == pytest.approx(0.1 * 3 + 5)


def test_nan_in_a_series_is_null(site: dict[str, Any]) -> None:
    p = get(site, metrics="loss,val/loss")
    for key in ("loss", "val/loss"):
        s = next(s for s in by_key(p)[key]["series"] if s["run"] == site["ids"]["nan"])
        assert s["y"][5] is None and s["min"][5] is None and s["max"][5] is None
        assert s["y"][6] == pytest.approx((2 if key == "val/loss" else 1) * 0.5 * 6)
        assert s["x"][5] == 5
        assert same(s["y"], nulled(stored(site, "nan", key).values))


def test_downsampling_is_bounded_by_points(site: dict[str, Any]) -> None:
    p = get(site, metrics="loss", points=10)
    long_id = site["ids"]["long"]
    s = next(s for s in by_key(p)["loss"]["series"] if s["run"] == long_id)
    pts = stored(site, "long")
    assert s["count"] == LONG and s["downsampled"] is True
    assert len(s["x"]) == len(s["y"]) == len(s["min"]) == len(s["max"]) == 10
    for i in range(10):
        chunk = pts.values[i * 100 : (i + 1) * 100]
        assert s["x"][i] == pts.steps[i * 100]
        assert s["y"][i] == pytest.approx(statistics.fmean(chunk), rel=1e-7)
        assert s["min"][i] == pytest.approx(min(chunk), rel=1e-7)
        assert s["max"][i] == pytest.approx(max(chunk), rel=1e-7)
    for other in by_key(p)["loss"]["series"]:  # 30 points: more than 10, downsampled too
        assert len(other["y"]) <= 10
    whole = get(site, metrics="loss", points=2000)
    s = next(s for s in by_key(whole)["loss"]["series"] if s["run"] == long_id)
    assert s["downsampled"] is False and same(s["y"], pts.values)


def test_x_time_and_relative_are_the_stored_times(site: dict[str, Any]) -> None:
    store, ids = site["store"], site["ids"]
    for name, points in (("s1", 200), ("long", 10)):
        pts = stored(site, name)
        started = load_row(store, ids[name])["started_at"]
        step = len(pts.values) // points if len(pts.values) > points else 1
        first = [pts.times[i * step] for i in range(min(points, len(pts.values)))]
        t = get(site, x="time", metrics="loss", points=points)
        rel = get(site, x="relative", metrics="loss", points=points)
        assert t["x"] == "time" and rel["x"] == "relative"
        ts = next(s for s in t["metrics"][0]["series"] if s["run"] == ids[name])
        rs = next(s for s in rel["metrics"][0]["series"] if s["run"] == ids[name])
        assert ts["x"] == pytest.approx(first, abs=1e-4)
        assert rs["x"] == pytest.approx([v - started for v in first], abs=1e-6)
        assert all(v >= 0 for v in rs["x"]) and rs["x"][0] < 60
        assert ts["y"] == rs["y"]


def test_exclude_hides_runs(site: dict[str, Any]) -> None:
    ids = site["ids"]
    p = get(site, exclude=f"{ids['s0']},{ids['s1']}")
    shown = [r["id"] for r in p["runs"]]
    assert ids["s0"] not in shown and ids["s1"] not in shown and len(shown) == len(RUNS) - 2
    assert p["total"] == len(RUNS)  # the filter's count, hidden runs included
    m = by_key(p)
    assert "acc" not in m  # only the hidden s0 logged it
    assert runs_of(m["loss"]) == shown
    repeated = site["client"].get(
        "/api/panel", params=[("exclude", ids["s0"]), ("exclude", ids["s1"])]
    )
    assert repeated.json() == p


def test_asked_metrics_and_missing(site: dict[str, Any]) -> None:
    ids = site["ids"]
    p = get(site, metrics=["val/loss", "nope", "loss"])
    assert [m["key"] for m in p["metrics"]] == ["val/loss", "loss"]  # as asked
    assert p["missing"] == ["nope"]
    p = get(site, metrics="acc", exclude=ids["s0"])
    assert p["metrics"] == [] and p["missing"] == ["acc"]
    p = get(site, metrics="acc", where="params.lr > 100")
    assert p["runs"] == [] and p["metrics"] == [] and p["missing"] == ["acc"]


def test_follows_where_sort_and_paging(site: dict[str, Any]) -> None:
    where, sort = "params.lr < 0.2", "-params.seed,name"
    p = get(site, where=where, sort=sort)
    table = site["client"].get("/api/runs", params={"where": where, "sort": sort}).json()
    order = [r["id"] for r in table["runs"]]
    assert [r["id"] for r in p["runs"]] == order and len(order) == 4
    assert runs_of(by_key(p)["loss"]) == order
    assert p["total"] == table["total"] == 4
    page = get(site, where=where, sort=sort, runs=2, offset=1)
    assert [r["id"] for r in page["runs"]] == order[1:3] and page["total"] == 4
    typo = get(site, where="params.lrr < 1")
    assert typo["runs"] == [] and "params.lrr" in typo["notes"][0]
    swept = get(site, sweep="no-such-sweep")
    assert swept["runs"] == [] and swept["total"] == 0


# -- groups ------------------------------------------------------------------------------------


def test_groups_minmax_and_sd_exact(site: dict[str, Any]) -> None:
    ids = site["ids"]
    for band in ("minmax", "sd"):
        p = get(site, metrics="loss", group_by="params.lr", band=band)
        group_of = {r["id"]: r["group"] for r in p["runs"]}
        assert group_of == {
            ids["s0"]: "0.1", ids["s1"]: "0.1", ids["s5"]: "0.1",
            ids["long"]: "0.01", ids["nan"]: "0.5",
        }  # fmt: skip
        groups = {g["group"]: g for g in p["metrics"][0]["groups"]}
        assert [g["group"] for g in p["metrics"][0]["groups"]] == ["0.01", "0.1", "0.5"]
        g = groups["0.1"]
        order = [r["id"] for r in p["runs"]]
        assert g["runs"] == [i for i in order if group_of[i] == "0.1"]
        assert g["x"] == list(range(N))  # one step per bin: the bins' x are the steps
        for s in range(N):
            vals = [0.1 * s + seed for seed in (0, 1, 5)]
            mean = statistics.fmean(vals)
            assert g["mean"][s] == pytest.approx(mean)
            if band == "minmax":
                assert (g["lo"][s], g["hi"][s]) == pytest.approx((min(vals), max(vals)))
            else:
                sd = statistics.pstdev(vals)
                assert (g["lo"][s], g["hi"][s]) == pytest.approx((mean - sd, mean + sd))
        one = groups["0.5"]  # one run, one NaN: its bin is left out
        assert one["runs"] == [ids["nan"]]
        assert one["x"] == [s for s in range(N) if s != 5]
        assert (
            one["mean"]
            == one["lo"]
            == one["hi"]
            == pytest.approx([0.5 * s for s in range(N) if s != 5])
        )
        long = groups["0.01"]  # 1,000 steps onto 200 bins: each bin's mean of its points
        assert len(long["x"]) == 200
        steps = list(range(LONG))
        for b in (0, 57, 199):
            inside = [s for s in steps if min(int(s / (LONG - 1) * 200), 199) == b]
            assert long["x"][b] == pytest.approx(statistics.fmean(inside))
            assert long["mean"][b] == pytest.approx(statistics.fmean(0.01 * s for s in inside))


def test_group_by_tags_status_user_sweep(site: dict[str, Any]) -> None:
    ids = site["ids"]
    p = get(site, metrics="loss", group_by="tags.team")
    names = [g["group"] for g in p["metrics"][0]["groups"]]
    assert names == ["a", "b", "(none)"]
    group_of = {r["id"]: r["group"] for r in p["runs"]}
    assert group_of[ids["s0"]] == "a" and group_of[ids["long"]] == "b"
    assert group_of[ids["nan"]] == "(none)"
    b = next(g for g in p["metrics"][0]["groups"] if g["group"] == "b")
    assert set(b["runs"]) == {ids["s5"], ids["long"]}
    for field, expect in (("status", "finished"), ("sweep", "(none)")):
        p = get(site, metrics="loss", group_by=field)
        assert {r["group"] for r in p["runs"]} == {expect}
        assert [g["group"] for g in p["metrics"][0]["groups"]] == [expect]
    p = get(site, metrics="loss", group_by="user")
    assert len({r["group"] for r in p["runs"]}) == 1
    assert p["runs"][0]["group"] == p["runs"][0]["user"]
    p = get(site, metrics="loss", group_by="params.nope")
    assert [g["group"] for g in p["metrics"][0]["groups"]] == ["(none)"]
    t = get(site, metrics="loss", group_by="params.lr", x="relative")
    for g in t["metrics"][0]["groups"]:  # seconds since each run's start, ascending
        assert g["x"] == sorted(g["x"]) and all(v >= 0 for v in g["x"])


# -- what a store may hold ---------------------------------------------------------------------


def _logged_run(store: Store, parts: list[dict[int, float]], finish: bool) -> str:
    """A run as ``runbase.init()`` records one, its points logged and ingested in
    ``parts`` (one chunk each while it runs)."""
    rid = lifecycle.create_run(store, command=["python", "t.py"], mode="api")
    t = tracker.Tracker(rid, str(store.root))
    tracker.activate(t)
    try:
        for part in parts:
            for step, v in part.items():
                tracker.log(step=step, loss=v)
            t.flush()
            ingest(store, rid)
    finally:
        t.close()
        tracker.deactivate()
    if finish:
        lifecycle.finalize(store, rid, "finished", exit_code=0)
    else:
        ingest(store, rid)
    return rid


def test_live_runs_infinities_and_damaged_chunks(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    try:
        inf = float("inf")
        parts = [{s: (inf if s == 12 else -inf if s == 13 else float(s)) for s in range(a, a + 10)}
                 for a in (0, 10, 20)]  # fmt: skip
        live = _logged_run(store, parts, finish=False)
        damaged = _logged_run(store, [{s: 1.0 for s in range(5)}], finish=True)
        rows = store.db.query("SELECT count(*) FROM metric_chunks WHERE run_id = ?", (live,))
        assert rows[0][0] == 3  # still running: one chunk per ingest
        # a chunk whose blobs disagree (a damaged store, a hostile bundle) is left out
        store.db.execute("UPDATE metric_chunks SET vals = ? WHERE run_id = ?", (b"\0" * 3, damaged))
        p = views.chart_panel(store, points=10)
        assert [r["id"] for r in p["runs"]] == [damaged, live]
        (s,) = p["metrics"][0]["series"]
        assert s["run"] == live and s["count"] == 30 and s["downsampled"] is True
        assert s["x"] == list(range(0, 30, 3))
        assert s["y"][4] == 14.0  # the bucket of steps 12, 13 (infinite) and 14
        assert s["min"][4] == s["max"][4] == 14.0
        whole = views.chart_panel(store, points=30)["metrics"][0]["series"][0]
        assert whole["y"][12] is None and whole["y"][13] is None and whole["y"][14] == 14.0
        grouped = views.chart_panel(store, group_by="status", band="sd")
        (g,) = grouped["metrics"][0]["groups"]
        assert g["group"] == "running" and g["runs"] == [live]  # the damaged run has none
        assert g["x"] == [s for s in range(30) if s not in (12, 13)]
        assert {r["group"] for r in grouped["runs"]} == {"running", "finished"}
        hybrid = lifecycle.create_run(
            store, command=["python", "t.py"], mode="api", tags={"explain": "x"}
        )
        assert hybrid in [r["id"] for r in views.chart_panel(store)["runs"]]
        assert [r["id"] for r in views.chart_panel(store, hybrids=False)["runs"]] == [
            damaged,
            live,
        ]
        app = create_app(str(tmp_path / "store"))
        with TestClient(app) as client:
            r = client.get("/api/panel", params={"points": 30})
            assert r.status_code == 200
            got = r.json()["metrics"][0]["series"][0]
            assert got["y"][12] is None and got["max"][13] is None
        app.state.store_pool.close()
    finally:
        store.close()


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, status, words",
    [
        ({"runs": 0}, 422, "runs"),
        ({"runs": 501}, 422, "runs"),
        ({"points": 9}, 422, "points"),
        ({"points": 2001}, 422, "points"),
        ({"offset": -1}, 422, "offset"),
        ({"x": "epoch"}, 422, "x"),
        ({"band": "iqr"}, 422, "band"),
        ({"group_by": "params."}, 400, "cannot group by"),
        ({"group_by": "host"}, 400, "cannot group by"),
        ({"where": "params.lr <"}, 400, ""),
        ({"sort": "-"}, 400, ""),
        ({"where": "x" * 10_001}, 422, "where"),
        ({"exclude": "x" * 20_001}, 400, "exclude"),
    ],
)
def test_bad_arguments_are_clear_errors(
    site: dict[str, Any], params: dict[str, Any], status: int, words: str
) -> None:
    body = get(site, status, **params)
    detail = body["detail"]
    assert detail
    assert words in json.dumps(detail)


def test_library_validates_every_argument(site: dict[str, Any]) -> None:
    store = site["store"]
    for kwargs, msg in (
        ({"runs": 0}, "runs must be between 1 and 500"),
        ({"runs": True}, "runs must be an integer"),
        ({"points": 5}, "points must be between 10 and 2000"),
        ({"offset": -2}, "offset must be 0 or more"),
        ({"x": "wall"}, "unknown x 'wall'"),
        ({"band": "iqr"}, "unknown band 'iqr'"),
        ({"group_by": "tags"}, "cannot group by 'tags'"),
        ({"metrics": [1]}, "metrics must be strings"),
        ({"metrics": [f"m{i}" for i in range(101)]}, "at most 100 metrics"),
    ):
        with pytest.raises(UsageError, match=msg):
            views.chart_panel(store, **kwargs)
    with pytest.raises(QueryError):
        views.chart_panel(store, where="((")
    # strings are comma-separated lists, as in the URL
    p = views.chart_panel(store, metrics="loss, nope", exclude=site["ids"]["s0"])
    assert [m["key"] for m in p["metrics"]] == ["loss"] and p["missing"] == ["nope"]
    assert site["ids"]["s0"] not in [r["id"] for r in p["runs"]]


def test_hiding_hybrids_costs_nothing_in_a_store_without_them(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """hybrids=False (the runs page's default) hides the runs of `runbase explain` with a
    condition on every run's tags, which makes the count of a large store 15x slower: a
    store without hybrids is asked nothing of the kind, one with some hides them."""
    import shutil
    import sqlite3

    shutil.copytree(site["root"] / ".runbase", tmp_path / ".runbase")
    store = Store.open(tmp_path / ".runbase")
    try:
        sql: list[str] = []
        store.db.conn.set_trace_callback(sql.append)  # type: ignore[attr-defined]
        p = views.chart_panel(store, runs=1, hybrids=False, metrics="loss")
        assert p["total"] == len(site["ids"]) and len(p["runs"]) == 1
        assert not [q for q in sql if "FROM tags x" in q], sql
        # a hybrid (tagged explain, as `runbase explain` tags them) is hidden
        hybrid = site["ids"]["s0"]
        with sqlite3.connect(tmp_path / ".runbase" / "runbase.db") as conn:
            conn.execute("INSERT INTO tags (run_id, key, value) VALUES (?, 'explain', 'x')",
                         (hybrid,))  # fmt: skip
        conn.close()
        p = views.chart_panel(store, runs=100, hybrids=False, metrics="loss")
        assert p["total"] == len(site["ids"]) - 1 and hybrid not in [r["id"] for r in p["runs"]]
        assert views.chart_panel(store, runs=100, metrics="loss")["total"] == len(site["ids"])
    finally:
        store.close()


def test_an_answer_too_large_is_refused(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.render.views import panel

    monkeypatch.setattr(panel, "MAX_PANEL_BUCKETS", 100)  # 5 runs x 2 metrics x 10 + 10
    body = get(site, 400, points=10)
    assert body["detail"] == (
        "this panel would be 110 buckets (at most 100): ask for fewer runs, metrics or points"
    )
    assert len(get(site, points=10, metrics="loss,acc")["metrics"]) == 2  # 60 buckets


def test_openapi_documents_the_route(site: dict[str, Any]) -> None:
    spec = site["client"].get("/openapi.json").json()
    op = spec["paths"]["/api/panel"]["get"]
    assert op["summary"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {
        "where", "sort", "runs", "offset", "sweep", "hybrids", "exclude", "metrics",
        "points", "x", "group_by", "band", "bounds",
    }  # fmt: skip
    url = "/api/panel?" + urllib.parse.urlencode({"metrics": "loss", "points": 10})
    assert site["client"].get(url).status_code == 200


def test_without_bounds_a_series_is_its_means(site: dict[str, Any]) -> None:
    full = get(site, metrics="loss", points=10)
    lean = get(site, metrics="loss", points=10, bounds="false")
    for a, b in zip(full["metrics"][0]["series"], lean["metrics"][0]["series"], strict=True):
        assert set(a) - set(b) == {"min", "max"}
        assert {k: v for k, v in a.items() if k not in ("min", "max")} == b


def test_docs_name_every_parameter_and_key(site: dict[str, Any]) -> None:
    p = get(site, group_by="params.lr")
    metric = p["metrics"][0]
    op = site["client"].get("/openapi.json").json()["paths"]["/api/panel"]["get"]
    names = {param["name"] for param in op["parameters"]}
    keys = set(p) | set(metric) | set(metric["series"][0]) | set(metric["groups"][0])
    assert documented_keys("api.md", "GET /api/panel") == names | keys | {"group"}
