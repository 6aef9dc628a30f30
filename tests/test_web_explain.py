"""The explanation of two runs in the web UI (/explain, /api/explain) and in `runbase
report A B`: real runs, a real `runbase ui` server, a real headless Chromium.

The saved reports are written by hand in the shape of docs/explain.md, at the place
`runbase explain` saves them, so that the page is tested on what a file can hold —
a hostile factor name, a damaged file — and not only on what explain writes.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    GIT,
    commit,
    http_request,
    runbase_cmd,
    runbase_ui,
    write,
)

# the Chromium fixtures of the UI's end-to-end tests (a page fails on a script error)

HOSTILE = '<img src=x onerror="window.__xss=1">'
METRIC = "acc"

TRAIN = """\
import argparse

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
a = p.parse_args()
rows = [r for r in open("data/train.csv").read().splitlines() if r]
runbase.summary(acc=0.5 + 0.1 * len(rows) - a.lr)
"""


def _run(root: Path, name: str, *args: str) -> str:
    runbase_cmd(
        "run", "-q", "--name", name, "-i", "data/train.csv", *args, "--", sys.executable,
        "train.py", cwd=root, check=True,
    )  # fmt: skip
    out = runbase_cmd("ls", "--json", "--all", "--where", f'name == "{name}"', cwd=root)
    rows = json.loads(out.stdout)
    assert len(rows) == 1, out
    return str(rows[0]["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs A and B (lr and the data changed), two runs tagged as hybrids of A → B,
    and the saved explanations: a good one (with a hostile factor name), a malformed
    file for B → A."""
    root = tmp_path_factory.mktemp("explain") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    write(root, "data/train.csv", "x\n1\n2\n3\n")
    commit(root, "initial")
    a = _run(root, "run-a")
    write(root, "data/train.csv", "x\n1\n")
    b = _run(root, "run-b", "-p", "lr=0.05")
    xid = _explain_id(a, b)
    tags = ["-t", f"explain={xid}", "-t", f"explain.a={a}", "-t", f"explain.b={b}"]
    h_data = _run(root, "hybrid-data", *tags, "-t", "explain.role=hybrid")
    write(root, "data/train.csv", "x\n1\n2\n3\n")
    h_lr = _run(root, "hybrid-lr", "-p", "lr=0.05", *tags, "-t", "explain.role=hybrid")
    _save(root, _report(a, b, h_data, h_lr))
    _report_path(root, b, a, METRIC).parent.mkdir(parents=True, exist_ok=True)
    _report_path(root, b, a, METRIC).write_text('{"explain_version": 1, "factors": [')
    return {"root": root, "a": a, "b": b, "h_data": h_data, "h_lr": h_lr, "xid": xid}


def _explain_id(a: str, b: str) -> str:
    from runbase.analysis.explain import explain_id

    return explain_id(a, b)


def _report_path(root: Path, a: str, b: str, metric: str) -> Path:
    from runbase.store import Store
    from runbase.tracking.explain import report_path as path_of

    return path_of(Store.open(root / ".runbase"), _explain_id(a, b), metric)


def _save(root: Path, report: dict[str, Any]) -> None:
    path = _report_path(root, report["a"], report["b"], report["metric"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))


def _report(a: str, b: str, h_data: str, h_lr: str) -> dict[str, Any]:
    """A report as `runbase explain A B --json` writes it (docs/explain.md): acc moved
    by -0.55; the data change did most of it, lr a little, a third change (named like
    markup) next to nothing."""
    names = ["data/train.csv", "params.lr", HOSTILE]

    def factor(kind: str, name: str, desc: str, effect: float, significant: bool) -> dict[str, Any]:
        return {
            "kind": kind, "name": name, "description": desc, "effect": effect,
            "effect_alone": effect, "effect_removed": effect, "share": effect / -0.55 * 100,
            "significant": significant, "breaks_run": False,
        }  # fmt: skip

    def hybrid(run: str, role: str, factors: list[str], value: float) -> dict[str, Any]:
        return {
            "run": run, "role": role, "factors": factors, "value": value,
            "status": "finished", "cached": False,
        }  # fmt: skip

    return {
        "explain_version": 1, "id": _explain_id(a, b), "a": a, "b": b, "metric": METRIC,
        "a_value": 0.7, "b_value": 0.15, "total": -0.55,
        "measured": {"a": 0.7, "b": 0.15, "total": -0.55},
        "noise": {
            "repeats": 1, "a": [0.7], "b": [0.15], "spread": 0.0, "threshold": 1e-9,
            "a_reproduces": True, "b_reproduces": True,
        },
        "factors": [
            factor("data", "data/train.csv", "data/train.csv 2 of 3 rows removed", -0.5, True),
            factor("param", "params.lr", "params.lr 0.1 → 0.05", -0.04, True),
            factor("code", HOSTILE, HOSTILE + " +1 −0", -0.01, False),
        ],
        "interactions": [{"factors": ["params.lr", HOSTILE], "effect": -0.001}],
        "untestable": [{"kind": "env", "name": "numpy", "reason": "package versions are tested only with --env venv"}],
        "untried": [{"name": "src/other.py", "reason": "budget exhausted"}],
        "search": {"method": "one-at-a-time", "budget": 50, "used": 6, "notes": ["tested each change alone and removed from B"]},
        "hybrids": {
            "run": 4, "cached": 0, "failed": 0, "seconds": 3.5,
            "runs": [
                hybrid(a, "a", [], 0.7),
                hybrid(b, "b", sorted(names), 0.15),
                hybrid(h_data, "hybrid", ["data/train.csv"], 0.2),
                hybrid(h_lr, "hybrid", ["params.lr"], 0.66),
            ],
        },
        "unexplained": 0.0,
    }  # fmt: skip


def _ui(root: Path) -> contextlib.AbstractContextManager[str]:
    """`runbase ui --no-browser` on a free port, as a user starts it."""
    return runbase_ui(root)


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with _ui(site["root"]) as url:
        yield url


def _q(**params: str) -> str:
    return urllib.parse.urlencode(params)


# -- the view, without a browser -----------------------------------------------------------


def test_waterfall_closes_on_b_whatever_the_effects() -> None:
    from runbase.render.views.explain import waterfall

    def level(wf: dict[str, Any]) -> float:
        total = 0.0
        for s in wf["steps"]:
            total = s["value"] if s["measure"] != "relative" else total + s["value"]
        return total

    effects = [("f1", -0.3), ("f2", 0.1), ("f3", -0.05), ("f4", None), ("f5", -0.01)]
    wf = waterfall(1.0, 0.7, 1.0, 0.7, effects, top=2)
    assert wf is not None
    kinds = [(s["kind"], s["name"]) for s in wf["steps"]]
    assert kinds == [
        ("start", ""), ("factor", "f1"), ("factor", "f2"), ("other", ""),
        ("unexplained", ""), ("end", ""),
    ]  # fmt: skip
    other = wf["steps"][3]
    assert other["label"] == "2 other factors" and other["value"] == pytest.approx(-0.06)
    assert wf["steps"][4]["value"] == pytest.approx(-0.04)  # -0.3 + 0.1 - 0.06 falls short
    assert level(wf) == pytest.approx(0.7) == wf["steps"][-1]["value"]
    assert wf["low"] == pytest.approx(0.7) and wf["high"] == pytest.approx(
        1.0
    )  # 1, .7, .8, .74, .7

    # A does not reproduce: its re-run is a bar of its own, effects count from there
    wf = waterfall(1.0, 0.7, 0.9, 0.7, [("f1", -0.2)], a_label="A x", b_label="A x")
    assert wf is not None
    assert [s["kind"] for s in wf["steps"]] == ["start", "rerun", "factor", "end"]
    assert wf["steps"][0]["label"] != wf["steps"][-1]["label"]  # two bars, not one
    assert level(wf) == pytest.approx(0.7)
    assert waterfall(float("nan"), 0.7, None, None, [("f1", -0.2)]) is None


# -- the page ------------------------------------------------------------------------------


def test_explain_page_draws_the_waterfall_and_links_each_change(
    site: dict[str, Any], server: str, page: Any
) -> None:
    a, b = site["a"], site["b"]
    page.goto(f"{server}/explain?{_q(a=a, b=b)}")
    page.wait_for_selector("#explain-factors tbody tr")
    # one bar per step: A, the three changes, B (their effects add up: nothing unexplained)
    page.wait_for_function(
        "document.querySelectorAll('#explain-waterfall .waterfalllayer .point').length === 5"
    )
    rows = page.locator("#explain-factors tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).get_attribute("data-name") == "data/train.csv"  # largest effect first
    assert "-0.5" in rows.nth(0).inner_text() and "90.9 %" in rows.nth(0).inner_text()
    assert "2 of 3 rows removed" in rows.nth(0).inner_text()

    # the hostile name is text, in the table and in the chart; nothing ran
    assert HOSTILE in rows.nth(2).inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#explain img, #explain-waterfall img").count() == 0
    ticks = page.evaluate(
        "Array.from(document.querySelectorAll('#explain-waterfall .xtick text')).map(t => t.textContent)"
    )
    assert any(t.startswith("<img") for t in ticks), ticks

    # each change links the hybrid that measured it, and its part of the diff
    link = rows.nth(0).locator(".explain-hybrid a")
    assert link.get_attribute("href") == f"/runs/{site['h_data']}"
    assert rows.nth(1).locator(".explain-hybrid a").get_attribute("href") == (
        f"/runs/{site['h_lr']}"
    )
    assert "no (within noise)" in rows.nth(2).inner_text()
    for section in ("numpy", "budget exhausted", "one-at-a-time"):
        assert section in page.inner_text("#explain")
    assert HOSTILE in page.inner_text("#explain-interactions")

    page.click("#explain-factors tbody tr:nth-child(2) a.explain-diff")
    page.wait_for_url(re.compile(r"/compare\?runs=.*&section=params#diff$"))
    page.wait_for_selector("#diff .diff-section.focused[data-section=params]")
    assert "lr" in page.inner_text("#diff .diff-section.focused")


def test_compare_page_of_two_runs_links_the_explain_page(
    site: dict[str, Any], server: str, page: Any
) -> None:
    page.goto(f"{server}/compare?runs={site['a']},{site['b']}")
    page.wait_for_selector("#explain-link:not([hidden])")
    page.click("#explain-link")
    page.wait_for_selector("#explain-factors")
    assert page.url.endswith(f"/explain?{_q(a=site['a'], b=site['b'])}")


def test_not_explained_yet_says_what_to_run(site: dict[str, Any], server: str, page: Any) -> None:
    page.goto(f"{server}/explain?{_q(a=site['a'], b=site['h_lr'])}")
    page.wait_for_selector("#explain-missing")
    text = page.inner_text("#explain-missing")
    assert f"runbase explain {site['a']} {site['h_lr']}" in text
    assert page.locator("#explain-waterfall").count() == 0

    page.goto(f"{server}/explain?{_q(a=site['a'], b=site['b'], metric='loss')}")
    page.wait_for_selector("#explain-missing")
    assert "--metric loss" in page.inner_text("#explain-missing")

    # a run reference from the URL is text too, in the page and in the API's answer
    page.goto(f"{server}/explain?{_q(a=HOSTILE, b=site['b'])}")
    page.wait_for_selector("#explain-error")
    assert HOSTILE in page.inner_text("#explain-error")
    assert page.evaluate("window.__xss") is None and page.locator("img").count() == 0


def test_a_malformed_report_is_a_message_never_a_500(
    site: dict[str, Any], server: str, page: Any
) -> None:
    status, body = http_request(server, "GET", f"/api/explain?{_q(a=site['b'], b=site['a'])}")
    assert status == 200, body
    assert body["explained"] is False and "cannot be read" in body["problem"]
    page.goto(f"{server}/explain?{_q(a=site['b'], b=site['a'])}")
    page.wait_for_selector("#explain-problem")
    assert "cannot be read" in page.inner_text("#explain-problem")

    # valid JSON in the wrong shape, and an unknown run: clear answers too
    bad = _report(site["b"], site["h_data"], site["h_data"], site["h_lr"])
    bad["factors"] = "everything"
    _save(site["root"], bad)
    status, body = http_request(server, "GET", f"/api/explain?{_q(a=site['b'], b=site['h_data'])}")
    assert status == 200 and body["explained"] is False and body["problem"], body
    status, body = http_request(server, "GET", f"/api/explain?{_q(a='nosuchrun', b=site['a'])}")
    assert status == 404 and "nosuchrun" in body["detail"]


def test_runs_page_hides_the_hybrids_until_asked(
    site: dict[str, Any], server: str, page: Any
) -> None:
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#runs tr.run-row').length === 2")
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('#runs tr.run-row')).map(r => r.dataset.id)"
    )
    assert sorted(shown) == sorted([site["a"], site["b"]])
    page.check("#show-hybrids")
    page.wait_for_function("document.querySelectorAll('#runs tr.run-row').length === 4")
    assert "hybrids=1" in page.url
    status, body = http_request(server, "GET", "/api/runs?hybrids=false&where=params.lr+>+0")
    assert status == 200 and body["total"] == 2 and not body.get("notes"), body
    status, body = http_request(server, "GET", "/api/runs")
    assert body["total"] == 4  # the API lists every run unless asked, as runbase.runs()
    # a filter cannot reach around the hiding condition it is combined with
    sneak = urllib.parse.quote(f'name == "x") or (tags.explain == "{site["xid"]}"')
    status, body = http_request(server, "GET", f"/api/runs?hybrids=false&where={sneak}")
    assert status == 400 and "unexpected ')'" in body["detail"], body


# -- runbase report A B --------------------------------------------------------------------


def test_report_of_two_explained_runs_has_the_explanation(
    site: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    runbase_cmd("report", site["a"], site["b"], "-o", str(out), cwd=site["root"], check=True)
    context = browser.new_context()
    context.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(out.as_uri())
        pg.wait_for_function(
            "document.querySelectorAll('#report-explain .waterfalllayer .point').length === 5"
        )
        rows = pg.locator("#report-explain #explain-factors tbody tr")
        assert rows.count() == 3 and HOSTILE in rows.nth(2).inner_text()
        assert pg.evaluate("window.__xss") is None
        assert pg.locator("#report-explain a[href^='/runs/']").count() == 0  # offline: no links
        rows.nth(0).locator("a.explain-diff").click()
        assert pg.evaluate("window.scrollY") > 0
    finally:
        context.close()
    assert not errors, errors

    # never explained: no section; a damaged file: the section says so, the report is made
    def embedded(a: str, b: str) -> Any:
        other = tmp_path / "other.html"
        runbase_cmd("report", a, b, "-o", str(other), cwd=site["root"], check=True)
        data = other.read_text().split('<script id="report-data" type="application/json">')[1]
        return json.loads(data.split("</script>", 1)[0])["explain"]

    assert embedded(site["a"], site["h_lr"]) is None
    assert "cannot be read" in embedded(site["b"], site["a"])["problem"]


def test_api_doc_names_every_key_of_the_explanation(site: dict[str, Any], server: str) -> None:
    from test_web_api import _doc_keys

    status, body = http_request(server, "GET", f"/api/explain?{_q(a=site['a'], b=site['b'])}")
    assert status == 200 and body["explained"] is True
    assert set(body) == _doc_keys("/api/explain")
    status, body = http_request(server, "GET", f"/api/explain?{_q(a=site['a'], b=site['h_lr'])}")
    assert set(body) == {"explained", "a", "b", "metric", "command", "problem"}


# -- through a real `runbase explain` ----------------------------------------------------------


def test_a_real_explanation_on_the_page_and_in_the_report(
    tmp_path: Path, page: Any, browser: Any
) -> None:
    """`runbase explain A B` on real runs, then its page and `runbase report A B`: the
    data change ranks first, each change links the hybrids that measured it."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    write(root, "data/train.csv", "x\n1\n2\n3\n")
    commit(root, "initial")
    a = _run(root, "real-a")
    write(root, "data/train.csv", "x\n1\n")
    b = _run(root, "real-b", "-p", "lr=0.05")
    proc = runbase_cmd("explain", a, b, "-j", "2", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr

    with _ui(root) as url:
        page.goto(f"{url}/explain?{_q(a=a, b=b)}")
        page.wait_for_selector("#explain-waterfall .waterfalllayer .point")
        first = page.locator("#explain-factors tbody tr").first
        assert first.get_attribute("data-name") == "data/train.csv"
        hybrids = first.locator(".explain-hybrid a")
        assert hybrids.count() == 2  # A with the new data, B with the old
        hybrids.first.click()
        page.wait_for_url(re.compile(r"/runs/"))
        hybrid = page.url.split("/runs/")[1]
        status, rec = http_request(url, "GET", f"/api/runs/{hybrid}?patch=false")
        assert status == 200 and rec["tags"]["explain.a"] == a and rec["tags"]["explain.b"] == b
        assert rec["tags"]["explain.factors"] == "data/train.csv"  # A + the data change alone
        page.goto(url + "/")  # the hybrids stay off the runs page
        page.wait_for_function("document.querySelectorAll('#runs tr.run-row').length === 2")

    out = tmp_path / "report.html"
    runbase_cmd("report", a, b, "-o", str(out), cwd=root, check=True)
    pg = browser.new_page()
    try:
        pg.goto(out.as_uri())
        pg.wait_for_selector("#report-explain .waterfalllayer .point")
        row = pg.locator("#report-explain #explain-factors tbody tr").first
        assert row.get_attribute("data-name") == "data/train.csv"
    finally:
        pg.close()
