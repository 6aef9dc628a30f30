"""XGBoost: a training callback.

Explicit::

    from runbase.integrations.xgboost import RunbaseCallback
    xgb.train(params, dtrain, 100, evals=[(dvalid, "valid")],
              callbacks=[RunbaseCallback(params)])
    XGBClassifier(callbacks=[RunbaseCallback()]).fit(X, y, eval_set=[(Xv, yv)])

Automatic (``runbase run``, or after ``runbase.init()``): ``xgboost.train`` — which the
scikit-learn API (``XGBClassifier.fit``...) calls too — gets the callback unless one is
there, given the booster params it was called with; ``Booster.save_model(path)``
(``XGBModel.save_model`` too) declares ``path`` an output.

Recorded: every evaluation of every round as the metric ``<dataset>/<metric>`` (the
names of ``evals``, ``validation_0``... for ``eval_set``) at step = round; the booster
params (source ``xgboost``) and ``num_boost_round`` — in explicit use without
``params``, the training parameters read back from the booster's configuration.
"""

from __future__ import annotations

import inspect
import json

import xgboost

from runbase.integrations import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class RunbaseCallback(xgboost.callback.TrainingCallback):
    """Mirror a boosting run into the active runbase run (starting one if there is none)."""

    def __init__(self, params: dict[str, Any] | None = None, log_params: bool = True) -> None:
        super().__init__()
        self._params = params
        self._log_params = log_params

    def before_training(self, model: Any) -> Any:
        if self._log_params:
            self._record_params(model)
        return model

    @_common.guarded("xgboost")
    def _record_params(self, model: Any) -> None:
        if self._params is not None:
            items = self._params.items() if isinstance(self._params, dict) else self._params
            values = {str(k): v for k, v in items if v is not None}
        else:
            values = _booster_params(model)
        _common.params(values, "xgboost")

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if evals_log:
            metrics = {}
            for data, by_metric in evals_log.items():
                for metric, history in by_metric.items():
                    if history:
                        last = history[-1]
                        metrics[f"{data}/{metric}"] = last[0] if isinstance(last, tuple) else last
            _common.log(metrics, epoch)
        return False

    def after_training(self, model: Any) -> Any:
        _common.flush()
        return model


def _booster_params(booster: Any) -> dict[str, Any]:
    """The training parameters in a booster's saved configuration."""
    learner = json.loads(booster.save_config())["learner"]
    values: dict[str, Any] = dict(learner.get("learner_train_param", {}))
    for key, section in learner.get("gradient_booster", {}).items():
        if key.endswith("_train_param") and isinstance(section, dict):
            values.update(section)
    for key in ("seed", "nthread"):
        if key in learner.get("generic_param", {}):
            values[key] = learner["generic_param"][key]
    metrics = [m.get("name") for m in learner.get("metrics", []) if isinstance(m, dict)]
    if metrics:
        values["eval_metric"] = metrics
    return {k: _common.numeric(v) for k, v in values.items()}


# -- automatic mode -------------------------------------------------------------------


def install(module: ModuleType) -> None:
    """``xgboost`` was imported: hook ``train`` where it is looked up."""
    _common.hook_booster(
        "xgboost",
        module,
        ("xgboost.training", "xgboost", "xgboost.sklearn"),
        RunbaseCallback,
        _callback_for,
        "fname",
    )


def _callback_for(bound: Any, sig: inspect.Signature) -> RunbaseCallback:
    """Our callback, given the booster params ``train`` was called with."""
    params = bound.arguments.get("params")
    params = dict(params.items() if isinstance(params, dict) else params or [])
    rounds = bound.arguments.get("num_boost_round", sig.parameters["num_boost_round"].default)
    if isinstance(rounds, int):
        params.setdefault("num_boost_round", rounds)
    return RunbaseCallback(params)
