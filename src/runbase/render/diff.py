"""``runbase diff`` as text: the report :mod:`runbase.analysis.diff` computes
(docs/diff-format.md), a section per dimension, coloured for a terminal when asked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from runbase.analysis.datadiff import describe_content
from runbase.analysis.diff import SECTIONS, canonical_json
from runbase.render.table import fmt_bytes

_LABELS = {"run": "command and exit status"}


def render(report: dict[str, Any], color: bool = False) -> str:
    """The report as text: a section per dimension, unchanged ones on one line."""

    def paint(text: str, **style: Any) -> str:
        return click.style(text, **style) if color else text

    if "head" in report:
        return "\n".join(_render_head(report, paint))
    lines = [paint(f"diff {_who(report['a'])} → {_who(report['b'])}", bold=True), ""]
    for name in SECTIONS:
        section = report.get(name)
        if section is None:
            continue
        label = _LABELS.get(name, name)
        if section["unchanged"] and (section.get("command") or {}).get("explained_by_params"):
            lines.append(f"{label}: unchanged (the command differs only by the params above)")
        elif section["unchanged"]:
            lines.append(f"{label}: unchanged")
        else:
            lines += [paint(f"{label}:", bold=True), *_RENDERERS[name](section, paint)]
    return "\n".join(lines)


_Paint = Callable[..., str]


def _who(run: dict[str, Any]) -> str:
    return f"{run['id'][:10]} ({run['name']})"


def _show(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return " ".join(v)  # a command line
    s = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return s if len(s) <= 200 else s[:199] + "…"


def _fields(name: str, change: dict[str, Any] | None) -> list[str]:
    """``name.key: old → new`` for each key that differs (or the whole value)."""
    if change is None:
        return []
    old, new = change["old"], change["new"]
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(
            k
            for k in old.keys() | new.keys()
            if canonical_json(old.get(k)) != canonical_json(new.get(k))
        )
        return [f"  {name}.{k}: {_show(old.get(k))} → {_show(new.get(k))}" for k in keys]
    return [f"  {name}: {_show(old)} → {_show(new)}"]


def _render_params(s: dict[str, Any], paint: _Paint) -> list[str]:
    def src(*sources: Any) -> str:
        uniq = list(dict.fromkeys(x for x in sources if x))
        return f"  [{' → '.join(uniq)}]" if uniq else ""

    lines = [
        paint(f"  + {p['key']} = {_show(p['value'])}", fg="green") + src(p["source"])
        for p in s["added"]
    ]
    lines += [
        paint(f"  - {p['key']} = {_show(p['value'])}", fg="red") + src(p["source"])
        for p in s["removed"]
    ]
    lines += [
        paint(f"  ~ {p['key']}: {_show(p['old'])} → {_show(p['new'])}", fg="yellow")
        + src(p["old_source"], p["new_source"])
        for p in s["changed"]
    ]
    return lines


def _fmt_num(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else _show(v)


def _render_metrics(s: dict[str, Any], paint: _Paint) -> list[str]:
    lines = []
    for m in s["changed"]:
        if m["relative"] is not None:
            size = f"  ({m['delta']:+.4g}, {m['relative']:+.1%})"
        elif m["delta"] is not None:
            size = f"  ({m['delta']:+.4g}, from 0)"
        else:
            size = ""
        lines.append(
            paint(f"  ~ {m['key']}: {_fmt_num(m['old'])} → {_fmt_num(m['new'])}", fg="yellow")
            + size
        )
    lines += [paint(f"  + {m['key']} = {_fmt_num(m['value'])}", fg="green") for m in s["added"]]
    lines += [paint(f"  - {m['key']} = {_fmt_num(m['value'])}", fg="red") for m in s["removed"]]
    return lines


def _code_line(tag: str, state: dict[str, Any] | None) -> str:
    if state is None:
        return f"  {tag}: no code snapshot"
    if state["kind"] != "git":
        return f"  {tag}: directory snapshot (not a git repository)"
    where = f"commit {(state['commit'] or '(none yet)')[:10]}"
    if state.get("branch"):
        where += f" on {state['branch']}"
    if state.get("patch_id"):
        return f"  {tag}: {where}, uncommitted changes"
    # dirty without a patch: only unsnapshotted files (data, secrets) were untracked
    return f"  {tag}: {where}, clean" + (" (untracked data files only)" if state["dirty"] else "")


def _render_code(s: dict[str, Any], paint: _Paint) -> list[str]:
    lines = [_code_line("A", s["a"]), _code_line("B", s["b"])]
    for f in s["files"]:
        note = " (binary files differ)" if f["binary"] else ""
        if f["mode"]:
            note += f" (type {f['mode']['old']} → {f['mode']['new']})"
        lines.append(f"  {f['status']}: {f['path']}{note}")
    if s["not_diffed"]:
        lines.append(f"  not diffed (data, large or secret files): {', '.join(s['not_diffed'])}")
    for f in s["files"]:
        if f["diff"]:
            lines += _paint_patch(f["diff"], paint)
    return lines


def _paint_patch(patch: str, paint: _Paint) -> list[str]:
    out: list[str] = []
    in_binary = False
    for line in patch.splitlines():
        if line.startswith("diff --git"):
            in_binary = False
        elif line == "GIT binary patch":  # base85 data: unreadable, say what it is
            in_binary = True
            out.append("binary files differ")
            continue
        if in_binary:
            continue
        if line.startswith(("+++", "---", "diff --git")):
            out.append(paint(line, bold=True))
        elif line.startswith("@@"):
            out.append(paint(line, fg="cyan"))
        elif line.startswith("+"):
            out.append(paint(line, fg="green"))
        elif line.startswith("-"):
            out.append(paint(line, fg="red"))
        else:
            out.append(line)
    return out


def _short_hash(h: str | None) -> str:
    return "-" if not h else h.split(":", 1)[-1][:12]


def _render_files(title: str, part: dict[str, list[Any]], paint: _Paint) -> list[str]:
    def size(n: int | None) -> str:
        return "?" if n is None else fmt_bytes(n)

    if not any(part.values()):
        return [f"  {title}: unchanged"]
    lines = [f"  {title}:"]
    lines += [
        paint(f"    + {f['path']}  {_short_hash(f['hash'])} ({size(f['size'])})", fg="green")
        for f in part["added"]
    ]
    lines += [
        paint(f"    - {f['path']}  {_short_hash(f['hash'])} ({size(f['size'])})", fg="red")
        for f in part["removed"]
    ]
    for f in part["changed"]:
        lines.append(
            paint(
                f"    ~ {f['path']}  {_short_hash(f['old_hash'])} → {_short_hash(f['new_hash'])} "
                f"({size(f['old_size'])} → {size(f['new_size'])})",
                fg="yellow",
            )
        )
        if f.get("content"):  # what changed inside it, when its format is one runbase reads
            lines.append(f"        {describe_content(f['content'])}")
    return lines


def _render_data(s: dict[str, Any], paint: _Paint) -> list[str]:
    return _render_files("inputs", s["inputs"], paint) + _render_files(
        "outputs", s["outputs"], paint
    )


def _render_env(s: dict[str, Any], paint: _Paint) -> list[str]:
    lines = _fields("python", s["python"])
    pk = s["packages"]
    counts = ", ".join(f"{len(v)} {k}" for k, v in pk.items() if v)
    if counts:
        lines.append(f"  packages: {counts}")
        lines += [
            paint(f"    ↑ {p['name']} {p['old']} → {p['new']}", fg="yellow") for p in pk["upgraded"]
        ]
        lines += [
            paint(f"    ↓ {p['name']} {p['old']} → {p['new']}", fg="yellow")
            for p in pk["downgraded"]
        ]
        lines += [
            f"    ~ {p['name']} {p['old']} → {p['new']} (source changed)" for p in pk["changed"]
        ]
        lines += [paint(f"    + {p['name']} {p['version']}", fg="green") for p in pk["added"]]
        lines += [paint(f"    - {p['name']} {p['version']}", fg="red") for p in pk["removed"]]
    for key in ("os", "cpu", "gpus", "container"):
        lines += _fields(key, s[key])
    return lines


def _render_run(s: dict[str, Any], paint: _Paint) -> list[str]:
    return [line for key in ("command", "status", "exit_code") for line in _fields(key, s[key])]


_RENDERERS: dict[str, Callable[[dict[str, Any], _Paint], list[str]]] = {
    "params": _render_params,
    "metrics": _render_metrics,
    "code": _render_code,
    "data": _render_data,
    "env": _render_env,
    "run": _render_run,
}


def _render_head(report: dict[str, Any], paint: _Paint) -> list[str]:
    who, head = _who(report["a"]), report["head"]
    if head is None:
        return [f"{who}: no code snapshot was recorded (run with --no-code?)"]
    if head["kind"] != "git":
        return [f"{who} ran outside a git repository: there is no commit to compare with"]
    where = f"commit {(head['commit'] or '(none yet)')[:10]}"
    if head.get("branch"):
        where += f" on {head['branch']}"
    if head["patch"] is None and head.get("patch_id"):
        return [f"{who}: the stored patch {head['patch_id']} cannot be read (see `runbase fsck`)"]
    if head["patch"] is None:
        # dirty without a patch: only unsnapshotted files (data, secrets) were untracked
        extra = " to its code (only data or secret files, not snapshotted)" if head["dirty"] else ""
        return [f"{who}: no uncommitted changes{extra} against {where}"]
    title = paint(f"{who}: uncommitted changes against {where}", bold=True)
    return [title, "", *_paint_patch(head["patch"], paint)]
