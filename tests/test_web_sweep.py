"""The sweep page and its API (/sweeps/ID, /api/sweeps, /api/sweeps/ID): a real store
made by a real `runbase sweep` and by real `runbase run`s of a recorded sweep (its
record and its pruned and lost trials through records.sweeps), served by a real
`runbase ui`, read over HTTP and in a real headless Chromium (the fixtures of
tests/conftest.py that tests/test_web_e2e.py uses)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    GIT,
    commit,
    documented_keys,
    runbase_cmd,
    runbase_ui,
    screenshot,
    stop_process,
    write,
)
from runbase.analysis import sweepstats
from runbase.errors import UsageError
from runbase.records import sweeps
from runbase.store import Store

TRAIN = """\
import argparse
import math

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--wd", type=float, default=0.0)
a = p.parse_args()
for step in range(5):
    runbase.log(loss=math.exp(-a.lr * step) + 0.01, step=step)
runbase.summary(acc=0.5 - 0.1 * math.log10(a.lr))  # acc depends on lr only
"""

# a trial the pruner stops (or whose node dies): it ends by a signal, as a cancelled
# `runbase run` does, and the sweep then marks it pruned or lost
DIES = """\
import os
import signal

import runbase

runbase.param("lr", 0.5)
runbase.log(acc=0.1, step=0)
os.kill(os.getpid(), signal.SIGKILL)
"""

LIVE = """\
import os
import time

import runbase

runbase.param("lr", 0.2)
step = 0
while not os.path.exists("stop-live"):
    runbase.log(acc=0.01 * step, step=step)
    step += 1
    time.sleep(0.2)
runbase.summary(acc=0.66)
"""

RECORDED_LRS = ["0.1", "0.01", "0.3", "0.03"]  # trials 1-4, run one after the other
GROUP = "multirun <img src=x onerror=alert(7)> 7"  # only its runs name it (no record)


def _run(root: Path, *args: str) -> None:
    runbase_cmd("run", *args, cwd=root, check=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sweepweb") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "stop-live\n")
    write(root, "train.py", TRAIN)
    write(root, "dies.py", DIES)
    write(root, "live.py", LIVE)
    commit(root, "initial")
    py = sys.executable
    grid = runbase_cmd(
        "sweep", "--grid", "lr=0.3,0.1,0.03,0.01", "--grid", "wd=0,0.01", "-j", "2",
        "--name", "<b>grid</b>", "--", py, "train.py", cwd=root, timeout=300,
    )  # fmt: skip
    assert grid.returncode == 0, grid.stderr
    grid_id = re.search(r"sweep (\w+):", grid.stdout).group(1)  # type: ignore[union-attr]

    search = runbase_cmd(
        "sweep", "--search", "random", "--random", "lr=loguniform(0.01,0.3)", "--objective",
        "acc", "--direction", "max", "--trials", "4", "--seed", "0", "-j", "2", "--name", "rnd",
        "--", py, "train.py", cwd=root, timeout=300,
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    search_id = re.search(r"sweep (\w+):", search.stdout).group(1)  # type: ignore[union-attr]

    store = Store.open(root / ".runbase")
    rec_id = "0recordedsweep01"
    spec = {
        "command": [py, "train.py"],
        "grid": {"lr": [float(v) for v in RECORDED_LRS]},
        "search": "grid",
        "objective": "acc",
        "direction": "max",
        "trials": 6,
        "name": "tuned",
    }
    sweeps.create_sweep(store, rec_id, spec, {"name": "tuned", "storage": "local"})
    for i, lr in enumerate(RECORDED_LRS, 1):
        _run(root, "--sweep-id", rec_id, "-t", f"sweep_index={i}", "--name", f"rec-{i}",
             "--", py, "train.py", "--lr", lr)  # fmt: skip
    dead = {}
    for i, status in ((5, "pruned"), (6, "lost")):
        runbase_cmd("run", "--sweep-id", rec_id, "-t", f"sweep_index={i}", "--name",
                    f"rec-{i}", "--", py, "dies.py", cwd=root)  # fmt: skip
        run_id = _ids(store, rec_id)[f"rec-{i}"]
        assert sweeps.set_run_status(store, run_id, status)
        dead[status] = run_id
    sweeps.update_sweep(store, rec_id, status="finished")

    for i, lr in enumerate(["0.1", "0.01"], 1):  # a multirun group: runs, no record
        _run(root, "--sweep-id", GROUP, "-t", f"sweep_index={i}", "--name", f"<i>g{i}</i>",
             "--", py, "train.py", "--lr", lr)  # fmt: skip
    return {
        "root": root,
        "grid": grid_id,
        "search": search_id,
        "recorded": rec_id,
        "dead": dead,
        "store": store,
    }


def _ids(store: Store, sweep_id: str) -> dict[str, str]:
    return {r["name"]: r["id"] for r in sweeps.trial_runs(store, sweep_id)}


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"], "/api/runs?limit=1") as url:
        yield url


def _get(url: str) -> tuple[int, Any, str]:
    """(status, parsed JSON or None, content type) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            body, status, ctype = resp.read(), resp.status, resp.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        body, status, ctype = e.read(), e.code, e.headers["Content-Type"]
    data = json.loads(body) if ctype.startswith("application/json") else body.decode()
    return status, data, ctype


def _sweep(server: str, sweep_id: str, **params: str) -> dict[str, Any]:
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    status, data, _ = _get(f"{server}/api/sweeps/{urllib.parse.quote(sweep_id, safe='')}{query}")
    assert status == 200, data
    return data  # type: ignore[no-any-return]


# -- the API ---------------------------------------------------------------------------------


def test_recorded_sweep_counts_best_so_far_and_importance(
    site: dict[str, Any], server: str
) -> None:
    data = _sweep(server, site["recorded"])
    assert data["sweep_version"] == 1 and data["recorded"] and data["note"] is None
    assert data["status"] == "finished" and data["spec"]["name"] == "tuned"
    assert data["study"] == {"name": "tuned", "storage": "local"}
    assert data["objective"] == {
        "metric": "acc", "direction": "max", "source": "spec", "direction_source": "spec",
    }  # fmt: skip
    assert data["params"] == ["lr"]
    counts = data["counts"]
    assert (counts["finished"], counts["pruned"], counts["lost"], counts["running"]) == (4, 1, 1, 0)
    assert data["total"] == 6
    assert [t["index"] for t in data["trials"]] == [1, 2, 3, 4, 5, 6]
    by_index = {t["index"]: t for t in data["trials"]}
    assert by_index[5]["status"] == "pruned" and by_index[6]["status"] == "lost"
    assert by_index[2]["params"] == {"lr": 0.01}
    assert by_index[2]["value"] == pytest.approx(0.7)

    # best so far, in the order the trials ended: 0.6, then 0.7 from trial 2 on
    curve = data["best_curve"]
    assert [p["n"] for p in curve] == [1, 2, 3, 4]  # finished trials only
    assert [p["index"] for p in curve] == [1, 2, 3, 4]
    assert [round(p["best"], 6) for p in curve] == [0.6, 0.7, 0.7, 0.7]
    assert all(p["time"] for p in curve)
    assert data["best"]["index"] == 2 and data["best"]["name"] == "rec-2"

    # 4 finished trials: a ranking, with importance's own warning that it is mostly noise
    imp = data["importance"]
    assert imp["error"] is None and imp["n_runs"] == 4
    assert [r["param"] for r in imp["rows"]] == ["lr"]
    assert "mostly noise" in imp["warning"] and imp["needed"] == 10

    # the other direction, asked
    low = _sweep(server, site["recorded"], direction="min")
    assert low["objective"]["direction"] == "min" and low["best"]["index"] == 3


def test_a_search_sweep_is_judged_by_its_own_objective(site: dict[str, Any], server: str) -> None:
    """`runbase sweep --search random --objective acc`: its record names the objective."""
    data = _sweep(server, site["search"])
    assert data["recorded"] and data["spec"]["search"] == "random"
    assert data["objective"]["metric"] == "acc" and data["objective"]["source"] == "spec"
    assert data["objective"]["direction"] == "max" and data["params"] == ["lr"]
    assert data["counts"]["finished"] == 4 and [t["index"] for t in data["trials"]] == [1, 2, 3, 4]
    values = [t["value"] for t in data["trials"]]
    assert data["best"]["value"] == max(values)
    assert [p["n"] for p in data["best_curve"]] == [1, 2, 3, 4]
    assert data["best_curve"][-1]["best"] == max(values)
    assert data["importance"]["rows"][0]["param"] == "lr"


def test_grid_sweep_without_objective_lets_the_user_pick_a_metric(
    site: dict[str, Any], server: str
) -> None:
    data = _sweep(server, site["grid"])
    assert data["objective"] is None and data["best_curve"] == [] and data["best"] is None
    assert data["importance"] is None
    assert {"acc", "loss"} <= set(data["metrics"])
    assert set(data["params"]) == {"lr", "wd"}
    assert data["counts"]["finished"] == 8 and data["total"] == 8
    assert sorted(t["index"] for t in data["trials"]) == list(range(1, 9))

    picked = _sweep(server, site["grid"], metric="acc")
    assert picked["objective"]["source"] == "query"
    assert picked["objective"]["direction"] == "max"  # "acc": higher is better, by its name
    assert picked["best"]["params"]["lr"] == 0.01
    assert picked["best_curve"][-1]["best"] == pytest.approx(0.7)
    ranked = picked["importance"]
    assert ranked["error"] is None and ranked["rows"][0]["param"] == "lr"

    loss = _sweep(server, site["grid"], metric="loss.min")  # lower is better, by its name
    assert loss["objective"]["direction"] == "min"
    assert loss["best"]["params"]["lr"] == 0.3


def test_a_sweep_without_record_is_read_from_its_runs(site: dict[str, Any], server: str) -> None:
    data = _sweep(server, GROUP, metric="acc")
    assert not data["recorded"] and data["spec"] is None and data["status"] is None
    assert "spec is unknown" in data["note"]
    assert [t["name"] for t in data["trials"]] == ["<i>g1</i>", "<i>g2</i>"]
    assert data["params"] == ["lr"]
    # two runs: importance's own "not enough runs" answer, said as such
    assert "at least 4 runs" in data["importance"]["error"]
    assert data["best"]["name"] == "<i>g2</i>"


def test_the_list_of_sweeps(site: dict[str, Any], server: str) -> None:
    status, data, _ = _get(server + "/api/sweeps")
    assert status == 200
    items = {s["id"]: s for s in data["sweeps"]}
    assert {site["grid"], site["recorded"], GROUP} <= set(items)
    rec = items[site["recorded"]]
    assert rec["recorded"] and rec["objective"] == "acc" and rec["trials"] == 6
    assert rec["counts"] == {"finished": 4, "pruned": 1, "lost": 1}
    assert not items[GROUP]["recorded"] and items[GROUP]["trials"] == 2
    created = [s["created_at"] for s in data["sweeps"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert _get(server + "/api/sweeps?limit=1")[1]["sweeps"][0]["id"] == data["sweeps"][0]["id"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/sweeps/nosuchsweep0000", 404),
        ("/api/sweeps/%20", 400),
        ("/api/sweeps/a%01b", 400),
        ("/api/sweeps/" + "x" * 1001, 400),
        ("/api/sweeps/nosuchsweep0000?direction=sideways", 400),
        ("/api/sweeps?limit=0", 422),
        ("/sweeps/nosuchsweep0000", 404),
        ("/sweeps/a%01b", 400),
    ],
)
def test_bad_and_unknown_sweeps_are_clear_errors(server: str, path: str, status: int) -> None:
    got, data, ctype = _get(server + path)
    assert got == status, data
    if path.startswith("/api/"):
        assert ctype.startswith("application/json") and data["detail"]
    else:
        assert "Not found" in data


def test_bad_direction_on_a_known_sweep(site: dict[str, Any], server: str) -> None:
    got, data, _ = _get(f"{server}/api/sweeps/{site['recorded']}?direction=sideways")
    assert got == 400 and "max or min" in data["detail"]


def test_library_same_answer_as_the_api(site: dict[str, Any], server: str) -> None:
    lib = sweepstats.sweep_stats(site["store"], site["recorded"])
    api = _sweep(server, site["recorded"])
    assert lib["counts"] == api["counts"] and lib["best_curve"] == api["best_curve"]


def test_a_trial_tag_that_is_no_index_is_never_a_server_error(
    site: dict[str, Any], server: str
) -> None:
    """Any project member can push a run with any ``sweep_index`` tag: "²" (a digit to
    str.isdigit, not to int) or "--5" is no index: the trial is placed by its position,
    after the indexed ones, and the API and the page answer."""
    root, py, sweep_id = site["root"], sys.executable, "0badindexsweep01"
    spec = {"command": [py, "train.py"], "search": "grid", "objective": "acc"}
    sweeps.create_sweep(site["store"], sweep_id, spec)
    for name, index, lr in (("sup", "²", "0.1"), ("dashes", "--5", "0.01"), ("good", "1", "0.3")):
        _run(root, "--sweep-id", sweep_id, "-t", f"sweep_index={index}", "--name", name,
             "--", py, "train.py", "--lr", lr)  # fmt: skip
    data = _sweep(server, sweep_id)
    assert data["total"] == 3 and data["counts"]["finished"] == 3
    assert [(t["name"], t["index"]) for t in data["trials"]] == [
        ("good", 1), ("sup", 2), ("dashes", 3),
    ]  # fmt: skip
    assert data["best"]["name"] == "dashes" and [p["n"] for p in data["best_curve"]] == [1, 2, 3]
    status, listing, _ = _get(server + "/api/sweeps")
    assert status == 200 and sweep_id in {s["id"] for s in listing["sweeps"]}
    assert _get(f"{server}/sweeps/{sweep_id}")[0] == 200


# -- the page, in a real browser ---------------------------------------------------------------


def test_sweep_page_in_a_browser_updates_as_trials_come_in(
    site: dict[str, Any], server: str, page: Any
) -> None:
    root, rec = site["root"], site["recorded"]
    page.goto(f"{server}/sweeps/{rec}")
    page.wait_for_function("document.querySelectorAll('#trials tr.trial-row').length === 6")
    assert page.inner_text(".count-chip[data-status=pruned] b") == "1"
    assert page.inner_text(".count-chip[data-status=lost] b") == "1"
    assert page.inner_text("#sweep-progress") == "5 of 6 trials done"  # lost: retried
    pruned_bg = page.eval_on_selector(
        ".count-chip[data-status=pruned]", "e => getComputedStyle(e).backgroundColor"
    )
    lost_bg = page.eval_on_selector(
        ".count-chip[data-status=lost]", "e => getComputedStyle(e).backgroundColor"
    )
    failed_bg = page.eval_on_selector(
        ".count-chip[data-status=failed]", "e => getComputedStyle(e).backgroundColor"
    )
    assert len({pruned_bg, lost_bg, failed_bg}) == 3  # pruned and lost read apart
    page.wait_for_selector("#best-chart .main-svg")
    page.wait_for_function(
        "document.querySelectorAll('#best-chart .scatterlayer .trace').length === 2"
    )
    assert page.locator("#importance .imp-row[data-param=lr]").count() == 1
    assert "mostly noise" in page.inner_text("#importance-warning")
    screenshot(page, "sweep.png")
    page.select_option("#x-axis", "time")  # the same curve over the trials' end times
    page.wait_for_url(re.compile(r"x=time"))
    page.wait_for_function(
        "document.querySelectorAll('#best-chart .scatterlayer .trace').length === 2"
    )
    assert page.locator("#best-chart .xtitle", has_text="end time").count() == 1
    best_row = page.locator("#trials tr.best-row")
    assert best_row.get_attribute("data-id") == _ids(site["store"], rec)["rec-2"]

    # sort by value, best first: trial 2 leads; each row links to its run page
    page.click("#trials th[data-sort=value]")
    page.wait_for_function(
        "document.querySelector('#trials tbody tr').dataset.id === "
        + json.dumps(_ids(site["store"], rec)["rec-2"])
    )
    page.click("#trials tbody tr:first-child a.run-link")
    page.wait_for_url(re.compile(r"/runs/"))

    # the sweep goes on (as `runbase sweep --resume` does) and a trial starts: the page
    # shows it running without a reload, then finished
    sweeps.update_sweep(site["store"], rec, status="running")
    page.goto(f"{server}/sweeps/{rec}")
    page.wait_for_function("document.querySelectorAll('#trials tr.trial-row').length === 6")
    live = subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--sweep-id", rec, "-t", "sweep_index=7",
         "--name", "rec-7", "--", sys.executable, "live.py"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        page.wait_for_function(
            "document.querySelector('.count-chip[data-status=running] b').textContent === '1'",
            timeout=60_000,
        )
        assert page.is_visible("#sweep-live")
        (root / "stop-live").write_text("")
        assert live.wait(timeout=120) == 0
        page.wait_for_function(
            "document.querySelector('.count-chip[data-status=finished] b').textContent === '5'",
            timeout=60_000,
        )
        page.wait_for_function("document.querySelectorAll('#trials tr.trial-row').length === 7")
        assert page.is_hidden("#sweep-live")
    finally:
        stop_process(live)
        (root / "stop-live").unlink(missing_ok=True)
        sweeps.update_sweep(site["store"], rec, status="finished")


def test_sweep_page_picks_a_metric_and_escapes_user_text(
    site: dict[str, Any], server: str, page: Any
) -> None:
    page.goto(f"{server}/sweeps/{urllib.parse.quote(GROUP)}")
    page.wait_for_selector("#sweep-note:not([hidden])")
    assert "spec is unknown" in page.inner_text("#sweep-note")
    page.wait_for_function("document.querySelectorAll('#trials tr.trial-row').length === 2")
    # names are text, not markup
    assert page.locator("#trials a.run-link", has_text="<i>g1</i>").count() == 1
    assert page.locator("#trials i, #main img").count() == 0
    assert GROUP in page.inner_text("h1")
    page.select_option("#metric", "acc")
    page.wait_for_url(re.compile(r"metric=acc"))
    page.wait_for_selector("#importance-none")
    assert "at least 4 runs" in page.inner_text("#importance-none")
    page.wait_for_selector("#best-chart .main-svg")

    page.goto(f"{server}/sweeps/{site['grid']}?metric=acc")
    page.wait_for_function("document.querySelectorAll('#trials tr.trial-row').length === 8")
    page.wait_for_selector("#importance .imp-row[data-param=lr]")
    assert page.locator("#trials a.run-link", has_text="<b>grid</b>-1").count() == 1
    assert page.locator("#trials b, #sweep-name b").count() == 0


def test_api_doc_names_every_key(site: dict[str, Any], server: str) -> None:
    data = _sweep(server, site["recorded"])
    assert documented_keys("api.md", "GET /api/sweeps/{sweep_id}") == set(data)
    listing = _get(server + "/api/sweeps")[1]
    assert documented_keys("api.md", "GET /api/sweeps") == set(listing) | set(listing["sweeps"][0])


# -- the pure parts of analysis.sweepstats -----------------------------------------------------


def _trial(index: int, status: str, value: float | None) -> dict[str, Any]:
    return {"index": index, "id": f"run{index}", "status": status, "value": value,
            "ended_at": f"t{index}", "name": f"n{index}", "params": {}}  # fmt: skip


def test_best_curve_counts_finished_trials_in_the_order_they_ended() -> None:
    trials = [
        _trial(1, "finished", 0.5),
        _trial(2, "pruned", 9.0),  # stopped early: never the best
        _trial(3, "finished", None),  # no value (missing, NaN): not a point
        _trial(4, "finished", 0.2),
        _trial(5, "running", 0.1),
    ]
    ends = {"run1": 30.0, "run2": 10.0, "run3": 5.0, "run4": 20.0, "run5": None}
    low = sweepstats.best_curve(trials, ends, "min")
    assert [(p["n"], p["index"], p["best"], p["best_id"]) for p in low] == [
        (1, 4, 0.2, "run4"),
        (2, 1, 0.2, "run4"),
    ]
    high = sweepstats.best_curve(trials, ends, "max")
    assert [p["best"] for p in high] == [0.2, 0.5]
    assert sweepstats.best_trial(trials, high)["index"] == 1  # type: ignore[index]
    assert sweepstats.best_curve(trials, ends, None) == []


def test_objective_values_and_directions() -> None:
    metrics = {"acc": {"value": 0.9, "min": 0.1}, "loss": {"value": float("nan"), "min": 0.3}}
    assert sweepstats.objective_value(metrics, "acc") == 0.9
    assert sweepstats.objective_value(metrics, "loss.min") == 0.3
    assert sweepstats.objective_value(metrics, "loss") is None  # NaN is no value
    assert sweepstats.objective_value(metrics, "nope") is None
    spec = {"objective": "val_score", "direction": "min"}
    assert sweepstats.choose_objective(spec, None, None) == {
        "metric": "val_score", "direction": "min", "source": "spec", "direction_source": "spec",
    }  # fmt: skip
    # another metric than the objective: its name decides, not the objective's direction
    assert sweepstats.choose_objective(spec, "loss.min", None)["direction"] == "min"  # type: ignore[index]
    assert sweepstats.choose_objective(spec, "accuracy", None)["direction"] == "max"  # type: ignore[index]
    assert sweepstats.choose_objective(None, "widgets", None)["direction_source"] == "default"  # type: ignore[index]
    assert sweepstats.choose_objective({}, None, None) is None
    with pytest.raises(UsageError, match="max or min"):
        sweepstats.choose_objective(spec, None, "up")


def test_the_trials_at_once_without_the_ranking(site: dict[str, Any], server: str) -> None:
    quick = _sweep(server, site["recorded"], importance="false")
    assert quick["importance"] is None and quick["total"] >= 6 and quick["best"]["index"] == 2


def test_runs_page_and_run_page_link_to_the_sweep_page(
    site: dict[str, Any], server: str, page: Any
) -> None:
    rec = site["recorded"]
    page.goto(f"{server}/?sweep={rec}")
    page.wait_for_selector("#sweep-page:not([hidden])")
    page.click("#sweep-page")
    page.wait_for_url(re.compile(rf"/sweeps/{rec}$"))
    page.wait_for_selector("#trials tr.trial-row")

    page.goto(f"{server}/")
    page.select_option("#group-by", "sweep")
    page.wait_for_selector(f"tr.group-row a.sweep-page-link[href$='/sweeps/{rec}']")

    run_id = _ids(site["store"], rec)["rec-1"]
    page.goto(f"{server}/runs/{run_id}")
    page.click("#sweep-link")
    page.wait_for_url(re.compile(rf"/sweeps/{rec}$"))
    page.wait_for_selector("#trials tr.trial-row")
