"""The registry of framework integrations, armed in tracked Python processes.

Each entry of :data:`AUTO` is armed with an import hook: when the named module is
first imported (or at once, if it already is), the ``"module:function"`` target is
imported by name and called with that module. The targets live in
``runbase.integrations`` (above this layer: they use the tracking API); naming them
as strings keeps the dependency one way. What the user sees (``RUNBASE_INTEGRATIONS``,
``--no-integrations``) is documented in ``runbase.integrations``.
"""

from __future__ import annotations

import importlib
import os

from runbase.core._imphook import when_imported
from runbase.core._safe import warn_once

TYPE_CHECKING = False  # `from typing import` costs ~8 ms in every tracked process
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

ENV_VAR = "RUNBASE_INTEGRATIONS"

# module whose import arms the integration -> "runbase.integrations.<name>:<function>"
AUTO: dict[str, str] = {}
AUTO.update(
    {
        # TensorBoard mirror: scalars written for TensorBoard become metrics
        "torch.utils.tensorboard": "runbase.integrations.tensorboard:hook_writer",
        "tensorboardX": "runbase.integrations.tensorboard:hook_writer",
        "tensorflow": "runbase.integrations.tensorboard:hook_tensorflow",
        # params from command-line and config frameworks
        "click": "runbase.integrations.configs:hook_click",
        "typer": "runbase.integrations.configs:hook_typer",
        "hydra": "runbase.integrations.configs:hook_hydra",
        "fire": "runbase.integrations.configs:hook_fire",
        "jsonargparse": "runbase.integrations.configs:hook_jsonargparse",
    }
)
AUTO.update(
    {
        # training frameworks: metrics, params and checkpoints through their own hooks
        "lightning.pytorch": "runbase.integrations.lightning:install",
        "pytorch_lightning": "runbase.integrations.lightning:install",
        "keras": "runbase.integrations.keras:install",
        "transformers.trainer": "runbase.integrations.transformers:install",
        "sklearn.base": "runbase.integrations.sklearn:install",
        "xgboost": "runbase.integrations.xgboost:install",
        "lightgbm": "runbase.integrations.lightgbm:install",
        "torch": "runbase.integrations.torch:install",
        # an MLflow-using script: its run's params, metrics and tags are this run's
        "mlflow": "runbase.integrations.mlflow:install",
        # Ray Tune: the parser it makes for each trial spec is not the program's params
        "ray.tune": "runbase.integrations.ray:install",
    }
)


def switched_off() -> set[str] | None:
    """None: all off; else the names switched off."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in ("0", "false", "no", "off", "none"):
        return None
    return {part.strip()[1:] for part in value.split(",") if part.strip().startswith("-")}


def name_of(target: str) -> str:
    return target.partition(":")[0].rpartition(".")[2]


def install_auto() -> None:
    """Arm every integration of :data:`AUTO` not switched off."""
    off = switched_off()
    if off is None:
        return
    for module, target in AUTO.items():
        if name_of(target) not in off:
            when_imported(module, _caller(target))


def _caller(target: str) -> Callable[[ModuleType], None]:
    def call(module: ModuleType) -> None:
        _call(target, module)

    return call


def _call(target: str, module: ModuleType) -> None:
    mod_name, _, func = target.partition(":")
    try:
        getattr(importlib.import_module(mod_name), func)(module)
    except Exception as e:  # noqa: BLE001 - an integration must never break the program
        warn_once(f"integration:{target}", f"the {name_of(target)} integration is off: {e}")
