"""Hugging Face Transformers: a ``TrainerCallback``, and ``report_to="runbase"``.

Explicit::

    from runbase.integrations.transformers import RunbaseCallback
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[RunbaseCallback()])
    # or, once this module is imported (always, under `runbase run`):
    TrainingArguments(..., report_to="runbase")

Automatic (``runbase run``, or after ``runbase.init()``): every ``Trainer`` gets the
callback unless it has one; ``Trainer.save_model(dir)`` declares ``dir`` an output.

Recorded (on the main process only): every ``on_log`` (``loss``, ``grad_norm``,
``learning_rate``, ``epoch``, ``eval_*``...) as metrics at ``state.global_step``, the
end-of-training figures (``train_runtime``, ``train_loss``, ``total_flos``, ...) as
summaries; on train begin, the ``TrainingArguments`` as params (their own names, as
``HfArgumentParser`` would record them) and the model's config as ``model.*``, unset
(None) values left out (source ``transformers``); each checkpoint directory (``checkpoint-<step>``) as a declared
output (those rotated away by ``save_total_limit`` are dropped when the run ends).
"""

from __future__ import annotations

import functools
import os

from transformers import TrainerCallback

from runbase.integrations import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# logged once, at the end of Trainer.train(): figures of the whole run, not a series
_SUMMARY_KEYS = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "total_flos",
        "train_loss",
    }
)


class RunbaseCallback(TrainerCallback):
    """Mirror a ``Trainer`` into the active runbase run (starting one if there is none)."""

    def __init__(self, log_params: bool = True, log_checkpoints: bool = True) -> None:
        self._log_params = log_params
        self._log_checkpoints = log_checkpoints

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        if self._log_params and state.is_world_process_zero:
            self._record_params(args, model)

    @_common.guarded("transformers")
    def _record_params(self, args: Any, model: Any) -> None:
        # ~150 arguments, a third of them unset: None values are left out
        values: dict[str, Any] = {k: v for k, v in args.to_dict().items() if v is not None}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            values.update({f"model.{k}": v for k, v in config.to_dict().items() if v is not None})
        if model is not None:
            values["model.class"] = type(model).__name__
            try:
                values["model.params"] = int(sum(p.numel() for p in model.parameters()))
            except Exception:  # noqa: BLE001
                pass
        _common.params(values, "transformers")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        series: dict[str, Any] = {}
        final: dict[str, Any] = {}
        for k, v in logs.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            (final if k in _SUMMARY_KEYS else series)[k] = v
        if series:
            _common.log(series, state.global_step)
        if final:
            _common.summary(final)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self._log_checkpoints and state.is_world_process_zero):
            return
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(path):
            _common.output(path)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            _common.flush()


def _register_report_to() -> None:
    """``TrainingArguments(report_to="runbase")``: transformers' own registry."""
    try:
        from transformers.integrations import (
            integration_utils,  # lazy: third-party, present when its hook runs
        )

        integration_utils.INTEGRATION_TO_CALLBACK.setdefault("runbase", RunbaseCallback)
    except Exception:  # noqa: BLE001 - an older or newer layout: the callback still works
        pass


_register_report_to()


# -- automatic mode -------------------------------------------------------------------


def install(module: ModuleType) -> None:
    """``transformers.trainer`` was imported: hook ``Trainer``."""
    trainer_cls = module.Trainer
    _common.wrap(trainer_cls, "__init__", _init_wrapper)
    _common.wrap(trainer_cls, "save_model", _save_wrapper)


def _init_wrapper(init: Any) -> Any:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _add_callback(self)

    return __init__


@_common.guarded("transformers")
def _add_callback(trainer: Any) -> None:
    if _common.active() and not any(
        isinstance(cb, RunbaseCallback) for cb in trainer.callback_handler.callbacks
    ):
        trainer.add_callback(RunbaseCallback())


def _save_wrapper(save_model: Any) -> Any:
    @functools.wraps(save_model)
    def wrapper(self: Any, output_dir: Any = None, *args: Any, **kwargs: Any) -> Any:
        result = save_model(self, output_dir, *args, **kwargs)
        if not kwargs.get("_internal_call") and _should_save(self):
            _common.output(
                output_dir if output_dir is not None else self.args.output_dir, auto=True
            )
        return result

    return wrapper


def _should_save(trainer: Any) -> bool:
    try:
        return bool(trainer.args.should_save)
    except Exception:  # noqa: BLE001
        return True
