"""The model registry for people (docs/models.md): the text of ``runbase model ls``,
``show``, ``log``, ``requests``, ``status`` and ``verify``, and ``model show --format
markdown`` for a pull-request comment. Everything here renders the JSON views
(render.views.models, or a team server's answers of the same shapes), so the text and
``--json`` never say different things.

Names, messages and paths were written by people (or pulled from a server): text goes
through :func:`runbase.core.text.printable` and Markdown through the escaping helpers
of render.markdown.
"""

from __future__ import annotations

from typing import Any

from runbase.core.text import printable
from runbase.render.markdown import Markdown, code, details, escape, table
from runbase.render.table import fmt_bytes, fmt_value, render

MAX_METRIC_COLUMNS = 4  # of the producing runs' metrics, side by side in `model show`
MAX_MESSAGE = 60  # characters of a message in a table
NO_PROVENANCE = "no provenance"


def _t(value: Any, limit: int | None = None) -> str:
    return "" if value is None else printable(value, limit)


def _when(iso_text: Any) -> str:
    """``2026-12-07 12:51:40`` of an ISO 8601 UTC time."""
    return _t(iso_text)[:19].replace("T", " ")


def _short(oid: Any) -> str:
    """``blake3:1a2b3c4d5e6f`` — enough of a hash to tell versions apart."""
    return _t(oid)[:19]


def _stages(stages: dict[str, str]) -> str:
    return ", ".join(f"{_t(s)}={_t(v)}" for s, v in sorted(stages.items()))


def ls_text(listing: dict[str, Any]) -> str:
    """The models table (``runbase model ls``)."""
    rows = [
        [_t(m["name"]), _t(m["latest"]), str(m["versions"]), _stages(m["stages"]) or "-",
         _when(m["updated_at"])]
        for m in listing["models"]
    ]  # fmt: skip
    return render(["model", "latest", "versions", "stages", "updated"], rows)


def _metric_keys(versions: list[dict[str, Any]]) -> list[str]:
    """The metrics most versions' runs have, in name order, at most MAX_METRIC_COLUMNS."""
    counts: dict[str, int] = {}
    for v in versions:
        for k in v.get("metrics") or {}:
            counts[k] = counts.get(k, 0) + 1
    ranked = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_METRIC_COLUMNS]
    return sorted(ranked)


def _run_cell(v: dict[str, Any]) -> str:
    if v.get("external") or not v.get("run"):
        return NO_PROVENANCE
    name = v.get("run_name")
    return _t(v["run"])[:12] + (f" {_t(name, 30)}" if name else "")


def show_text(detail: dict[str, Any]) -> str:
    """A model's versions with their stages and their runs' key metrics side by side."""
    versions = detail["versions"]
    keys = _metric_keys(versions)
    lines = [f"model {_t(detail['name'])}"]
    held = _stages(detail.get("stages") or {})
    lines.append(f"stages: {held}" if held else "stages: none (`runbase model promote`)")
    lines.append("")
    rows = []
    for v in versions:
        metrics = v.get("metrics") or {}
        rows.append(
            [_t(v["version"]), ",".join(_t(s) for s in v.get("stages") or []), _run_cell(v),
             _t(v.get("run_status")), _when(v.get("created_at")), _t(v.get("user")),
             _short(v["oid"]), *(fmt_value(metrics.get(k)) for k in keys)]
        )  # fmt: skip
    headers = ["version", "stages", "run", "status", "created", "user", "oid", *keys]
    lines.append(render([_t(h) for h in headers], rows))
    requests = detail.get("requests") or []
    if requests:
        lines += ["", "open requests:", requests_text(requests)]
    return "\n".join(lines)


def _change(e: dict[str, Any]) -> str:
    if e["action"] in ("promote", "demote", "rollback"):
        return f"{_t(e['stage'])}: {_t(e['from_version']) or '-'} -> {_t(e['to_version']) or '-'}"
    if e["action"] in ("request", "approve", "reject"):
        rid = (e.get("data") or {}).get("request")
        return f"{_t(e['stage'])} <- {_t(e['version'])} (request {_t(rid)})"
    return _t(e.get("version"))


def log_text(events: list[dict[str, Any]]) -> str:
    """The audit log: who, when, what (from -> to), the version's hash, the run, why."""
    rows = [
        [str(e["seq"]), _when(e["time"]), _t(e.get("user")) or "-", _t(e["action"]),
         _t(e["model"]), _change(e), _short(e.get("oid")),
         _t(e.get("run"))[:12] or ("-" if e["action"] != "register" else NO_PROVENANCE),
         _t(e.get("message"), MAX_MESSAGE)]
        for e in events
    ]  # fmt: skip
    headers = ["seq", "time (UTC)", "user", "action", "model", "change", "oid", "run", "message"]
    return render(headers, rows)


def requests_text(requests: list[dict[str, Any]]) -> str:
    rows = [
        [_t(r["id"]), _t(r["model"]), _t(r["version"]), _t(r["stage"]),
         _t(r.get("requested_by")) or "-", _when(r.get("requested_at")), _t(r["state"]),
         _t(r.get("decided_by")), _t(r.get("message"), MAX_MESSAGE)]
        for r in requests
    ]  # fmt: skip
    return render(
        ["id", "model", "version", "stage", "by", "requested", "state", "decided by", "message"],
        rows,
    )


def event_line(e: dict[str, Any]) -> str:
    """One line saying what a write did (register, promote, ...)."""
    action, model = e["action"], _t(e["model"])
    if action == "register":
        data = e.get("data") or {}
        source = (
            f"run {_t(e['run'])[:12]}, {_t(data.get('path'))}" if e.get("run") else NO_PROVENANCE
        )
        return f"registered {model}@{_t(e['version'])} ({_short(e['oid'])}; {source})"
    if action in ("promote", "demote", "rollback"):
        verb = {"promote": "promoted", "demote": "demoted", "rollback": "rolled back"}[action]
        frm, to = _t(e.get("from_version")) or "nothing", _t(e.get("to_version")) or "nothing"
        return f"{verb} {model}@{_t(e['stage'])}: {frm} -> {to}"
    rid = _t((e.get("data") or {}).get("request"))
    if action == "request":
        return (
            f"requested {model}@{_t(e['version'])} -> {_t(e['stage'])}: request {rid} waits for "
            f"another approver (`runbase model approve {rid}`)"
        )
    return f"{action}d request {rid} ({model}@{_t(e['version'])} -> {_t(e['stage'])})"


def status_text(report: dict[str, Any]) -> str:
    """The drift check's line: ``in sync`` or ``out of sync: PATH ...``, then what
    differs from the expected version, one path a line (at most ``_DIFF_LINES``)."""
    path, ref = _t(report["path"]), _t(report["ref"])
    expected = report["expected"]
    want = f"{_t(expected['ref'])}" + (f" ({ref})" if ref != expected["ref"] else "")
    state = report["state"]
    if state == "in_sync":
        return f"in sync: {path} holds {want}"
    if state == "missing":
        return f"out of sync: {path} is missing (expected {want})"
    if state == "other_version":
        held = ", ".join(_t(m) for m in report["matches"])
        return f"out of sync: {path} matches {held}, not {want}"
    actual = _short(report["actual_oid"]) if report.get("actual_oid") else "a symlink"
    line = (
        f"out of sync: {path} matches no version of {_t(expected['name'])} "
        f"({actual}; expected {want})"
    )
    return "\n".join([line, *_difference_lines(report)])


_DIFF_LINES = 20  # the text lists this many; --json up to 100, and how many more


def _difference_lines(report: dict[str, Any]) -> list[str]:
    # the path itself changed: the line above says so already
    diffs = [
        d for d in report.get("differences") or () if (d["path"], d["problem"]) != (".", "changed")
    ]
    lines = [f"  {_difference(d)}" for d in diffs[:_DIFF_LINES]]
    more = len(diffs) - len(lines) + int(report.get("more_differences") or 0)
    if more:
        lines.append(f"  and {more} more")
    return lines


def _difference(d: dict[str, Any]) -> str:
    """One difference: ``extra: __pycache__/x.pyc (file)``."""
    path, problem = _t(d["path"]), d["problem"]
    exp, act = d.get("expected"), d.get("actual")
    if problem == "extra":
        return f"extra: {path} ({_t(act)})"
    if problem == "missing":
        return f"missing: {path} ({_t(exp)})"
    if problem == "changed":
        return f"changed: {path} ({_short(act)}, expected {_short(exp)})"
    if problem == "target":
        return f"symlink target: {path} -> {_t(act)} (expected -> {_t(exp)})"
    return f"{_t(act)} where a {_t(exp)} is expected: {path}"


def verify_text(report: dict[str, Any]) -> str:
    head = _t(report.get("head")) or "none (empty log)"
    if report["ok"]:
        return f"ok: {report['events']} events, the chain and the registry agree\nhead: {head}"
    lines = [f"BROKEN: {len(report['problems'])} problems in {report['events']} events"]
    lines += [f"  {_t(p)}" for p in report["problems"]]
    lines.append(f"head: {head}")
    return "\n".join(lines)


def get_text(result: dict[str, Any]) -> str:
    what = f"{_t(result['ref'])} ({_short(result['oid'])}"
    what += f", {result['files']} files)" if result["kind"] == "dir" else ")"
    size = f", {fmt_bytes(result['size'])}" if isinstance(result.get("size"), int) else ""
    if not result["written"]:
        return f"{_t(result['path'])} holds {what} already{size}"
    return f"wrote {what}{size} to {_t(result['path'])}"


def gto_import_text(report: dict[str, Any]) -> str:
    """``runbase model import-gto``: one line per tag, grouped by outcome."""
    lines = []
    for key in ("imported", "skipped", "problems"):
        items = report.get(key) or []
        lines.append(f"{key}: {len(items)}")
        lines += [f"  {_t(i.get('tag') or i.get('model'))}: {_t(i.get('detail'))}" for i in items]
    return "\n".join(lines)


# -- Markdown (a pull-request comment) ---------------------------------------------


def show_markdown(detail: dict[str, Any]) -> str:
    """``runbase model show NAME --format markdown``: the versions, their stages and their
    runs' key metrics as a table; the stages and open requests under it."""
    versions = detail["versions"]
    keys = _metric_keys(versions)
    name = detail["name"]
    held = detail.get("stages") or {}
    parts = [f"### Model {code(name)}"]
    if held:
        parts.append(
            Markdown(", ".join(f"{escape(s)}: {code(v)}" for s, v in sorted(held.items())))
        )
    else:
        parts.append("No stage holds a version yet.")
    rows = []
    for v in versions:
        metrics = v.get("metrics") or {}
        run: Any = NO_PROVENANCE if v.get("external") or not v.get("run") else code(v["run"][:12])
        rows.append(
            [code(v["version"]), ", ".join(v.get("stages") or []), run,
             v.get("run_name"), _when(v.get("created_at")), *(metrics.get(k) for k in keys)]
        )  # fmt: skip
    headers = ["version", "stages", "run", "run name", "created (UTC)", *keys]
    parts.append(table(headers, rows, align="lllll" + "r" * len(keys)))
    requests = detail.get("requests") or []
    if requests:
        body = table(
            ["request", "version", "stage", "by", "message"],
            [
                [code(r["id"]), code(r["version"]), r["stage"], r.get("requested_by"),
                 r.get("message")]
                for r in requests
            ],
        )  # fmt: skip
        parts.append(details(f"{len(requests)} open promotion requests", body))
    return "\n\n".join(parts) + "\n"
