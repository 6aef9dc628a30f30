"""PyTorch: ``torch.save(obj, path)`` declares ``path`` an output of the run.

Automatic only (``runbase run``, or after ``runbase.init()``). ``torch.save`` writes
through C++, which the audit hook does not see: the wrapper tells the hooks first
(``_common.before_write``: a checkpoint this process resumed from keeps its input
hash, and a later ``torch.load`` of what was saved is the run's own bytes), and declares
the output after (the end-of-run scan would find it inside the project; this also
records those written outside it).
Saving to a buffer or a file object records nothing.
"""

from __future__ import annotations

import functools
import sys

from runbase.integrations import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def install(module: ModuleType) -> None:
    """``torch`` was imported: hook ``torch.save`` (and ``torch.serialization.save``)."""
    serialization = sys.modules.get("torch.serialization")
    if serialization is None:
        _common.wrap(module, "save", _save_wrapper)
        return
    original = serialization.save
    _common.wrap(serialization, "save", _save_wrapper)
    if getattr(module, "save", None) is original:
        setattr(module, "save", serialization.save)  # noqa: B010 - a module, typed


def _save_wrapper(save: Any) -> Any:
    @functools.wraps(save)
    def wrapper(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        _common.before_write(f)  # a checkpoint resumed from: hashed before it is gone
        result = save(obj, f, *args, **kwargs)
        _common.output(f, auto=True)
        return result

    return wrapper
