"""Whose command line a parse is: the user's program or a launcher's.

A launcher (``torchrun``, ``python -m papermill``, joblib's loky workers, ``python -m
json.tool``) parses its own options with the same parsers a training script uses; those
options are not the run's params. The rule, for every parser capture (argparse, click,
typer, fire, jsonargparse): a parse is the user's when user code asked for it, that is
when some frame of the calling stack (or, for click/typer/fire, the module of the
function the parse is for) is the user's code. Library code is a file of the standard
library, of an installed package (``site-packages``/``dist-packages``), of runbase
itself, of the interpreter's scripts folder, or a console-script wrapper whose entry
point is in a library. Everything else is the user's: a script, a project module run
with ``python -m mypkg.train`` (also from an editable install), ``python -c`` code, a
notebook cell. A parse made by a library on behalf of user code (``HfArgumentParser``,
``LightningCLI``) has the user's frame below it, so it is the user's.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import sysconfig
from types import FrameType
from typing import Any

_HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # runbase's package
# pip/uv/setuptools console-script wrapper: "from pkg.mod import main ... sys.exit(main())"
_WRAPPER = re.compile(
    r"^from\s+([\w.]+)\s+import\s+(\w+)\s*$.*sys\.exit\(\s*\2\(\)\s*\)", re.M | re.S
)


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib", "scripts")
    roots = {os.path.realpath(paths[k]) for k in keys if paths.get(k)}
    roots.add(_HERE)
    return tuple(sorted(roots))


@functools.lru_cache(maxsize=1024)
def is_library_file(path: str) -> bool:
    """Whether a code file (a frame's ``co_filename``, a module's ``__file__``) is
    library code rather than the user's (see the module docstring)."""
    if path.startswith("<frozen "):  # runpy, importlib: the interpreter's own
        return True
    if path.startswith("<"):  # python -c, exec'd text, a notebook cell, the REPL
        return False
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    if any(real.startswith(root + os.sep) for root in _library_roots()):
        return True
    return _wrapper_of_library(real)


def _wrapper_of_library(path: str) -> bool:
    """A console-script wrapper outside the scripts folder (pipx, a system bin folder)
    whose entry point is in a library: the launcher's, not the user's."""
    if path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(4096)
    except OSError:
        return False
    m = _WRAPPER.search(text)
    if m is None:
        return False
    module = sys.modules.get(m.group(1))
    origin = getattr(module, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(m.group(1))
        except (ImportError, ValueError):
            return False
        origin = getattr(spec, "origin", None)
    return isinstance(origin, str) and is_library_file(origin)


def stack_has_user_code(frame: FrameType | None = None) -> bool:
    """Whether a frame of the calling stack is the user's code."""
    f: FrameType | None = frame if frame is not None else sys._getframe(1)
    while f is not None:
        if not is_library_file(f.f_code.co_filename):
            return True
        f = f.f_back
    return False


def function_is_users(fn: Any) -> bool | None:
    """Whether a function (a click command's callback, fire's component) is the user's
    code, by its module; None when that cannot be told."""
    import inspect  # lazy: ~10 ms, only for a click or fire command's callback

    try:
        fn = inspect.unwrap(fn)
    except ValueError:
        pass
    # the code's own file first: a notebook cell's function is in "__main__", which
    # may be the kernel's launcher module
    path = getattr(getattr(fn, "__code__", None), "co_filename", None)
    if not isinstance(path, str):
        module = sys.modules.get(str(getattr(fn, "__module__", None) or ""))
        path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return None
    return not is_library_file(path)


def parse_is_users(fn: Any = None) -> bool:
    """Whether a parse of the command line gives the user's params (not a launcher's):
    decided by ``fn``'s module when given and known, else by the calling stack."""
    if fn is not None:
        users = function_is_users(fn)
        if users is not None:
            return users
    return stack_has_user_code(sys._getframe(1))
