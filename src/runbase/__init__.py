"""runbase: run tracking for machine learning.

    import runbase
    runbase.init()                       # or run any command under `runbase run`
    lr = runbase.param("lr", 0.1)
    for step in range(100):
        runbase.log(loss=1 / (step + 1), step=step)
    runbase.summary(acc=0.93)

Read side: ``runbase.get_run(ref)`` and ``runbase.runs(where=...)``.
Importing runbase is cheap (stdlib only); heavier modules load on first use.
"""

from __future__ import annotations

from .api import Run, active_run, finish, init, param, params, start_run, summary, tag
from .errors import (
    AmbiguousRunRef,
    FormatVersionError,
    QueryError,
    RunbaseError,
    RunNotFound,
    StoreError,
    UsageError,
)
from .tracker import log

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunRef",
    "FormatVersionError",
    "QueryError",
    "Run",
    "RunNotFound",
    "RunbaseError",
    "StoreError",
    "UsageError",
    "active_run",
    "finish",
    "get_run",
    "init",
    "log",
    "param",
    "params",
    "runs",
    "start_run",
    "summary",
    "tag",
]


def __getattr__(name: str) -> Any:
    # the read side pulls in sqlite3 and friends: load it only when asked for
    if name in ("get_run", "runs"):
        from . import read

        return getattr(read, name)
    raise AttributeError(f"module 'runbase' has no attribute {name!r}")
