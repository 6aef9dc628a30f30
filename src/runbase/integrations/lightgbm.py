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

from runbase.integrations import _common

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
    _common.hook_booster(
        "lightgbm",
        module,
        ("lightgbm.engine", "lightgbm", "lightgbm.sklearn"),
        RunbaseCallback,
        lambda _bound, _sig: RunbaseCallback(),
        "filename",
    )
