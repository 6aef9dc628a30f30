"""The run page end to end (issue 18): overview charts (metrics and system), a live run
growing and a stalled one, the Media tab (image steps, sortable tables), screenshots.

Real parts throughout: runs made by real `runbase run`, a real `runbase ui`, a real
headless Chromium (Playwright, /usr/bin/chromium). A stalled run is a real one whose
supervisor and command were SIGKILLed together, so its heartbeat stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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

N_METRICS = 14  # more than the overview's 12 charts: the rest are one click away

MANY = f"""\
import time

import runbase

for step in range(30):
    runbase.log(**{{f"m{{i:02d}}": (i + 1) / (step + 1) for i in range({N_METRICS})}}, step=step)
    # no GPU on a test machine: the keys the sampler writes for GPU 0, logged by hand
    runbase.log(**{{"sys/gpu0/util_percent": 50.0 + step, "sys/gpu0/mem_used_bytes": 1e9}}, step=step)
    time.sleep(0.05)  # system samples every 0.2 s meanwhile
"""

# logs until the file stop-loop exists (or 3 minutes pass: never an orphan)
LOOP = """\
import os
import time

import runbase

deadline = time.time() + 180
step = 0
while not os.path.exists("stop-loop") and time.time() < deadline:
    runbase.log(live_metric=float(step), step=step)
    step += 1
    time.sleep(0.2)
"""

MEDIA = """\
import numpy as np

import runbase

for step in range(3):
    img = np.zeros((16, 24, 3), dtype=np.uint8)
    img[..., step] = 255  # red, then green, then blue
    runbase.log_image("samples", img, step=step, caption=f"color {step}")
rows = [
    {"name": "b", "score": 10},
    {"name": "a10", "score": 9},
    {"name": "a9", "score": 100},
    {"name": "c", "score": None},
]
runbase.log_table("preds", rows)
"""

BROKEN = """\
import numpy as np

import runbase

runbase.log_image("pic", np.full((8, 8), 77, dtype=np.uint8), step=0)
"""


# -- the store, the server, the browser ----------------------------------------------------


def _api(url: str, path: str, **params: str) -> Any:
    q = ("?" + urllib.parse.urlencode(params)) if params else ""
    with urllib.request.urlopen(url + path + q, timeout=30) as r:
        return json.loads(r.read())


def _run_named(url: str, name: str) -> dict[str, Any] | None:
    """The run called ``name``, read through the UI's API: no CLI command, which would
    finalize a killed run as crashed (records.lifecycle.recover_orphans)."""
    runs = _api(url, "/api/runs", where=f"name == '{name}'", limit="1")["runs"]
    return runs[0] if runs else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git project with two runs of 14 metrics each and real system samples."""
    root = tmp_path_factory.mktemp("runpage") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\nstop-loop\n")
    for name, text in {"many.py": MANY, "loop.py": LOOP, "media.py": MEDIA}.items():
        write(root, name, text)
    write(root, "broken.py", BROKEN)
    commit(root, "initial")
    fast = {"RUNBASE_SYSTEM_INTERVAL": "0.2"}
    for name in ("many", "many-b"):
        runbase_cmd(
            "run", "--name", name, "--", sys.executable, "many.py", cwd=root, env=fast, check=True
        )
    return {"root": root}


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"], "/api/runs?limit=1") as url:
        yield url


@pytest.fixture(scope="module")
def media_runs(site: dict[str, Any], server: str) -> dict[str, Any]:
    """A run that logged an image at 3 steps and a table; one whose image object is gone
    from the store (deleted, as a damaged store or a partial copy has it)."""
    root = site["root"]
    for name, script in (("media", "media.py"), ("broken", "broken.py")):
        runbase_cmd(
            "run", "--name", name, "--", sys.executable, script, cwd=root, check=True
        )  # fmt: skip
    media, broken = _run_named(server, "media"), _run_named(server, "broken")
    assert media and broken
    items = _api(server, f"/api/runs/{broken['id']}/media", kind="image", key="pic")["items"]
    assert len(items) == 1
    hexpart = items[0]["oid"].split(":", 1)[1]
    (root / ".runbase" / "objects" / hexpart[:2] / hexpart[2:]).unlink()
    return {"media": media, "broken": broken}


def _traces(pg: Any, selector: str) -> int:
    """How many traces plotly drew in the chart under ``selector`` (scrolled to: charts
    load as they come near the viewport)."""
    pg.locator(selector).scroll_into_view_if_needed()
    pg.wait_for_selector(f"{selector} .main-svg")
    pg.wait_for_function(
        "(s) => document.querySelectorAll(s + ' .scatterlayer .trace').length > 0", arg=selector
    )
    return int(
        pg.evaluate("(s) => document.querySelector(s + ' .js-plotly-plot').data.length", selector)
    )


# -- overview ------------------------------------------------------------------------------


def test_overview_draws_metric_and_system_charts(
    site: dict[str, Any], server: str, page: Any, new_page: Any
) -> None:
    run = _run_named(server, "many")
    assert run
    page.goto(f"{server}/runs/{run['id']}")
    # the first 12 metrics as charts, the rest one click away
    page.wait_for_selector("#ov-metric-charts .ov-chart")
    assert page.locator("#ov-metric-charts .ov-chart").count() == 12
    assert page.inner_text("#ov-more") == f"all {N_METRICS} metrics in the Metrics tab"
    assert _traces(page, "#ov-metric-charts .ov-chart[data-chart=m00]") == 1
    # system charts: CPU (the tree's and the machine's) and memory from real samples, GPU
    assert _traces(page, "#ov-system-charts .ov-chart[data-chart=sys-cpu]") == 2
    assert _traces(page, "#ov-system-charts .ov-chart[data-chart=sys-memory]") == 2
    names = page.evaluate(
        "document.querySelector('.ov-chart[data-chart=sys-cpu] .js-plotly-plot').data.map(t => t.name)"
    )
    assert names == ["process tree (% of one core)", "machine (% of all cores)"]
    assert _traces(page, "#ov-system-charts .ov-chart[data-chart=sys-gpu-util]") == 1
    assert _traces(page, "#ov-system-charts .ov-chart[data-chart=sys-gpu-memory]") == 1
    # the summaries table is still there, under the charts
    assert "m13" in page.inner_text("#summaries-table")
    assert "sys/" not in page.inner_text("#summaries-table")  # folded away below it
    assert "sys/cpu_percent" in (page.text_content("#system-summaries-table") or "")
    assert page.is_hidden(".tab[data-tab=media]")  # this run logged no media
    assert page.locator(".badge.live, .badge.stalled").count() == 0  # finished
    screenshot(page, "run-overview.png")

    page.click("#ov-more")
    page.wait_for_selector("#pane-metrics .chart-card[data-key=m13]")
    assert page.locator("#pane-metrics .chart-card").count() == N_METRICS

    # dark mode follows the OS: the page's background and the chart text turn light-on-dark
    dark = new_page(color_scheme="dark")
    dark.goto(f"{server}/runs/{run['id']}")
    _traces(dark, "#ov-metric-charts .ov-chart[data-chart=m00]")
    screenshot(dark, "run-overview-dark.png")


def test_compare_pagescreenshot(site: dict[str, Any], server: str, page: Any) -> None:
    a, b = _run_named(server, "many"), _run_named(server, "many-b")
    assert a and b
    page.goto(f"{server}/compare?runs={a['id']},{b['id']}")
    page.wait_for_function(
        "document.querySelectorAll('#curves .chart-card[data-key=m00] .scatterlayer .trace').length === 2"
    )
    colors = page.evaluate(
        "document.querySelector('#curves .chart-card[data-key=m00] .js-plotly-plot').data.map(t => t.line.color)"
    )
    # each run has its color of every page (RB.runColor), not its position's
    assert colors == page.evaluate(f"[RB.runColor('{a['id']}'), RB.runColor('{b['id']}')]")
    screenshot(page, "compare.png")


# -- live state ----------------------------------------------------------------------------


def test_liveness_of_a_run() -> None:
    from runbase.render.views.run import STALL_AFTER_S, liveness

    now = 2_000_000_000.0
    fresh = liveness("running", now - 3, now)
    assert fresh["heartbeat_age_s"] == 3 and fresh["stalled"] is False
    assert fresh["heartbeat_at"] == "2033-05-18T03:33:17+00:00"
    old = liveness("running", now - STALL_AFTER_S - 1, now)
    assert old["stalled"] is True and old["stall_after_s"] == STALL_AFTER_S == 30
    # another machine's clock ahead of ours: fresh, never a negative age
    assert liveness("running", now + 50, now)["heartbeat_age_s"] == 0
    # an ended run is neither live nor stalled; a store's non-time is no heartbeat
    assert liveness("finished", now - 999, now)["heartbeat_age_s"] is None
    for bad in (None, float("nan"), 1e300, "soon"):
        got = liveness("running", bad, now)
        assert got["heartbeat_at"] is None and got["stalled"] is False, bad


def test_run_detail_documents_its_liveness(site: dict[str, Any], server: str) -> None:
    run = _run_named(server, "many")
    assert run
    detail = _api(server, f"/api/runs/{run['id']}")
    keys = documented_keys("api.md", "GET /api/runs/{run}")
    assert keys == {"series", "heartbeat_at", "heartbeat_age_s", "stalled", "stall_after_s"}
    assert keys <= set(detail)
    assert detail["stalled"] is False and detail["heartbeat_age_s"] is None  # finished
    assert detail["heartbeat_at"].startswith("20")


def _start_loop(root: Path, name: str) -> subprocess.Popen[bytes]:
    """`runbase run --name NAME -- python loop.py` in a session of its own (a group kill
    reaches the supervisor and its command, and nothing else)."""
    (root / "stop-loop").unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--name", name, "--", sys.executable, "loop.py"],
        cwd=root,
        env={k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_logging(server: str, name: str) -> dict[str, Any]:
    """The run ``name`` once its first metric points are in the store."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = _run_named(server, name)
        if run and "live_metric" in (run.get("metrics") or {}):
            return run
        time.sleep(0.2)
    pytest.fail(f"the run {name} logged nothing in 60 s")


def test_a_live_runs_overview_chart_grows(site: dict[str, Any], server: str, page: Any) -> None:
    root = site["root"]
    proc = _start_loop(root, "live-ov")
    try:
        run = _wait_logging(server, "live-ov")
        page.goto(f"{server}/runs/{run['id']}")
        page.wait_for_selector("#badges .badge.live")
        chart = "#ov-metric-charts .ov-chart[data-chart=live_metric]"
        _traces(page, chart)
        count = f"document.querySelector('{chart} .js-plotly-plot').data[0].x.length"
        n0 = page.evaluate(count)
        page.wait_for_function(f"{count} > {n0}")  # new points, no reload
        assert page.locator(".badge.stalled").count() == 0
        (root / "stop-loop").write_text("")
        assert proc.wait(60) == 0
        page.wait_for_selector("#badges .status-finished")
        assert page.locator(".badge.live").count() == 0
    finally:
        (root / "stop-loop").write_text("")
        stop_process(proc, group=True)


def test_a_run_whose_supervisor_was_killed_shows_stalled(
    site: dict[str, Any], server: str, page: Any
) -> None:
    root = site["root"]
    proc = _start_loop(root, "stalls")
    try:
        run = _wait_logging(server, "stalls")
        page.goto(f"{server}/runs/{run['id']}")
        page.wait_for_selector("#badges .badge.live")
        os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its command: no heartbeat
        proc.wait(30)
    finally:
        stop_process(proc, grace=0, group=True)
    # still `running` in the store (nothing finalized it), but visibly not alive
    page.wait_for_selector("#badges .badge.stalled", timeout=120_000)
    assert page.locator(".badge.live").count() == 0
    assert page.locator("#badges .status-running").count() == 1
    assert page.inner_text("#badges .badge.stalled").startswith("stalled — no heartbeat for ")
    detail = _api(server, f"/api/runs/{run['id']}")
    assert detail["status"] == "running" and detail["stalled"] is True
    assert detail["heartbeat_age_s"] > detail["stall_after_s"] > 0
    screenshot(page, "run-stalled.png")


# -- media ---------------------------------------------------------------------------------


def test_an_image_logged_at_three_steps_is_shown_at_each(
    media_runs: dict[str, Any], server: str, page: Any
) -> None:
    run = media_runs["media"]
    page.goto(f"{server}/runs/{run['id']}")
    page.wait_for_selector(".tab[data-tab=media]:not([hidden])")
    page.click(".tab[data-tab=media]")
    slider = "input.media-slider[data-key=samples]"
    page.wait_for_selector(f"{slider}[max='2']:not([disabled])")  # once its items came
    items = _api(server, f"/api/runs/{run['id']}/media", kind="image", key="samples")["items"]
    oid_at = {it["step"]: it["oid"] for it in items}
    assert sorted(oid_at) == [0, 1, 2] and len(set(oid_at.values())) == 3

    seen = []
    for step, rgb in ((0, [255, 0, 0]), (1, [0, 255, 0]), (2, [0, 0, 255])):
        page.eval_on_selector(
            slider, "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }", str(step)
        )
        img = f".media-section[data-key=samples] figure[data-step='{step}'] img.media-image"
        page.wait_for_function(
            "(s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
            arg=img,
        )
        assert page.locator(".media-section[data-key=samples] img.media-image").count() == 1
        src = page.get_attribute(img, "src")
        assert src and urllib.parse.unquote(src).endswith(oid_at[step])
        seen.append(src)
        size = page.eval_on_selector(img, "(i) => [i.naturalWidth, i.naturalHeight]")
        assert size == [24, 16]
        # the pixels are that step's image: red, green, blue
        pixel = page.eval_on_selector(
            img,
            """(i) => { const c = document.createElement('canvas'); c.width = i.naturalWidth;
                c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0);
                return Array.from(x.getImageData(5, 5, 1, 1).data.slice(0, 3)); }""",
        )
        assert pixel == rgb
        assert f"color {step}" in page.inner_text(".media-section[data-key=samples] figcaption")
    assert len(set(seen)) == 3
    screenshot(page, "run-media.png")


def test_a_logged_table_sorts_by_a_column(
    media_runs: dict[str, Any], server: str, page: Any
) -> None:
    run = media_runs["media"]
    page.goto(f"{server}/runs/{run['id']}#media")
    table = "table.media-table[data-key=preds]"
    page.wait_for_selector(f"{table} tbody tr")
    headers = page.eval_on_selector_all(f"{table} thead th", "(ths) => ths.map(t => t.textContent)")
    score, name = headers.index("score"), headers.index("name")

    def column(i: int) -> list[str]:
        return page.eval_on_selector_all(
            f"{table} tbody tr", "(trs, i) => trs.map(tr => tr.children[i].textContent)", i
        )

    assert column(name) == ["b", "a10", "a9", "c"]  # as logged
    page.click(f"{table} th[data-col='{score}']")
    page.wait_for_selector(f"{table} th[data-col='{score}'][aria-sort=ascending]")
    assert column(score) == ["9", "10", "100", ""]  # numbers as numbers; empty last
    page.click(f"{table} th[data-col='{score}']")
    page.wait_for_selector(f"{table} th[data-col='{score}'][aria-sort=descending]")
    assert column(score) == ["100", "10", "9", ""]
    page.click(f"{table} th[data-col='{name}']")
    page.wait_for_selector(f"{table} th[data-col='{name}'][aria-sort=ascending]")
    assert column(name) == ["a9", "a10", "b", "c"]  # natural order: a9 before a10


def test_a_missing_image_object_is_a_message_in_the_tab(
    media_runs: dict[str, Any], server: str, page: Any
) -> None:
    run = media_runs["broken"]
    page.goto(f"{server}/runs/{run['id']}#media")
    error = ".media-section[data-key=pic] .media-error"
    page.wait_for_selector(error)
    text = page.inner_text(error)
    assert text.startswith("the image could not be loaded: ") and len(text) > 40, text
    assert page.locator(".media-section[data-key=pic] img.media-image").count() == 0
