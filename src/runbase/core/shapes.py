"""The documented shapes of what a store holds, declared once, used two ways.

A run's rows and JSON columns (docs/run-record.md, docs/store-format.md) are declared
here as :class:`Shape` values. The same declaration serves

- the door, strictly: ``SHAPE.check(value, where)`` raises :class:`ShapeError` naming
  the field (``runbase.records.bundle`` refuses a bundle with it, the server answers 422);
- the readers, leniently: ``SHAPE.fit(value)`` returns the value with whatever does not
  fit the documented shape dropped (a field becomes null, a list item is left out), so a
  value stored by an older version or planted by a hostile writer reads as "unknown"
  instead of crashing ``runbase show``, ``diff`` or a web page.

JSON text is parsed by :func:`loads`, which bounds the nesting depth: Python's parser
raises ``RecursionError`` on deep input, and every recursive reader after it
(``json.dumps``, the shapes, ``jsonable``) would too.

>>> CODE.fit({"kind": "git", "commit": 7, "skipped": [{"path": "a"}, "junk"]})
{'kind': 'git', 'skipped': [{'path': 'a'}]}
>>> TIME.fit(float("inf")) is None
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from runbase.core import fsname, ids
from runbase.core.ids import split_id
from runbase.errors import ShapeError, TooDeep

MAX_DEPTH = 64  # JSON nesting, far below the interpreter's recursion limit
MAX_TEXT = 16 << 20  # characters of one text value (bundle.MAX_TEXT)
MAX_NAME = 4096  # characters of a name, key, user, host or path
MAX_CAPTION = 4096  # characters of a logged image's caption
MEDIA_KINDS = ("image", "table")  # what a run logs besides metrics (log_image, log_table)
# a timestamp is seconds since 1970 up to the last second of year 9999: the range
# ``datetime.fromtimestamp`` turns into a date on every platform runbase supports
MAX_TIME = 253402300799.0
# a 64-bit signed integer (a SQL INTEGER, a step) is one of -I64 <= v < I64
I64 = 1 << 63


# -- JSON text with a bounded depth ----------------------------------------------------


def loads(text: str | bytes, max_depth: int | None = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with :class:`TooDeep`,
    never a RecursionError. ``max_depth=None``: only what the parser itself cannot take
    is refused (a request body whose every level is then checked by type, where walking
    millions of values once more would only cost time)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth or 1000} levels") from None
    if max_depth is not None and brackets(text) > max_depth and too_deep(value, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def brackets(text: str | bytes) -> int:
    """How many ``[`` and ``{`` a JSON text holds: a bound on its depth, counted in C
    (most values are shallow and need no walk)."""
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``max_depth`` (iterative: a
    value too deep for recursion is measured too)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > max_depth:
                return True
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def load_column(text: Any, shape: Shape) -> Any:
    """A JSON text column as a reader sees it: parsed and fitted to ``shape``; None when
    absent, not JSON, too deep, or of another shape altogether."""
    if not isinstance(text, (str, bytes)) or not text:
        return None
    try:
        return shape.fit(loads(text))
    except ValueError:
        return None


# -- shapes ----------------------------------------------------------------------------


class Shape:
    """A documented shape. Every value may be null (``Obj(required=...)`` says which
    fields may not). Subclasses implement :meth:`conform`."""

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`ShapeError` unless ``value`` has this shape."""
        self.conform(value, where, True)

    def fit(self, value: Any) -> Any:
        """``value`` with what does not fit dropped; None if nothing fits."""
        return self.conform(value, "", False)

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        raise NotImplementedError

    @staticmethod
    def misfit(where: str, message: str, strict: bool) -> None:
        if strict:
            raise ShapeError(where, message)
        return None


class Str(Shape):
    def __init__(self, max_len: int = MAX_TEXT) -> None:
        self.max_len = max_len

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or (isinstance(value, str) and len(value) <= self.max_len):
            return value
        if strict:
            raise ShapeError(where, f"must be a string of at most {self.max_len} characters")
        # a reader shows what is there as text: cut short, or a number (SQLite columns
        # take any type) written out
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value[: self.max_len] if isinstance(value, str) else _as_text(value)


class Text(Str):
    """A string every store can hold as it is (no NUL, no lone surrogate:
    ``fsname.text_problem``) of ``min_len`` to ``max_len`` characters: text a reader
    shows or a server stores as given (a media key, a caption, a view spec's filter)."""

    def __init__(self, max_len: int = MAX_TEXT, min_len: int = 0) -> None:
        super().__init__(max_len)
        self.min_len = min_len

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        value = super().conform(value, where, strict)
        if isinstance(value, str) and len(value) < self.min_len:
            return self.misfit(
                where, f"must be {self.min_len} to {self.max_len} characters", strict
            )
        problem = fsname.text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            return self.misfit(where, problem, strict)
        return value


class Int(Shape):
    def __init__(self, lo: int = -I64, hi: int = I64 - 1) -> None:
        self.lo, self.hi = lo, hi

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or (type(value) is int and self.lo <= value <= self.hi):
            return value
        return self.misfit(where, f"must be an integer from {self.lo} to {self.hi}", strict)


class Num(Shape):
    """A number; ``finite=False`` also admits NaN and ±inf (metric values)."""

    def __init__(
        self, lo: float = -math.inf, hi: float = math.inf, finite: bool = True, what: str = ""
    ) -> None:
        self.lo, self.hi, self.finite = lo, hi, finite
        self.what = what or f"a finite number from {lo:g} to {hi:g}"

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None:
            return None
        if type(value) is float and not math.isfinite(value):
            if not self.finite:
                return value
        elif type(value) in (int, float) and self.lo <= _float(value) <= self.hi:
            return value
        return self.misfit(where, f"must be {self.what}, not {_shown(value)}", strict)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_text(value: Any) -> str | None:
    return str(value) if type(value) in (int, float, bool) else None


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond a double's range
        return math.nan


class Bool(Shape):
    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or isinstance(value, bool):
            return value
        return self.misfit(where, "must be true or false", strict)


class OneOf(Shape):
    def __init__(self, *values: Any) -> None:
        self.values = values

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or any(value == v and type(value) is type(v) for v in self.values):
            return value
        return self.misfit(where, f"must be one of {', '.join(map(repr, self.values))}", strict)


class Oid(Shape):
    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None:
            return None
        try:
            split_id(value)
            return value
        except (TypeError, ValueError):
            return self.misfit(where, "must be an object id (blake3:<64 hex digits>)", strict)


class RunId(Shape):
    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None or (isinstance(value, str) and ids.is_valid_id(value)):
            return value
        return self.misfit(where, "must be a run id", strict)


class AnyJSON(Shape):
    """Any JSON value; strictly, its numbers must be finite (strict JSON has no NaN)."""

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if strict and _has_nonfinite(value):
            raise ShapeError(where, "holds NaN or an infinity (not JSON)")
        return value


class ListOf(Shape):
    def __init__(self, item: Shape, max_len: int = 1_000_000) -> None:
        self.item, self.max_len = item, max_len

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > self.max_len:
            return self.misfit(where, f"must be a list of at most {self.max_len} items", strict)
        out = (self.item.conform(v, f"{where}[{i}]", strict) for i, v in enumerate(value))
        return [v for v in out if v is not None]


class Obj(Shape):
    """An object with documented fields; other keys are kept (keys are added within a
    version: an older reader must not refuse a newer writer's extra key), each fitted to
    ``others`` (any JSON unless given)."""

    def __init__(
        self, fields: dict[str, Shape], required: tuple[str, ...] = (), others: Shape | None = None
    ) -> None:
        self.fields, self.required = fields, required
        self.others = others if others is not None else _ANY

    def conform(self, value: Any, where: str, strict: bool) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            return self.misfit(where, "must be an object", strict)
        out = {}
        for k, v in value.items():
            shape = self.fields.get(k, self.others)
            fitted = shape.conform(v, f"{where}.{k}", strict)
            if fitted is not None or v is None:
                out[k] = fitted
        missing = [k for k in self.required if out.get(k) is None]
        if missing:
            return self.misfit(where, f"needs {', '.join(missing)}", strict)
        return out


class MapOf(Obj):
    """An object with any keys, each value of one shape."""

    def __init__(self, value: Shape) -> None:
        super().__init__({}, others=value)


_ANY = AnyJSON()


def _has_nonfinite(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


# -- the declarations (docs/run-record.md; docs/store-format.md "Run bundles") -----------

NAME = Str(MAX_NAME)
TIME = Num(0, MAX_TIME, what="a time (seconds since 1970, finite, before the year 10000)")
COUNT = Int(0)
FLAG = OneOf(0, 1)

CODE = Obj(
    {
        "kind": NAME,
        "root": NAME,
        "commit": NAME,
        "branch": NAME,
        "remote": Str(),
        "dirty": Bool(),
        "patch": Oid(),
        "patch_bytes": COUNT,
        "tree": Oid(),
        "files": COUNT,
        "bytes": COUNT,
        "hashed": COUNT,
        "skipped": ListOf(Obj({"path": NAME, "size": COUNT, "reason": Str()}, ("path",))),
        "seconds": Num(0),
    }
)
ENV = Obj(
    {
        "python": Obj({k: NAME for k in ("version", "implementation", "executable",
                                         "prefix", "base_prefix")} | {"venv": Bool()}),
        "os": MapOf(Str()),
        "cpu": Obj(
            {"model": NAME, "arch": NAME}
            | {k: COUNT for k in ("cores_logical", "cores_physical", "affinity")}
        ),
        "memory_bytes": COUNT,
        "gpus": ListOf(Obj({"index": COUNT, "name": NAME, "memory_total_bytes": COUNT,
                            "uuid": NAME, "driver": NAME})),
        "container": Obj({"type": NAME, "image": Str(), "hostname": NAME}),
        "vars": MapOf(Str()),
        "packages_count": COUNT,
    }
)  # fmt: skip
PACKAGES = ListOf(Obj({"name": NAME, "version": NAME}, ("name", "version")))
COMMAND = ListOf(Str())
LOGS = MapOf(Obj({"oid": Oid(), "size": COUNT}, ("oid",)))
NOTEBOOK = Obj(
    {
        "path": NAME,
        "source": NAME,
        "oid": Oid(),
        "size": COUNT,
        "cells_oid": Oid(),
        "cells_count": COUNT,
    }
)

# the JSON text columns of ``runs`` and their shapes
JSON_COLUMNS: dict[str, Shape] = {
    "command": COMMAND,
    "code_json": CODE,
    "env_json": ENV,
    "logs_json": LOGS,
    "notebook_json": NOTEBOOK,
}

# the scalar columns of each table that have more than their SQL type (a TEXT column
# not listed is any text up to MAX_TEXT characters; JSON columns are checked parsed)
COLUMNS: dict[str, dict[str, Shape]] = {
    "runs": {  # (the id is checked as the run's identity: bundle._parse_run)
        "name": NAME,
        "exit_code": Int(),
        "exit_signal": Int(0, 1 << 16),
        "started_at": TIME,
        "ended_at": TIME,
        "heartbeat_at": TIME,
        "cwd": NAME,
        "user_name": NAME,
        "host": NAME,
        "project_root": NAME,
        "mode": NAME,
        "parent_id": RunId(),
        "sweep_id": NAME,
        "reproduces": RunId(),
        "code_commit": NAME,
        "packages_id": Oid(),
        "data_policy": NAME,
    },
    "params": {"key": NAME, "num": Num(finite=False), "source": NAME},
    "tags": {"key": NAME},
    "metrics": {
        "key": NAME,
        "count": COUNT,
        "last": Num(finite=False),
        "min": Num(finite=False),
        "max": Num(finite=False),
        "last_step": Int(),
        "last_time": TIME,
        "summary": Num(finite=False),
        "has_summary": FLAG,
        "value": Num(finite=False),
    },
    "metric_chunks": {"key": NAME, "seq": COUNT, "n": COUNT},
    "run_files": {
        "role": OneOf("input", "output"),
        "path": NAME,
        "size": COUNT,
        "stored": FLAG,
        "source": NAME,
        "url": Str(),
        "changed": FLAG,
        "kind": OneOf("file", "dir"),
    },
    # docs/store-format.md "media": the media type each kind may have is checked with
    # the row (runbase.records.media.row_problem)
    "media": {
        "kind": OneOf(*MEDIA_KINDS),
        "key": Text(MAX_NAME, min_len=1),
        "step": Int(),
        "idx": COUNT,
        "oid": Oid(),
        "mime": NAME,
        "size": COUNT,
        "width": COUNT,
        "height": COUNT,
        "caption": Text(MAX_CAPTION),
        "time": TIME,
    },
    # docs/store-format.md "views": a name and a spec are checked as a view's
    # (runbase.core.viewspec)
    "views": {
        "is_default": FLAG,
        "user_name": NAME,
        "created_at": TIME,
        "updated_at": TIME,
    },
}


def fit_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row``, read from a store, with each column of a documented shape fitted in
    place (a value that does not fit reads as null). Runs lists read many rows: null
    and short text, the common values, are passed over without a call."""
    shapes = COLUMNS[table]
    for k, v in row.items():
        shape = shapes.get(k)
        if shape is None or v is None:
            continue
        if type(shape) is Str and type(v) is str and len(v) <= shape.max_len:
            continue
        if isinstance(shape, (Num, Int)) and type(v) in (int, float) and shape.lo <= v <= shape.hi:
            continue  # (NaN compares false: fitted below)
        row[k] = shape.fit(v)
    return row
