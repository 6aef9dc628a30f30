"""scikit-learn: the parameters of what the program fits, and its scores.

Automatic only (``runbase run``, or after ``runbase.init()``); nothing to call.

* ``fit`` (and ``fit_transform``, ``partial_fit``... every method that validates the
  estimator's parameters, i.e. ``BaseEstimator._validate_params``): the parameters of
  the estimator the program itself fitted — not those of the steps of a ``Pipeline`` or
  the candidates of a ``GridSearchCV`` it fits in turn — as params (source
  ``sklearn``): ``estimator_class`` and ``get_params(deep=True)`` with ``__`` written
  ``.`` (``C``, ``logisticregression.C`` for a pipeline's step); estimators inside
  parameters become their class name.
* ``score()`` called by the program (``ClassifierMixin``/``RegressorMixin``,
  ``Pipeline``, ``GridSearchCV``...): summary ``score`` (the last call wins).
* ``cross_validate``/``cross_val_score``: the estimator's params, and per score
  (``test_score``, ``train_score``, ``test_<scorer>``) the fold values as the series
  ``cv/<name>`` (step = fold) whose summary is their mean, plus ``cv/<name>_std``.

"Called by the program" is decided from the call stack: a call made from
scikit-learn's own code (a pipeline fitting its steps, a search fitting candidates,
``cross_validate`` scoring folds, in this process or in a joblib worker) is not
recorded. Estimators that skip ``_validate_params`` (``sklearn.set_config(
skip_parameter_validation=True)``, some third-party estimators) record no params.
"""

from __future__ import annotations

import functools
import sys

from runbase.core._imphook import when_imported
from runbase.integrations import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, ModuleType
    from typing import Any

_last_params: list[dict[str, Any]] = []  # the last params recorded: skip repeats


def install(base: ModuleType) -> None:
    """``sklearn.base`` was imported: hook parameter validation and ``score``."""
    _common.wrap(base.BaseEstimator, "_validate_params", _validate_wrapper)
    for mixin in ("ClassifierMixin", "RegressorMixin"):
        _wrap_method(getattr(base, mixin), "score", _score_wrapper)
    when_imported("sklearn.pipeline", _hook_pipeline)
    when_imported("sklearn.model_selection._search", _hook_search)
    when_imported("sklearn.model_selection._validation", _hook_validation)


def _hook_pipeline(module: ModuleType) -> None:
    _wrap_method(module.Pipeline, "score", _score_wrapper)


def _hook_search(module: ModuleType) -> None:
    _wrap_method(module.BaseSearchCV, "score", _score_wrapper)


def _wrap_method(cls: type, name: str, make: Any) -> None:
    """Like ``_common.wrap``, through scikit-learn's ``available_if`` descriptors (which
    keep the method as ``.fn`` and decide per instance whether it exists)."""
    descriptor = cls.__dict__.get(name)
    if (
        descriptor is not None
        and not callable(descriptor)
        and callable(getattr(descriptor, "fn", None))
    ):
        _common.wrap(descriptor, "fn", make)
    else:
        _common.wrap(cls, name, make)


def _hook_validation(module: ModuleType) -> None:
    package = sys.modules.get("sklearn.model_selection")
    for name, wrapper in (("cross_validate", _cv_wrapper), ("cross_val_score", _cvs_wrapper)):
        original = getattr(module, name)
        _common.wrap(module, name, wrapper)
        # already re-exported (sklearn.model_selection imported before the run started)
        if package is not None and getattr(package, name, None) is original:
            setattr(package, name, getattr(module, name))


# -- who called: the program, or scikit-learn itself ----------------------------------


def _in_sklearn(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name == "sklearn" or name.startswith("sklearn.")


def _receiver(frame: FrameType) -> Any:
    code = frame.f_code
    if not code.co_argcount:
        return None
    return frame.f_locals.get(code.co_varnames[0])


def _called_by_program(frame: FrameType | None, estimator: Any = None) -> bool:
    """Was the hooked call made by the program: no scikit-learn frame up the stack
    (``frame`` is the hooked function's caller), but the estimator's own (its fit
    wrapper, ``fit_transform``...)? Third-party frames in between (joblib's memory or
    workers) do not hide a pipeline or a search further up."""
    while frame is not None:
        if _in_sklearn(frame) and (estimator is None or _receiver(frame) is not estimator):
            return False
        frame = frame.f_back
    return True


# -- params ---------------------------------------------------------------------------


@_common.guarded("sklearn")
def _record_estimator(estimator: Any) -> None:
    values: dict[str, Any] = {"estimator_class": type(estimator).__name__}
    for k, v in estimator.get_params(deep=True).items():
        values[k.replace("__", ".")] = _plain(v)
    if _last_params and _last_params[0] == values:
        return
    _last_params[:] = [values]
    _common.params(values, "sklearn")


def _plain(value: Any, depth: int = 0) -> Any:
    """Estimators as their class name, functions as their qualified name (not a repr
    holding a memory address); containers element by element."""
    if depth > 5 or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value).__name__
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}".lstrip(".")
    return value


# -- scores ---------------------------------------------------------------------------


@_common.guarded("sklearn")
def _record_score(result: Any) -> None:
    _common.summary({"score": float(result)})


@_common.guarded("sklearn")
def _record_cv(estimator: Any, result: Any) -> None:
    if hasattr(estimator, "get_params"):
        _record_estimator(estimator)
    summaries: dict[str, float] = {}
    for key, values in result.items():
        if not key.startswith(("test_", "train_")):
            continue
        folds = [float(v) for v in values]
        if not folds:
            continue
        name = f"cv/{key}"
        for i, v in enumerate(folds):
            _common.log({name: v}, i)
        mean = sum(folds) / len(folds)
        summaries[name] = mean
        summaries[f"{name}_std"] = (sum((v - mean) ** 2 for v in folds) / len(folds)) ** 0.5
    if summaries:
        _common.summary(summaries)


# -- the hooks ------------------------------------------------------------------------


def _after(record: Callable[[Any, Any], None], receiver: bool = True) -> Callable[[Any], Any]:
    """A wrapper factory: call the function, then, when the program itself made the call
    (not scikit-learn from inside), ``record(first argument, result)``. ``receiver``:
    the first argument is the estimator whose own frames do not count as sklearn's."""

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            # an estimator method's self; cross_validate's estimator (sklearn itself
            # passes it by keyword from cross_val_score)
            first = args[0] if args else kwargs.get("estimator")
            own = first if receiver else None
            if _common.active() and _called_by_program(sys._getframe(1), own):
                record(first, result)
            return result

        return wrapper

    return wrap


_validate_wrapper = _after(lambda estimator, _result: _record_estimator(estimator))
_score_wrapper = _after(lambda _estimator, result: _record_score(result))
_cv_wrapper = _after(_record_cv, receiver=False)
_cvs_wrapper = _after(
    lambda estimator, scores: _record_cv(estimator, {"test_score": scores}), receiver=False
)
