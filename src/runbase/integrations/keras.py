"""Keras 3 (any backend): a runbase callback.

Explicit::

    from runbase.integrations.keras import RunbaseCallback
    model.fit(x, y, epochs=3, callbacks=[RunbaseCallback()])

Automatic (``runbase run``, or after ``runbase.init()``): ``Model.fit`` gets a
``RunbaseCallback`` added to its callbacks unless one is there; ``Model.save`` and
``Model.save_weights`` (which ``ModelCheckpoint`` calls) declare the file as an output.

Recorded: the epoch logs (``loss``, ``val_loss``, every compiled metric) at step =
epoch; the batch logs (running averages within the epoch) as ``batch/<name>`` at step =
batches seen since training began (``log_batches=False`` switches them off, an int N
keeps every N-th); on train begin, params (source ``keras``): ``model.class``,
``model.name``, ``model.params`` (weights count), ``model.loss``, the model's
``get_config()`` as ``model.*`` (layers by name: ``model.layers.dense.units``), the
optimizer's ``get_config()`` as ``optimizer.*`` and ``fit.epochs``/``fit.steps``. The callback is ``async_safe``: Keras may call its batch
hook from a worker thread, so it never holds training back.
"""

from __future__ import annotations

import functools

import keras

from runbase.core._safe import warn_once
from runbase.integrations import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class RunbaseCallback(keras.callbacks.Callback):
    """Mirror a ``fit`` into the active runbase run (starting one if there is none)."""

    def __init__(self, log_batches: bool | int = True, log_params: bool = True) -> None:
        super().__init__()
        self.async_safe = True  # on_train_batch_end only appends to runbase's buffer
        self._every = max(int(log_batches), 0)  # True: every batch, False: none
        self._log_params = log_params
        self._seen = 0  # batches of the epochs done, this fit
        self._last_batch = -1

    def on_train_begin(self, logs: Any = None) -> None:
        self._seen = 0
        self._last_batch = -1
        if self._log_params:
            self._record_params()

    @_common.guarded("keras")
    def _record_params(self) -> None:
        model = self.model
        values: dict[str, Any] = {"model.class": type(model).__name__}
        values["model.name"] = getattr(model, "name", None)
        try:
            values["model.params"] = int(model.count_params())
        except Exception:  # noqa: BLE001 - not built yet
            pass
        loss = getattr(model, "loss", None)
        if loss is not None:
            values["model.loss"] = loss if isinstance(loss, str) else _name_of(loss)
        try:
            config = model.get_config()
        except Exception:  # noqa: BLE001 - subclassed models may not implement it
            config = None
        if isinstance(config, dict):
            values.update(_model_config(config))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            try:
                values.update({f"optimizer.{k}": v for k, v in optimizer.get_config().items()})
            except Exception:  # noqa: BLE001
                values["optimizer.class"] = type(optimizer).__name__
        for k in ("epochs", "steps"):
            if (self.params or {}).get(k) is not None:
                values[f"fit.{k}"] = self.params[k]
        _common.params(values, "keras")

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch > self._last_batch:
            self._last_batch = batch
        if not self._every or not logs:
            return
        step = self._seen + batch
        if step % self._every == 0:
            _common.log({f"batch/{k}": v for k, v in logs.items()}, step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # Keras waits for the asynchronous batch hooks before calling this one
        self._seen += self._last_batch + 1
        self._last_batch = -1
        if logs:
            _common.log(logs, epoch)

    def on_train_end(self, logs: Any = None) -> None:
        _common.flush()


def _model_config(config: dict[str, Any]) -> dict[str, Any]:
    """A model's ``get_config()`` as params: the layers by name with their scalar settings
    (``model.layers.dense.units``), the dtype policy by name, the rest as it is."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "name":
            continue
        if key == "layers" and isinstance(value, list):
            for i, layer in enumerate(value):
                if not isinstance(layer, dict):
                    continue
                conf = layer.get("config") or {}
                name = conf.get("name") or f"{i}"
                out[f"model.layers.{name}.class"] = layer.get("class_name")
                for k, v in conf.items():
                    if k not in ("name", "trainable", "dtype") and isinstance(
                        v, (bool, int, float, str)
                    ):
                        out[f"model.layers.{name}.{k}"] = v
        elif key == "dtype" and isinstance(value, dict):
            out["model.dtype"] = (value.get("config") or {}).get("name", value.get("class_name"))
        else:
            out[f"model.{key}"] = value
    return out


def _name_of(obj: Any) -> str:
    return str(getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__)


# -- automatic mode -------------------------------------------------------------------

_CALLBACKS_POS = 5  # fit(x, y, batch_size, epochs, verbose, callbacks, ...)


def install(module: ModuleType) -> None:
    """``keras`` was imported: add the callback to ``Model.fit``, declare saved files."""
    model_cls = module.Model
    _common.wrap(model_cls, "fit", _fit_wrapper)
    _common.wrap(model_cls, "save", _save_wrapper)
    _common.wrap(model_cls, "save_weights", _save_wrapper)


def _fit_wrapper(fit: Any) -> Any:
    @functools.wraps(fit)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) > _CALLBACKS_POS:
            args = (
                *args[:_CALLBACKS_POS],
                _with_ours(args[_CALLBACKS_POS]),
                *args[_CALLBACKS_POS + 1 :],
            )
        else:
            kwargs["callbacks"] = _with_ours(kwargs.get("callbacks"))
        return fit(self, *args, **kwargs)

    return wrapper


def _with_ours(callbacks: Any) -> Any:
    if not _common.active():  # no run (after runbase.finish()): leave fit alone
        return callbacks
    try:
        if callbacks is None:
            return [RunbaseCallback()]
        if isinstance(callbacks, (list, tuple)):
            if any(isinstance(c, RunbaseCallback) for c in callbacks):
                return callbacks
            return [*callbacks, RunbaseCallback()]
        inner = getattr(callbacks, "callbacks", None)  # a keras CallbackList
        if isinstance(inner, list) and not any(isinstance(c, RunbaseCallback) for c in inner):
            callbacks.append(RunbaseCallback())
    except Exception as e:  # noqa: BLE001
        warn_once("integration:keras", f"the keras integration failed: {e}")
    return callbacks


def _save_wrapper(save: Any) -> Any:
    @functools.wraps(save)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = save(self, *args, **kwargs)
        _common.output(args[0] if args else kwargs.get("filepath"), auto=True)
        return result

    return wrapper
