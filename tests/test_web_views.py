"""The runs page around the chart workspace, end to end: a real `runbase ui` over a
store of real runs, driven by a real headless Chromium (Playwright, /usr/bin/chromium).

The table's eyes, hover and keyboard, saved views (save, reopen by URL, the default
view, one deleted under an open page) and dark mode. Chromium and Playwright are
required: without them these tests fail (CI installs both), they do not skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from conftest import GIT, commit, http_request, runbase_cmd, runbase_ui, start_server, write

LRS = ["0.3", "0.1", "0.03"]

TRAIN = """\
import argparse
import math

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
a = p.parse_args()
for step in range(20):
    runbase.log(loss=math.exp(-a.lr * step) + 0.01, acc=1 - math.exp(-a.lr * step), step=step)
"""

# the traces of one run in every chart of the workspace (plotly keeps them on the node)
TRACES_OF = """(id) => Array.from(document.querySelectorAll('#workspace .ws-chart'))
    .map((c) => (c.data || []).filter((t) => t.meta === id).length)"""
# a row's cells as the user reads them: the table's column headers
HEADERS = "Array.from(document.querySelectorAll('#runs thead th')).map((th) => th.textContent.replace(/ [▲▼]$/, ''))"
PANELS = "Array.from(document.querySelectorAll('#workspace .ws-panel')).map((p) => [p.dataset.type, p.dataset.metric || ''])"


# -- the store, the server, the browser ----------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git project with three runs of a sweep over lr, each logging loss and acc."""
    root = tmp_path_factory.mktemp("views") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\n")
    write(root, "train.py", TRAIN)
    commit(root, "initial")
    sweep = runbase_cmd(
        "sweep", "--grid", "lr=" + ",".join(LRS), "-j", "2", "--", sys.executable, "train.py",
        cwd=root, timeout=240,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    out = runbase_cmd("ls", "--json", "--limit", "0", cwd=root, check=True).stdout
    runs = json.loads(out)
    assert len(runs) == len(LRS)
    return {"root": root, "runs": runs}


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"], "/api/runs?limit=1") as url:
        yield url


def _rows(pg: Any, n: int) -> None:
    pg.wait_for_function(f"document.querySelectorAll('#runs tr.run-row').length === {n}")


def _charts_drawn(pg: Any, runs: int) -> None:
    """The workspace drew its charts: some chart has a trace of each of ``runs`` runs."""
    pg.wait_for_selector("#workspace .ws-panel .ws-chart .main-svg")
    pg.wait_for_function(
        """(n) => {
          const ids = new Set();
          for (const c of document.querySelectorAll('#workspace .ws-chart'))
            for (const t of c.data || []) if (typeof t.meta === 'string') ids.add(t.meta);
          return ids.size >= n;
        }""",
        arg=runs,
    )


def _wait_equal(pg: Any, expression: str, value: Any) -> None:
    """Wait until the page's ``expression`` is ``value`` (compared as JSON)."""
    pg.wait_for_function(
        f"(want) => JSON.stringify({expression}) === JSON.stringify(want)", arg=value
    )


def _api(server: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    return http_request(server, method, path, data=data)


def _view_path(name: str) -> str:
    return "/api/views/" + quote(name, safe="")


@pytest.fixture
def no_default(server: str) -> Iterator[None]:
    """Every view a test saved is deleted after it: the next test's `/` opens no view."""
    yield
    status, listing = _api(server, "GET", "/api/views")
    assert status == 200, listing
    for v in listing["views"]:
        _api(server, "DELETE", _view_path(v["name"]))


# -- the table drives the charts -----------------------------------------------------------


def test_eye_removes_the_runs_traces_from_every_chart(
    site: dict[str, Any], server: str, page: Any
) -> None:
    run = site["runs"][0]["id"]
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    _charts_drawn(page, len(LRS))
    before = page.evaluate(TRACES_OF, run)
    assert sum(before) >= 2  # loss and acc: a trace of the run in each line chart

    eye = page.locator(f"button.eye[data-run='{run}']")
    assert eye.get_attribute("aria-pressed") == "true"
    assert eye.get_attribute("aria-label")
    eye.click()
    page.wait_for_function(f"({TRACES_OF})({json.dumps(run)}).every((n) => n === 0)")
    assert eye.get_attribute("aria-pressed") == "false"
    others = [r["id"] for r in site["runs"][1:]]
    for other in others:  # the other runs keep theirs
        assert sum(page.evaluate(TRACES_OF, other)) >= 2

    # the hidden set is kept for the session, as the selection is
    page.reload()
    _rows(page, len(LRS))
    _charts_drawn(page, len(others))
    assert page.get_attribute(f"button.eye[data-run='{run}']", "aria-pressed") == "false"
    assert sum(page.evaluate(TRACES_OF, run)) == 0
    page.click(f"button.eye[data-run='{run}']")
    page.wait_for_function(f"({TRACES_OF})({json.dumps(run)}).reduce((a, b) => a + b, 0) >= 2")


def test_rows_carry_the_runs_colors(site: dict[str, Any], server: str, page: Any) -> None:
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    swatches = set()
    for r in site["runs"]:
        swatch = page.evaluate(
            "(id) => getComputedStyle(document.querySelector(`#runs tr[data-run='${id}'] .swatch`)).backgroundColor",
            r["id"],
        )
        want = page.evaluate(
            """(id) => { const s = document.createElement('span'); s.style.color = RB.runColor(id);
                document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; }""",
            r["id"],
        )
        assert swatch == want
        swatches.add(swatch)
    assert len(swatches) == len(site["runs"])  # up to 20 runs on a page never share a color


def test_hovering_a_row_highlights_its_run_and_a_trace_its_row(
    site: dict[str, Any], server: str, page: Any
) -> None:
    run = site["runs"][1]["id"]
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    _charts_drawn(page, len(LRS))
    # a trace's look: what the highlight changes (width, opacity), whatever the chart
    looks = """(id) => Array.from(document.querySelectorAll('#workspace .ws-chart')).flatMap((c) =>
        (c.data || []).filter((t) => typeof t.meta === 'string' && !t.meta.includes(':')).map((t) =>
          [t.meta === id, JSON.stringify([t.opacity ?? 1, (t.line || {}).width ?? null,
                                          (t.marker || {}).opacity ?? null])]))"""
    resting = page.evaluate(looks, run)
    assert len({look for _, look in resting}) == 1  # nothing stands out yet

    page.hover(f"#runs tr[data-run='{run}'] td.num")
    page.wait_for_selector(f"#runs tr.hovered[data-run='{run}']")
    assert page.locator("#runs tr.hovered").count() == 1
    page.wait_for_function(
        f"""(() => {{ const l = ({looks})({json.dumps(run)});
            const mine = new Set(l.filter(([m]) => m).map(([, s]) => s));
            const rest = new Set(l.filter(([m]) => !m).map(([, s]) => s));
            return mine.size > 0 && rest.size > 0 && [...mine].every((s) => !rest.has(s)); }})()"""
    )

    page.mouse.move(5, 5)  # off the table: nothing highlighted
    page.wait_for_function("document.querySelectorAll('#runs tr.hovered').length === 0")
    page.wait_for_function(f"new Set(({looks})('').map(([, s]) => s)).size === 1")

    # the other way: the pointer on a point of a trace marks its run's row (the smallest lr:
    # its acc mid-run is low in the chart, clear of the mode bar over the chart's top)
    other = min(site["runs"], key=lambda r: r["params"]["lr"])["id"]
    x, y = page.evaluate(
        """(id) => {
          for (const c of document.querySelectorAll('#workspace .ws-chart')) {
            const t = (c.data || []).find((t) => t.meta === id);
            if (!t) continue;
            const i = t.x.length >> 1, L = c._fullLayout, box = c.getBoundingClientRect();
            return [box.left + L._size.l + L.xaxis.l2p(t.x[i]), box.top + L._size.t + L.yaxis.l2p(t.y[i])];
          }
        }""",
        other,
    )
    page.mouse.move(x, y)
    page.wait_for_selector(f"#runs tr.hovered[data-run='{other}']")


def test_the_table_is_keyboard_navigable(site: dict[str, Any], server: str, page: Any) -> None:
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    ids = page.evaluate(
        "Array.from(document.querySelectorAll('#runs tr.run-row')).map((r) => r.dataset.run)"
    )
    focused = "document.activeElement.dataset.run"
    page.focus("#runs tr.run-row")
    assert page.evaluate(focused) == ids[0]
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == ids[1]
    # the focus is seen: an outline on the row the keyboard is on
    style = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert style == "solid"
    page.keyboard.press("End")
    assert page.evaluate(focused) == ids[-1]
    page.keyboard.press("Home")
    assert page.evaluate(focused) == ids[0]
    page.keyboard.press("ArrowUp")  # already the first: stays
    assert page.evaluate(focused) == ids[0]

    page.keyboard.press("Space")  # selects the run, as its checkbox
    assert page.is_checked(f"input.select[data-id='{ids[0]}']")
    assert page.inner_text("#compare") == "Compare 1 run"
    page.keyboard.press("Space")
    assert not page.is_checked(f"input.select[data-id='{ids[0]}']")

    page.keyboard.press("h")  # its eye
    assert page.get_attribute(f"button.eye[data-run='{ids[0]}']", "aria-pressed") == "false"
    page.keyboard.press("h")
    assert page.get_attribute(f"button.eye[data-run='{ids[0]}']", "aria-pressed") == "true"

    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # opens the run
    page.wait_for_url(re.compile(r"/runs/" + ids[1]))


# -- saved views ---------------------------------------------------------------------------


def test_a_saved_view_reopens_from_its_url(
    site: dict[str, Any], server: str, new_page: Any, no_default: None
) -> None:
    page = new_page()
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    _charts_drawn(page, len(LRS))
    page.fill("#filter", "params.lr < 0.2")
    page.press("#filter", "Enter")
    _rows(page, 2)
    # columns: the user's pick (lr and loss, not acc)
    page.click("#columns summary")
    page.uncheck("#column-list input[value='metrics.acc']")
    page.wait_for_function(
        "!Array.from(document.querySelectorAll('#runs thead th')).some((th) => th.textContent.startsWith('metrics.acc'))"
    )
    page.click("#columns summary")
    # panels: one more (a bar chart), the first one gone
    n = page.locator("#workspace .ws-panel").count()
    page.click("#ws-add-panel")
    page.click("button[data-panel-type=bar]")
    page.wait_for_function(f"document.querySelectorAll('#workspace .ws-panel').length === {n + 1}")
    page.click("#workspace .ws-panel >> nth=0 >> .ws-remove")
    page.wait_for_function(f"document.querySelectorAll('#workspace .ws-panel').length === {n}")
    headers, panels = page.evaluate(HEADERS), page.evaluate(PANELS)

    page.click("#view-save")
    page.fill("#view-name", "small lr & loss")
    page.click("#view-save-confirm")
    page.wait_for_function("new URL(location.href).searchParams.get('view') === 'small lr & loss'")
    assert page.input_value("#view-select") == "small lr & loss"
    assert page.is_hidden("#view-modified")

    # the URL, in a fresh browser context (no storage of the first): the same page
    again = new_page()
    again.goto(server + "/?view=" + quote("small lr & loss"))
    _rows(again, 2)
    assert again.input_value("#filter") == "params.lr < 0.2"
    _wait_equal(again, HEADERS, headers)
    _wait_equal(again, PANELS, panels)
    assert again.input_value("#view-select") == "small lr & loss"
    assert again.is_hidden("#view-modified")

    # a change shows the page differs from the saved view; the URL keeps it over a reload
    again.fill("#filter", "params.lr < 0.05")
    again.press("#filter", "Enter")
    _rows(again, 1)
    again.wait_for_selector("#view-modified:not([hidden])")
    again.reload()
    _rows(again, 1)
    assert again.input_value("#filter") == "params.lr < 0.05"
    again.wait_for_selector("#view-modified:not([hidden])")


def test_the_default_view_opens_on_a_bare_url(server: str, new_page: Any, no_default: None) -> None:
    first = {"version": 1, "where": "params.lr > 0.05"}
    status, body = _api(server, "PUT", _view_path("big lr"), {"spec": first})
    assert status == 201, body
    page = new_page()
    puts: list[Any] = []
    page.on("request", lambda r: puts.append(r.post_data_json) if r.method == "PUT" else None)
    page.goto(server + "/?view=big%20lr")
    _rows(page, 2)
    # a colleague saves the view again while the page shows the first spec
    spec = {"version": 1, "where": "params.lr > 0.2", "columns": ["params.lr"]}
    assert _api(server, "PUT", _view_path("big lr"), {"spec": spec})[0] == 200
    assert not page.is_checked("#view-default")
    page.check("#view-default")  # through the page: it becomes the project's default
    page.wait_for_function(
        "document.querySelector('#view-select option[value=\"big lr\"]').textContent.includes('default')"
    )
    assert puts == [{"default": True}]  # the flag alone: the page's stale spec is not sent
    status, listing = _api(server, "GET", "/api/views")
    assert listing["default"] == "big lr"
    status, saved = _api(server, "GET", _view_path("big lr"))
    assert saved["spec"] == spec  # the colleague's save stands

    fresh = new_page()
    fresh.goto(server + "/")
    _rows(fresh, 1)
    assert fresh.input_value("#filter") == "params.lr > 0.2"
    assert fresh.input_value("#view-select") == "big lr"
    assert fresh.evaluate(HEADERS)[-1] == "params.lr"
    assert "view=big+lr" in fresh.url or "view=big%20lr" in fresh.url

    # no view, on purpose: every run
    fresh.goto(server + "/?view=")
    _rows(fresh, len(LRS))
    assert fresh.input_value("#view-select") == ""

    page.uncheck("#view-default")  # unticked: no default view any more, the spec kept
    page.wait_for_function(
        "!document.querySelector('#view-select option[value=\"big lr\"]').textContent.includes('default')"
    )
    assert puts == [{"default": True}, {"default": False}]
    assert _api(server, "GET", "/api/views")[1]["default"] is None
    assert _api(server, "GET", _view_path("big lr"))[1]["spec"] == spec


def test_a_view_deleted_under_an_open_page_is_said(
    server: str, page: Any, no_default: None
) -> None:
    spec = {"version": 1, "where": "params.lr < 0.2"}
    assert _api(server, "PUT", _view_path("soon gone"), {"spec": spec})[0] == 201
    page.goto(server + "/?view=soon%20gone")
    _rows(page, 2)
    assert _api(server, "DELETE", _view_path("soon gone"))[0] == 204  # elsewhere
    page.focus("#view-select")  # the list is looked at again
    page.wait_for_selector("#view-error:not([hidden])")
    assert "soon gone" in page.inner_text("#view-error")
    assert "does not exist" in page.inner_text("#view-error")
    _rows(page, 2)  # the page keeps its state

    # a URL naming a view that is not there: said, and the runs still shown
    page.goto(server + "/?view=never%20saved")
    _rows(page, len(LRS))
    page.wait_for_selector("#view-error:not([hidden])")
    assert "never saved" in page.inner_text("#view-error")


def test_deleting_a_view_through_the_page(server: str, page: Any, no_default: None) -> None:
    spec = {"version": 1, "where": "params.lr < 0.2"}
    assert _api(server, "PUT", _view_path("to delete"), {"spec": spec})[0] == 201
    page.goto(server + "/?view=to%20delete")
    _rows(page, 2)
    page.click("#view-delete")
    page.wait_for_function("document.querySelector('#view-select').value === ''")
    assert _api(server, "GET", _view_path("to delete"))[0] == 404
    assert page.locator("#view-select option[value='to delete']").count() == 0
    page.click("#view-undo")  # the undo puts it back
    page.wait_for_function("document.querySelector('#view-select').value === 'to delete'")
    assert _api(server, "GET", _view_path("to delete"))[0] == 200


# -- on the team server: saving needs the writer role ------------------------------------


def _token(proc: subprocess.CompletedProcess[str]) -> str:
    """The API token `runbase server users add` prints (its last stdout line)."""
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def team(
    site: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A team server with alice (writer in `default`) and bob (reader), the site's runs
    pushed there by alice."""
    tmp = tmp_path_factory.mktemp("team")
    db, objects = ["--db", str(tmp / "server.db")], str(tmp / "objects")
    runbase_cmd("server", "migrate", *db, "--objects", objects, check=True)
    alice = _token(runbase_cmd("server", "users", "add", "alice", "--project-role", "writer", *db,
                               check=True))  # fmt: skip
    bob = _token(runbase_cmd("server", "users", "add", "bob", "--project-role", "reader", *db,
                             check=True))  # fmt: skip
    server = start_server(db[1], objects, log_dir=tmp)
    try:
        env = {"RUNBASE_CONFIG": str(tmp / "client-config.json")}
        root = site["root"]
        runbase_cmd("login", server.url, "--token", alice, cwd=root, env=env, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=root, env=env, check=True)
        runbase_cmd("push", "--all", cwd=root, env=env, check=True)
        yield {"url": server.url, "alice": alice, "bob": bob}
    finally:
        server.stop()


def _login(pg: Any, url: str, token: str) -> None:
    pg.goto(url + "/p/default/")
    pg.wait_for_url(re.compile(r"/login\?next="))
    pg.fill("#token", token)
    pg.click("#login")
    pg.wait_for_url(url + "/p/default/")


def test_on_the_team_server_a_writer_saves_views_a_reader_opens_them(
    team: dict[str, Any], new_page: Any
) -> None:
    url = team["url"]
    alice = new_page()
    _login(alice, url, team["alice"])
    _rows(alice, len(LRS))
    assert alice.is_enabled("#view-save")
    alice.fill("#filter", "params.lr < 0.2")
    alice.press("#filter", "Enter")
    _rows(alice, 2)
    alice.click("#view-save")
    alice.fill("#view-name", "team view")
    alice.click("#view-save-confirm")  # a cookie session: the page sends its CSRF token
    alice.wait_for_function("new URL(location.href).searchParams.get('view') === 'team view'")
    assert alice.is_hidden("#view-error")

    bob = new_page()
    _login(bob, url, team["bob"])
    bob.goto(url + "/p/default/?view=team%20view")
    _rows(bob, 2)
    assert bob.input_value("#filter") == "params.lr < 0.2"
    for control in ("#view-save", "#view-delete", "#view-default"):
        assert bob.is_disabled(control), control
    assert "writer role" in (bob.get_attribute("#view-save", "title") or "")


# -- dark mode -----------------------------------------------------------------------------


def _luminance(css_color: str) -> float:
    """WCAG relative luminance of ``rgb(r, g, b)`` / ``rgba(...)``."""
    r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css_color)[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_follows_the_os_color_scheme(
    site: dict[str, Any], server: str, page: Any, scheme: str, tmp_path: Path
) -> None:
    page.emulate_media(color_scheme=scheme)
    page.goto(server + "/?view=")
    _rows(page, len(LRS))
    style = "(s) => { const c = getComputedStyle(document.querySelector(s)); return [c.color, c.backgroundColor]; }"
    fg, bg = page.evaluate(style, "body")
    assert (_luminance(bg) < 0.05) == (scheme == "dark")
    assert (_luminance(fg) > 0.5) == (scheme == "dark")
    assert _contrast(fg, bg) >= 4.5
    th_fg, th_bg = page.evaluate(style, "#runs thead th")
    assert _contrast(th_fg, th_bg) >= 4.5
    button_fg, button_bg = page.evaluate(style, "#view-save")
    assert _contrast(button_fg, button_bg) >= 4.5
    badge_fg, badge_bg = page.evaluate(style, "#runs .status")
    assert _contrast(badge_fg, badge_bg) >= 4.5
    # the charts take their text color from the page
    theme = page.evaluate("RB.chartTheme().font.color")
    probe = page.evaluate(
        "(c) => { const s = document.createElement('span'); s.style.color = c; document.body.append(s); const v = getComputedStyle(s).color; s.remove(); return v; }",
        theme,
    )
    assert probe == fg
    # a screenshot, kept as a test artifact (looked at, not compared pixel by pixel)
    _charts_drawn(page, len(LRS))
    shots = Path(os.environ.get("RUNBASE_TEST_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"runs-page-{scheme}.png"), full_page=True)
