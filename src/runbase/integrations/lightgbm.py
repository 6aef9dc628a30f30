"""LightGBM: a training callback.

Explicit::

    from runbase.integrations.lightgbm import RunbaseCallback
    lgb.train(params, dtrain, 100, valid_sets=[dvalid], callbacks=[RunbaseCallback()])
    LGBMClassifier().fit(X, y, eval_set=[(Xv, yv)], callbacks=[RunbaseCallback()])

Automatic (``runbase run``, or after ``runbase.init()``): ``lightgbm.train`` — which
the scikit-learn API (``LGBMClassifier.fit``...) calls too — gets the callback unless
one is there; ``Booster.save_model(path)`` declares ``path`` an output.

Recorded: every evaluation of every round as the metric ``<dataset>/<metric>``
(``valid_names``, else ``valid_0``...; ``training`` for the training set) at step =
round; on the first round, the booster params as LightGBM resolved them
(``num_iterations`` included; source ``lightgbm``).
"""

from __future__ import annotations

import functools
import inspect

from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class RunbaseCallback:
    """Mirror a boosting run into the active runbase run (starting one if there is none)."""

    before_iteration = False

    def __init__(self, log_params: bool = True) -> None:
        # after record_evaluation (20), before early_stopping (30): the round that stops
        # training is still logged
        self.order = 25
        self._log_params = log_params
        self._params_done = False

    def __call__(self, env: Any) -> None:
        if self._log_params and not self._params_done:
            self._params_done = True
            values = {k: v for k, v in (env.params or {}).items() if v is not None}
            _common.params(values, "lightgbm")
        results = env.evaluation_result_list
        if results:
            metrics = {f"{item[0]}/{item[1]}": item[2] for item in results}
            _common.log(metrics, env.iteration)
        if env.iteration + 1 >= env.end_iteration:
            _common.flush()


# -- automatic mode -------------------------------------------------------------------


def install(module: ModuleType) -> None:
    """``lightgbm`` was imported: hook ``train`` where it is looked up."""
    import sys

    for name in ("lightgbm.engine", "lightgbm", "lightgbm.sklearn"):
        owner = sys.modules.get(name)
        if owner is not None and hasattr(owner, "train"):
            _common.wrap(owner, "train", _train_wrapper)
    _common.wrap(module.Booster, "save_model", _save_wrapper)


def _save_wrapper(save_model: Any) -> Any:
    @functools.wraps(save_model)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = save_model(self, *args, **kwargs)
        _common.output(args[0] if args else kwargs.get("filename"), auto=True)
        return result

    return wrapper


_signatures: dict[Any, inspect.Signature] = {}


def _train_wrapper(train: Any) -> Any:
    @functools.wraps(train)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _with_ours(train, args, kwargs)
        return train(*args, **kwargs)

    return wrapper


def _with_ours(train: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not _common.active():  # no run (after runbase.finish()): leave training alone
        return args, kwargs
    try:
        sig = _signatures.get(train)
        if sig is None:
            sig = _signatures[train] = inspect.signature(train)
        bound = sig.bind(*args, **kwargs)
        callbacks = list(bound.arguments.get("callbacks") or [])
        if any(isinstance(c, RunbaseCallback) for c in callbacks):
            return args, kwargs
        bound.arguments["callbacks"] = [*callbacks, RunbaseCallback()]
        return bound.args, bound.kwargs
    except Exception as e:  # noqa: BLE001 - leave the call as the program made it
        from .._safe import warn_once

        warn_once("integration:lightgbm", f"the lightgbm integration failed: {e}")
        return args, kwargs
