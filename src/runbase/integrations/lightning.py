"""PyTorch Lightning (``lightning`` and ``pytorch_lightning``): a runbase Logger.

Explicit::

    from runbase.integrations.lightning import RunbaseLogger
    trainer = Trainer(logger=[CSVLogger("logs"), RunbaseLogger()])

Automatic (``runbase run``, or after ``runbase.init()``): every ``Trainer`` gets a
``RunbaseLogger`` appended to its loggers unless it already has one; the user's loggers
stay, and stay first (checkpoint directories keep following the first logger).
``Trainer(logger=False)`` is respected: no logger is added.

Recorded: what ``self.log`` sends to loggers (``log_metrics``) as metrics at Lightning's
step (``trainer.global_step``-like, batches that stepped), ``epoch`` included;
``save_hyperparameters()``/``log_hyperparams`` as params (source ``lightning``);
checkpoint files written by ``ModelCheckpoint`` as declared outputs (those rotated away
before the run ends are dropped).

``RunbaseLogger`` subclasses the ``Logger`` of whichever of ``lightning.pytorch`` and
``pytorch_lightning`` is imported (``lightning.pytorch`` when both or neither are):
``logger_class(module)`` gives the one for a given namespace.
"""

from __future__ import annotations

import functools
import importlib
import sys

from runbase.integrations import _common
from runbase.tracking import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
_classes: dict[str, type] = {}


class _RunbaseLoggerMixin:
    """The logic of ``RunbaseLogger``, shared by the lightning.pytorch and
    pytorch_lightning variants (the marker the auto mode looks for)."""

    _rank_zero_only: Any = None

    def __init__(self, log_checkpoints: bool = True) -> None:
        super().__init__()
        self._log_checkpoints = log_checkpoints
        self._declared: set[str] = set()

    def _rank_zero(self) -> bool:
        rzo = self._rank_zero_only
        return rzo is None or getattr(rzo, "rank", 0) == 0

    @property
    def name(self) -> str:
        return "runbase"

    @property
    def version(self) -> str:
        run = api.ensure_run()  # Lightning names checkpoint directories after it
        return run.id if run is not None else "0"

    @property
    def save_dir(self) -> str | None:
        return None

    @property
    def experiment(self) -> Any:
        return api.active_run()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._rank_zero():
            _common.log(metrics, step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if not self._rank_zero():
            return
        if not isinstance(params, dict):
            params = dict(vars(params)) if hasattr(params, "__dict__") else dict(params)
        _common.params(params, "lightning")

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        pass

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not (self._log_checkpoints and self._rank_zero()):
            return
        paths = list(getattr(checkpoint_callback, "best_k_models", {}) or {})
        for attr in ("last_model_path", "best_model_path"):
            p = getattr(checkpoint_callback, attr, "")
            if p:
                paths.append(p)
        for p in paths:
            if isinstance(p, str) and p not in self._declared:
                self._declared.add(p)
                _common.output(p)

    def save(self) -> None:
        pass

    def finalize(self, status: str) -> None:
        if self._rank_zero():
            _common.flush()


def logger_class(namespace: ModuleType | str) -> type:
    """``RunbaseLogger`` for ``lightning.pytorch`` or ``pytorch_lightning``."""
    name = namespace if isinstance(namespace, str) else namespace.__name__
    cls = _classes.get(name)
    if cls is None:
        base = importlib.import_module(f"{name}.loggers").Logger
        rank_zero = importlib.import_module(f"{name}.utilities.rank_zero").rank_zero_only
        cls = type(
            "RunbaseLogger",
            (_RunbaseLoggerMixin, base),
            {"__module__": __name__, "__doc__": _RunbaseLoggerMixin.__doc__},
        )
        setattr(cls, "_rank_zero_only", rank_zero)  # noqa: B010 - a class made by type()
        _classes[name] = cls
    return cls


def _default_namespace() -> str:
    for name in _NAMESPACES:
        if name in sys.modules:
            return name
    for name in _NAMESPACES:
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            continue
    raise ImportError("neither lightning nor pytorch_lightning is installed")


def __getattr__(name: str) -> Any:
    if name == "RunbaseLogger":
        return logger_class(_default_namespace())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- automatic mode -------------------------------------------------------------------


def install(module: ModuleType) -> None:
    """``lightning.pytorch`` or ``pytorch_lightning`` was imported: hook its Trainer."""
    trainer_cls = module.Trainer
    make_logger = logger_class(module)

    def make(init: Any) -> Any:
        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            _add_logger(self, kwargs.get("logger"), make_logger)

        return __init__

    _common.wrap(trainer_cls, "__init__", make)


@_common.guarded("lightning")
def _add_logger(trainer: Any, requested: Any, make_logger: Any) -> None:
    if requested is False or not _common.active():
        return  # the user switched logging off, or no run (after runbase.finish())
    loggers = list(trainer.loggers)
    if any(isinstance(lg, _RunbaseLoggerMixin) for lg in loggers):
        return
    trainer.loggers = [*loggers, make_logger()]
