"""What the framework integrations share: recording through runbase's API, never raising.

Everything here swallows its own errors (one warning each): an integration must never
break training. Parameters are recorded with the framework's name as their source
(``lightning``, ``keras``, ...), which ranks below the command-line parsers and
``inline`` (``runbase.param``): what the user's code recorded itself wins, and
parameter overrides keep working on the recorded argparse keys.
"""

from __future__ import annotations

import functools
import os
import sys

from runbase.capture._filehook import WRITE_EVENT
from runbase.core._safe import warn_once
from runbase.tracking import api, tracker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

_WRAPPED = "__runbase_wrapped__"


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log numeric ``metrics`` at ``step`` (None: each key's previous step + 1); starts
    a run when there is none (api, imported here, registers the starter)."""
    try:
        values = {str(k): v for k, v in metrics.items() if k != "step" and v is not None}
        if values:
            tracker.log(step if step is None else int(step), **values)
    except Exception as e:  # noqa: BLE001
        warn_once("integration-log", f"an integration could not log metrics: {e}")


def params(values: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Record parameters (nested mappings flatten to ``a.b``) from the framework
    ``source`` (a name of ``SOURCE_RANK``: below the parsers and inline)."""
    try:
        if prefix:
            values = {f"{prefix}{k}": v for k, v in values.items()}
        api.record_params(values, source=source, flatten=True, weak=not top_process())
    except Exception as e:  # noqa: BLE001
        warn_once("integration-params", f"an integration could not record params: {e}")


def summary(values: Mapping[str, Any]) -> None:
    try:
        api.summary(**{str(k): v for k, v in values.items()})
    except Exception as e:  # noqa: BLE001
        warn_once("integration-summary", f"an integration could not record a summary: {e}")


def active() -> bool:
    """Is a run active in this process? The automatic hooks stay in place after
    ``runbase.finish()``; they must not start a new run then."""
    return tracker.active() is not None


def before_write(path: Any) -> None:
    """A framework is about to write ``path`` through native code, which the audit hook
    does not see (``torch.save``, ``Booster.save_model``): tell the hooks, as an
    ``open()`` for writing would, so that bytes this process read there are hashed
    before they are gone (records.files.preimage). Only paths; never raises."""
    if not isinstance(path, (str, os.PathLike)):
        return
    try:
        sys.audit(WRITE_EVENT, os.fspath(path))
    except Exception:  # noqa: BLE001 - another audit hook's error is not the save's
        pass


def output(path: Any, auto: bool = False) -> None:
    """Declare ``path`` (a file or directory the framework wrote) as an output of the run.

    Only paths: file objects and buffers are ignored. A declared file that is gone when
    the run ends (a rotated checkpoint) is dropped from the record. ``auto``: from an
    automatic hook, so nothing without an active run.
    """
    if not isinstance(path, (str, os.PathLike)) or (auto and not active()):
        return
    try:
        api.output(path)
    except Exception as e:  # noqa: BLE001
        warn_once("integration-output", f"an integration could not record an output: {e}")


def flush() -> None:
    """Hand what is buffered to the spool now (end of a training loop)."""
    t = tracker.active()
    if t is not None:
        t.flush(timeout=1.0)


def top_process() -> bool:
    """False in a worker process (multiprocessing, a script started by the command):
    there, parameters only fill in keys that are not recorded yet."""
    if os.environ.get("RUNBASE_SUPERVISOR_PID") not in (None, str(os.getppid())):
        return False
    mp = sys.modules.get("multiprocessing")
    return mp is None or mp.parent_process() is None


def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(original)`` (once: a second call does nothing)."""
    original = owner.__dict__.get(name) if isinstance(owner, type) else None
    if original is None:
        original = getattr(owner, name)
    if getattr(original, _WRAPPED, False):
        return
    raw = original.__func__ if isinstance(original, (classmethod, staticmethod)) else original
    wrapper = make(raw)
    functools.update_wrapper(wrapper, raw)
    setattr(wrapper, _WRAPPED, True)
    if isinstance(original, classmethod):
        wrapper = classmethod(wrapper)
    elif isinstance(original, staticmethod):
        wrapper = staticmethod(wrapper)
    setattr(owner, name, wrapper)


def guarded(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an integration hook so that an error in it warns once and returns None."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - tracking never breaks training
                warn_once(f"integration:{what}", f"the {what} integration failed: {e}")
                return None

        return inner

    return deco


def numeric(value: Any) -> Any:
    """``"0.3"`` -> 0.3, ``"6"`` -> 6 (configs that store numbers as strings); else as is."""
    if isinstance(value, str):
        for conv in (int, float):
            try:
                return conv(value)
            except ValueError:
                pass
    return value


def hook_booster(
    name: str,
    module: Any,
    owners: tuple[str, ...],
    callback_type: type,
    make_callback: Callable[[Any, Any], Any],
    path_kw: str,
) -> None:
    """The automatic mode of a gradient-boosting library (XGBoost, LightGBM): its
    ``train`` (looked up in each of ``owners``) gets ``make_callback(bound_arguments,
    signature)`` appended to ``callbacks`` unless a ``callback_type`` is there, and
    ``module.Booster.save_model(path)`` (``path_kw`` when passed by keyword) declares
    ``path`` an output."""
    import inspect  # lazy: inspect costs ~5 ms; only for a booster

    signatures: dict[Any, inspect.Signature] = {}

    def with_ours(train: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not active():  # no run (after runbase.finish()): leave training alone
            return args, kwargs
        try:
            sig = signatures.get(train)
            if sig is None:
                sig = signatures[train] = inspect.signature(train)
            bound = sig.bind(*args, **kwargs)
            callbacks = list(bound.arguments.get("callbacks") or [])
            if any(isinstance(c, callback_type) for c in callbacks):
                return args, kwargs
            bound.arguments["callbacks"] = [*callbacks, make_callback(bound, sig)]
            return bound.args, bound.kwargs
        except Exception as e:  # noqa: BLE001 - leave the call as the program made it
            warn_once(f"integration:{name}", f"the {name} integration failed: {e}")
            return args, kwargs

    def train_wrapper(train: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = with_ours(train, args, kwargs)
            return train(*args, **kwargs)

        return wrapper

    def save_wrapper(save_model: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            path = args[0] if args else kwargs.get(path_kw)
            before_write(path)
            result = save_model(self, *args, **kwargs)
            output(path, auto=True)
            return result

        return wrapper

    for owner_name in owners:
        owner = sys.modules.get(owner_name)
        if owner is not None and hasattr(owner, "train"):
            wrap(owner, "train", train_wrapper)
    wrap(module.Booster, "save_model", save_wrapper)
