"""``runbase ui``: a local web app over a store, and the JSON API a team server serves.

    from runbase.web.app import create_app
    app = create_app(".runbase")          # an ASGI app (FastAPI): uvicorn.run(app)

The API (``/api/...``, docs/api.md) is a thin layer over :mod:`runbase.render.views`. Needs
the ``ui`` extra: ``pip install 'runbase[ui]'`` (FastAPI, uvicorn, plotly, pygments, numpy);
importing this package alone imports none of them.
"""

from __future__ import annotations

from runbase.errors import RunbaseError

INSTALL_HINT = "pip install 'runbase[ui]'"
_NEEDED = ("fastapi", "uvicorn", "plotly", "pygments", "numpy")


def require_ui(*modules: str) -> None:
    """Raise a :class:`RunbaseError` naming the install command when a package of the
    ``ui`` extra (or of ``modules``, when given) is missing."""
    import importlib.util

    missing = [m for m in modules or _NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        raise RunbaseError(f"the web UI needs {', '.join(missing)} (not installed): {INSTALL_HINT}")
