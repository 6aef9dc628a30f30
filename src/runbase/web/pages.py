"""The HTML pages of ``runbase ui``: small server-rendered shells.

Each page is a static shell (title, navigation, an empty layout; Jinja2 templates in
``web/templates/``, autoescaped, shared with the team server's own pages) plus vanilla
JavaScript under ``static/`` that fetches the JSON API (``/api/...``, see docs/api.md)
and draws with plotly.js (served by the app from the installed plotly wheel at
``/static/vendor/plotly.min.js``). No data is shaped here: that is ``runbase.render.views``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from runbase.core.modelref import check_name
from runbase.errors import NotFound, UsageError
from runbase.records import registry
from runbase.web import routes_sweeps
from runbase.web.api import StoreDep

STATIC_DIR = Path(__file__).parent / "static"
# the team server's UI cookies (runbase.server.routes_pages sets them; the pages read the CSRF one)
SESSION_COOKIE = "runbase_session"
CSRF_COOKIE = "runbase_csrf"
PLOTLY_URL = "/static/vendor/plotly.min.js"
MAX_REF = 1_000  # characters of a run reference or metric in a page's URL
MAX_NAME_SHOWN = 120  # characters of a bad model name the 404 page repeats
NAME_RULE = "a model's name is lower-case letters, digits, '-' and '_' (at most 100)"

router = APIRouter(include_in_schema=False)


def template_environment(*packages: str) -> Environment:
    """Jinja2 over the ``templates/`` of ``packages``, then the UI's own (``base.html``),
    everything autoescaped: the UI's pages and the team server's share it."""
    loaders = [PackageLoader(p, "templates") for p in (*packages, "runbase.web")]
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


_templates = template_environment()

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


def _page(
    request: Request,
    template: str,
    title: str,
    scripts: list[str],
    data: dict[str, object] | None = None,
    charts: bool = True,
    **context: Any,
) -> HTMLResponse:
    """A page: the common head and navigation, ``template``'s body, then ``static/<scripts>``."""
    root = str(request.scope.get("root_path") or "").rstrip("/")
    # on the team server a project's pages and API live under /p/<project>
    base = root + getattr(request.state, "page_base", "")
    user = getattr(request.state, "user", None)
    csrf = request.cookies.get(CSRF_COOKIE) if user else None
    role = getattr(request.state, "role", None) if user else None
    config = json.dumps({"base": base, "user": user, "role": role, "csrf": csrf, **(data or {})})
    # the team server's own pages extend the same base.html (runbase.server.routes_pages)
    page = _templates.get_template(template).render(
        title=title,
        root=root,
        base=base,
        user=user,
        csrf=csrf,
        # JSON inside <script>: "</" could close the element; everything else is inert
        config=Markup(config.replace("</", "<\\/")),
        charts=charts,
        plotly_url=PLOTLY_URL,
        scripts=["common.js", *scripts],
        **context,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    """The runs page: the chart workspace (``workspace.js``, ``RBWorkspace``) over the runs
    table (``runs.js``); ``?view=NAME`` opens a saved view, a bare ``/`` the default one."""
    return _page(request, "runs.html", "Runs", ["workspace.js", "runs.js"])


@router.get("/runs/{ref}", response_class=HTMLResponse)
def run_page(request: Request, ref: str) -> HTMLResponse:
    """One run: overview, parameters, metrics, code, data, environment, logs, lineage."""
    return _page(
        request, "run.html", f"Run {ref}", ["diff.js", "run.js"], {"ref": ref}, tabs=RUN_TABS
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, runs: str = "") -> HTMLResponse:
    """Several runs side by side; for two runs, their diff."""
    refs = [r for r in (s.strip() for s in runs.split(",")) if r]
    return _page(request, "compare.html", "Compare", ["diff.js", "compare.js"], {"runs": refs})


@router.get("/explain", response_class=HTMLResponse)
def explain_page(request: Request, a: str = "", b: str = "", metric: str = "") -> HTMLResponse:
    """Why a metric moved from run A to run B: the saved ``runbase explain A B``."""
    a, b, metric = a.strip()[:MAX_REF], b.strip()[:MAX_REF], metric.strip()[:MAX_REF]
    return _page(
        request,
        "explain.html",
        "Explain",
        ["explain.js", "explain_page.js"],
        {"a": a, "b": b, "metric": metric},
        a=a,
        b=b,
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    """Every model of the registry: its latest version, which stage holds which version."""
    return _page(request, "models.html", "Models", ["models.js"], {"page": "models"}, charts=False)


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, store: StoreDep) -> HTMLResponse:
    """One model: its versions beside their runs' metrics, its stages, open promotion
    requests, the event history and a compare of two versions. An unknown model is the
    404 page (checked here: the page must not be a 200 shell around an error)."""
    back = ("All models", "/models")
    try:
        registry.versions(store, check_name(name))
    except UsageError:  # said without echoing a path of any length back whole
        shown = name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "…"
        return not_found(request, f"no model {shown!r}: {NAME_RULE}", back)
    except NotFound as e:
        return not_found(request, str(e), back)
    return _page(
        request,
        "model.html",
        f"Model {name}",
        ["models.js"],
        {"page": "model", "name": name},
        charts=False,
        name=name,
    )


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: str, store: StoreDep) -> HTMLResponse:
    """One sweep: its trials by status, the best value so far, parameter importance
    (``sweep.js`` over ``/api/sweeps/{id}``, :mod:`runbase.web.routes_sweeps`); it
    polls while trials run. An unknown or bad id is the 404 page (400 for a bad one)."""
    problem = routes_sweeps.page_problem(store, sweep_id)
    if problem is not None:
        page = not_found(request, problem[1], ("All runs", "/"))
        page.status_code = problem[0]
        return page
    return _page(
        request,
        "sweep.html",
        f"Sweep {sweep_id[:16]}",
        ["sweep.js"],
        {"sweep": sweep_id},
        sweep_id=sweep_id,
    )


def not_found(request: Request, message: str, back: tuple[str, str] | None = None) -> HTMLResponse:
    """The UI's 404 page: what is missing, and a link back (``(label, path under base)``)."""
    page = _page(
        request, "not_found.html", "Not found", [], charts=False, message=message, back=back
    )
    page.status_code = 404
    return page
