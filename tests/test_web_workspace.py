"""The chart workspace of the runs page (static/workspace.js), end to end: a real
`runbase ui` over a store of real runs, driven by a real headless Chromium (Playwright,
/usr/bin/chromium). One chart per metric with one trace per run, groups drawn as a mean
and a band, the x axis, log scale, smoothing and outlier clipping, panels added, removed,
resized and moved, the scatter, parallel coordinates, bar, importance and media panels,
and the messages a panel shows instead of a chart.

Chromium and Playwright are required: without them these tests fail (CI installs both),
they do not skip. A screenshot of the runs page is kept under test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from conftest import GIT, commit, http_request, runbase_cmd, runbase_ui, screenshot, write

LRS = ["0.3", "0.1", "0.03"]
SEEDS = ["0", "1"]
RUNS = len(LRS) * len(SEEDS)
STEPS = 30
IMAGE_STEPS = [0, 10, 20]

# acc depends on lr only (the importance panel ranks lr first), one run's loss spikes once;
# each run logs an image (a gray level that grows with the step) at three steps
TRAIN = f"""\
import argparse
import math

import numpy as np

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
for step in range({STEPS}):
    noise = 0.01 * ((a.seed * 7 + step * 3) % 5)
    spike = 20.0 if (a.lr, a.seed, step) == (0.3, 1, 15) else 0.0  # an outlier to clip
    loss = math.exp(-a.lr * step) + 0.01 + noise + spike
    runbase.log(loss=loss, acc=1 - math.exp(-a.lr * step), step=step)
    if step in {IMAGE_STEPS}:
        runbase.log_image("samples", np.full((8, 8), step * 10, dtype=np.uint8), step=step)
"""

# every trace's meta, per chart of the workspace (plotly keeps the traces on the node)
METAS = """(sel) => Array.from(document.querySelectorAll(sel)).map((p) => {
    const c = p.querySelector('.ws-chart');
    return [p.dataset.metric, (c && c.data || []).map((t) => t.meta)];
})"""
ROW_IDS = "Array.from(document.querySelectorAll('#runs tr.run-row')).map((r) => r.dataset.run)"
LINE_PANELS = "#workspace .ws-panel[data-type=line]"
PANEL_IDS = (
    "Array.from(document.querySelectorAll('#workspace .ws-panel')).map((p) => p.dataset.panelId)"
)


# -- the store, the server, the browser ----------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git project with a sweep over lr and seed: every run logs loss and acc."""
    root = tmp_path_factory.mktemp("workspace") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\n")
    write(root, "train.py", TRAIN)
    commit(root, "initial")
    sweep = runbase_cmd(
        "sweep", "--grid", "lr=" + ",".join(LRS), "--grid", "seed=" + ",".join(SEEDS),
        "-j", "2", "--", sys.executable, "train.py", cwd=root, timeout=300,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    out = runbase_cmd("ls", "--json", "--limit", "0", cwd=root, check=True).stdout
    runs = json.loads(out)
    assert len(runs) == RUNS
    return {"root": root, "runs": runs}


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"], "/api/runs?limit=1") as url:
        yield url


def _open(pg: Any, server: str) -> list[str]:
    """The runs page without a saved view, its table and line charts drawn: the row ids."""
    pg.goto(server + "/?view=")
    pg.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {RUNS}")
    _lines_drawn(pg)
    ids: list[str] = pg.evaluate(ROW_IDS)
    return ids


def _lines_drawn(pg: Any) -> None:
    """The line charts of loss and acc drawn (their traces are on the chart nodes)."""
    pg.wait_for_function(
        f"""() => ['acc', 'loss'].every((m) => {{
            const c = document.querySelector("{LINE_PANELS}[data-metric='" + m + "'] .ws-chart");
            return c && c.data && c.data.length > 0 && c.querySelector('.main-svg');
        }})"""
    )


def _gd(selector: str) -> str:
    """JavaScript: the plotly node of the panel ``selector``."""
    return f"document.querySelector({json.dumps(selector + ' .ws-chart')})"


def _chart(pg: Any, selector: str, expr: str) -> Any:
    """``expr`` over the plotly node of the panel ``selector`` (``gd``)."""
    return pg.evaluate(f"(() => {{ const gd = {_gd(selector)}; return {expr}; }})()")


def _add(pg: Any, kind: str) -> str:
    """Add a panel of ``kind`` by the menu: its selector."""
    before = pg.evaluate(PANEL_IDS)
    pg.click("#ws-add-panel")
    pg.click(f"button[data-panel-type={kind}]")
    pg.wait_for_function(f"({PANEL_IDS}).length === {len(before) + 1}")
    new = [i for i in pg.evaluate(PANEL_IDS) if i not in before]
    assert len(new) == 1
    selector = f"#workspace .ws-panel[data-panel-id='{new[0]}']"
    assert pg.get_attribute(selector, "data-type") == kind
    return selector


# -- line charts -----------------------------------------------------------------------------


def test_one_chart_per_metric_with_one_trace_per_run(
    site: dict[str, Any], server: str, page: Any
) -> None:
    ids = _open(page, server)
    assert sorted(ids) == sorted(r["id"] for r in site["runs"])
    charts = page.evaluate(METAS, LINE_PANELS)
    assert sorted(m for m, _ in charts) == ["acc", "loss"]  # one per metric, no sys/*
    for metric, metas in charts:
        assert sorted(metas) == sorted(ids), metric  # one trace per run of the table
    # the runs' colors are their colors everywhere (RB.runColor)
    colors = _chart(
        page,
        f"{LINE_PANELS}[data-metric=loss]",
        "gd.data.map((t) => [t.meta, t.line.color, RB.runColor(t.meta)])",
    )
    assert all(c == want for _, c, want in colors)
    assert page.inner_text("#ws-status") == f"{RUNS} runs"
    # every panel box has its size before and after drawing: nothing jumps
    heights = page.evaluate(
        "Array.from(document.querySelectorAll('#workspace .ws-body')).map((b) => b.getBoundingClientRect().height)"
    )
    assert len(set(heights)) == 1 and heights[0] > 100

    screenshot(page, "runs-page.png")


def test_group_by_draws_a_mean_and_a_band_per_group(
    site: dict[str, Any], server: str, page: Any
) -> None:
    _open(page, server)
    options = page.evaluate(
        "Array.from(document.querySelectorAll('#ws-group option')).map((o) => o.value)"
    )
    for want in ("", "params.lr", "params.seed", "status", "user", "sweep"):
        assert want in options
    assert page.is_disabled("#ws-band")  # a band needs groups
    page.select_option("#ws-group", "params.lr")
    loss = f"{LINE_PANELS}[data-metric=loss]"
    page.wait_for_function(f"{_gd(loss)}.data.some((t) => String(t.meta).startsWith('group:'))")
    metas = _chart(page, loss, "gd.data.map((t) => t.meta)")
    for lr in LRS:  # per group: its band (two edges, the upper filled down) and its mean
        assert metas.count(f"band:{lr}") == 2, metas
        assert metas.count(f"group:{lr}") == 1, metas
    assert len(metas) == 3 * len(LRS)  # no run's own trace
    fills = _chart(
        page, loss, "gd.data.filter((t) => t.meta.startsWith('band:')).map((t) => t.fill || '')"
    )
    assert fills.count("tonexty") == len(LRS)
    band = "(() => { const t = gd.data.filter((t) => t.meta === 'band:0.3'); return [t[0].y, t[1].y]; })()"
    lo, hi = _chart(page, loss, band)
    assert any(h > lo_ for lo_, h in zip(lo, hi, strict=True))  # the seeds differ: a band

    # a run hidden by its eye leaves its group's mean and band
    # a group's runs are counted in its hover text
    names = "gd.data.filter((t) => t.meta.startsWith('group:')).map((t) => t.name + ' ' + t.hovertemplate)"
    assert all("(2 runs)" in n for n in _chart(page, loss, names))
    hide = next(r["id"] for r in site["runs"] if r["params"]["lr"] == 0.3)
    page.click(f"button.eye[data-run='{hide}']")
    page.wait_for_function(
        f"(() => {{ const gd = {_gd(loss)}; return ({names}).some((n) => n.startsWith('0.3 ') && n.includes('(1 run)')); }})()"
    )
    page.click(f"button.eye[data-run='{hide}']")
    page.wait_for_function(
        f"(() => {{ const gd = {_gd(loss)}; return ({names}).some((n) => n.startsWith('0.3 ') && n.includes('(2 runs)')); }})()"
    )
    lo, hi = _chart(page, loss, band)

    page.select_option("#ws-band", "sd")  # mean -+ sd: another band
    page.wait_for_function(
        f"""(() => {{ const gd = {_gd(loss)};
            const t = gd.data.find((t) => t.meta === 'band:0.3');
            return JSON.stringify(t.y) !== {json.dumps(json.dumps(lo))}; }})()"""
    )

    page.select_option("#ws-group", "")  # ungrouped: the runs again
    page.wait_for_function(f"{_gd(loss)}.data.every((t) => !String(t.meta).includes(':'))")


def test_grouped_with_many_hidden_runs_only_the_pages_are_excluded(
    site: dict[str, Any], server: str, page: Any
) -> None:
    """Hidden runs of other pages (more than a URL holds) are not sent: grouped, the
    panel API is asked to exclude only the hidden runs of the page the charts show."""
    hide = next(r["id"] for r in site["runs"] if r["params"]["lr"] == 0.3)
    elsewhere = [f"zz{i:014d}" for i in range(1500)]  # run ids of no run of this page
    page.add_init_script(
        f"sessionStorage.setItem('runbase.hidden', {json.dumps(json.dumps([*elsewhere, hide]))})"
    )
    excludes: list[list[str]] = []
    failed: list[str] = []
    page.on(
        "request",
        lambda r: (
            excludes.append(parse_qs(urlsplit(r.url).query).get("exclude", []))
            if "/api/panel" in r.url
            else None
        ),
    )
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    _open(page, server)
    page.select_option("#ws-group", "params.lr")
    loss = f"{LINE_PANELS}[data-metric=loss]"
    names = "gd.data.filter((t) => String(t.meta).startsWith('group:')).map((t) => t.name + ' ' + t.hovertemplate)"
    page.wait_for_function(
        f"(() => {{ const gd = {_gd(loss)}; return ({names}).some((n) => n.startsWith('0.3 ') && n.includes('(1 run)')); }})()"
    )
    assert all(n.startswith("0.3 ") or "(2 runs)" in n for n in _chart(page, loss, names))
    assert not failed, failed
    assert excludes and all(len(e) <= RUNS for e in excludes), [len(e) for e in excludes]
    assert excludes[-1] == [hide]
    assert not page.locator("#workspace .ws-message.ws-error").count()

    # shown again by its eye: back in its group's band
    page.click(f"button.eye[data-run='{hide}']")
    page.wait_for_function(
        f"(() => {{ const gd = {_gd(loss)}; return ({names}).some((n) => n.startsWith('0.3 ') && n.includes('(2 runs)')); }})()"
    )
    assert excludes[-1] == []


def test_x_axis_log_scale_smoothing_and_clipping(server: str, page: Any) -> None:
    ids = _open(page, server)
    loss = f"{LINE_PANELS}[data-metric=loss]"
    first = f"gd.data.find((t) => t.meta === {json.dumps(ids[0])})"
    assert _chart(page, loss, f"{first}.x") == list(range(STEPS))

    page.select_option("#ws-x", "relative")  # seconds since the run started
    page.wait_for_function(
        f"(() => {{ const gd = {_gd(loss)}; const t = {first}; return t && t.x[1] !== 1; }})()"
    )
    relative = _chart(page, loss, f"{first}.x")
    assert all(isinstance(v, (int, float)) and 0 <= v < 600 for v in relative)
    page.select_option("#ws-x", "time")  # wall clock: a date axis
    page.wait_for_function(f"{_gd(loss)}.layout.xaxis.type === 'date'")
    assert _chart(page, loss, f"{first}.x[0]") > 1.5e12  # epoch milliseconds

    page.check("#ws-log")
    page.wait_for_function(f"{_gd(loss)}.layout.yaxis.type === 'log'")
    page.uncheck("#ws-log")
    page.check("#ws-clip")  # the y range of the bulk of the points, not of the first spike
    page.wait_for_function(
        f"(() => {{ const l = {_gd(loss)}.layout.yaxis; return l.autorange === false && Array.isArray(l.range); }})()"
    )
    top = _chart(page, loss, "gd.layout.yaxis.range[1]")
    assert 1 < top < 2  # the spike (21) is off the chart, every other point on it

    page.fill("#ws-smoothing", "0.8")  # smoothed, the raw line faint behind each run's
    page.wait_for_function(
        f"{_gd(loss)}.data.some((t) => t.meta === 'raw:' + {json.dumps(ids[0])})"
    )
    assert page.inner_text("#ws-smoothing-value") == "0.8"
    raw = _chart(page, loss, f"gd.data.find((t) => t.meta === 'raw:' + {json.dumps(ids[0])}).y")
    smooth = _chart(page, loss, f"{first}.y")
    assert raw != smooth and len(raw) == len(smooth)


def test_hovering_a_trace_marks_its_runs_row_and_dims_the_others(
    site: dict[str, Any], server: str, page: Any
) -> None:
    _open(page, server)
    small = {r["id"] for r in site["runs"] if r["params"]["lr"] == 0.03}
    acc = f"{LINE_PANELS}[data-metric=acc]"
    # the pointer on a point of an lr=0.03 curve (its seeds' curves are the same one);
    # plotly sends hover events for the pointer only, not for Plotly.Fx.hover
    where = _chart(
        page,
        acc,
        f"""(() => {{ const t = gd.data.find((t) => {json.dumps(sorted(small))}.includes(t.meta));
            const fl = gd._fullLayout; const box = gd.getBoundingClientRect();
            return [box.left + fl.margin.l + fl.xaxis.l2p(t.x[20]),
                    box.top + fl.margin.t + fl.yaxis.l2p(t.y[20])]; }})()""",
    )
    page.mouse.move(*where)
    page.wait_for_selector("#runs tr.hovered")
    hovered = page.evaluate(
        "Array.from(document.querySelectorAll('#runs tr.hovered')).map((r) => r.dataset.run)"
    )
    assert len(hovered) == 1 and hovered[0] in small
    # in every chart: that run's traces stand out, the others are dimmed
    looks = f"""Array.from(document.querySelectorAll('{LINE_PANELS} .ws-chart')).flatMap((c) =>
        c.data.map((t) => [t.meta === {json.dumps(hovered[0])}, t.opacity]))"""
    page.wait_for_function(f"({looks}).every(([mine, o]) => mine ? o === 1 : o < 0.5)")

    page.mouse.move(5, 5)  # off the chart: nothing hovered, nothing dimmed
    page.wait_for_function("document.querySelectorAll('#runs tr.hovered').length === 0")
    page.wait_for_function(f"({looks}).every(([, o]) => o === 1)")


# -- panels --------------------------------------------------------------------------------


def test_panels_are_added_resized_moved_and_removed(server: str, page: Any) -> None:
    _open(page, server)
    start = page.evaluate(PANEL_IDS)
    line = _add(page, "line")
    page.wait_for_selector(f"{line} .ws-chart .main-svg")
    assert page.evaluate(PANEL_IDS)[-1] == page.get_attribute(line, "data-panel-id")

    width = page.evaluate(
        f"document.querySelector({json.dumps(line)}).getBoundingClientRect().width"
    )
    page.click(f"{line} .ws-wider")
    page.wait_for_function(
        f"document.querySelector({json.dumps(line)}).classList.contains('ws-w2')"
    )
    wider = page.evaluate(
        f"document.querySelector({json.dumps(line)}).getBoundingClientRect().width"
    )
    assert wider > 1.8 * width
    page.wait_for_function(  # the chart follows its box
        f"document.querySelector({json.dumps(line + ' .ws-chart .main-svg')}).getBoundingClientRect().width > {1.8 * width - 20}"
    )
    page.click(f"{line} .ws-narrower")
    page.wait_for_function(
        f"document.querySelector({json.dumps(line)}).classList.contains('ws-w1')"
    )
    page.click(f"{line} .ws-taller")
    page.wait_for_function(
        f"document.querySelector({json.dumps(line)}).classList.contains('ws-h2')"
    )
    assert page.is_disabled(f"{line} .ws-narrower")  # 1..4 columns, 1..3 heights

    new = page.get_attribute(line, "data-panel-id")
    page.click(f"{line} .ws-left")  # moved before the panel before it
    page.wait_for_function(f"({PANEL_IDS}).indexOf({json.dumps(new)}) === {len(start) - 1}")
    page.click(f"{line} .ws-right")
    page.wait_for_function(f"({PANEL_IDS}).indexOf({json.dumps(new)}) === {len(start)}")
    # drag and drop by the handle: the first panel dropped on the left half of the new one
    first = start[0]
    page.drag_and_drop(
        f"#workspace .ws-panel[data-panel-id='{first}'] .ws-handle",
        line,
        target_position={"x": 5, "y": 60},
    )
    page.wait_for_function(
        f"({PANEL_IDS}).indexOf({json.dumps(first)}) === ({PANEL_IDS}).indexOf({json.dumps(new)}) - 1"
    )
    assert page.evaluate(PANEL_IDS)[-1] == new

    page.click(f"{line} .ws-remove")
    page.wait_for_function(f"({PANEL_IDS}).length === {len(start)}")
    assert page.locator(line).count() == 0


def test_scatter_parallel_bar_and_importance_panels_draw(
    site: dict[str, Any], server: str, page: Any
) -> None:
    ids = _open(page, server)
    scatter = _add(page, "scatter")
    page.wait_for_selector(f"{scatter} .scatterlayer .trace")
    assert sorted(_chart(page, scatter, "gd.data[0].customdata")) == sorted(ids)
    assert page.input_value(f"{scatter} select.ws-sel-y") == "metrics.acc"
    assert page.input_value(f"{scatter} select.ws-sel-x").startswith("params.")
    page.select_option(f"{scatter} select.ws-sel-x", "params.lr")
    page.wait_for_function(f"{_gd(scatter)}.layout.xaxis.title.text === 'params.lr'")
    xs = _chart(page, scatter, "gd.data[0].x")
    assert sorted(set(xs)) == sorted(float(lr) for lr in LRS)

    parallel = _add(page, "parallel")
    page.wait_for_selector(f"{parallel} .parcoords")
    labels = _chart(page, parallel, "gd.data[0].dimensions.map((d) => d.label)")
    assert labels == ["lr", "seed", "acc"]  # the params that differ, then the metric

    bar = _add(page, "bar")
    page.wait_for_selector(f"{bar} .barlayer .trace")
    assert sorted(_chart(page, bar, "gd.data[0].customdata")) == sorted(ids)
    page.select_option(f"{bar} select.ws-sel-metric", "loss")
    page.wait_for_function(f"document.querySelector({json.dumps(bar)}).dataset.metric === 'loss'")
    assert page.get_attribute(f"{bar} .ws-panel-title", "title") == "loss per run"

    importance = _add(page, "importance")  # a random forest fitted on the server
    page.wait_for_selector(f"{importance} .barlayer .trace", timeout=60_000)
    ranked = _chart(page, importance, "gd.data[0].y")
    assert ranked[-1] == "lr"  # the top bar: acc depends on lr only

    # the hover highlight reaches these charts too: the other runs' points fade
    page.hover(f"#runs tr[data-run='{ids[0]}'] td.num")
    page.wait_for_function(
        f"""(() => {{ const d = {_gd(scatter)}.data[0];
            return d.marker.opacity.filter((o) => o < 1).length === {RUNS - 1}; }})()"""
    )


def test_media_panel_shows_each_runs_images_at_a_step(
    site: dict[str, Any], server: str, page: Any
) -> None:
    _open(page, server)
    media = _add(page, "media")
    page.wait_for_selector(f"{media} img.ws-image")
    assert page.input_value(f"{media} select.ws-sel-key") == "samples"
    page.wait_for_function(
        f"document.querySelectorAll({json.dumps(media + ' img.ws-image')}).length === {RUNS}"
    )
    assert page.inner_text(f"{media} .ws-step-value") == f"step {IMAGE_STEPS[-1]}"
    last = page.get_attribute(f"{media} img.ws-image >> nth=0", "src")
    for i, step in enumerate(IMAGE_STEPS):  # the slider: each step's images
        page.fill(f"{media} input.ws-step", str(i))
        page.wait_for_function(
            f"document.querySelector({json.dumps(media + ' .ws-step-value')}).textContent === 'step {step}'"
        )
        src = page.get_attribute(f"{media} img.ws-image >> nth=0", "src")
        assert (src == last) == (step == IMAGE_STEPS[-1])
    # each image loads (the object route answers with the PNG)
    page.wait_for_function(
        f"Array.from(document.querySelectorAll({json.dumps(media + ' img.ws-image')})).every((i) => i.complete && i.naturalWidth === 8)"
    )


# -- messages instead of charts --------------------------------------------------------------


def test_a_views_panels_open_as_saved_one_naming_no_metric_says_so(server: str, page: Any) -> None:
    name = "missing metric"
    spec = {
        "version": 1,
        "chart": {"x": "step"},
        "panels": [
            {"id": "a", "type": "line", "metric": "nosuch", "width": 1, "height": 1},
            {"id": "b", "type": "line", "metric": "loss", "width": 2, "height": 1},
            {
                "id": "c",
                "type": "parallel",
                "metric": "acc",
                "metrics": ["params.lr", "metrics.loss"],
            },
        ],
    }
    path = "/api/views/" + quote(name, safe="")
    status, body = http_request(server, "PUT", path, data=json.dumps({"spec": spec}).encode())
    assert status in (200, 201), body
    try:
        page.goto(server + "/?view=" + quote(name))
        message = "#workspace .ws-panel[data-metric=nosuch] .ws-message"
        page.wait_for_selector(message)
        assert page.inner_text(message) == "no run in this view logged metric 'nosuch'"
        page.wait_for_selector("#workspace .ws-panel[data-metric=loss].ws-w2 .ws-chart .main-svg")
        assert page.evaluate(PANEL_IDS) == ["a", "b", "c"]
        parallel = "#workspace .ws-panel[data-panel-id=c]"  # its own axes, then its metric
        page.wait_for_selector(f"{parallel} .parcoords")
        labels = _chart(page, parallel, "gd.data[0].dimensions.map((d) => d.label)")
        assert labels == ["params.lr", "metrics.loss", "acc"]
    finally:
        http_request(server, "DELETE", path)


def test_panels_below_the_fold_load_when_scrolled_to(server: str, page: Any) -> None:
    name = "tall panels"
    tall = {"type": "line", "metric": "acc", "width": 4, "height": 3}
    spec = {
        "version": 1,
        "panels": [
            {"id": "a", **tall},
            {"id": "b", **tall},
            {"id": "c", **tall},
            {"id": "d", **tall, "metric": "loss"},
        ],
    }
    path = "/api/views/" + quote(name, safe="")
    status, body = http_request(server, "PUT", path, data=json.dumps({"spec": spec}).encode())
    assert status in (200, 201), body
    asked: list[list[str]] = []
    page.on(
        "request",
        lambda r: (
            asked.append(parse_qs(urlsplit(r.url).query).get("metrics", []))
            if "/api/panel" in r.url
            else None
        ),
    )
    try:
        page.goto(server + "/?view=" + quote(name))
        page.wait_for_selector("#workspace .ws-panel[data-panel-id=a] .ws-chart .main-svg")
        # the panels in view share one request, for their metric only; d's box is there
        assert asked == [["acc"]]
        assert page.locator("#workspace .ws-panel[data-panel-id=d] .main-svg").count() == 0
        box = page.evaluate(
            "document.querySelector('#workspace .ws-panel[data-panel-id=d] .ws-body').getBoundingClientRect().height"
        )
        assert box > 500  # three units high before its chart is drawn
        page.locator("#workspace .ws-panel[data-panel-id=d]").scroll_into_view_if_needed()
        page.wait_for_selector("#workspace .ws-panel[data-panel-id=d] .ws-chart .main-svg")
        assert asked == [["acc"], ["loss"]]
    finally:
        http_request(server, "DELETE", path)


def test_an_api_error_is_said_in_the_panels(server: str, page: Any) -> None:
    _open(page, server)
    page.fill("#filter", "params.lr <")  # malformed: the API's 400, in each panel
    page.press("#filter", "Enter")
    page.wait_for_selector(f"{LINE_PANELS}[data-metric=loss] .ws-message.ws-error")
    assert "could not load the charts" in page.inner_text(
        f"{LINE_PANELS}[data-metric=loss] .ws-message"
    )

    page.fill("#filter", "params.lr > 5")  # no run: said, not a blank area
    page.press("#filter", "Enter")
    page.wait_for_selector("#workspace .ws-message:has-text('no run matches this filter')")
