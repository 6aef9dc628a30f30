"""A run's code snapshot: its file tree, one file highlighted, the uncommitted patch.
Syntax highlighting needs pygments (``pip install 'runbase[ui]'``), imported on first
use so that importing the views imports no web or highlighting package."""

from __future__ import annotations

import contextlib
from typing import Any

from runbase.analysis.diff import BINARY_SNIFF
from runbase.capture.manifest import load_manifest
from runbase.core.shapes import CODE, load_column
from runbase.errors import NotFound, RunbaseError, UsageError
from runbase.records.read import load_row, resolve
from runbase.render.views.common import get_object
from runbase.store import Store

MAX_HIGHLIGHT = 256 * 1024  # bytes of a source file highlighted (~0.5 s); the rest is cut
MAX_PATCH = 2 * 1024 * 1024  # bytes of a patch returned and highlighted
UI_INSTALL_HINT = "pip install 'runbase[ui]'"


def _code(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's ``code`` column (null when not of the documented shape)."""
    return load_column(load_row(store, run_id)["code_json"], CODE)


def _manifest(store: Store, run_id: str, code: dict[str, Any]) -> list[dict[str, Any]]:
    tree = code.get("tree")
    if not tree:
        return []
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
    return get_object(store, e["oid"], f"{path} of run {run_id}")


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut by a size limit is still text
        return e.start < len(data) - 4
    return False


def _pygments() -> Any:
    try:
        import pygments  # lazy: optional (the ui extra), and heavy for the views' importers
    except ImportError as e:
        raise RunbaseError(f"syntax highlighting needs pygments: {UI_INSTALL_HINT}") from e
    return pygments


def highlight(text: str, path: str | None = None, language: str | None = None) -> dict[str, Any]:
    """``{"html", "language"}``: ``text`` highlighted by pygments (lexer from ``language``,
    else the file name, else plain text), in a ``<div class="highlight">`` table with
    line numbers (anchors ``#L-N``). Style it with :func:`highlight_css`."""
    pygments = _pygments()
    # lazy: pygments is optional (the ui extra); _pygments() above says how to install it
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
    # lazy: pygments is optional (the ui extra); _pygments() above says how to install it
    from pygments.formatters import HtmlFormatter
    from pygments.styles import get_all_styles
    from pygments.util import ClassNotFound

    try:
        fmt = HtmlFormatter(style=style, cssclass="highlight")
    except ClassNotFound:
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
    data = get_object(store, e["oid"], f"{path} of run {run_id}")
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
            get_object(store, patch_id, f"the patch of run {run_id}"), MAX_PATCH
        )
        out["patch"] = data.decode("utf-8", "replace")
        out["html"] = highlight(out["patch"], language="diff")["html"]
    return out
