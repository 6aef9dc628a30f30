"""``runbase report``: one self-contained HTML file about a few runs, that opens offline.

    path = write_report(store, ["0bq3k5x7", "0bq3k9aa"], "report.html")

The file embeds everything it shows: the runs' headers, parameters and metric
summaries, every metric series (downsampled by :func:`runbase.render.views.metric_series`, as
the web UI's API does), for two runs their diff (docs/diff-format.md), plotly.js from
the installed ``plotly`` package (gzipped: the page unpacks it) and the same scripts the
web UI draws with. For two runs A B explained before (``runbase explain A B``), the
explanation too: its waterfall and factor table, as the web UI's explain page shows it. It loads nothing from the network. Needs the ``ui`` extra (``pip install 'runbase[ui]'``).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from runbase.analysis.diff import diff_runs
from runbase.capture.params import jsonable
from runbase.errors import RunbaseError, UsageError
from runbase.records.read import resolve
from runbase.records.record import build_record
from runbase.render.views.explain import explanation
from runbase.render.views.metrics import metric_series
from runbase.store import Store

POINTS = 1000  # per series and run
STATIC_DIR = (
    Path(__file__).resolve().parents[1] / "web" / "static"
)  # the web UI's scripts and styles
INSTALL_HINT = "pip install 'runbase[ui]'"
_SCRIPTS = ("common.js", "diff.js", "explain.js", "report.js")
_RECORD_KEYS = (
    "id",
    "name",
    "status",
    "exit_code",
    "started_at",
    "ended_at",
    "duration_s",
    "command",
    "user",
    "host",
    "sweep_id",
    "params",
    "param_sources",
    "metrics",
    "tags",
)


def report_data(store: Store, refs: list[str], points: int = POINTS) -> dict[str, Any]:
    """What the report shows, as strict JSON: ``{title, generated_at, runbase_version,
    runs, series: [{key, runs: [{id, steps, values}]}], diff, explain}`` (``explain``:
    for two runs, :func:`runbase.render.views.explanation` of A → B when one is saved,
    else None)."""
    if not refs:
        raise UsageError("a report needs at least one run")
    ids = list(dict.fromkeys(resolve(store, r) for r in refs))
    records = [build_record(store, i, include_patch=False) for i in ids]
    runs = []
    for rec in records:
        run = {k: rec.get(k) for k in _RECORD_KEYS}
        code = rec.get("code")
        run["code"] = (
            None
            if code is None
            else {k: code.get(k) for k in ("kind", "commit", "branch", "dirty", "patch_id")}
        )
        runs.append(run)
    keys = sorted(
        {k for rec in records for k, m in rec["metrics"].items() if m.get("count")},
        key=lambda k: (k.startswith("sys/"), k),
    )
    series_out = []
    for key in keys:
        per_run = []
        for rec in records:
            if not rec["metrics"].get(key, {}).get("count"):
                continue
            s = metric_series(store, rec["id"], key, points)
            per_run.append({"id": rec["id"], "steps": s["steps"], "values": s["values"]})
        series_out.append({"key": key, "runs": per_run})
    names = ", ".join(f"{r['name']} ({r['id'][:10]})" for r in records)
    return jsonable(
        {
            "title": f"runbase report: {names}",
            "generated_at": datetime.now(timezone.utc).isoformat(),
            "runbase_version": _version(),
            "runs": runs,
            "series": series_out,
            "diff": diff_runs(store, ids[0], ids[1]) if len(ids) == 2 else None,
            "explain": _explanation(store, ids),
        }
    )


def _explanation(store: Store, ids: list[str]) -> dict[str, Any] | None:
    """The saved explanation of the two runs (or why it cannot be read); None without."""
    if len(ids) != 2:
        return None
    view = explanation(store, ids[0], ids[1])
    return view if view["explained"] or view["problem"] else None


def render_report(data: dict[str, Any]) -> str:
    """The HTML page of :func:`report_data`'s result, scripts and styles inlined."""
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    plotly = _packed(_plotly_js())
    app = [(STATIC_DIR / s).read_text(encoding="utf-8") for s in _SCRIPTS]
    # the app's scripts draw with Plotly: inert until the loader has unpacked it
    scripts = "\n".join(
        [
            f'<script id="plotly-gz" type="application/octet-stream">{plotly}</script>',
            *(
                f'<script class="rb-deferred" type="text/x-runbase">{_inline(c)}</script>'
                for c in app
            ),
            _script(_LOADER),
        ]
    )
    payload = _json(data)
    config = _json({"base": "", "report": True})
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="runbase {html.escape(str(data.get("runbase_version")))}">
<title>{html.escape(str(data.get("title", "runbase report")))}</title>
<style>{_inline(css)}</style>
</head>
<body>
<main id="report"></main>
<noscript>This report draws its tables and charts with JavaScript.</noscript>
<script id="runbase-config" type="application/json">{config}</script>
<script id="report-data" type="application/json">{payload}</script>
{scripts}
</body>
</html>
"""


def write_report(store: Store, refs: list[str], path: str | Path, points: int = POINTS) -> Path:
    """Write the report of runs ``refs`` to ``path``; returns the path."""
    out = Path(path)
    page = render_report(report_data(store, refs, points))
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs  # lazy: optional (the ui extra), and large
    except ImportError as e:
        raise RunbaseError(f"runbase report needs plotly: {INSTALL_HINT}") from e
    return str(get_plotlyjs())


def _packed(code: str) -> str:
    """plotly.js gzipped and base64-encoded: 4.6 MiB of script become 1.9 MiB of text
    (the wheel has no smaller bundle; the browser unpacks it with DecompressionStream)."""
    return base64.b64encode(gzip.compress(code.encode("utf-8"), 6, mtime=0)).decode("ascii")


# Unpacks plotly.js, then runs the app's scripts in order, each as a classic script.
_LOADER = """(async () => {
  "use strict";
  const run = (code) => {
    const s = document.createElement("script");
    s.textContent = code;
    document.body.appendChild(s);
  };
  try {
    const bin = atob(document.getElementById("plotly-gz").textContent.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    run(await new Response(stream).text());
  } catch (e) {
    document.getElementById("report").textContent =
      "This report needs a browser that can unpack its embedded plotly.js (DecompressionStream: " +
      "Chrome 80, Firefox 113, Safari 16.4 or later): " + e;
    return;
  }
  for (const s of document.querySelectorAll("script.rb-deferred")) run(s.textContent);
})();"""

_CLOSE = re.compile(r"</(script|style)", re.IGNORECASE)


def _inline(text: str) -> str:
    """Text that cannot end the <script>/<style> element it is inlined in."""
    return _CLOSE.sub(lambda m: "<\\/" + m.group(1), text).replace("<!--", "<\\!--")


def _json(value: Any) -> str:
    """JSON for a <script type="application/json">: no "<" can close or comment it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _script(code: str) -> str:
    return f"<script>{_inline(code)}</script>"


def _version() -> str:
    try:
        return metadata.version("runbase")
    except metadata.PackageNotFoundError:
        return "unknown"
