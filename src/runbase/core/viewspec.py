"""Saved views of the runs page: what a view's name and spec may be (docs/views.md).

A view spec is the JSON a user saves from the runs page: the table's filter, sort and
columns, the runs hidden with the eye toggle, the chart toolbar and the chart panels.
It is checked strictly where it comes in (:func:`check_spec`: an unknown key or a value
of the wrong type is refused, naming it), and read leniently where it comes out of a
store (:func:`read_spec`: what does not fit is dropped, so a damaged or planted row
still opens as a view instead of breaking a page).

>>> check_spec({"version": 1, "chart": {"x": "step", "smoothing": 0.6}})
{'version': 1, 'chart': {'x': 'step', 'smoothing': 0.6}}
>>> read_spec('{"version": 1, "hybrids": "yes", "panels": [{"type": "pie"}]}')
{'version': 1, 'panels': [{}]}
"""

from __future__ import annotations

import json
from typing import Any

from runbase.core import shapes
from runbase.errors import ShapeError, UsageError

VERSION = 1
MAX_SPEC_BYTES = 64 << 10  # the spec as compact UTF-8 JSON
MAX_PANELS = 100
MAX_NAME = 100  # characters of a view's name
MAX_EXPR = 10_000  # characters of a where / sort expression (as the API's parameters)
MAX_COLUMNS = 1_000
MAX_HIDDEN = 10_000
MAX_PANEL_METRICS = 100
PANEL_TYPES = ("line", "scatter", "parallel", "importance", "bar", "media")
X_AXES = ("step", "time", "relative")
BANDS = ("minmax", "sd")


# a string a database can store as it is: no NUL (PostgreSQL), no lone surrogate (UTF-8)
_Text = shapes.Text


class _Set(shapes.Shape):
    """A value that, given, may not be null (null is no value of any spec key but
    ``columns``)."""

    def __init__(self, shape: shapes.Shape) -> None:
        self.shape = shape

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None:
            return self.misfit(where, "may not be null", strict)
        return self.shape.conform(value, where, strict)


class _Unknown(shapes.Shape):
    """Any key a spec of this version does not define: a typo would otherwise be saved
    and silently ignored."""

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        return self.misfit(where, "unknown key (docs/views.md lists the keys)", strict)


def _obj(
    fields: dict[str, shapes.Shape], required: tuple[str, ...] = (), nullable: tuple[str, ...] = ()
) -> shapes.Shape:
    checked = {k: v if k in nullable else _Set(v) for k, v in fields.items()}
    return _Set(shapes.Obj(checked, required, _Unknown()))


_KEY = _Text(shapes.MAX_NAME)  # a metric, param or media key
_EXPR = _Text(MAX_EXPR)

# the keys of each object of a spec, and their shapes (docs/views.md has a table each)
PANEL_KEYS: dict[str, shapes.Shape] = {
    "id": _Text(MAX_NAME),
    "type": shapes.OneOf(*PANEL_TYPES),
    "metric": _KEY,
    "x": _KEY,
    "y": _KEY,
    "metrics": shapes.ListOf(_Set(_KEY), MAX_PANEL_METRICS),
    "key": _KEY,
    "width": shapes.Int(1, 4),
    "height": shapes.Int(1, 3),
}
CHART_KEYS: dict[str, shapes.Shape] = {
    "x": shapes.OneOf(*X_AXES),
    "log": shapes.Bool(),
    "smoothing": shapes.Num(0, 0.99),
    "clip": shapes.Bool(),
    "band": shapes.OneOf(*BANDS),
    "runs": shapes.Int(1, 500),
    "group_by": _KEY,
}
SPEC_KEYS: dict[str, shapes.Shape] = {
    "version": shapes.OneOf(VERSION),
    "where": _EXPR,
    "sort": _EXPR,
    "group_by": _KEY,
    "sweep": _KEY,
    "hybrids": shapes.Bool(),
    "columns": shapes.ListOf(_Set(_KEY), MAX_COLUMNS),
    "hidden": shapes.ListOf(_Set(shapes.RunId()), MAX_HIDDEN),
    "chart": _obj(CHART_KEYS),
    "panels": shapes.ListOf(_obj(PANEL_KEYS), MAX_PANELS),
}
# null columns: the table's columns chosen automatically (the one key null may set)
SPEC = _obj(SPEC_KEYS, required=("version",), nullable=("columns",))


def check_name(name: Any) -> str:
    """``name`` if it can name a view: 1-100 printable characters, no ``/`` (it is a
    path segment of the API), not ``.`` or ``..``; else :class:`UsageError` saying why."""
    if not isinstance(name, str) or not name:
        raise UsageError("a view needs a name (1 to 100 characters)")
    if len(name) > MAX_NAME:
        raise UsageError(f"a view's name is at most {MAX_NAME} characters, not {len(name)}")
    if not name.isprintable():
        raise UsageError(
            f"a view's name may not hold control characters: {ascii(name)[1:-1][:120]}"
        )
    if "/" in name:
        raise UsageError(f"a view's name may not hold '/': {name!r}")
    if name in (".", ".."):
        raise UsageError(f"{name!r} cannot name a view (it is no path segment of a URL)")
    return name


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` if it is a valid view spec (docs/views.md), else :class:`UsageError`
    naming the first key that is not (``spec.panels[2].width: must be an integer from
    1 to 4``); the spec must fit in :data:`MAX_SPEC_BYTES` as JSON."""
    if not isinstance(spec, dict):
        raise UsageError(f"a view spec is a JSON object, not {type(spec).__name__}")
    size = len(_dumps_checked(spec).encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise UsageError(f"the view spec is {size} bytes of JSON, over {MAX_SPEC_BYTES}")
    try:
        SPEC.check(spec, "spec")
    except ShapeError as e:
        raise UsageError(f"bad view spec: {e}") from None
    return spec


def dumps(spec: dict[str, Any]) -> str:
    """The stored text of a checked spec: compact JSON."""
    return json.dumps(spec, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dumps_checked(spec: dict[str, Any]) -> str:
    """:func:`dumps`, refusing what is no JSON (NaN, infinity: Python's parser takes
    them) or nests too deeply, as :class:`UsageError`."""
    if shapes.too_deep(spec, 8):  # a spec nests 4 levels at most: spec.panels[i].metrics
        raise UsageError("the view spec nests deeper than a view spec can")
    try:
        return dumps(spec)
    except ValueError:
        raise UsageError("the view spec holds NaN or an infinity (not JSON)") from None
    except TypeError as e:  # a Python caller's set, bytes, ...
        raise UsageError(f"the view spec holds a value JSON cannot: {e}") from None


def read_spec(text: Any) -> dict[str, Any]:
    """A stored spec as a reader sees it: parsed and fitted (:func:`fit_spec`)."""
    try:
        value = shapes.loads(text) if isinstance(text, (str, bytes)) else None
    except ValueError:  # not JSON, or too deep
        value = None
    return fit_spec(value)


def fit_spec(value: Any) -> dict[str, Any]:
    """A spec read from where it is not trusted (a store, a server's answer): what does
    not fit the spec of this version is dropped (nulls too, but ``columns``'), so the page
    can save it back as it read it; ``{"version": 1}`` when nothing fits."""
    fitted = SPEC.fit(value)
    if not isinstance(fitted, dict) or fitted.get("version") != VERSION:
        return {"version": VERSION}
    out = {k: v for k, v in fitted.items() if v is not None or k == "columns"}
    if "chart" in out:
        out["chart"] = _no_nulls(out["chart"])
    if "panels" in out:
        out["panels"] = [_no_nulls(p) for p in out["panels"]]
    return out


def _no_nulls(fitted: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fitted.items() if v is not None}
