"""Time to the charts in a real headless Chromium (Playwright, /usr/bin/chromium): how
long a user waits, from typing the URL, until a page's plotly charts are drawn.

A chart counts as drawn when its plotly node (``.js-plotly-plot``, as both runbase and
the MLflow UI use plotly) holds at least one trace and plotly has laid it out
(``_fullLayout``): the same test for SVG (``scatter``) and WebGL (``scattergl``)
traces. One browser context per page kind, one warm-up load (the static files are then
in its cache, as for a returning user), then ``n`` timed loads.
"""

from __future__ import annotations

import time
from typing import Any

import _common as C

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

# how many plotly nodes inside ``scope`` are drawn
_DRAWN = """([scope, want]) => {
  const nodes = document.querySelectorAll(scope + ' .js-plotly-plot');
  let n = 0;
  for (const g of nodes) if (g._fullLayout && g.data && g.data.length) n += 1;
  return n >= want;
}"""


# how many traces the drawn plotly nodes inside ``scope`` hold
_TRACES = """(scope) => Array.from(document.querySelectorAll(scope + ' .js-plotly-plot'))
  .reduce((n, g) => n + ((g.data || []).length), 0)"""


def _time_load(
    page: Any, url: str, scope: str, charts: int, timeout_ms: int
) -> tuple[float, float, int]:
    """(seconds to the first chart, to all ``charts``, traces then drawn)."""
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(_DRAWN, arg=[scope, 1], timeout=timeout_ms, polling="raf")
    t_first = time.perf_counter() - t0
    page.wait_for_function(_DRAWN, arg=[scope, charts], timeout=timeout_ms, polling="raf")
    t_all = time.perf_counter() - t0
    return t_first, t_all, int(page.evaluate(_TRACES, scope))


def time_to_charts(
    url: str, scope: str, charts: int, n: int, warmup: bool = True, timeout_ms: int = 120_000
) -> dict[str, Any]:
    """The page at ``url`` loaded ``n`` times (after one warm-up load when ``warmup``) in
    one browser context: ``{"first_chart": summary, "all_charts": summary, "traces"}``
    (seconds, ``C.summarize``), ``charts`` being how many plotly nodes inside the CSS
    selector ``scope`` make the page complete."""
    from playwright.sync_api import sync_playwright

    first: list[float] = []
    every: list[float] = []
    traces = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            if warmup:
                _time_load(page, url, scope, charts, timeout_ms)
            for _ in range(n):
                t_first, t_all, traces = _time_load(page, url, scope, charts, timeout_ms)
                first.append(t_first)
                every.append(t_all)
        finally:
            browser.close()
    return {"first_chart": C.summarize(first), "all_charts": C.summarize(every), "traces": traces}
