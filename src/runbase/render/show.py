"""Human rendering of a run record for ``runbase show``."""

from __future__ import annotations

from typing import Any

from runbase.capture.params import as_number
from runbase.core import executorinfo
from runbase.render.table import fmt_bytes, fmt_count, fmt_duration, fmt_value, render


def _user_host(rec: dict[str, Any]) -> str:
    """``user@host``; the user alone for a run with no host (MLflow's, an import's)."""
    user = rec.get("user") or "?"
    return f"{user}@{rec['host']}" if rec.get("host") else user


def render_record(rec: dict[str, Any]) -> str:
    lines = [f"run {rec['id']}  {rec['name']}", ""]
    status = rec["status"]
    if status == "running" and rec.get("error"):  # lifecycle.SUPERVISOR_LOST
        status += " (supervisor lost)"
    if rec.get("exit_code") is not None:
        status += f" (exit code {rec['exit_code']})"
    elif rec.get("exit_signal"):
        status += f" (signal {rec['exit_signal']})"
    lines += _kv(
        [
            ("status", status),
            ("command", " ".join(rec["command"])),
            ("started", rec["started_at"]),
            ("ended", "" if rec.get("ended_at") is None else rec["ended_at"]),
            ("duration", fmt_duration(rec.get("duration_s"))),
            ("user@host", _user_host(rec)),
            ("executor", executorinfo.describe(executorinfo.clean(rec.get("executor")))),
            ("cwd", rec.get("cwd") or ""),
            (
                "reproduces",
                f"run {rec['reproduces']} (runbase diff {rec['reproduces'][:10]} {rec['id'][:10]})"
                if rec.get("reproduces")
                else "",
            ),
            *_group_lines(rec),
        ]
    )
    if rec.get("error"):
        lines += ["", "error:", *("  " + x for x in str(rec["error"]).strip().splitlines()[-8:])]
    code = rec.get("code")
    if code:
        lines += ["", "code:"]
        where = code.get("commit") or "(no commit)"
        if code.get("branch"):
            where += f" on {code['branch']}"
        if code.get("dirty"):
            where += "  + uncommitted changes"
        patch = code.get("patch")  # parsed once, for the totals and the per-file lines
        changed = patch_summary(patch) if isinstance(patch, str) and patch else None
        lines += _kv(
            [
                ("commit", where if code["kind"] == "git" else "(not a git repository)"),
                ("remote", code.get("remote") or ""),
                ("tree", f"{code.get('tree')}  ({code.get('files')} files)"),
                (
                    "patch",
                    f"{code.get('patch_bytes', 0)} bytes{_patch_totals(changed)}"
                    f" (runbase diff {rec['id'][:10]})"
                    if code.get("patch_id")
                    else "",
                ),
            ],
            indent=2,
        )
        lines += _patch_files(changed or [])
    lines += _data_lines(rec)
    nb = rec.get("notebook")
    if nb:
        lines += ["", "notebook:"]
        lines += _kv(
            [
                (
                    "file",
                    f"{nb['path']}  ({nb['size']} bytes, found by {nb['source']})"
                    if nb.get("path")
                    else "(not found)",
                ),
                (
                    "cells",
                    f"{nb.get('cells_count', 0)} executed (runbase show {rec['id']} --cells)",
                ),
            ],
            indent=2,
        )
    if rec["params"]:
        lines += ["", "params:"]
        lines += _kv(
            [
                (k, f"{fmt_value(v)}  [{rec['param_sources'].get(k)}]")
                for k, v in sorted(rec["params"].items())
            ],
            indent=2,
        )
    if rec["metrics"]:
        lines += ["", "metrics:"]
        rows = [
            [
                k,
                fmt_value(as_number(m["value"])),
                fmt_value(as_number(m["min"])),
                fmt_value(as_number(m["max"])),
                fmt_count(m),
            ]
            for k, m in sorted(rec["metrics"].items())
        ]
        lines += [
            "  " + line
            for line in render(["key", "value", "min", "max", "count"], rows).splitlines()
        ]
    if rec["tags"]:
        lines += [
            "",
            "tags: " + ", ".join(f"{k}={v}" if v else k for k, v in sorted(rec["tags"].items())),
        ]
    env = rec.get("env")
    if env:
        lines += ["", "environment:"]
        py = env.get("python") or {}
        gpus = env.get("gpus") or []
        cont = env.get("container") or {}
        lines += _kv(
            [
                (
                    "python",
                    f"{py.get('version')} {py.get('executable')}" if py else "(no Python process)",
                ),
                ("packages", str(len(env.get("packages") or []))),
                (
                    "os",
                    (env.get("os") or {}).get("distro")
                    or (env.get("os") or {}).get("system")
                    or "",
                ),
                (
                    "cpu",
                    f"{(env.get('cpu') or {}).get('model')} x{(env.get('cpu') or {}).get('cores_logical')}",
                ),
                ("memory", f"{(env.get('memory_bytes') or 0) / 2**30:.1f} GiB"),
                (
                    "gpus",
                    ", ".join(
                        f"{g['name']} ({g['memory_total_bytes'] / 2**30:.0f} GiB)" for g in gpus
                    )
                    or "none",
                ),
                (
                    "container",
                    f"{cont.get('type')} {cont.get('image') or ''}".strip() if cont else "none",
                ),
            ],
            indent=2,
        )
    return "\n".join(lines)


_MAX_FILES = 20  # per list in the text view; --json has them all


def _patch_totals(files: list[tuple[str, int, int]] | None) -> str:
    """``: 3 files, +9 -2 lines`` of the uncommitted change (``files``: its
    :func:`patch_summary`; None without its text)."""
    if files is None:
        return ""
    plus = sum(max(f[1], 0) for f in files)
    return f": {len(files)} files, +{plus} -{sum(f[2] for f in files)} lines"


def _patch_files(files: list[tuple[str, int, int]]) -> list[str]:
    """The uncommitted change (its :func:`patch_summary`) as ``+3 -1  path`` per file
    (the patch itself: runbase diff)."""
    if not files:
        return []
    rows = [
        ["binary" if p < 0 else f"+{p}", "" if p < 0 else f"-{m}", path]
        for path, p, m in files[:_MAX_FILES]
    ]
    out = ["    " + line for line in render(["", "", ""], rows).splitlines()[1:]]
    if len(files) > _MAX_FILES:
        out.append(f"    … {len(files) - _MAX_FILES} more files")
    return out


def patch_summary(patch: str) -> list[tuple[str, int, int]]:
    """``[(path, added, removed)]`` per file of a git patch; ``added`` is -1 for a
    binary file."""
    files: list[tuple[str, int, int]] = []
    path, plus, minus, in_hunk = "", 0, 0, False
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            if path:
                files.append((path, plus, minus))
            path, plus, minus, in_hunk = line.rpartition(" b/")[2] or line[11:], 0, 0, False
        elif not in_hunk and line.startswith("+++ b/"):
            path = line[6:]
        elif line.startswith("@@"):
            in_hunk = True
        elif line.startswith("GIT binary patch"):
            plus = -1
        elif in_hunk and line.startswith("+") and plus >= 0:
            plus += 1
        elif in_hunk and line.startswith("-"):
            minus += 1
    if path:
        files.append((path, plus, minus))
    return files


def _data_lines(rec: dict[str, Any]) -> list[str]:
    """Inputs and outputs: path, short hash (as ``trace`` takes it), size, stored or not."""
    out: list[str] = []
    for role in ("inputs", "outputs"):
        items = rec.get(role) or []
        if not items:
            continue
        out += ["", f"{role}:"]
        rows = [_file_row(f) for f in items[:_MAX_FILES]]
        out += ["  " + line for line in render(["path", "hash", "size", "kept"], rows).splitlines()]
        if len(items) > _MAX_FILES:
            out.append(f"  … {len(items) - _MAX_FILES} more (runbase show {rec['id'][:10]} --json)")
    return out


def _file_row(f: dict[str, Any]) -> list[str]:
    h = f.get("hash")
    size = f.get("size")
    kept = "stored" if f.get("stored") else "hash only" if h else "not hashed"
    if f.get("withheld"):
        why = f.get("withheld_reason")
        kept = f"withheld: {why if isinstance(why, str) else 'may hold secrets'} (hash only)"
    if f.get("changed_during_run"):
        kept += ", changed during run"
    path = str(f.get("url") or f.get("path") or "?") + ("/" if f.get("directory") else "")
    return [
        path,
        str(h)[:19] if h else "-",
        fmt_bytes(size) if isinstance(size, int) and not isinstance(size, bool) else "",
        kept,
    ]


def render_cells(cells: list[dict[str, Any]]) -> str:
    """The cells a notebook run executed, in order, each with its source."""
    out: list[str] = []
    for c in cells:
        count = c.get("execution_count")
        state = {True: "ok", False: "error", None: "did not finish"}.get(c.get("success"), "?")
        head = f"[{c.get('index')}] In [{count if count is not None else ' '}]  {state}"
        if c.get("duration_s") is not None:
            head += f"  {fmt_duration(c['duration_s'])}"
        head += f"  {c.get('started_at') or ''}"
        out.append(head.rstrip())
        out += ["    " + line for line in str(c.get("source") or "").splitlines()]
        if c.get("error"):
            out.append(f"    -> {c['error']}")
        out.append("")
    return "\n".join(out).rstrip()


def _kv(pairs: list[tuple[str, Any]], indent: int = 0) -> list[str]:
    pairs = [(k, v) for k, v in pairs if v not in (None, "")]
    w = max((len(k) for k, _ in pairs), default=0)
    return [" " * indent + f"{k.ljust(w)}  {v}" for k, v in pairs]


def _group_lines(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a run sits among others: the sweep it is a trial of, the process run and the
    group of a job run, the job group a process ran (runbase.tracking.jobs)."""
    tags: dict[str, Any] = rec["tags"] if isinstance(rec.get("tags"), dict) else {}
    index = f"#{tags['sweep_index']} " if tags.get("sweep_index") else ""
    sweep, out = rec.get("sweep_id"), []
    if rec.get("mode") == "job":
        group = f", in group {sweep} (runbase ls --sweep {sweep})" if sweep else ""
        out.append(("job", f"{index}of run {rec.get('parent_id')}{group}"))
    elif sweep:
        out.append(("sweep", f"{sweep}, trial {index}(runbase ls --sweep {sweep})"))
    if tags.get("multirun"):
        out.append(("jobs", f"group {tags['multirun']} (runbase ls --sweep {tags['multirun']})"))
    return out
