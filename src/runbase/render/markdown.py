"""Markdown for pull-request comments: ``runbase diff --format markdown`` and ``runbase
explain --format markdown`` (docs/ci.md), and the pieces other Markdown reports build on
(``runbase model show --format markdown``).

The output is GitHub-flavoured Markdown that GitHub and GitLab both render: a one-line
verdict, then small tables, long parts folded in ``<details>``. It is for people, capped
to the size of a comment (tables list at most a few rows and say how many more there
are); the JSON formats are the stable ones.

Everything a run carries (param values, run names, paths, package names, the code diff)
was written by someone, so none of it is trusted as Markdown: plain ``str`` goes through
:func:`escape` (or into a fenced :func:`code_block`) and cannot break a table (``|``, a
newline) or put HTML in the comment (``<script>``, ``<img onerror=…>``). Text that is
already Markdown is marked by the :class:`Markdown` type; :func:`table` and
:func:`escape` leave it as it is and escape any other ``str``.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from runbase.analysis.metrickinds import is_timing_metric, metric_direction
from runbase.core.text import printable
from runbase.render.explain import noise_line, non_finite, report_number, signed
from runbase.render.table import fmt_bytes

MAX_ROWS = 15  # rows of a table before "and N more"
MAX_CELL = 80  # characters of a value in a table cell before "…"
MAX_DIFF_LINES = 200  # lines of the folded code diff
MAX_DIFF_CHARS = 20_000  # and its characters: a GitHub comment holds 65,536 in all
MAX_HEADLINE_METRICS = 3  # metrics named in the verdict line


class Markdown(str):
    """A string that is already Markdown (built by these helpers, or escaped): left as
    it is where plain ``str`` would be escaped."""

    __slots__ = ()


# -- generic helpers -----------------------------------------------------------------

# Characters with a meaning in (GitHub-flavoured) Markdown inline text: emphasis, code,
# links and images, table cells, strike-through, math, headings. `<`, `>`, `&` become
# HTML entities instead, so no tag or entity of the text reaches the page.
_SPECIAL = frozenset("\\`*_[]|~#$")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# what would start a block at the start of a line: a list item ("- x", "+ x", "1. x",
# "1) x"), a thematic break or a setext heading underline ("---", "===")
_BLOCK_START = re.compile(r"^(?:[-+](?=\s|$)|[-=]+\s*$|\d{1,9}(?=[.)](?:\s|$)))")


def escape(text: Any, limit: int | None = None) -> Markdown:
    """``text`` as Markdown that shows exactly that text, on one line.

    Markdown punctuation is backslash-escaped, ``<``, ``>``, ``&`` become entities, a
    newline becomes ``<br>`` (so a value keeps its lines in a table cell), other control
    characters are written as their escapes (``\\x1b``), a leading ``-``, ``+``, ``=``
    or ``1.`` cannot start a list or a heading, and ``@name`` notifies nobody. ``limit``: cut to that many
    characters first (an ellipsis marks the cut). A :class:`Markdown` value is returned
    as it is; anything else is ``str()``-ed.
    """
    if isinstance(text, Markdown):
        return text
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    lines = s.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markdown("<br>".join(_escape_line(printable(line)) for line in lines))


# "@name" where a mention can start: GitHub and GitLab would notify that user (or team)
# of a comment that merely shows a recorded value; a word joiner after the "@" keeps the
# text as it reads and is no mention. "a@b.com" (a word character before) is none.
_MENTION = re.compile(r"(?<!\w)@(?=[\w-])")


def _escape_line(s: str) -> str:
    out = "".join(_ENTITIES.get(c) or ("\\" + c if c in _SPECIAL else c) for c in s)
    out = _MENTION.sub("@\u2060", out)
    m = _BLOCK_START.match(out)
    if m is None:
        return out
    if out[0].isdigit():  # 1. -> 1\.
        return out[: m.end()] + "\\" + out[m.end() :]
    return "\\" + out


_SAFE_CODE = re.compile(r"^[\w.:/@+=,-]+$")


def code(text: Any) -> Markdown:
    """``text`` as inline code when it is a plain token (a run id, a hash, a version,
    a path without spaces), else escaped text: a code span cannot hold every character
    safely in a table cell (a ``|`` in it still splits the row)."""
    s = str(text)
    if _SAFE_CODE.match(s) and len(s) <= 200:
        return Markdown(f"`{s}`")
    return escape(s, MAX_CELL)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Markdown):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _fmt_value(value)
    return escape(value, MAX_CELL)


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    max_rows: int = MAX_ROWS,
    align: str = "",
) -> Markdown:
    """A GFM table. Cells that are plain ``str`` are escaped and cut to
    :data:`MAX_CELL` characters, numbers formatted, None left empty, :class:`Markdown`
    kept as it is (so it must be one line without an unescaped ``|``). ``align``: one
    letter per column, ``l``, ``r`` or ``c`` (default left). Rows past ``max_rows`` are left out and counted in a line under the table
    ("and 4 more"); it is separated by a blank line, as a line right under a table
    would be read as one more row."""
    rows = list(rows)
    width = len(headers)
    marks = {"l": "---", "r": "--:", "c": ":-:"}
    lines = [
        _row([_cell(h) for h in headers]),
        _row([marks.get(align[i] if i < len(align) else "l", "---") for i in range(width)]),
    ]
    for row in rows[:max_rows]:
        cells = [_cell(v) for v in list(row)[:width]]
        lines.append(_row(cells + [""] * (width - len(cells))))
    text = "\n".join(lines)
    if len(rows) > max_rows:
        text += f"\n\n*and {len(rows) - max_rows} more*"
    return Markdown(text)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def details(summary: Any, body: str) -> Markdown:
    """``body`` (Markdown) folded under a ``<details>`` element with ``summary`` (plain
    text: it sits in HTML, where Markdown is not read, so it is HTML-escaped) as the
    line a reader clicks. Blank lines around the body let GitHub and GitLab read it as
    Markdown."""
    text = printable(" ".join(str(summary).split()))
    return Markdown(
        f"<details><summary>{html.escape(text, quote=False)}</summary>\n\n{body}\n\n</details>"
    )


_LANG = re.compile(r"^[A-Za-z0-9_+-]{1,30}$")


def code_block(
    text: str,
    lang: str = "",
    max_lines: int = MAX_DIFF_LINES,
    max_chars: int = MAX_DIFF_CHARS,
    more: str = "",
) -> Markdown:
    """``text`` in a fenced code block (``lang``: ``diff``, ``python``... for the
    highlighting), at most ``max_lines`` lines and ``max_chars`` characters; a cut block
    is followed by a line saying how many lines were left out, and then ``more``
    (Markdown: where to see the rest). The fence is longer than any run of backticks in
    the text, so the text cannot close it; control characters are written as their
    escapes."""
    lines = [_code_line(line) for line in text.splitlines()]
    shown: list[str] = []
    size = 0
    for line in lines[:max_lines]:
        size += len(line) + 1
        if size > max_chars and shown:
            break
        shown.append(line[:max_chars])
    ticks = max((len(run) for run in re.findall(r"`+", "\n".join(shown))), default=0)
    fence = "`" * max(3, ticks + 1)
    info = lang if _LANG.match(lang) else ""
    block = f"{fence}{info}\n" + "".join(f"{line}\n" for line in shown) + fence
    left = len(lines) - len(shown)
    if left:
        block += f"\n\n*{left:,} more line{'s' if left != 1 else ''} not shown*"
        block += f" ({more})" if more else ""
    return Markdown(block)


def _code_line(line: str) -> str:
    return line if line.isprintable() else "".join(c if c == "\t" else printable(c) for c in line)


# -- numbers and metrics -------------------------------------------------------------


def _fmt_value(v: Any) -> str:
    x = report_number(v)
    if x is None:
        return _show(v)
    if not math.isfinite(x):
        return non_finite(x)
    return str(v) if isinstance(v, int) else f"{x:.6g}"


def _fmt_delta(v: Any) -> str:
    return signed(v, "")


def _fmt_relative(v: Any) -> str:
    x = report_number(v)
    return "" if x is None or not math.isfinite(x) else f"{x:+.1%}"


def _show(v: Any) -> str:
    """A param value as text: strings as they are, anything else as compact JSON."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return " ".join(v)  # a command line
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _verdict(key: str, delta: Any) -> str:
    """``better`` / ``worse`` for a change of ``key`` by ``delta``; "" when unknown."""
    direction, d = metric_direction(key), report_number(delta)
    if direction is None or d is None or not math.isfinite(d) or d == 0:
        return ""
    return "better" if (d > 0) == (direction == "higher") else "worse"


def _metric_name(key: str) -> Markdown:
    """The key, with an arrow for its direction (↑ higher is better) or "(timing)"."""
    direction = metric_direction(key)
    mark = {"higher": " ↑", "lower": " ↓"}.get(direction or "", "")
    if not mark and is_timing_metric(key):
        mark = " (timing)"
    return Markdown(escape(key, MAX_CELL) + mark)


_LEGEND = (
    "↑ higher is better, ↓ lower is better (from the metric's name); "
    "timing metrics measure the machine and are not judged"
)


# -- runbase diff --------------------------------------------------------------------

_SECTION_NAMES = {
    "params": "params",
    "metrics": "metrics",
    "code": "code",
    "data": "data",
    "env": "environment",
    "run": "command and exit status",
}


def diff_markdown(report: dict[str, Any]) -> str:
    """``runbase diff A B`` as a pull-request comment: the verdict line, then a part per
    section that changed (metrics, params, code with its diff folded, data, environment,
    command), and one line naming the unchanged sections. ``report`` is what
    :func:`runbase.analysis.diff.diff_runs` (or ``diff_head``) returns, or its JSON."""
    if "head" in report:
        return _head_markdown(report)
    a, b = report["a"], report["b"]
    parts = [_diff_verdict(report)]
    unchanged = [
        _SECTION_NAMES[name] for name in _SECTION_NAMES if (report.get(name) or {}).get("unchanged")
    ]
    if unchanged:
        parts.append(f"*unchanged: {', '.join(unchanged)}*")
    ida, idb = _id(a), _id(b)
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "metrics": _diff_metrics,
        "params": _diff_params,
        "code": lambda section: _diff_code(section, ida, idb),
        "data": _diff_data,
        "env": _diff_env,
        "run": _diff_run,
    }
    for name, render in renderers.items():
        section = report.get(name)
        if section and not section.get("unchanged"):
            parts.append(f"#### {_SECTION_NAMES[name].capitalize()}\n\n{render(section)}")
    parts.append(f"<sub>`runbase diff {ida} {idb}` shows the whole report</sub>")
    return "\n\n".join(parts) + "\n"


def _id(run: Any) -> str:
    """A run's id from the report (``{"id": ...}`` or the id), safe as code: ids are
    ``[0-9a-z]``; anything else a store held is shown escaped."""
    rid = str(run.get("id") if isinstance(run, dict) else run)
    return rid if re.fullmatch(r"[0-9A-Za-z_-]{1,64}", rid) else "?"


def _who(run: dict[str, Any]) -> Markdown:
    name = run.get("name")
    label = f"`{_id(run)[:10]}`"
    return Markdown(label + (f" ({escape(name, 60)})" if name else ""))


def _diff_verdict(report: dict[str, Any]) -> str:
    head = f"**runbase diff** A {_who(report['a'])} → B {_who(report['b'])}"
    metrics = report.get("metrics") or {}
    changed = metrics.get("changed") or []
    moved = [_headline_metric(m) for m in changed[:MAX_HEADLINE_METRICS]]
    if len(changed) > MAX_HEADLINE_METRICS:
        moved.append(f"and {len(changed) - MAX_HEADLINE_METRICS} more")
    others = [
        _SECTION_NAMES[name]
        for name in ("params", "code", "data", "env", "run")
        if report.get(name) and not report[name].get("unchanged")
    ]
    if not moved and metrics and not metrics.get("unchanged"):
        others.insert(0, "metrics")  # only added or removed ones
    if not moved and not others:
        return head + ": no difference"
    said = ", ".join(moved) if moved else ("no metric changed" if metrics else "")
    changed_part = f"{', '.join(others)} changed" if others else ""
    return head + ": " + "; ".join(x for x in (said, changed_part) if x)


def _headline_metric(m: dict[str, Any]) -> str:
    size = _fmt_relative(m.get("relative")) or _fmt_delta(m.get("delta"))
    if not size:
        size = f"{_fmt_value(m.get('old'))} → {_fmt_value(m.get('new'))}"
    verdict = _verdict(str(m["key"]), m.get("delta"))
    return f"**{escape(m['key'], 40)}** {size}" + (f" ({verdict})" if verdict else "")


def _diff_metrics(s: dict[str, Any]) -> str:
    rows: list[list[Any]] = [
        [
            _metric_name(str(m["key"])),
            _fmt_value(m.get("old")),
            _fmt_value(m.get("new")),
            _fmt_delta(m.get("delta")),
            _fmt_relative(m.get("relative")) or ("from 0" if report_number(m.get("delta")) else ""),
            _verdict(str(m["key"]), m.get("delta")),
        ]
        for m in s.get("changed") or []
    ]
    rows += [
        [_metric_name(str(m["key"])), "—", _fmt_value(m.get("value")), "", "", "added"]
        for m in s.get("added") or []
    ]
    rows += [
        [_metric_name(str(m["key"])), _fmt_value(m.get("value")), "—", "", "", "removed"]
        for m in s.get("removed") or []
    ]
    text: str = table(["metric", "A", "B", "Δ", "%", ""], rows, align="lrrrrl")
    keys = [str(m["key"]) for k in ("changed", "added", "removed") for m in s.get(k) or []]
    if any(metric_direction(k) or is_timing_metric(k) for k in keys):
        text += f"\n\n<sub>{_LEGEND}</sub>"
    return text


def _diff_params(s: dict[str, Any]) -> str:
    rows: list[list[Any]] = [
        [p["key"], _show(p.get("old")), _show(p.get("new"))] for p in s.get("changed") or []
    ]
    rows += [[p["key"], Markdown("—"), _show(p.get("value"))] for p in s.get("added") or []]
    rows += [[p["key"], _show(p.get("value")), Markdown("—")] for p in s.get("removed") or []]
    return table(["param", "A", "B"], rows)


def _code_state(state: dict[str, Any] | None) -> str:
    if state is None:
        return "no code snapshot"
    if state.get("kind") != "git":
        return "a directory snapshot (not a git repository)"
    commit = str(state.get("commit") or "")
    where = code(commit[:10]) if commit else "no commit yet"
    if state.get("branch"):
        where += f" on {code(state['branch'])}"
    if state.get("patch_id"):
        where += " + uncommitted changes"
    return where


def _line_counts(patch: str | None) -> str:
    if not patch:
        return ""
    lines = patch.splitlines()
    plus = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    minus = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return f"+{plus} −{minus}"


def _diff_code(s: dict[str, Any], a: str, b: str) -> str:
    files = s.get("files") or []
    lines = [f"A {_code_state(s.get('a'))} → B {_code_state(s.get('b'))}"]
    if files:
        lines[0] += f" · {len(files)} file{'s' if len(files) != 1 else ''} changed"
    parts = ["\n".join(lines)]
    rows = []
    for f in files:
        note = "binary" if f.get("binary") else _line_counts(f.get("diff"))
        if f.get("mode"):
            note = (note + ", " if note else "") + f"type {f['mode']['old']} → {f['mode']['new']}"
        rows.append([f["path"], f.get("status"), note])
    if rows:
        parts.append(table(["file", "change", "lines"], rows, align="llr"))
    if s.get("not_diffed"):
        skipped = ", ".join(escape(p, MAX_CELL) for p in s["not_diffed"][:MAX_ROWS])
        more = len(s["not_diffed"]) - MAX_ROWS
        parts.append(
            f"not diffed (data, large or secret files): {skipped}"
            + (f" and {more} more" if more > 0 else "")
        )
    patch = "".join(_readable_patch(f["diff"]) for f in files if f.get("diff"))
    if patch:
        n = patch.count("\n")
        body = code_block(patch, "diff", more=f"`runbase diff {a} {b} --code` shows them")
        parts.append(details(f"the diff ({n:,} line{'s' if n != 1 else ''})", body))
    return "\n\n".join(parts)


def _readable_patch(patch: str) -> str:
    """A file's diff without the base85 data of a binary patch (unreadable)."""
    out, binary = [], False
    for line in patch.splitlines():
        if line.startswith("diff --git"):
            binary = False
        elif line == "GIT binary patch":
            binary = True
            out.append("binary files differ")
        if not binary:
            out.append(line)
    return "\n".join(out) + "\n"


def _short_hash(h: Any) -> str:
    return "—" if not h else str(h).split(":", 1)[-1][:12]


def _side(h: Any, size: Any) -> Markdown:
    """A file version: its short hash as code, and its size."""
    if not h:
        return Markdown("—")
    size_text = fmt_bytes(size) if isinstance(size, int) and not isinstance(size, bool) else "?"
    return Markdown(f"{code(_short_hash(h))} {size_text}")


def _diff_data(s: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    for label in ("inputs", "outputs"):
        part = s.get(label) or {}
        kind = label[:-1]
        rows += [
            [kind, f["path"], Markdown("—"), _side(f.get("hash"), f.get("size")), "added"]
            for f in part.get("added") or []
        ]
        rows += [
            [kind, f["path"], _side(f.get("hash"), f.get("size")), Markdown("—"), "removed"]
            for f in part.get("removed") or []
        ]
        for f in part.get("changed") or []:
            content = f.get("content") or {}
            note = content.get("summary") if isinstance(content, dict) else None
            rows.append(
                [
                    kind,
                    f["path"],
                    _side(f.get("old_hash"), f.get("old_size")),
                    _side(f.get("new_hash"), f.get("new_size")),
                    note or "other bytes",
                ]
            )
    return table(["", "path", "A", "B", "change"], rows)


def _diff_env(s: dict[str, Any]) -> str:
    parts = []
    facts = []
    python = s.get("python")
    if python:
        old, new = python.get("old") or {}, python.get("new") or {}
        facts.append(
            f"Python {escape(old.get('version') or '?', 40)} → {escape(new.get('version') or '?', 40)}"
        )
    for key in ("os", "cpu", "gpus", "container"):
        change = s.get(key)
        if change:
            facts.append(
                f"{key}: {escape(_show(change.get('old')), 60)} → {escape(_show(change.get('new')), 60)}"
            )
    if facts:
        parts.append("<br>\n".join(facts))
    pk = s.get("packages") or {}
    rows: list[list[Any]] = []
    for kind, mark in (("upgraded", "↑ upgraded"), ("downgraded", "↓ downgraded")):
        rows += [[p["name"], p.get("old"), p.get("new"), mark] for p in pk.get(kind) or []]
    rows += [
        [p["name"], p.get("old"), p.get("new"), "source changed"] for p in pk.get("changed") or []
    ]
    rows += [[p["name"], Markdown("—"), p.get("version"), "added"] for p in pk.get("added") or []]
    rows += [
        [p["name"], p.get("version"), Markdown("—"), "removed"] for p in pk.get("removed") or []
    ]
    if rows:
        parts.append(table(["package", "A", "B", "change"], rows))
    return "\n\n".join(parts) or "*environment details differ*"


def _diff_run(s: dict[str, Any]) -> str:
    rows = []
    command = s.get("command")
    if command and not command.get("explained_by_params"):
        rows.append(["command", _show(command.get("old")), _show(command.get("new"))])
    for key, label in (("status", "status"), ("exit_code", "exit code")):
        change = s.get(key)
        if change:
            rows.append([label, _show(change.get("old")), _show(change.get("new"))])
    if not rows:
        return "*the command differs only by the params above*"
    return table(["", "A", "B"], rows)


def _head_markdown(report: dict[str, Any]) -> str:
    """``runbase diff A``: A's uncommitted code change against its commit."""
    who, head = _who(report["a"]), report.get("head")
    if head is None:
        return f"**runbase diff** {who}: no code snapshot was recorded\n"
    if head.get("kind") != "git":
        return f"**runbase diff** {who} ran outside a git repository: no commit to compare with\n"
    where = _code_state({**head, "patch_id": None})
    if head.get("patch") is None:
        if head.get("patch_id"):
            return f"**runbase diff** {who}: its stored patch cannot be read (see `runbase fsck`)\n"
        return f"**runbase diff** {who}: no uncommitted changes against {where}\n"
    patch = _readable_patch(head["patch"])
    n = patch.count("\n")
    body = code_block(patch, "diff", more=f"`runbase diff {_id(report['a'])}` shows them")
    return (
        f"**runbase diff** {who}: uncommitted changes against {where}\n\n"
        + details(f"the diff ({n:,} line{'s' if n != 1 else ''})", body)
        + "\n"
    )


# -- runbase explain -----------------------------------------------------------------


def explain_markdown(report: dict[str, Any]) -> str:
    """``runbase explain A B`` as a pull-request comment: the verdict (the metric's
    change and the factor that made most of it), a warning when a run does not
    reproduce, the noise, the factors ranked by effect, interactions, what could not be
    tested, and the search and hybrids folded. ``report`` as
    :func:`runbase.tracking.explain.explain` returns it, or its JSON."""
    metric = str(report.get("metric"))
    parts = [_explain_verdict(report, metric)]
    warnings = _not_reproducing(report, metric)
    if warnings:
        parts.append(warnings)
    measured = report.get("measured") or {}
    facts = []
    if report_number(measured.get("total")) is not None and _fmt_delta(
        measured.get("total")
    ) != _fmt_delta(report.get("total")):
        facts.append(
            f"measured on the re-runs: {_fmt_value(measured.get('a'))} → "
            f"{_fmt_value(measured.get('b'))} ({_fmt_delta(measured.get('total'))})"
        )
    noise = _noise(report.get("noise") or {})
    if noise:
        facts.append(noise)
    if facts:
        parts.append("<br>\n".join(facts))
    parts.append(_explain_factors(report))
    for part in (_explain_interactions, _explain_untestable, _explain_search):
        text = part(report)
        if text:
            parts.append(text)
    a, b = _id(report.get("a")), _id(report.get("b"))
    parts.append(
        f"<sub>`runbase explain {a} {b}` with the same options shows the text report</sub>"
    )
    return "\n\n".join(parts) + "\n"


def _explain_verdict(report: dict[str, Any], metric: str) -> str:
    total = report.get("total")
    verdict = _verdict(metric, total)
    head = (
        f"**runbase explain** {escape(metric, 60)}: {_fmt_value(report.get('a_value'))} → "
        f"{_fmt_value(report.get('b_value'))} ({_fmt_delta(total) or 'no change'}"
        + (f", {verdict}" if verdict else "")
        + f") from A `{_id(report.get('a'))[:10]}` to B `{_id(report.get('b'))[:10]}`"
    )
    factors = [f for f in report.get("factors") or [] if report_number(f.get("effect")) is not None]
    if factors:
        top = factors[0]
        share = report_number(top.get("share"))
        head += f"; mostly {escape(top.get('name'), 60)} ({_fmt_delta(top.get('effect'))}"
        head += f", {share:.1f}% of it)" if share is not None and math.isfinite(share) else ")"
    return head


def _not_reproducing(report: dict[str, Any], metric: str) -> str:
    noise = report.get("noise") or {}
    lines = []
    for side in ("a", "b"):
        if noise.get(f"{side}_reproduces", True):
            continue
        runs = noise.get(side) or []
        again = ", ".join(_fmt_value(v) if v is not None else "(none)" for v in runs[:6])
        lines.append(
            f"> **{side.upper()} (`{_id(report.get(side))[:10]}`) does not reproduce its "
            f"recorded {escape(metric, 60)}**: recorded {_fmt_value(report.get(f'{side}_value'))}, "
            f"re-run{'s' if len(runs) != 1 else ''} gave {again or '(none)'}"
        )
    if lines:
        lines.append("> the effects below are measured on the re-runs, not the recorded values")
    return "\n>\n".join(lines)


def _noise(noise: dict[str, Any]) -> str:
    return noise_line(noise, _fmt_value, "`--repeats K`")


def _explain_factors(report: dict[str, Any]) -> str:
    factors = report.get("factors") or []
    if not factors:
        return "*no factor could be tested*"
    rows = []
    for i, f in enumerate(factors, 1):
        share = report_number(f.get("share"))
        note = ""
        if f.get("breaks_run"):
            note = Markdown("**breaks the run**")
        elif not f.get("significant"):
            note = "not significant"
        effect = _fmt_delta(f.get("effect")) or "—"
        rows.append(
            [
                i,
                Markdown(f"**{effect}**") if f.get("significant") else effect,
                f"{share:.1f}%" if share is not None and math.isfinite(share) else "",
                f.get("kind"),
                f.get("description") or f.get("name"),
                f"{_fmt_delta(f.get('effect_alone')) or '—'} / "
                f"{_fmt_delta(f.get('effect_removed')) or '—'}",
                note,
            ]
        )
    return "**Factors**, largest effect first\n\n" + table(
        [Markdown("#"), "effect", "share", "kind", "change", "alone / removed from B", ""],
        rows,
        align="rrrllrl",
    )


def _explain_interactions(report: dict[str, Any]) -> str:
    found = report.get("interactions") or []
    if not found:
        return ""
    rows = [
        [" + ".join(str(n) for n in item.get("factors") or []), _fmt_delta(item.get("effect"))]
        for item in found
    ]
    return "**Interactions** (together beyond their effects alone)\n\n" + table(
        ["factors", "effect"], rows, align="lr"
    )


def _explain_untestable(report: dict[str, Any]) -> str:
    items = report.get("untestable") or []
    if not items:
        return ""
    rows = [[u.get("kind"), u.get("name"), u.get("reason")] for u in items]
    return "**Not tested**\n\n" + table(["kind", "name", "reason"], rows)


def _explain_search(report: dict[str, Any]) -> str:
    search, hybrids = report.get("search") or {}, report.get("hybrids") or {}
    if not search and not hybrids:
        return ""
    summary = []
    if search:
        summary.append(
            f"search: {search.get('method')}, {search.get('used')} of a budget of "
            f"{search.get('budget')} hybrids"
        )
    if hybrids:
        line = f"hybrids: {hybrids.get('run', 0)} run, {hybrids.get('cached', 0)} cached"
        if hybrids.get("failed"):
            line += f", {hybrids['failed']} failed"
        seconds = report_number(hybrids.get("seconds"))
        if seconds is not None and math.isfinite(seconds):
            line += f", {seconds:.1f} s"
        summary.append(line)
    body = [f"- {escape(note, 300)}" for note in (search.get("notes") or [])[:MAX_ROWS]]
    body += [
        f"- not tried: {escape(item.get('name'), MAX_CELL)}: {escape(item.get('reason'), MAX_CELL)}"
        for item in (report.get("untried") or [])[:MAX_ROWS]
    ]
    unexplained = report_number(report.get("unexplained"))
    threshold = report_number((report.get("noise") or {}).get("threshold")) or 0.0
    if unexplained is not None and not abs(unexplained) <= threshold:  # NaN: shown
        body.append(f"- unexplained by the factors above: {_fmt_delta(unexplained)}")
    failed = [r for r in hybrids.get("runs") or [] if r.get("status") != "finished"]
    for r in failed[:5]:
        what = {"a": "re-run of A", "b": "re-run of B"}.get(str(r.get("role")))
        what = what or " + ".join(str(n) for n in r.get("factors") or [])
        body.append(
            f"- {escape(r.get('status'), 20)}: {escape(what, MAX_CELL)}: "
            f"`runbase logs {_id(r.get('run'))[:10]}`"
        )
    if len(failed) > 5:
        body.append(f"- and {len(failed) - 5} more did not finish")
    return details("; ".join(summary), "\n".join(body) or "*nothing more*")
