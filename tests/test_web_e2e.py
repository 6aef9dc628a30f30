"""The web UI end to end: a real `runbase ui` server over a store of real runs, driven
by a real headless Chromium (Playwright, /usr/bin/chromium), and `runbase report`.

Chromium and Playwright are required: without them these tests fail (CI installs
both: scripts/install-test-deps and the test extra), they do not skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, commit, runbase_cmd, runbase_ui, write

LRS = ["0.3", "0.1", "0.03", "0.01"]
WDS = ["0", "0.01"]

TRAIN = """\
import argparse
import math

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--wd", type=float, default=0.0)
a = p.parse_args()
for step in range(40):
    runbase.log(loss=math.exp(-a.lr * step) + 0.01, step=step)
runbase.summary(acc=0.5 - 0.1 * math.log10(a.lr))  # acc depends on lr only
"""

PREP = """\
import runbase

rows = open("raw.csv").read().splitlines()
with open("clean.csv", "w") as f:
    f.write("\\n".join(r for r in rows if r) + "\\n")
runbase.summary(rows=len(rows))
"""

FIT = """\
import runbase

n = len(open("clean.csv").read().splitlines())
with open("model.bin", "wb") as f:
    f.write(bytes([n % 256]) * 64)
for step in range(5):
    runbase.log(mse=1.0 / (step + 1), step=step)
    runbase.log(**{"sys/cpu_percent": 50.0 + step}, step=step)
"""

LIVE = """\
import os
import time

import runbase

step = 0
while not os.path.exists("stop-live"):
    runbase.log(live_metric=float(step), step=step)
    print(f"tick {step}", flush=True)
    step += 1
    time.sleep(0.3)
"""


# -- the store, the server, the browser ----------------------------------------------------


def _ls(project: Path, *args: str) -> list[dict[str, Any]]:
    out = runbase_cmd("ls", "--json", "--limit", "0", *args, cwd=project, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git project with a sweep (acc depends on lr only), a prep -> fit pair (lineage)
    and a run with an uncommitted change (the code diff)."""
    root = tmp_path_factory.mktemp("web") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\nstop-live\n")
    write(root, "train.py", TRAIN)
    write(root, "prep.py", PREP)
    write(root, "fit.py", FIT)
    write(root, "live.py", LIVE)
    write(root, "raw.csv", "a,b\n1,2\n\n3,4\n")
    commit(root, "initial")
    py = sys.executable
    sweep = runbase_cmd(
        "sweep",
        "--grid",
        "lr=" + ",".join(LRS),
        "--grid",
        "wd=" + ",".join(WDS),
        "-j",
        "2",
        "--name",
        "sw",
        "--",
        py,
        "train.py",
        cwd=root,
        timeout=240,
    )
    assert sweep.returncode == 0, sweep.stderr
    sweep_id = re.search(r"sweep (\w+):", sweep.stdout).group(1)  # type: ignore[union-attr]
    runbase_cmd(
        "run", "--name", "prep", "-i", "raw.csv", "-o", "clean.csv", "--", py, "prep.py",
        cwd=root, check=True,
    )  # fmt: skip
    runbase_cmd(
        "run", "--name", "fit", "-i", "clean.csv", "-o", "model.bin", "--", py, "fit.py",
        cwd=root, check=True,
    )  # fmt: skip
    with (root / "train.py").open("a") as f:
        f.write("# tuned by hand\n")
    runbase_cmd(
        "run", "--name", "dirty", "--", py, "train.py", "--lr", "0.05", cwd=root, check=True
    )
    runs = {r["name"]: r for r in _ls(root)}
    return {
        "root": root,
        "sweep_id": sweep_id,
        "sweep_runs": [r for r in _ls(root, "--sweep", sweep_id)],
        "runs": runs,
    }


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    """`runbase ui --no-browser` on a free port, as a user starts it."""
    with runbase_ui(site["root"], "/api/runs?limit=1") as url:
        yield url


def _plotly_drawn(pg: Any, scope: str) -> None:
    """plotly rendered into ``scope``: its SVG and at least one trace, not just the div."""
    pg.wait_for_selector(f"{scope} .main-svg")
    pg.wait_for_function(
        "(s) => document.querySelectorAll(s + ' .scatterlayer .trace, ' + s + ' .barlayer .trace').length > 0",
        arg=scope,
    )


# -- the runs table ------------------------------------------------------------------------


def test_runs_table_filters_sorts_and_pages(site: dict[str, Any], server: str, page: Any) -> None:
    total = len(_ls(site["root"]))
    page.goto(server + "/")
    page.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {total}")
    assert page.inner_text("#count").endswith(f"of {total} runs")
    assert page.locator("a", has_text="dirty").count() == 1

    page.fill("#filter", "params.lr < 0.05")
    page.press("#filter", "Enter")
    expected = len(_ls(site["root"], "--where", "params.lr < 0.05"))
    assert 0 < expected < total
    page.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {expected}")
    assert "where=params.lr" in page.url  # the state is in the URL

    page.fill("#filter", "params.lr <")  # a bad expression: the API's message, shown
    page.press("#filter", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error").strip()

    # sort by a metric column, largest first: the best acc leads
    page.fill("#filter", "")
    page.press("#filter", "Enter")
    page.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {total}")
    page.click("th[data-sort='metrics.acc']")
    best = max(site["sweep_runs"], key=lambda r: r["metrics"]["acc"]["value"])
    page.wait_for_function(
        f"document.querySelector('#runs tr.run-row').dataset.id === {json.dumps(best['id'])}"
    )

    # paging: 5 per page is not offered, so ask through the URL, as a shared link does
    page.goto(server + "/?limit=5")
    page.wait_for_function("document.querySelectorAll('#runs tr.run-row').length === 5")
    page.click("#next")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('6–')")

    # group by sweep: a header row per group
    page.goto(server + "/")
    page.select_option("#group-by", "sweep")
    page.wait_for_selector("tr.group-row")
    assert page.locator("tr.group-row", has_text=site["sweep_id"]).count() == 1


# -- compare -------------------------------------------------------------------------------


def test_select_two_runs_and_compare(site: dict[str, Any], server: str, page: Any) -> None:
    a, b = site["runs"]["sw-1"], site["runs"]["sw-2"]
    page.goto(server + "/")
    page.evaluate("sessionStorage.clear()")
    page.reload()
    for r in (a, b):
        page.check(f"input.select[data-id='{r['id']}']")
    assert page.inner_text("#compare") == "Compare 2 runs"
    page.click("#compare")
    page.wait_for_url(re.compile(r"/compare\?runs="))
    assert a["id"] in page.url and b["id"] in page.url

    _plotly_drawn(page, "#curves")  # the overlaid loss curves, one trace per run
    page.wait_for_function(
        "document.querySelectorAll('#curves .chart-card[data-key=loss] .scatterlayer .trace').length === 2"
    )

    page.click(".tab[data-tab=scatter]")
    _plotly_drawn(page, "#scatter-chart")
    page.click(".tab[data-tab=parallel]")
    page.wait_for_selector("#parallel-chart .main-svg")
    page.wait_for_function(
        "document.querySelectorAll('#parallel-chart .parcoords .axis-title').length >= 2"
    )

    page.click(".tab[data-tab=diff]")  # two runs: the full diff, as `runbase diff`
    page.wait_for_selector("#diff .diff-section[data-section=params] .dl-changed")
    changed = page.inner_text("#diff .diff-section[data-section=params]")
    assert "~ wd" in changed or "~ lr" in changed
    assert "unchanged" in page.inner_text("#diff .diff-section[data-section=env]")


def test_compare_shows_run_names_as_written_not_as_markup(tmp_path: Path, page: Any) -> None:
    """plotly reads a little HTML in trace names and labels: a run named with markup is
    shown as its text in the compare page's legend, not bold or decoded."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(
        root,
        "t.py",
        "import runbase\nfor s in range(3):\n    runbase.log(loss=1.0 / (s + 1), step=s)\n",
    )
    commit(root, "initial")
    names = ["<b>bold</b>", "a&amp;b"]
    for name in names:
        runbase_cmd("run", "--name", name, "--", sys.executable, "t.py", cwd=root, check=True)
    ids = [r["id"] for r in _ls(root)]
    with runbase_ui(root, "/api/runs?limit=1") as url:
        page.goto(f"{url}/compare?runs={','.join(ids)}")
        _plotly_drawn(page, "#curves")
        page.wait_for_selector("#curves .chart-card[data-key=loss] .legend .traces")
        legend = page.eval_on_selector_all(
            "#curves .chart-card[data-key=loss] .legend .traces text",
            "ts => ts.map((t) => t.textContent)",
        )
        assert sorted(legend) == sorted(names), legend
        assert not page.locator("#curves .legend tspan[style*=bold]").count()


def test_importance_ranks_the_parameter_that_matters(
    site: dict[str, Any], server: str, page: Any
) -> None:
    ids = ",".join(r["id"] for r in site["sweep_runs"])
    page.goto(f"{server}/compare?runs={ids}#importance")
    page.wait_for_selector("#importance-table tbody tr")
    first = page.locator("#importance-table tbody tr").first.get_attribute("data-param")
    assert first == "lr"
    _plotly_drawn(page, "#importance-chart")
    # the chart puts the most important bar on top: the last category of the y axis
    top = page.evaluate(
        "(() => { const d = document.getElementById('importance-chart').data[0]; return d.y[d.y.length - 1]; })()"
    )
    assert top == "lr"


# -- one run -------------------------------------------------------------------------------


def test_run_page_overview_metrics_and_code_diff(
    site: dict[str, Any], server: str, page: Any
) -> None:
    dirty = site["runs"]["dirty"]
    page.goto(f"{server}/runs/{dirty['id'][:10]}")
    page.wait_for_selector("#dirty-badge")  # "uncommitted changes"
    assert "dirty" in page.inner_text("#run-title")
    assert "train.py" in page.inner_text("#pane-overview")

    assert page.is_hidden(".tab[data-tab=system]")  # no sys/* series
    assert page.is_hidden(".tab[data-tab=notebook]")  # not run in a notebook

    page.click(".tab[data-tab=params]")
    page.wait_for_selector("#params-table")
    assert "argparse" in page.inner_text("#params-table")

    page.click(".tab[data-tab=metrics]")
    _plotly_drawn(page, "#pane-metrics")
    page.check("#pane-metrics .log-scale")
    page.wait_for_function(
        "document.querySelector('#pane-metrics .chart').layout.yaxis.type === 'log'"
    )

    page.click(".tab[data-tab=code]")
    page.wait_for_selector("#code-diff")
    # highlighted server-side: the added line is its own styled element
    added = page.locator("#code-diff .gi", has_text="+# tuned by hand")  # Generic.Inserted
    assert added.count() == 1
    color = added.evaluate("(n) => getComputedStyle(n).color")
    assert color not in ("rgb(0, 0, 0)", "")  # styled, not plain text

    page.click("#file-tree .file[data-path='train.py']")
    page.wait_for_selector("#code-view .highlight-wrap")
    assert "argparse" in page.inner_text("#code-view")

    page.click(".tab[data-tab=env]")
    page.fill("#package-search", "click")
    page.wait_for_function(
        "[...document.querySelectorAll('#packages tbody tr')].every(r => r.textContent.toLowerCase().includes('click'))"
    )
    assert page.locator("#packages tbody tr").count() >= 1

    page.click(".tab[data-tab=logs]")
    page.wait_for_selector("#log")


def test_lineage_links_files_to_the_runs_that_made_them(
    site: dict[str, Any], server: str, page: Any
) -> None:
    fit, prep = site["runs"]["fit"], site["runs"]["prep"]
    page.goto(f"{server}/runs/{fit['id']}#data")
    page.wait_for_selector(".files-inputs")
    assert "clean.csv" in page.inner_text(".files-inputs")
    assert "model.bin" in page.inner_text(".files-outputs")

    assert page.is_hidden(".tab[data-tab=system]") is False  # it logged sys/* series
    page.click(".tab[data-tab=system]")
    page.wait_for_selector("#pane-system .chart-card[data-key='sys/cpu_percent'] .main-svg")
    assert page.locator("#pane-system .chart-card").count() == 1  # mse is not a system metric

    page.click(".tab[data-tab=lineage]")
    page.wait_for_selector("#lineage svg .node")
    text = page.inner_text("#lineage")
    for name in ("clean.csv", "model.bin", "prep"):
        assert name in text, name
    assert page.locator("#lineage .node.current").count() == 1  # the run itself
    page.click("#lineage a.node-link:has-text('prep')")
    page.wait_for_url(re.compile(rf"/runs/{prep['id']}"))
    page.wait_for_selector("#run-title:has-text('prep')")


def test_unknown_run_shows_the_api_error(server: str, page: Any) -> None:
    page.goto(server + "/runs/zzzzzzzz")
    page.wait_for_selector("#error:not([hidden])")
    assert "zzzzzzzz" in page.inner_text("#error")


def test_a_running_run_updates_live(site: dict[str, Any], server: str, page: Any) -> None:
    root = site["root"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--name", "live", "--", sys.executable, "live.py"],
        cwd=root,
        env={k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        live = None
        while live is None and time.monotonic() < deadline:
            live = next((r for r in _ls(root, "--where", "name == 'live'")), None)
            time.sleep(0.2)
        assert live is not None, "the live run did not start"
        page.goto(f"{server}/runs/{live['id']}#metrics")
        page.wait_for_selector(".badge.live")
        page.wait_for_selector("#pane-metrics .chart-card[data-key=live_metric] .main-svg")
        n0 = page.evaluate(
            "document.querySelector('.chart-card[data-key=live_metric] .chart').data[0].x.length"
        )
        page.wait_for_function(  # new points arrive without a reload
            f"document.querySelector('.chart-card[data-key=live_metric] .chart').data[0].x.length > {n0}"
        )
        page.click(".tab[data-tab=logs]")
        page.wait_for_function("document.querySelector('#log').textContent.includes('tick 3')")
        (root / "stop-live").write_text("")
        assert proc.wait(30) == 0
        page.wait_for_selector("#badges .status-finished", timeout=15_000)
        assert page.locator(".badge.live").count() == 0
    finally:
        (root / "stop-live").write_text("")
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# -- runbase report ------------------------------------------------------------------------


def test_report_is_one_offline_file(site: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    a, b = site["runs"]["sw-1"], site["runs"]["dirty"]
    out = tmp_path / "out" / "report.html"
    proc = runbase_cmd("report", a["id"], b["id"], "-o", str(out), cwd=site["root"])
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "wrote" in proc.stdout
    page_html = out.read_text()
    assert "Plotly" in page_html and len(page_html) > 1_000_000  # plotly.js inlined
    assert not re.search(r"<script[^>]*\bsrc\s*=", page_html, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page_html, re.IGNORECASE)

    context = browser.new_context()
    context.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(out.as_uri())
        _plotly_drawn(pg, "#report-charts")
        assert pg.locator("#report-charts .chart-card").count() >= 1
        assert "lr" in pg.inner_text("#report-params")
        pg.wait_for_selector("#report-diff .diff-section[data-section=code]")
        assert "tuned by hand" in pg.inner_text("#report-diff")
    finally:
        context.close()
    assert not errors, errors

    one = tmp_path / "one.html"
    runbase_cmd("report", "fit", "-o", str(one), cwd=site["root"], check=True)
    embedded = one.read_text().split('<script id="report-data" type="application/json">', 1)[1]
    data = json.loads(embedded.split("</script>", 1)[0])
    assert [r["name"] for r in data["runs"]] == ["fit"] and data["diff"] is None
    assert [s["key"] for s in data["series"]] == ["mse", "sys/cpu_percent"]


def test_report_of_an_unknown_run_fails_clearly(site: dict[str, Any], tmp_path: Path) -> None:
    proc = runbase_cmd("report", "nosuchrun", "-o", str(tmp_path / "r.html"), cwd=site["root"])
    assert proc.returncode != 0 and "nosuchrun" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_without_the_ui_extra_the_commands_say_what_to_install(site: dict[str, Any]) -> None:
    block = "import sys; sys.modules['uvicorn'] = sys.modules['plotly'] = None; "
    for args in (["ui", "--no-browser"], ["report", "fit", "-o", "r.html"]):
        proc = subprocess.run(
            [sys.executable, "-c", block + f"from runbase.cli import main; main({args!r})"],
            cwd=site["root"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "pip install 'runbase[ui]'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (site["root"] / "r.html").exists()


def test_runs_table_and_compare_hide_constant_params(
    site: dict[str, Any], server: str, page: Any
) -> None:
    where = "params.wd == 0.01"  # wd is the same in each of these runs, lr differs
    runs = _ls(site["root"], "--where", where)
    page.goto(server + "/")
    page.evaluate("localStorage.clear()")
    page.goto(server + "/?where=" + where.replace(" ", "+"))
    page.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {len(runs)}")
    assert page.locator("th[data-sort='params.lr']").count() == 1
    assert page.locator("th[data-sort='metrics.acc']").count() == 1
    assert page.locator("th[data-sort='params.wd']").count() == 0
    assert page.inner_text("#hidden-params") == "(1 hidden)"
    page.check("#all-params")
    page.wait_for_selector("th[data-sort='params.wd']")
    page.uncheck("#all-params")
    page.wait_for_function("!document.querySelector(\"th[data-sort='params.wd']\")")

    ids = ",".join(r["id"] for r in runs[:2])
    page.goto(f"{server}/compare?runs={ids}#params")
    page.wait_for_selector("#params-table table")
    wd = page.locator("#params-table tr", has_text="params.wd")
    lr = page.locator("#params-table tr", has_text="params.lr")
    assert lr.is_visible() and not wd.is_visible()
    assert "constant params too (1)" in page.inner_text("#params-table label")
    page.check("#params-table #all-params")
    assert wd.is_visible()


def test_report_packs_plotly_once(site: dict[str, Any], tmp_path: Path) -> None:
    import base64
    import gzip

    from plotly.offline import get_plotlyjs

    a, b = site["runs"]["sw-1"], site["runs"]["sw-2"]
    out = tmp_path / "two.html"
    runbase_cmd("report", a["id"], b["id"], "-o", str(out), cwd=site["root"], check=True)
    page_html = out.read_text()
    assert out.stat().st_size < 2.5 * 2**20  # was 4.6 MiB with plotly.js inlined as text
    packed = page_html.split('<script id="plotly-gz" type="application/octet-stream">', 1)[1]
    assert gzip.decompress(base64.b64decode(packed.split("</script>", 1)[0])).decode() == (
        get_plotlyjs()
    )
    assert page_html.count('id="plotly-gz"') == 1


def test_importance_tab_explains_its_columns_and_warns(
    site: dict[str, Any], server: str, page: Any
) -> None:
    ids = ",".join(r["id"] for r in site["sweep_runs"])
    page.goto(f"{server}/compare?runs={ids}#importance")
    page.wait_for_selector("#importance-legend", timeout=90_000)  # loads scikit-learn first
    legend = page.inner_text("#importance-legend")
    for column in ("rf importance", "spearman", "eta", "n"):
        assert column + ":" in legend
    warning = page.inner_text("#importance-warning")
    assert f"only {len(site['sweep_runs'])} runs for 2 parameters" in warning
    assert page.locator("#importance-progress").count() == 0  # replaced by the chart


def test_runs_filter_with_a_misspelled_key_says_so(server: str, page: Any) -> None:
    page.goto(server + "/?where=params.lrr+<+0.05")
    page.wait_for_selector("#filter-notes:not([hidden])")
    assert "params.lrr exists in no run (did you mean params.lr?)" in page.inner_text(
        "#filter-notes"
    )
    page.fill("#filter", "params.lr < 0.05")
    page.press("#filter", "Enter")
    page.wait_for_selector("#filter-notes[hidden]", state="attached")
