"""What the web UI shows, as plain data: pure functions over a :class:`Store` that
return JSON-able dicts (strict JSON: no NaN). The JSON API (``runbase.web.api``,
docs/api.md) is a thin layer over these; the HTML pages and ``runbase report`` call
them directly. One module per resource: ``runs`` (the runs table), ``run``,
``metrics``, ``panel`` (the runs page's charts), ``code``, ``notebook``, ``logs``,
``lineage``, ``compare`` (several runs: compare, diff, importance) and ``explain`` (the
saved ``runbase explain A B``); their SQL lives in ``runbase.records``.

    from runbase.store import Store
    from runbase.render import views

    store = Store.open()
    page = views.runs_page(store, where="params.lr < 0.1", sort="-metrics.acc", limit=50)
    curve = views.metric_series(store, page["runs"][0]["id"], "loss", points=1000)

Runs are referenced like on the command line (id, unique id prefix, name, ``latest``).
Errors are runbase errors: :class:`RunNotFound` (no such run), :class:`NotFound` (the
run exists, the metric / file / ... does not), :class:`AmbiguousRunRef`,
:class:`QueryError` (malformed ``where``/``sort``) and :class:`UsageError` (any other
bad argument). Everything is read through ``store.db`` and ``store.objects.get_bytes``
(a live run's log, not yet an object, from its spool), so a store need not be local
files. Nothing here imports a web framework; syntax highlighting needs pygments
(``pip install 'runbase[ui]'``), imported on first use.
"""

from __future__ import annotations

from typing import Any

from runbase.core.version import __version__
from runbase.records.series import series_keys
from runbase.render.views.code import (
    MAX_HIGHLIGHT,
    MAX_PATCH,
    UI_INSTALL_HINT,
    code_diff,
    code_file,
    code_file_bytes,
    code_tree,
    highlight,
    highlight_css,
)
from runbase.render.views.common import API_VERSION, MAX_VIEW_OBJECT, NotFound
from runbase.render.views.compare import MAX_COMPARE, compare, diff, importance
from runbase.render.views.explain import explanation
from runbase.render.views.lineage import MAX_LINEAGE_DEPTH, lineage
from runbase.render.views.logs import DEFAULT_LOG_CHUNK, MAX_LOG_CHUNK, log_chunk
from runbase.render.views.media import (
    MAX_MEDIA_ITEMS,
    MAX_MEDIA_ROWS,
    media_object,
    media_table,
    run_media,
)
from runbase.render.views.metrics import DEFAULT_POINTS, MAX_POINTS, downsample, metric_series
from runbase.render.views.notebook import MAX_CELLS, notebook
from runbase.render.views.panel import (
    BANDS,
    DEFAULT_PANEL_POINTS,
    DEFAULT_PANEL_RUNS,
    MAX_PANEL_BUCKETS,
    MAX_PANEL_METRICS,
    MAX_PANEL_POINTS,
    MAX_PANEL_RUNS,
    MIN_PANEL_POINTS,
    X_MODES,
    chart_panel,
)
from runbase.render.views.run import run_detail
from runbase.render.views.runs import (
    MAX_GROUPS,
    MAX_PAGE,
    matching_ids,
    run_items,
    runs_page,
    store_keys,
)
from runbase.render.views.saved import (
    delete_view,
    save_view,
    saved_view,
    saved_views,
    set_default_view,
)


def health() -> dict[str, Any]:
    """``{ok, version, api_version}``: the app answers, and which API it speaks."""
    return {"ok": True, "version": __version__, "api_version": API_VERSION}


__all__ = [
    "API_VERSION",
    "BANDS",
    "DEFAULT_PANEL_POINTS",
    "DEFAULT_PANEL_RUNS",
    "DEFAULT_LOG_CHUNK",
    "DEFAULT_POINTS",
    "MAX_CELLS",
    "MAX_COMPARE",
    "MAX_GROUPS",
    "MAX_HIGHLIGHT",
    "MAX_LINEAGE_DEPTH",
    "MAX_LOG_CHUNK",
    "MAX_MEDIA_ITEMS",
    "MAX_MEDIA_ROWS",
    "MAX_PAGE",
    "MAX_PANEL_BUCKETS",
    "MAX_PANEL_METRICS",
    "MAX_PANEL_POINTS",
    "MAX_PANEL_RUNS",
    "MAX_PATCH",
    "MAX_POINTS",
    "MAX_VIEW_OBJECT",
    "MIN_PANEL_POINTS",
    "UI_INSTALL_HINT",
    "X_MODES",
    "NotFound",
    "code_diff",
    "code_file",
    "code_file_bytes",
    "chart_panel",
    "code_tree",
    "compare",
    "delete_view",
    "diff",
    "downsample",
    "explanation",
    "health",
    "highlight",
    "highlight_css",
    "importance",
    "lineage",
    "log_chunk",
    "matching_ids",
    "media_object",
    "media_table",
    "metric_series",
    "notebook",
    "run_detail",
    "run_items",
    "run_media",
    "runs_page",
    "save_view",
    "saved_view",
    "saved_views",
    "set_default_view",
    "series_keys",
    "store_keys",
]
