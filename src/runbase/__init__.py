"""runbase: run tracking for machine learning.

    import runbase
    runbase.init()                       # or run any command under `runbase run`
    lr = runbase.param("lr", 0.1)
    for step in range(100):
        runbase.log(loss=1 / (step + 1), step=step)
    runbase.summary(acc=0.93)
    runbase.log_image("samples", images, step=10)   # arrays, PIL images, files; a list
    runbase.log_table("predictions", dataframe)

In Jupyter, ``%load_ext runbase`` starts a run and adds ``%runbase start|stop|status``.
Read side: ``runbase.get_run(ref)`` and ``runbase.runs(where=...)``; the model registry:
``runbase.model("churn").versions`` and ``runbase.model_path("churn@production")``.
Importing runbase is cheap (stdlib only); heavier modules load on first use.
"""

from __future__ import annotations

from runbase.core.version import __version__ as __version__
from runbase.errors import (
    AmbiguousRunRef,
    FormatVersionError,
    NotFound,
    QueryError,
    RunbaseError,
    RunNotFound,
    StoreError,
    UsageError,
)

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from typing import Any

    from runbase.records.view import get_run, runs
    from runbase.tracking.api import (
        Run,
        active_run,
        finish,
        init,
        input,
        log,
        log_image,
        log_table,
        output,
        param,
        params,
        start_run,
        summary,
        tag,
    )
    from runbase.tracking.explain import explain_runs as explain
    from runbase.tracking.models import model, model_path
    from runbase.tracking.notebook import load_ipython_extension as load_ipython_extension
    from runbase.tracking.notebook import unload_ipython_extension as unload_ipython_extension

__all__ = [
    "AmbiguousRunRef",
    "FormatVersionError",
    "NotFound",
    "QueryError",
    "Run",
    "RunNotFound",
    "RunbaseError",
    "StoreError",
    "UsageError",
    "active_run",
    "explain",
    "finish",
    "get_run",
    "init",
    "input",
    "log",
    "log_image",
    "log_table",
    "model",
    "model_path",
    "output",
    "param",
    "params",
    "runs",
    "start_run",
    "summary",
    "tag",
]


_LAZY = {
    "Run": "tracking.api",
    "active_run": "tracking.api",
    "finish": "tracking.api",
    "init": "tracking.api",
    "input": "tracking.api",
    "output": "tracking.api",
    "param": "tracking.api",
    "params": "tracking.api",
    "start_run": "tracking.api",
    "summary": "tracking.api",
    "tag": "tracking.api",
    "log_image": "tracking.api",
    "log_table": "tracking.api",
    "log": "tracking.api",  # tracker.log itself; through the API, which starts a run on first use
    "get_run": "records.view",
    "runs": "records.view",
    "explain": "tracking.explain:explain_runs",  # MODULE:NAME where the names differ
    "model": "tracking.models",  # the registry: reads the store, as get_run does
    "model_path": "tracking.models",
    # `%load_ext runbase` (IPython looks these up on the package; not in __all__)
    "load_ipython_extension": "tracking.notebook",
    "unload_ipython_extension": "tracking.notebook",
}


# documented modules that moved into the layers: `from runbase import jobs` (docs/capture.md)
_MOVED = {"jobs": "tracking.jobs"}


def __getattr__(name: str) -> Any:
    # Loaded on first use, then cached as a plain module global, so `runbase.log` in a
    # hot loop is an ordinary attribute lookup. `runbase run` and the CLI never pay for
    # the tracking API, and the read side (sqlite3) is not loaded by training code.
    from importlib import import_module  # lazy: keeps `import runbase` to what it needs

    module = _LAZY.get(name)
    if module is None:
        if name in _MOVED:  # not cached: a documented module, not a name of the API
            return import_module(f"{__name__}.{_MOVED[name]}")
        raise AttributeError(f"module 'runbase' has no attribute {name!r}")
    module, _, attr = module.partition(":")
    value = getattr(import_module(f"{__name__}.{module}"), attr or name)
    if module == "tracking.api":  # once per name: each is cached below
        # A script's run hashes and stores its outputs at exit: hundreds of MB on a
        # terminal draw the CLI's progress bar (tracking reports; drawing is render's).
        import_module(f"{__name__}.core.progress").install(_open_bar)
    globals()[name] = value
    return value


def _open_bar(label: str, total: int | None, stream: Any) -> Any:
    # lazy: the bar (render, typing) loads when a transfer is shown, not with the API
    from runbase.render.progress import open_bar

    return open_bar(label, total, stream)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# A run started later (by the first runbase.log) records the files and the argparse
# parse seen from here on, as `runbase run` would (runbase.tracking._early).
from runbase.tracking._early import arm as _arm_early  # noqa: E402

_arm_early()
