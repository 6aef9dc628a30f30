"""What the web UI shows, as plain data: pure functions over a :class:`Store` that
return JSON-able dicts (strict JSON: no NaN). The JSON API (``runbase.web.api``,
docs/api.md) is a thin layer over these; the HTML pages and ``runbase report`` call
them directly.

    from runbase.store import Store
    from runbase import views

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

import contextlib
import json
import math
import sqlite3
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from runbase.capture.params import jsonable
from runbase.capture.sysmetrics import is_system_metric
from runbase.core.query import compile_where, unknown_keys
from runbase.core.shapes import CODE, LOGS, fit_row, load_column, loads
from runbase.errors import QueryError, RunbaseError, UsageError
from runbase.records.read import list_runs, load_row, load_runs, resolve, with_sweep
from runbase.records.record import build_record, iso, run_row
from runbase.store import Store
from runbase.store.objects import ObjectTooLarge

API_VERSION = 1
MAX_PAGE = 1000  # runs per page
MAX_GROUPS = 1000
DEFAULT_POINTS = 1000
MAX_POINTS = 10_000
MAX_COMPARE = 100  # runs in one comparison
MAX_LINEAGE_DEPTH = 10
LINEAGE_FANOUT = 25  # producers / consumers shown per file
LINEAGE_MAX_NODES = 500
MAX_HIGHLIGHT = 256 * 1024  # bytes of a source file highlighted (~0.5 s); the rest is cut
MAX_PATCH = 2 * 1024 * 1024  # bytes of a patch returned and highlighted
DEFAULT_LOG_CHUNK = 256 * 1024
MAX_LOG_CHUNK = 4 * 1024 * 1024
UI_INSTALL_HINT = "pip install 'runbase[ui]'"
_BINARY_SNIFF = 8192


class NotFound(RunbaseError):
    """The run exists but the metric, file, object ... asked for does not."""


# -- helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def _user_sql() -> Iterator[None]:
    """Expressions the user wrote that SQLite (or the parser) cannot take are bad input."""
    try:
        yield
    except RecursionError:
        raise QueryError("the expression is nested too deeply")
    except OverflowError as e:  # an integer SQLite cannot hold
        raise QueryError(f"a number in the expression is out of range ({e})")
    except sqlite3.OperationalError as e:
        msg = str(e)
        if any(w in msg for w in ("too large", "too many", "depth", "stack", "too complex")):
            raise QueryError(f"the expression is too large to evaluate ({msg})")
        raise


def _where(where: str | None) -> tuple[str, list[Any]]:
    with _user_sql():
        return compile_where(where)


def run_items(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs (in the order given; unknown ids left out) as rows of the runs table:
    ``{id, name, status, exit_code, user, host, started_at, ended_at, duration_s,
    sweep_id, tags, params, metrics}`` with ``metrics`` the summary values."""
    return jsonable([run_row(r) for r in load_runs(store, run_ids)])


def matching_ids(store: Store, where: str, run_ids: list[str]) -> list[str]:
    """Those of ``run_ids`` (order kept) that match the filter ``where``."""
    cond, args = _where(where)
    found: set[str] = set()
    for i in range(0, len(run_ids), 500):
        part = run_ids[i : i + 500]
        marks = ",".join("?" * len(part))
        with _user_sql():
            rows = store.db.query(
                f"SELECT runs.id FROM runs WHERE ({cond}) AND runs.id IN ({marks})", [*args, *part]
            )
        found.update(r[0] for r in rows)
    return [r for r in run_ids if r in found]


# -- the runs table ----------------------------------------------------------------------


def _keys_loose(store: Store, table: str) -> list[str]:
    """Distinct keys of ``table`` by skipping along its ``(key, ...)`` index: one index
    seek per key, not a scan of every row."""
    q = (
        f"WITH RECURSIVE k(key) AS (SELECT min(key) FROM {table} UNION ALL "
        f"SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
        "SELECT key FROM k WHERE key IS NOT NULL"
    )
    return [r[0] for r in store.db.query(q)]


def store_keys(store: Store) -> dict[str, list[str]]:
    """Every parameter, metric and tag key in the store, sorted."""
    return {
        "param_keys": _keys_loose(store, "params"),
        # system metrics (sys/*) are not offered as columns, as in `runbase ls`
        "metric_keys": [k for k in _keys_loose(store, "metrics") if not is_system_metric(k)],
        "tag_keys": [r[0] for r in store.db.query("SELECT DISTINCT key FROM tags ORDER BY key")],
    }


def _groups(store: Store, cond: str, args: list[Any], group_by: str) -> list[dict[str, Any]]:
    gb = group_by.strip()
    decode = False
    if gb in ("sweep", "status", "user", "host"):
        col = {"sweep": "sweep_id", "status": "status", "user": "user_name", "host": "host"}[gb]
        sql = f"SELECT runs.{col}, count(*) FROM runs WHERE {cond} GROUP BY runs.{col}"
        sql_args = list(args)
    elif gb.startswith(("tag:", "param:")) and gb.partition(":")[2]:
        scope, _, key = gb.partition(":")
        table = "tags" if scope == "tag" else "params"
        decode = scope == "param"
        sql = (
            f"SELECT g.value, count(*) FROM runs LEFT JOIN {table} g "
            f"ON g.run_id = runs.id AND g.key = ? WHERE {cond} GROUP BY g.value"
        )
        sql_args = [key, *args]
    else:
        raise UsageError(
            f"cannot group by {group_by!r}; use sweep, status, user, host, tag:KEY or param:KEY"
        )
    rows = store.db.query(f"{sql} ORDER BY 2 DESC, 1 LIMIT {MAX_GROUPS}", sql_args)
    out = []
    for key, count in rows:
        if decode and key is not None:
            with contextlib.suppress(ValueError):  # too deep (TooDeep): its text
                key = loads(key)
        out.append({"key": key, "count": count})
    return jsonable(out)


def runs_page(
    store: Store,
    where: str | None = None,
    sort: str | None = None,
    limit: int = 50,
    offset: int = 0,
    sweep: str | None = None,
    group_by: str | None = None,
    keys: bool = True,
) -> dict[str, Any]:
    """One page of the runs table, filtered and sorted like ``runbase ls --where/--sort``.

    ``{"total", "offset", "limit", "runs": [...], "param_keys", "metric_keys",
    "tag_keys"}`` (+ ``"groups": [{"key", "count"}]`` with ``group_by`` = ``sweep``,
    ``status``, ``user``, ``host``, ``tag:KEY`` or ``param:KEY``). The key lists cover
    the whole store; ``keys=False`` leaves them out (team search does not show them).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise UsageError("offset must be 0 or more")
    where = with_sweep(where, sweep)
    cond, args = _where(where)
    with _user_sql():
        runs = list_runs(store, where, sort, limit, offset)
        if offset == 0 and len(runs) < limit:
            total = len(runs)
        else:
            row = store.db.query_one(f"SELECT count(*) FROM runs WHERE {cond}", args)
            total = int(row[0]) if row else 0
        groups = _groups(store, cond, args, group_by) if group_by else None
    out: dict[str, Any] = {
        "total": total,
        "offset": offset,
        "limit": limit,
        "runs": jsonable([run_row(r) for r in runs]),
        **(store_keys(store) if keys else {}),
    }
    if groups is not None:
        out["groups"] = groups
    if where:  # a misspelled key matches nothing, silently: say which and what is close
        with _user_sql():
            out["notes"] = unknown_keys(store, where)
    return out


# -- one run -------------------------------------------------------------------------------


def series_keys(store: Store, run_id: str) -> list[dict[str, Any]]:
    """``[{key, count}]``: the metrics of a run that have logged points."""
    rows = store.db.query(
        "SELECT key, count FROM metrics WHERE run_id = ? AND count > 0 ORDER BY key", (run_id,)
    )
    return [{"key": k, "count": n} for k, n in rows]


def run_detail(store: Store, ref: str, include_patch: bool = True) -> dict[str, Any]:
    """The run record (docs/run-record.md) + ``"series": [{key, count}]``."""
    run_id = resolve(store, ref)
    rec = build_record(store, run_id, include_patch=include_patch)
    rec["series"] = series_keys(store, run_id)
    return rec


# -- metric series ---------------------------------------------------------------------------


def _decode_series(
    store: Store, run_id: str, key: str, since_step: int | None
) -> tuple[array[int], array[float]]:
    steps: array[int] = array("q")
    vals: array[float] = array("d")
    rows = store.db.query(
        "SELECT steps, vals FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq",
        (run_id, key),
    )
    swap = sys.byteorder == "big"
    for b_steps, b_vals in rows:
        s: array[int] = array("q")
        v: array[float] = array("d")
        s.frombytes(b_steps)
        v.frombytes(b_vals)
        if swap:
            s.byteswap()
            v.byteswap()
        if since_step is not None and len(s):
            if max(s) <= since_step:
                continue
            if min(s) <= since_step:  # a chunk straddling since_step: keep the later points
                keep = [i for i, st in enumerate(s) if st > since_step]
                s = array("q", [s[i] for i in keep])
                v = array("d", [v[i] for i in keep])
        steps.extend(s)
        vals.extend(v)
    return steps, vals


def downsample(
    steps: Iterable[int], values: Iterable[float], points: int
) -> tuple[list[int], list[float | None], list[float | None], list[float | None]]:
    """At most ``points`` buckets of consecutive points (in logging order, equal
    counts): ``(steps, values, min, max)`` with the step of each bucket's first point,
    the mean, the minimum and the maximum of its finite values (None when it has none).
    Short series come back whole (min = max = value); NaN and infinities become None.
    """
    st = steps if isinstance(steps, array) else array("q", steps)
    va = values if isinstance(values, array) else array("d", values)
    n = len(va)
    if n <= points:
        vs = [v if math.isfinite(v) else None for v in va]
        return list(st), vs, list(vs), list(vs)
    isfinite = math.isfinite
    out_s: list[int] = []
    out_v: list[float | None] = []
    out_lo: list[float | None] = []
    out_hi: list[float | None] = []
    for i in range(points):
        a, b = i * n // points, (i + 1) * n // points
        chunk = va[a:b]
        total = sum(chunk)
        if isfinite(total):  # no NaN, no infinity: the fast path
            lo, hi, mean = min(chunk), max(chunk), total / (b - a)
        else:
            fin = [x for x in chunk if isfinite(x)]
            if fin:
                lo, hi = min(fin), max(fin)
                mean = sum(fin) / len(fin)
                if not isfinite(mean):  # finite values whose sum overflows
                    mean = sum(x / len(fin) for x in fin)
            else:
                lo = hi = mean = None
        out_s.append(st[a])
        out_v.append(mean)
        out_lo.append(lo)
        out_hi.append(hi)
    return out_s, out_v, out_lo, out_hi


def metric_series(
    store: Store,
    ref: str,
    key: str,
    points: int = DEFAULT_POINTS,
    since_step: int | None = None,
) -> dict[str, Any]:
    """One metric of one run, downsampled on the server to at most ``points`` buckets:
    ``{run, key, count, returned, downsampled, since_step, last_step, steps, values,
    min, max}`` (see :func:`downsample`). ``since_step``: only the points whose step is
    greater (live polling; pass the previous answer's ``last_step``)."""
    if not 2 <= points <= MAX_POINTS:
        raise UsageError(f"points must be between 2 and {MAX_POINTS}")
    run_id = resolve(store, ref)
    row = store.db.query_one(
        "SELECT count, last_step FROM metrics WHERE run_id = ? AND key = ?", (run_id, key)
    )
    if row is None:
        raise NotFound(f"run {run_id} has no metric {key!r}")
    count = fit_row("metrics", {"count": row[0]})["count"] or 0  # whatever the store holds
    steps, vals = _decode_series(store, run_id, key, since_step)
    s, v, lo, hi = downsample(steps, vals, points)
    return {
        "run": run_id,
        "key": key,
        "count": count,
        "returned": len(s),
        "downsampled": len(s) < len(vals),
        "since_step": since_step,
        "last_step": steps[-1] if len(steps) else since_step,
        "steps": s,
        "values": v,
        "min": lo,
        "max": hi,
    }


# -- code ------------------------------------------------------------------------------------


def _code(store: Store, run_id: str) -> dict[str, Any] | None:
    row = store.db.query_one("SELECT code_json FROM runs WHERE id = ?", (run_id,))
    if row is None:
        from runbase.errors import RunNotFound

        raise RunNotFound(f"no run {run_id}")
    return load_column(row[0], CODE)  # null when not of the documented shape


MAX_VIEW_OBJECT = 64 << 20  # a file, patch or manifest read whole to show it


def _get_object(store: Store, oid: str, what: str) -> bytes:
    """An object read whole to show it; one too large is refused before it is read
    (a view must not take a server's memory: logs are read in windows instead)."""
    try:
        return store.objects.get_bytes(oid, max_size=MAX_VIEW_OBJECT)
    except ObjectTooLarge as e:
        raise UsageError(
            f"{what} ({oid}) is {e.size} bytes, too large to show here (at most "
            f"{MAX_VIEW_OBJECT}); `runbase checkout` restores it"
        ) from None
    except (OSError, ValueError) as e:
        raise NotFound(f"{what} ({oid}) is missing from the store ({e}); see `runbase fsck`")


def _manifest(store: Store, run_id: str, code: dict[str, Any]) -> list[dict[str, Any]]:
    tree = code.get("tree")
    if not tree:
        return []
    from runbase.capture.code import load_manifest

    try:  # the one manifest reader (format and version checked), as push checks it
        return [e for e in load_manifest(store, tree) if isinstance(e, dict)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise NotFound(f"the code snapshot of run {run_id} is unreadable: {e}")


def code_tree(store: Store, ref: str) -> dict[str, Any]:
    """The files of a run's code snapshot: ``{run, kind, commit, branch, dirty, remote,
    files: [{path, size, type (f|x|link), target?}], skipped: [{path, size, reason}]}``;
    ``kind`` is null (and ``files`` empty) for a run without a snapshot."""
    run_id = resolve(store, ref)
    code = _code(store, run_id)
    if code is None:
        return {
            "run": run_id,
            "kind": None,
            "commit": None,
            "branch": None,
            "dirty": None,
            "remote": None,
            "files": [],
            "skipped": [],
        }
    files = []
    for e in _manifest(store, run_id, code):
        item = {"path": e["path"], "size": e.get("size"), "type": e.get("type", "f")}
        if e.get("type") == "link":
            item["target"] = e.get("target")
        files.append(item)
    return {
        "run": run_id,
        "kind": code.get("kind"),
        "commit": code.get("commit"),
        "branch": code.get("branch"),
        "dirty": code.get("dirty"),
        "remote": code.get("remote"),
        "files": files,
        "skipped": code.get("skipped") or [],
    }


def _entry(store: Store, ref: str, path: str) -> tuple[str, dict[str, Any]]:
    run_id = resolve(store, ref)
    code = _code(store, run_id)
    if code is None:
        raise NotFound(f"run {run_id} has no code snapshot")
    for e in _manifest(store, run_id, code):
        if e["path"] == path:
            return run_id, e
    skipped = {s.get("path"): s.get("reason") for s in code.get("skipped") or []}
    if path in skipped:
        raise NotFound(f"{path} was left out of run {run_id}'s snapshot: {skipped[path]}")
    raise NotFound(f"no file {path!r} in run {run_id}'s code snapshot")


def code_file_bytes(store: Store, ref: str, path: str) -> bytes:
    """The bytes of one file of a run's code snapshot (a link: its target)."""
    run_id, e = _entry(store, ref, path)
    if e.get("type") == "link":
        return str(e.get("target", "")).encode()
    return _get_object(store, e["oid"], f"{path} of run {run_id}")


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:_BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut by a size limit is still text
        return e.start < len(data) - 4
    return False


def _pygments() -> Any:
    try:
        import pygments
    except ImportError as e:
        raise RunbaseError(f"syntax highlighting needs pygments: {UI_INSTALL_HINT}") from e
    return pygments


def highlight(text: str, path: str | None = None, language: str | None = None) -> dict[str, Any]:
    """``{"html", "language"}``: ``text`` highlighted by pygments (lexer from ``language``,
    else the file name, else plain text), in a ``<div class="highlight">`` table with
    line numbers (anchors ``#L-N``). Style it with :func:`highlight_css`."""
    pygments = _pygments()
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename, guess_lexer
    from pygments.util import ClassNotFound

    lexer: Any = None
    with contextlib.suppress(ClassNotFound):
        if language:
            lexer = get_lexer_by_name(language)
        elif path:
            lexer = get_lexer_for_filename(path.rsplit("/", 1)[-1], code=text[:4096])
    if lexer is None and text.startswith("#!"):  # a script without an extension
        with contextlib.suppress(ClassNotFound):
            lexer = guess_lexer(text[:4096])
    if lexer is None:
        lexer = TextLexer()
    fmt = HtmlFormatter(
        linenos="table", lineanchors="L", anchorlinenos=True, cssclass="highlight", wrapcode=True
    )
    return {"html": pygments.highlight(text, lexer, fmt), "language": lexer.name}


def highlight_css(style: str = "default") -> str:
    """CSS for :func:`highlight`'s HTML (a pygments style; ``UsageError`` if unknown)."""
    _pygments()
    from pygments.formatters import HtmlFormatter
    from pygments.util import ClassNotFound

    try:
        fmt = HtmlFormatter(style=style, cssclass="highlight")
    except ClassNotFound:
        from pygments.styles import get_all_styles

        raise UsageError(
            f"unknown style {style!r}; one of: {', '.join(sorted(get_all_styles()))}"
        ) from None
    return str(fmt.get_style_defs(".highlight"))


def _cut_text(data: bytes, limit: int) -> tuple[bytes, bool]:
    """``data`` cut to at most ``limit`` bytes at a line end (if any), and whether it was."""
    if len(data) <= limit:
        return data, False
    cut = data.rfind(b"\n", 0, limit)
    return data[: cut + 1 if cut > 0 else limit], True


def code_file(store: Store, ref: str, path: str) -> dict[str, Any]:
    """One file of a run's code snapshot, highlighted: ``{run, path, size, type,
    binary, truncated, language, html, target?}`` (``html`` null for a binary file or
    a link; files over 256 KiB are cut at a line end, ``truncated: true``)."""
    run_id, e = _entry(store, ref, path)
    out: dict[str, Any] = {
        "run": run_id,
        "path": path,
        "size": e.get("size"),
        "type": e.get("type", "f"),
        "binary": False,
        "truncated": False,
        "language": None,
        "html": None,
    }
    if e.get("type") == "link":
        out["target"] = e.get("target")
        return out
    data = _get_object(store, e["oid"], f"{path} of run {run_id}")
    out["size"] = len(data)
    if _is_binary(data):
        out["binary"] = True
        return out
    shown, out["truncated"] = _cut_text(data, MAX_HIGHLIGHT)
    out.update(highlight(shown.decode("utf-8", "replace"), path=path))
    return out


def code_diff(store: Store, ref: str) -> dict[str, Any]:
    """The uncommitted change a run ran with (its patch against ``commit``, untracked
    files included), highlighted as a diff: ``{run, kind, commit, branch, dirty,
    patch_id, patch_bytes, patch, truncated, html}``. ``patch``/``html`` are null when
    the run had no uncommitted change (or no snapshot: ``kind`` null); a patch over
    2 MiB is cut at a line end (``truncated: true``)."""
    run_id = resolve(store, ref)
    code = _code(store, run_id) or {}
    patch_id = code.get("patch")
    out: dict[str, Any] = {
        "run": run_id,
        "kind": code.get("kind"),
        "commit": code.get("commit"),
        "branch": code.get("branch"),
        "dirty": code.get("dirty"),
        "patch_id": patch_id,
        "patch_bytes": code.get("patch_bytes"),
        "patch": None,
        "truncated": False,
        "html": None,
    }
    if patch_id:
        data, out["truncated"] = _cut_text(
            _get_object(store, patch_id, f"the patch of run {run_id}"), MAX_PATCH
        )
        out["patch"] = data.decode("utf-8", "replace")
        out["html"] = highlight(out["patch"], language="diff")["html"]
    return out


# -- notebook --------------------------------------------------------------------------------

MAX_CELLS = 10_000  # cells of one run in one answer (the newest are cut)


def notebook(store: Store, ref: str) -> dict[str, Any]:
    """The notebook a run came from and the cells it executed, in order:
    ``{run, notebook, cells, truncated}``; ``notebook`` is the run record's section
    (null for a run that was not in IPython/Jupyter) and each cell is as in
    docs/run-record.md (``index, execution_count, cell_id, source, started_at,
    duration_s, success, error``)."""
    from runbase.records.notebook import load_cells, notebook_section

    run_id = resolve(store, ref)
    cells = load_cells(store, run_id)
    return jsonable(
        {
            "run": run_id,
            "notebook": notebook_section(store, run_id),
            "cells": cells[:MAX_CELLS],
            "truncated": len(cells) > MAX_CELLS,
        }
    )


# -- logs --------------------------------------------------------------------------------------

_log_cache: OrderedDict[str, bytes] = OrderedDict()  # oid -> bytes (objects never change)
_log_cache_lock = threading.Lock()
_LOG_CACHE_ITEMS = 4
_LOG_CACHE_MAX = 16 * 1024 * 1024  # bigger logs are re-read per request


def _log_window(store: Store, oid: str, offset: int, n: int) -> tuple[bytes, int]:
    """``n`` bytes of a stored log from ``offset``, and its size: a small log read whole
    once (and kept: objects never change), a large one by a ranged read (logs of long
    runs run to GBs)."""
    try:
        data = _small_log(store, oid)
        if data is not None:
            return data[offset : offset + n], len(data)
        size = store.objects.size(oid)
        return store.objects.read_range(oid, offset, n) if offset < size else b"", size
    except (OSError, ValueError) as e:
        raise NotFound(f"the log ({oid}) is missing from the store ({e}); see `runbase fsck`")


def _small_log(store: Store, oid: str) -> bytes | None:
    """The whole log when it is at most _LOG_CACHE_MAX bytes (one read, then cached);
    None for a larger one."""
    with _log_cache_lock:  # content-addressed: the same id is the same bytes anywhere
        data = _log_cache.get(oid)
        if data is not None:
            _log_cache.move_to_end(oid)
            return data
    try:
        data = store.objects.get_bytes(oid, max_size=_LOG_CACHE_MAX)
    except ObjectTooLarge:
        return None
    with _log_cache_lock:
        _log_cache[oid] = data
        while len(_log_cache) > _LOG_CACHE_ITEMS:
            _log_cache.popitem(last=False)
    return data


def _utf8_complete(chunk: bytes) -> int:
    """Length of ``chunk`` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(chunk)) + 1):
        b = chunk[-back]
        if b < 0x80:
            return len(chunk)
        if b >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(chunk) if back >= need else len(chunk) - back
    return len(chunk)


def _whole_chars(raw: bytes, limit: int, more: bool) -> bytes:
    """At most ``limit`` bytes of ``raw`` without cutting a UTF-8 character when more
    bytes follow (or may); a first character longer than ``limit`` comes whole."""
    chunk = raw[:limit]
    if not more:
        return chunk
    n = _utf8_complete(chunk)
    if n == 0 and chunk:
        b = chunk[0]
        need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 1
        return raw[:need] if len(raw) >= need else b""
    return chunk[:n]


def _live_log(store: Store, run_id: str, stream: str, offset: int, n: int) -> tuple[bytes, int]:
    """Up to ``n`` bytes from ``offset`` of a log published live (``live_logs``), and
    the size received so far (contiguous from 0)."""
    rows = store.db.query(
        'SELECT "offset", size, data FROM live_logs WHERE run_id = ? AND stream = ? '
        'ORDER BY "offset"',
        (run_id, stream),
    )
    size = 0
    out = bytearray()
    for start, length, data in rows:
        if start > size:
            break  # a gap (a delta lost): what follows waits for the finished run's log
        end = start + length
        if end <= size:
            continue
        new = data[size - start :]  # the bytes from the contiguous end on
        if end > offset and len(out) < n:
            lo = max(offset, size) - size
            out += new[lo : lo + n - len(out)]
        size = end
    return bytes(out), size


def log_chunk(
    store: Store,
    ref: str,
    stream: str = "output",
    offset: int = 0,
    limit: int = DEFAULT_LOG_CHUNK,
) -> dict[str, Any]:
    """Part of a run's log for tailing: ``{run, stream, status, offset, next_offset,
    size, text, done}``. ``stream`` is ``output`` (stdout and stderr interleaved) or
    ``stderr``; offsets are in bytes; at most ``limit`` bytes come back, never half a
    UTF-8 character (one longer than ``limit`` comes whole). ``done``: the run has ended and ``next_offset``
    is the end of the log (poll again from ``next_offset`` while not done)."""
    from runbase.core.runfiles import LOG_FILES

    if stream not in LOG_FILES:
        raise UsageError(f"unknown log stream {stream!r}; use one of {', '.join(LOG_FILES)}")
    if not 1 <= limit <= MAX_LOG_CHUNK:
        raise UsageError(f"limit must be between 1 and {MAX_LOG_CHUNK}")
    if offset < 0:
        raise UsageError("offset must be 0 or more")
    run_id = resolve(store, ref)
    raw, size, status = b"", 0, "running"  # raw: up to 3 bytes past limit
    for _attempt in range(2):
        row = store.db.query_one("SELECT status, logs_json FROM runs WHERE id = ?", (run_id,))
        status = row[0] if row else "crashed"
        logs = load_column(row[1], LOGS) if row else None
        if logs is not None:  # finalized: an object
            entry = logs.get(stream)
            raw, size = _log_window(store, entry["oid"], offset, limit + 3) if entry else (b"", 0)
            break
        try:  # live: the spool file, read from the offset on
            with open(store.spool_dir(run_id) / LOG_FILES[stream], "rb") as f:
                size = f.seek(0, 2)
                f.seek(min(offset, size))
                raw = f.read(limit + 3)
            break
        except FileNotFoundError:
            raw, size = _live_log(store, run_id, stream, offset, limit + 3)
            if size:  # published live from another machine (a team server)
                break
    chunk = _whole_chars(raw, limit, more=len(raw) > limit or status == "running")
    next_offset = offset + len(chunk)
    return {
        "run": run_id,
        "stream": stream,
        "status": status,
        "offset": offset,
        "next_offset": next_offset,
        "size": size,
        "text": chunk.decode("utf-8", "replace"),
        "done": status != "running" and next_offset >= size,
    }


# -- lineage ------------------------------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str, str], dict[str, str]] = {}
        self.truncated = False

    def full(self) -> bool:
        if len(self.nodes) >= LINEAGE_MAX_NODES:
            self.truncated = True
        return self.truncated

    def run(self, rid: str, name: str, status: str, started_at: float | None) -> str:
        nid = f"run:{rid}"
        if nid not in self.nodes:
            self.nodes[nid] = {
                "id": nid,
                "kind": "run",
                "label": name,
                "run": rid,
                "name": name,
                "status": status,
                "started_at": iso(started_at),
            }
        return nid

    def file(self, run_id: str, path: str, oid: str | None, size: Any, url: Any, kind: Any) -> str:
        key = oid or (f"url:{url}" if url else f"path:{run_id}:{path}")
        nid = f"file:{key}"
        node = self.nodes.get(nid)
        if node is None:
            node = self.nodes[nid] = {
                "id": nid,
                "kind": "file",
                "label": path.rstrip("/").rsplit("/", 1)[-1] or path,
                "path": path,
                "paths": [path],
                "hash": oid,
                "size": size,
            }
            if url:
                node["url"] = url
            if kind == "dir":
                node["directory"] = True
        elif path not in node["paths"]:
            node["paths"].append(path)
        return nid

    def edge(self, src: str, dst: str, kind: str) -> None:
        self.edges.setdefault((src, dst, kind), {"from": src, "to": dst, "kind": kind})


def _run_files(store: Store, run_id: str, role: str) -> list[tuple[Any, ...]]:
    return store.db.query(
        "SELECT path, oid, size, url, kind FROM run_files WHERE run_id = ? AND role = ? "
        "ORDER BY path",
        (run_id, role),
    )


def _runs_with_file(store: Store, oid: str, role: str, other_than: str) -> list[tuple[Any, ...]]:
    order = "DESC" if role == "output" else "ASC"  # newest producers, earliest consumers
    return store.db.query(
        "SELECT DISTINCT r.id, r.name, r.status, r.started_at FROM run_files f "
        "JOIN runs r ON r.id = f.run_id WHERE f.oid = ? AND f.role = ? AND r.id <> ? "
        f"ORDER BY r.started_at {order} LIMIT ?",
        (oid, role, other_than, LINEAGE_FANOUT + 1),
    )


def lineage(store: Store, ref: str, depth: int = 3) -> dict[str, Any]:
    """The data lineage around a run, as a graph: ``{root, depth, truncated, nodes,
    edges}``. Nodes are runs (``{id: "run:ID", kind: "run", label, run, name, status,
    started_at}``) and files (``{id: "file:HASH", kind: "file", label, path, paths,
    hash, size, url?, directory?}``: one node per content, whatever its paths). An edge
    ``{from, to, kind}`` is ``input`` (file -> run that read it) or ``output`` (run ->
    file it wrote). Upstream: the run's inputs, the runs that wrote those exact bytes,
    their inputs, ...; downstream: its outputs, the runs that read them, their
    outputs, ...; up to ``depth`` runs away (at most 25 runs per file, 500 nodes)."""
    if not 0 <= depth <= MAX_LINEAGE_DEPTH:
        raise UsageError(f"depth must be between 0 and {MAX_LINEAGE_DEPTH}")
    run_id = resolve(store, ref)
    r = load_row(store, run_id)
    g = _Graph()
    root = g.run(run_id, r["name"], r["status"], r["started_at"])
    g.nodes[root]["root"] = True
    for role in ("input", "output"):
        other = "output" if role == "input" else "input"
        queue, seen = [(run_id, 0)], {run_id}
        while queue and not g.truncated:
            rid, hops = queue.pop(0)
            rnode = f"run:{rid}"
            for path, oid, size, url, kind in _run_files(store, rid, role):
                if g.full():
                    break
                fnode = g.file(rid, path, oid, size, url, kind)
                g.edge(*((fnode, rnode) if role == "input" else (rnode, fnode)), role)
                if hops >= depth or not oid:
                    continue
                linked = _runs_with_file(store, oid, other, rid)
                if len(linked) > LINEAGE_FANOUT:
                    key = "more_producers" if role == "input" else "more_consumers"
                    g.nodes[fnode][key] = True
                for lid, name, status, started in linked[:LINEAGE_FANOUT]:
                    if g.full():
                        break
                    lnode = g.run(lid, name, status, started)
                    g.edge(*((lnode, fnode) if role == "input" else (fnode, lnode)), other)
                    if lid not in seen:
                        seen.add(lid)
                        queue.append((lid, hops + 1))
    return jsonable(
        {
            "root": root,
            "depth": depth,
            "truncated": g.truncated,
            "nodes": list(g.nodes.values()),
            "edges": list(g.edges.values()),
        }
    )


# -- several runs --------------------------------------------------------------------------------


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def compare(store: Store, refs: Iterable[str]) -> dict[str, Any]:
    """Runs side by side: ``{runs: [rows as in runs_page], params, params_differ,
    metrics, metrics_differ, series}``. ``params``/``metrics`` list every key, those
    whose values differ (or that some runs lack) first, each group sorted;
    ``*_differ`` are the differing ones; ``series`` the metrics with logged points in
    every run."""
    refs = [r.strip() for r in refs if r and r.strip()]
    if not refs:
        raise UsageError("give the runs to compare, e.g. runs=ID1,ID2")
    if len(refs) > MAX_COMPARE:
        raise UsageError(f"at most {MAX_COMPARE} runs can be compared at once")
    ids = list(dict.fromkeys(resolve(store, r) for r in refs))
    items = run_items(store, ids)

    def split(section: str) -> tuple[list[str], list[str]]:
        # system metrics (sys/*) differ in every pair of runs: charts, not this list
        keys = sorted(
            {
                k
                for it in items
                for k in it[section]
                if section != "metrics" or not is_system_metric(k)
            }
        )
        differ = [
            k
            for k in keys
            if any(k not in it[section] for it in items)
            or len({_canon(it[section][k]) for it in items}) > 1
        ]
        differing = set(differ)
        same = [k for k in keys if k not in differing]
        return differ + same, differ

    params, params_differ = split("params")
    metrics, metrics_differ = split("metrics")
    common: set[str] | None = None
    for rid in ids:
        keys = {s["key"] for s in series_keys(store, rid)}
        common = keys if common is None else common & keys
    return {
        "runs": items,
        "params": params,
        "params_differ": params_differ,
        "metrics": metrics,
        "metrics_differ": metrics_differ,
        "series": sorted(common or ()),
    }


def diff(
    store: Store, a: str, b: str | None = None, sections: Iterable[str] | None = None
) -> dict[str, Any]:
    """``runbase diff A B --json`` (docs/diff-format.md); without ``b``, ``runbase diff
    A --json`` (the run's code against its commit)."""
    from runbase.analysis.diff import diff_head, diff_runs

    if b is None:
        return jsonable(diff_head(store, a))
    return jsonable(diff_runs(store, a, b, sections))


def importance(
    store: Store,
    metric: str,
    where: str | None = None,
    runs: Iterable[str] | None = None,
    sweep: str | None = None,
) -> dict[str, Any]:
    """Parameter importance (``runbase importance``): ``{metric, n_runs, rows: [{param,
    kind, spearman, eta, rf_importance, n}], dropped: {param: why}}``. Raises
    ``UsageError`` with too few runs and ``RunbaseError`` without ``runbase[analysis]``."""
    from runbase.analysis.importance import analyze

    if not metric or not metric.strip():
        raise UsageError("give the metric to explain, e.g. metric=acc")
    where = with_sweep(where, sweep)
    _where(where)  # malformed: a QueryError before any work
    with _user_sql():
        rep = analyze(store, metric.strip(), where, list(runs) if runs is not None else None)
    return jsonable(
        {
            "metric": rep.metric,
            "n_runs": rep.n_runs,
            "rows": rep.rows,
            "dropped": rep.dropped,
            "warning": rep.warning,
        }
    )


def health() -> dict[str, Any]:
    from runbase import __version__

    return {"ok": True, "version": __version__, "api_version": API_VERSION}
