"""What a program did before its run started.

A plain ``python train.py`` that calls ``runbase.log`` starts its run at that first
call: by then the program has parsed its command line and read its data. So that
such a run records what ``runbase run`` would, ``import runbase`` (outside
``runbase run``, whose bootstrap sees everything from the start) arms two cheap
recorders, and the run takes what they saw when it starts (``api._start_own``):

- an audit hook that notes the files opened for reading or writing (and renamed
  into place) since the import: at most ``MAX_EVENTS`` distinct (path, op) pairs,
  with each read's modification time;
- a wrapper of ``argparse.ArgumentParser.parse_known_args`` (installed when the
  program imports argparse) that keeps the outermost parse, defaults included.

Both go inert once a run has started (audit hooks cannot be removed: a flag check
stays). Standard library only: this is loaded by every process that imports runbase.
What happened before ``import runbase`` cannot be seen; the run says so (``take``).
"""

from __future__ import annotations

import os
import sys

from runbase.capture._filehook import (
    FILE_EVENTS,
    data_path,
    event_path,
    interpreter_prefixes,
    read_mtime,
)
from runbase.core._imphook import when_imported

TYPE_CHECKING = False  # `from typing import` costs ~8 ms at import
if TYPE_CHECKING:
    from typing import Any

MAX_EVENTS = 10_000
# whose own parse of the command line is not the program's params
_PARSING_FRAMEWORKS = ("hydra.", "fire.", "traitlets.")

_armed = False
_once = False  # armed once: a run's start disarms it for good (the hook stays)
_events: list[tuple[str, str, int | None]] = []
_seen: set[tuple[str, str]] = set()
_overflow = False
_parsed: dict[str, Any] | None = None


def arm() -> None:
    """Start noting file I/O and the argparse parse (once per process; not under
    ``runbase run``, nor with ``RUNBASE_EARLY=0``)."""
    global _armed, _once
    if _once or os.environ.get("RUNBASE_RUN_ID"):
        return
    if os.environ.get("RUNBASE_EARLY", "1") == "0" or _runbase_itself():
        return
    _armed = _once = True
    sys.addaudithook(_hook)
    when_imported("argparse", _patch_argparse)


def _runbase_itself() -> bool:
    """Whether this process is runbase's own (the CLI, a run's watcher): not a program."""
    argv = getattr(sys, "orig_argv", None) or []
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1].split(".")[0] == "runbase":
        return True
    return os.path.basename(sys.argv[0]) == "runbase" if sys.argv else False


def disarm() -> None:
    """Stop noting, and forget what was noted (a run's start)."""
    global _armed
    _armed = False
    _events.clear()
    _seen.clear()


def _hook(event: str, args: tuple[Any, ...]) -> None:
    global _overflow
    if not _armed or event not in FILE_EVENTS:
        return
    try:
        found = event_path(event, args)
        if found is None:
            return
        path = data_path(found[0], _SKIP)
        if path is None or (path, found[1]) in _seen:
            return
        mtime = None
        if found[1] == "r":
            mtime = read_mtime(path)
            if mtime is None:
                return  # the open will fail: a probe reads nothing
        if len(_events) >= MAX_EVENTS:
            _overflow = True
            return
        _seen.add((path, found[1]))
        _events.append((path, found[1], mtime))
    except Exception:  # noqa: BLE001 - an audit hook must never break the program
        pass


_SKIP = interpreter_prefixes()


def _patch_argparse(argparse: Any) -> None:
    original = argparse.ArgumentParser.parse_known_args
    if getattr(original, "_runbase_early", False):
        return
    depth = [0]

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        if not _armed:
            return original(self, args, namespace)
        depth[0] += 1
        try:
            result = original(self, args, namespace)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            _keep_parse(self, result)
        return result

    parse_known_args._runbase_early = True  # type: ignore[attr-defined]
    argparse.ArgumentParser.parse_known_args = parse_known_args


def _keep_parse(parser: Any, result: Any) -> None:
    global _parsed
    try:
        if getattr(parser, "_runbase_skip", False):  # capture.params.SKIP_PARSER
            return
        frame: Any = sys._getframe(2)  # the caller of parse_known_args: past argparse's own
        while frame is not None and frame.f_globals.get("__name__") == "argparse":
            frame = frame.f_back
        caller = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
        if caller.startswith(_PARSING_FRAMEWORKS) or type(parser).__module__.startswith(
            _PARSING_FRAMEWORKS
        ):
            return
        from runbase.capture.origin import stack_has_user_code  # lazy: re, sysconfig; at parse time

        if not stack_has_user_code(sys._getframe(1)):
            return  # a launcher's own options (`python -m pdb`'s), not the program's
        _parsed = {k: v for k, v in vars(result[0]).items() if not k.startswith("_")}
    except Exception:  # noqa: BLE001 - never break the program's parse
        pass


def _namespace_in_main() -> tuple[str, dict[str, Any]] | None:
    """``(name, values)`` of the one ``argparse.Namespace`` among the main module's
    globals (``args = parser.parse_args()`` before runbase was imported), if exactly
    one: the command line's parse, defaults included."""
    argparse = sys.modules.get("argparse")
    main = sys.modules.get("__main__")
    if argparse is None or main is None:
        return None
    found = [(k, v) for k, v in list(vars(main).items()) if isinstance(v, argparse.Namespace)]
    if len(found) != 1:
        return None
    name, ns = found[0]
    return name, {k: v for k, v in vars(ns).items() if not k.startswith("_")}


def take() -> tuple[list[tuple[str, str, int | None]], dict[str, Any] | None, str | None]:
    """What was seen since ``import runbase``, for the run starting now: the file
    events (a read of a file the program had written first dropped: its own bytes),
    the argparse parse, and a note of what the run cannot know; nothing once a run
    took them (or when it was never armed). Disarms."""
    global _parsed
    if not _armed:  # never armed, or a run took it already (a later run in this process)
        return [], None, None
    events, parsed = list(_events), _parsed
    disarm()
    _parsed = None
    written: set[str] = set()
    kept = []
    for path, op, mtime in events:
        if op == "w":
            written.add(path)
        elif path in written:
            continue
        kept.append((path, op, mtime))
    note = (
        "started after the program began (not by `runbase run`): files and the argparse "
        "parse are recorded from `import runbase` on; anything before that import is not"
    )
    if parsed is None:
        found = _namespace_in_main()
        if found is not None:
            name, parsed = found
            note += (
                f"; the argparse params are those of the parsed namespace `{name}` of the "
                "main module (parsed before `import runbase`)"
            )
        elif "argparse" in sys.modules:
            note += (
                "; no argparse parse was seen (before `import runbase`?): params are the "
                "command line's `--key value` pairs only"
            )
    if _overflow:
        note += f"; more than {MAX_EVENTS} files were opened before the run: later ones are missing"
    return kept, parsed, note
