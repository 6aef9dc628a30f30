"""The read side's queries: resolve run references, load runs, their metrics and series.

What ``runbase.get_run(ref)`` and ``runbase.runs(where=...)`` (records.view) and every
command that shows runs are built on:

>>> run = runbase.get_run("0bq3k5x7")          # doctest: +SKIP
>>> run.params["lr"], run.metrics["acc"]["last"]   # doctest: +SKIP
>>> run.series("loss").values[:3]               # doctest: +SKIP
>>> runbase.runs(where="params.lr < 0.1")      # a pandas DataFrame  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from runbase.core import fsname
from runbase.core.query import compile_where
from runbase.core.shapes import fit_row, loads
from runbase.errors import AmbiguousRunRef, RunNotFound
from runbase.records.modelrefs import ref_target
from runbase.records.paging import page_rows
from runbase.store import Store

RUN_COLUMNS = (
    "id, name, status, exit_code, exit_signal, started_at, ended_at, heartbeat_at, command, cwd, "
    "user_name, host, project_root, mode, parent_id, sweep_id, reproduces, code_json, env_json, "
    "packages_id, logs_json, error"
)
_NAMES = [c.strip() for c in RUN_COLUMNS.split(",")]
_RUN_SELECT = ", ".join(f"runs.{c}" for c in _NAMES)  # RUN_COLUMNS where other tables join
MAX_LIMIT = 100_000


@dataclass
class MetricSeries:
    """One metric's points in logging order."""

    key: str
    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def to_pandas(self) -> Any:
        import pandas as pd  # lazy: optional and heavy; only for a DataFrame

        return pd.DataFrame({"step": self.steps, "time": self.times, self.key: self.values})


def resolve(store: Store, ref: str | None) -> str:
    """A run id from a full id, a unique id prefix, an exact name, ``latest``/None, or
    a model reference (``churn@production``: the run that produced that version)."""
    db = store.db
    if ref is None or ref in ("latest", "last", "@"):
        row = db.query_one("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1")
        if row is None:
            raise RunNotFound("the store has no runs yet")
        return str(row[0])
    ref = ref.strip()
    if not ref:
        raise RunNotFound("empty run reference")
    target = ref_target(store, ref) if "@" in ref else None
    if target is not None:  # churn@production: the run that produced that version
        if target.run_id is None:
            raise RunNotFound(
                f"{ref} is {target}, registered --external: no recorded run produced it"
            )
        return target.run_id
    rows = db.query("SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 6", (ref, ref + "\x7f"))
    ids_ = [r[0] for r in rows]
    if len(ids_) == 1:
        return str(ids_[0])
    if ref in ids_:
        return ref
    by_name = db.query(
        "SELECT id FROM runs WHERE name = ? ORDER BY started_at DESC LIMIT 6", (ref,)
    )
    if len(by_name) == 1 and not ids_:
        return str(by_name[0][0])
    candidates = ids_ or [r[0] for r in by_name]
    if candidates:
        raise AmbiguousRunRef(
            f"{ref!r} matches several runs: {', '.join(candidates[:5])}{' ...' if len(candidates) > 5 else ''}; "
            "give more characters of the id"
        )
    raise RunNotFound(f"no run matches {ref!r} (see `runbase ls`)")


def all_run_ids(store: Store) -> list[str]:
    """Every run of the store, by id."""
    return [r[0] for r in store.db.query("SELECT id FROM runs ORDER BY id")]


def project_root_of(store: Store, run_id: str) -> str:
    """The directory a run's relative data paths are relative to."""
    row = store.db.query_one("SELECT project_root, cwd FROM runs WHERE id = ?", (run_id,))
    return fsname.decode(row[0] or row[1]) if row and (row[0] or row[1]) else os.getcwd()


def run_name(store: Store, run_id: str) -> str | None:
    row = store.db.query_one("SELECT name FROM runs WHERE id = ?", (run_id,))
    return row[0] if row else None


def run_status(store: Store, run_id: str) -> str | None:
    """The run's status; None when the run is not in the store."""
    row = store.db.query_one("SELECT status FROM runs WHERE id = ?", (run_id,))
    return row[0] if row else None


def stored_project_root(store: Store, run_id: str) -> str | None:
    """The run's ``project_root`` column as stored (None when not recorded)."""
    row = store.db.query_one("SELECT project_root FROM runs WHERE id = ?", (run_id,))
    return row[0] if row and row[0] else None


def reproduction_count(store: Store, run_id: str) -> int:
    """How many runs reproduce ``run_id`` (``runbase reproduce``)."""
    row = store.db.query_one("SELECT count(*) FROM runs WHERE reproduces = ?", (run_id,))
    return int(row[0]) if row else 0


def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A runs row as a dict, each column fitted to its documented shape: a value an
    older version or a hostile writer stored (a time of 1e300, text in an integer
    column) reads as null rather than breaking every reader (runbase.core.shapes)."""
    return fit_row("runs", dict(zip(_NAMES, row, strict=True)))


def load_row(store: Store, run_id: str) -> dict[str, Any]:
    """The runs table's row of run ``run_id`` (:class:`RunNotFound` without one)."""
    row = store.db.query_one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise RunNotFound(f"no run {run_id}")
    return row_dict(row)


def load_params(store: Store, run_ids: list[str]) -> dict[str, dict[str, tuple[Any, str]]]:
    out: dict[str, dict[str, tuple[Any, str]]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        q = f"SELECT run_id, key, value, source FROM params WHERE run_id IN ({','.join('?' * len(chunk))})"
        for run_id, key, value, source in store.db.query(q, chunk):
            out[run_id][key] = (_decode_param(value), source)
    return out


def _decode_param(text: str) -> Any:
    try:
        return loads(text)  # bounded depth: a deeply nested value is shown as its text
    except ValueError:
        return text


def load_metrics(store: Store, run_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        q = (
            "SELECT run_id, key, count, last, min, max, last_step, summary, has_summary, value "
            f"FROM metrics WHERE run_id IN ({','.join('?' * len(chunk))})"
        )
        for run_id, key, count, last, vmin, vmax, step, summ, has_summ, _value in store.db.query(
            q, chunk
        ):
            out[run_id][key] = metric_summary(count, last, vmin, vmax, step, summ, has_summ)
    return out


def metric_summary(
    count: int, last: Any, vmin: Any, vmax: Any, step: Any, summ: Any, has_summ: int
) -> dict[str, Any]:
    """Decode a metrics row. SQLite stores NaN as NULL: a NULL last of a logged key is NaN."""
    nan = math.nan
    if count:
        last = nan if last is None else last
    value = (nan if summ is None else summ) if has_summ else last
    return {"value": value, "last": last, "min": vmin, "max": vmax, "count": count, "step": step}


def load_tags(store: Store, run_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        q = f"SELECT run_id, key, value FROM tags WHERE run_id IN ({','.join('?' * len(chunk))})"
        for run_id, key, value in store.db.query(q, chunk):
            out[run_id][key] = value
    return out


def _chunks(items: list[str], n: int = 500) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def list_runs(
    store: Store,
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs matching ``where`` (see runbase.core.query) in the order of ``sort``, from
    ``offset`` on, at most ``limit`` (None: all), each with params, metrics and tags."""
    cond, args = compile_where(where)
    if limit is not None:
        limit = min(max(int(limit), 0), MAX_LIMIT)
    rows = page_rows(store, cond, args, sort, limit, max(int(offset), 0), _RUN_SELECT)
    return _with_details(store, [row_dict(r) for r in rows])


def load_runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs ``run_ids`` (in that order; unknown ids left out) as :func:`list_runs`
    gives them."""
    by_id: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(run_ids):
        q = f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({','.join('?' * len(chunk))})"
        for row in store.db.query(q, chunk):
            r = row_dict(row)
            by_id[r["id"]] = r
    return _with_details(store, [by_id[i] for i in run_ids if i in by_id])


def _with_details(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids_ = [r["id"] for r in rows]
    params, metrics, tags = (
        load_params(store, ids_),
        load_metrics(store, ids_),
        load_tags(store, ids_),
    )
    for r in rows:
        r["params"] = {k: v for k, (v, _s) in params[r["id"]].items()}
        r["metrics"] = metrics[r["id"]]
        r["tags"] = tags[r["id"]]
        r["duration"] = duration(r)
    return rows


def with_sweep(where: str | None, sweep: str | None) -> str | None:
    """``where`` restricted to the runs of ``sweep`` (a sweep id), when given."""
    if not sweep:
        return where
    return f"sweep == {json.dumps(sweep)}" + (f" and ({where})" if where else "")


# The tag every hybrid run of `runbase explain` carries (analysis.explain.TAG names the
# same tag; records sits below analysis, so the listing helpers spell it here).
EXPLAIN_TAG = "explain"


def hide_explain(where: str | None, all_runs: bool) -> str | None:
    """``where`` without the hybrid runs of ``runbase explain`` (tagged ``explain``),
    unless ``all_runs``: they are experiments about two runs, not runs of their own,
    and would bury those in the listing."""
    if all_runs:
        return where
    if where:
        compile_where(where)  # a mistake is reported in the user's words, not the combined
    return (f"({where}) and " if where else "") + f"not tags.{EXPLAIN_TAG}"


def count_runs(store: Store, where: str | None = None) -> int:
    cond, args = compile_where(where)
    row = store.db.query_one(f"SELECT count(*) FROM runs WHERE {cond}", args)
    return int(row[0]) if row else 0


def duration(r: dict[str, Any]) -> float | None:
    """Seconds from start to end (to now while running, else to the last heartbeat
    when no end was kept). Time 0 is a time (an import's unknown start): is-None."""
    end = r.get("ended_at")
    if end is None:
        end = time.time() if r.get("status") == "running" else r.get("heartbeat_at")
    start = r.get("started_at")
    return None if end is None or start is None else max(0.0, end - start)


def series(store: Store, run_id: str, key: str) -> MetricSeries:
    """All points of one metric of one run, in logging order."""
    out = MetricSeries(key)
    rows = store.db.query(
        "SELECT steps, times, vals FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq",
        (run_id, key),
    )
    if not rows:
        exists = store.db.query_one(
            "SELECT 1 FROM metrics WHERE run_id = ? AND key = ?", (run_id, key)
        )
        if exists is None:
            raise KeyError(f"run {run_id} has no metric {key!r}")
    for steps, times, vals in rows:
        a_s, a_t, a_v = array("q"), array("d"), array("d")
        a_s.frombytes(steps)
        a_t.frombytes(times)
        a_v.frombytes(vals)
        if sys.byteorder == "big":
            for a in (a_s, a_t, a_v):
                a.byteswap()
        out.steps.extend(a_s)
        out.times.extend(a_t)
        out.values.extend(a_v)
    return out


def flatten_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": r["id"],
        "name": r["name"],
        "status": r["status"],
        "exit_code": r["exit_code"],
        "started_at": r["started_at"],
        "ended_at": r["ended_at"],
        "duration": r["duration"],
        "user": r["user_name"],
        "host": r["host"],
        "sweep_id": r["sweep_id"],
    }
    for k, v in r["params"].items():
        out[f"params.{k}"] = v
    for k, m in r["metrics"].items():
        out[f"metrics.{k}"] = m["value"]
    for k, v in r["tags"].items():
        out[f"tags.{k}"] = v
    return out


def abbreviate(store: Store, run_ids: list[str], min_len: int = 10) -> dict[str, str]:
    """The shortest prefix (at least ``min_len``) of each id that is unique in the store."""
    out = {}
    for rid in run_ids:
        n = min_len
        while n < len(rid):
            row = store.db.query_one(
                "SELECT count(*) FROM runs WHERE id >= ? AND id < ?", (rid[:n], rid[:n] + "\x7f")
            )
            if row and row[0] <= 1:
                break
            n += 1
        out[rid] = rid[:n]
    return out
