"""The HTML pages of ``runbase ui``: small server-rendered shells.

Each page is a static shell (title, navigation, an empty layout) plus vanilla
JavaScript under ``static/`` that fetches the JSON API (``/api/...``, see docs/api.md)
and draws with plotly.js (served by the app from the installed plotly wheel at
``/static/vendor/plotly.min.js``). No data is shaped here: that is ``runbase.render.views``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).parent / "static"
# the team server's UI cookies (runbase.server.routes_pages sets them; the pages read the CSRF one)
SESSION_COOKIE = "runbase_session"
CSRF_COOKIE = "runbase_csrf"
PLOTLY_URL = "/static/vendor/plotly.min.js"

router = APIRouter(include_in_schema=False)


def _shell(
    request: Request,
    title: str,
    scripts: list[str],
    body: str,
    data: dict[str, object] | None = None,
    charts: bool = True,
) -> HTMLResponse:
    """A page: the common head and navigation, ``body``, then ``static/<scripts>``."""
    root = str(request.scope.get("root_path") or "").rstrip("/")
    # on the team server a project's pages and API live under /p/<project>
    base = root + getattr(request.state, "page_base", "")
    user = getattr(request.state, "user", None)
    csrf = request.cookies.get(CSRF_COOKIE) if user else None
    role = getattr(request.state, "role", None) if user else None
    config = json.dumps({"base": base, "user": user, "role": role, "csrf": csrf, **(data or {})})
    config = config.replace("</", "<\\/")
    plotly = f'<script src="{root}{PLOTLY_URL}"></script>\n' if charts else ""
    tags = "\n".join(f'<script src="{root}/static/{s}"></script>' for s in ["common.js", *scripts])
    account = account_html(root, user, csrf)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - runbase</title>
<link rel="stylesheet" href="{root}/static/app.css">
<link rel="stylesheet" href="{base}/api/highlight.css">
<link rel="icon" href="data:,">
</head>
<body>
<header class="top">
  <a class="brand" href="{base}/">runbase</a>
  <nav><a href="{base}/">Runs</a></nav>
  <span class="page-title">{html.escape(title)}</span>
  {account}
</header>
<main id="main">
{body}
</main>
<script id="runbase-config" type="application/json">{config}</script>
{plotly}{tags}
</body>
</html>
"""
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def account_html(root: str, user: str | None, csrf: str | None) -> str:
    """The header's account links on the team server (none for ``runbase ui``): the
    user, the projects page, team search, and a logout form carrying the CSRF token."""
    if not user:
        return ""
    return (
        f'<span class="account"><span id="account-user">{html.escape(user)}</span> · '
        f'<a href="{root}/" id="projects-link">projects</a> · '
        f'<a href="{root}/search">search</a> · '
        f'<form method="post" action="{root}/logout" class="logout">'
        f'<input type="hidden" name="csrf" value="{html.escape(csrf or "")}">'
        f'<button class="link" type="submit" id="logout">log out</button></form></span>'
    )


RUNS_BODY = """
<section class="toolbar">
  <form id="filter-form" class="filter" autocomplete="off">
    <input id="filter" type="search" spellcheck="false"
      placeholder='filter, e.g. params.lr &lt; 0.1 and metrics.acc &gt; 0.9'>
    <button type="submit">Filter</button>
  </form>
  <label>group by <select id="group-by"><option value="">none</option>
    <option value="sweep">sweep</option></select></label>
  <details id="columns" class="dropdown"><summary>Columns</summary>
    <div class="dropdown-body">
      <input id="column-search" type="search" placeholder="search keys">
      <button id="default-columns" type="button" class="link">default: the params that differ, the metrics</button>
      <div id="column-list"></div>
    </div>
  </details>
  <label title="by default, a param with the same value in every run of the page is not a column">
    <input id="all-params" type="checkbox"> constant params too <span id="hidden-params" class="muted"></span></label>
  <button id="compare" type="button" disabled>Compare</button>
  <button id="clear-selection" type="button" class="link" hidden>clear selection</button>
</section>
<div id="error" class="error" hidden></div>
<div id="filter-notes" class="warning" hidden></div>
<div class="table-wrap"><table id="runs" class="runs">
  <thead><tr></tr></thead><tbody></tbody>
</table></div>
<section class="pager">
  <button id="prev" type="button">&larr; prev</button>
  <span id="count"></span>
  <button id="next" type="button">next &rarr;</button>
  <label>per page <select id="page-size">
    <option>25</option><option selected>50</option><option>100</option><option>250</option>
  </select></label>
</section>
"""

RUN_TABS = [
    ("overview", "Overview"),
    ("params", "Parameters"),
    ("metrics", "Metrics"),
    ("system", "System"),
    ("code", "Code"),
    ("data", "Data"),
    ("env", "Environment"),
    ("notebook", "Notebook"),
    ("logs", "Logs"),
    ("lineage", "Lineage"),
]


def _run_body() -> str:
    tabs = "".join(
        f'<button type="button" class="tab" data-tab="{k}">{label}</button>'
        for k, label in RUN_TABS
    )
    panes = "".join(f'<section class="pane" id="pane-{k}" hidden></section>' for k, _ in RUN_TABS)
    return f"""
<div id="run-head" class="run-head"><h1 id="run-title">&nbsp;</h1><span id="badges"></span></div>
<div id="error" class="error" hidden></div>
<nav class="tabs" id="tabs">{tabs}</nav>
{panes}
"""


COMPARE_BODY = """
<div id="run-list" class="run-list"></div>
<div id="error" class="error" hidden></div>
<nav class="tabs" id="tabs">
  <button type="button" class="tab" data-tab="curves">Metrics</button>
  <button type="button" class="tab" data-tab="parallel">Parallel coordinates</button>
  <button type="button" class="tab" data-tab="scatter">Scatter</button>
  <button type="button" class="tab" data-tab="importance">Importance</button>
  <button type="button" class="tab" data-tab="params">Parameters</button>
  <button type="button" class="tab" data-tab="diff" id="diff-tab" hidden>Diff</button>
</nav>
<section class="pane" id="pane-curves" hidden>
  <div class="controls">
    <label><input type="checkbox" id="log-scale"> log scale</label>
    <label>smoothing <input type="range" id="smoothing" min="0" max="0.99" step="0.01" value="0">
      <span id="smoothing-value">0</span></label>
    <input type="search" id="series-search" placeholder="filter metrics">
  </div>
  <div id="curves" class="chart-grid"></div>
</section>
<section class="pane" id="pane-parallel" hidden>
  <div class="controls"><label>color by metric <select id="parallel-metric"></select></label></div>
  <div id="parallel-chart" class="chart wide"></div>
</section>
<section class="pane" id="pane-scatter" hidden>
  <div class="controls">
    <label>x <select id="scatter-x"></select></label>
    <label>y <select id="scatter-y"></select></label>
    <label><input type="checkbox" id="scatter-logx"> log x</label>
  </div>
  <div id="scatter-chart" class="chart wide"></div>
</section>
<section class="pane" id="pane-importance" hidden>
  <div class="controls"><label>metric <select id="importance-metric"></select></label></div>
  <div id="importance-error" class="error" hidden></div>
  <div id="importance-chart" class="chart wide"></div>
  <table id="importance-table" class="kv"></table>
</section>
<section class="pane" id="pane-params" hidden><div id="params-table"></div></section>
<section class="pane" id="pane-diff" hidden><div id="diff"></div></section>
"""


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    """The runs table."""
    return _shell(request, "Runs", ["runs.js"], RUNS_BODY, charts=False)


@router.get("/runs/{ref}", response_class=HTMLResponse)
def run_page(request: Request, ref: str) -> HTMLResponse:
    """One run: overview, parameters, metrics, code, data, environment, logs, lineage."""
    return _shell(request, f"Run {ref}", ["diff.js", "run.js"], _run_body(), {"ref": ref})


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, runs: str = "") -> HTMLResponse:
    """Several runs side by side; for two runs, their diff."""
    refs = [r for r in (s.strip() for s in runs.split(",")) if r]
    return _shell(request, "Compare", ["diff.js", "compare.js"], COMPARE_BODY, {"runs": refs})
