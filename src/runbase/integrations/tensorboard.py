"""TensorBoard mirror: what a program writes for TensorBoard also becomes runbase metrics.

* ``torch.utils.tensorboard.SummaryWriter`` and ``tensorboardX.SummaryWriter``:
  ``add_scalar(tag, value, step)`` -> series ``tag``; ``add_scalars(main, {sub: v},
  step)`` -> series ``main/sub``; ``add_hparams(hparams, metrics)`` -> params (source
  ``tensorboard``) and summaries.
  ``add_image(tag, img, step, dataformats="CHW")`` -> image ``tag`` (as
  ``runbase.log_image``); ``add_images(tag, imgs, step, dataformats="NCHW")`` -> the
  batch as images ``tag`` (idx 0..n-1) at that step.
* ``tf.summary.scalar(name, data, step)`` (TensorFlow 2, eager) -> series ``name``
  (prefixed with the enclosing ``tf.name_scope``), at ``step`` or
  ``tf.summary.experimental.get_step()``; only when it was written (a default writer
  is set and recording is on). ``tf.summary.image(name, data, step, max_outputs=3)``
  -> images ``name``: the first ``max_outputs`` of the batch, as TensorBoard keeps.

The original method runs first and its result is returned untouched; the metric is
recorded after it, and a failure to record is ignored: TensorBoard's files are exactly
those it writes without runbase. A scalar without a step gets the key's previous step
+ 1 (runbase's rule), not TensorBoard's 0. Calls made from a framework that has a
runbase integration of its own (Lightning's or Keras's loggers, say) are left to that
integration, so nothing is recorded twice.
"""

from __future__ import annotations

import functools
import sys
import threading
import time

from runbase.core._imphook import when_imported
from runbase.core.spool import STEP_KEY, TIME_KEY
from runbase.tracking import tracker as _tracker
from runbase.tracking.autohooks import AUTO, name_of, switched_off
from runbase.tracking.params import record_parsed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

_MARK = "_runbase_mirrored"
_state = threading.local()  # writer calls in progress on this thread (add_hparams nests)

# packages whose own frames are skipped when looking for who called a writer
_LIBRARIES = ("torch", "tensorboardX", "tensorboard", "tensorflow", "runbase")
# packages that are part of a framework named otherwise in AUTO
_PART_OF = {"lightning_fabric": "lightning", "tf_keras": "keras"}


# -- torch.utils.tensorboard / tensorboardX ----------------------------------------------


def hook_writer(module: ModuleType) -> None:
    """``torch.utils.tensorboard`` or ``tensorboardX`` was imported: mirror its writer."""
    cls = getattr(module, "SummaryWriter", None)
    if cls is None:
        raise RuntimeError(f"{module.__name__} has no SummaryWriter")
    patch_writer(cls)


def patch_writer(cls: type) -> None:
    if cls.__dict__.get(_MARK):
        return
    for name, record in (
        ("add_scalar", _scalar),
        ("add_scalars", _scalars),
        ("add_hparams", _hparams),
        ("add_image", _image_hook("CHW")),
        ("add_images", _image_hook("NCHW")),
    ):
        original = getattr(cls, name, None)
        if callable(original):
            setattr(cls, name, _mirrored(original, record))
    setattr(cls, _MARK, True)


def _mirrored(original: Callable[..., Any], record: Callable[[tuple, dict], None]) -> Any:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            _state.depth = depth
        # only the outermost call: add_hparams writes its metrics with add_scalar
        if depth == 0 and _tracker.active() is not None:
            try:
                if not _from_covered_framework():
                    record(args, kwargs)
            except Exception:  # noqa: BLE001 - mirroring must never break training
                pass
        return result

    return method


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _scalar(args: tuple, kwargs: dict) -> None:
    tag = _arg(args, kwargs, 0, "tag")
    _emit(
        {str(tag): _arg(args, kwargs, 1, "scalar_value")},
        _arg(args, kwargs, 2, "global_step"),
        _arg(args, kwargs, 3, "walltime"),
    )


def _scalars(args: tuple, kwargs: dict) -> None:
    main = _arg(args, kwargs, 0, "main_tag")
    values = _arg(args, kwargs, 1, "tag_scalar_dict") or {}
    _emit(
        {f"{main}/{sub}": v for sub, v in values.items()},
        _arg(args, kwargs, 2, "global_step"),
        _arg(args, kwargs, 3, "walltime"),
    )


def _hparams(args: tuple, kwargs: dict) -> None:
    hparams = _arg(args, kwargs, 0, "hparam_dict") or {}
    metrics = _arg(args, kwargs, 1, "metric_dict") or {}
    if hparams:
        record_parsed(dict(hparams), "tensorboard", flatten=True)
    values = {}
    for key, v in metrics.items():
        f = _tracker.to_float(v)
        if f is not None:
            values[str(key)] = f
    t = _tracker.active()
    if values and t is not None:
        t.event("summary", values=values)


def _image_hook(layout: str) -> Callable[[tuple, dict], None]:
    """The hook of ``add_image`` (``layout`` CHW) or ``add_images`` (NCHW): their
    arguments are the same but for the default ``dataformats``."""

    def hook(args: tuple, kwargs: dict) -> None:
        _emit_images(
            _arg(args, kwargs, 0, "tag"),
            _arg(args, kwargs, 1, "img_tensor"),
            _arg(args, kwargs, 4, "dataformats", layout),
            _arg(args, kwargs, 2, "global_step"),
            _arg(args, kwargs, 3, "walltime"),
        )

    return hook


def _emit_images(tag: Any, img: Any, layout: Any, step: Any, walltime: Any = None) -> None:
    """Log what a writer just wrote as an image (or, with ``N`` in ``layout``, the
    batch of images) under ``tag``, as ``runbase.log_image`` does."""
    from runbase.tracking import media  # lazy: the store's objects; on the first image

    arr = media.as_array(img)
    images = _in_layout(arr, str(layout or "")) if arr is not None else None
    if images is None:
        return  # not a layout TensorBoard takes either (it raised to the program)
    when = _tracker.to_float(walltime) if walltime is not None else None
    media.log_image(str(tag), images, step, when=when)


def _in_layout(arr: Any, layout: str) -> list[Any] | None:
    """The images of an array laid out as ``layout`` (letters of ``NCHW``: TensorBoard's
    ``dataformats``), each H x W or H x W x C."""
    layout = layout.upper()
    if len(layout) != arr.ndim or len(set(layout)) != len(layout) or set(layout) - set("NCHW"):
        return None
    if "H" not in layout or "W" not in layout:
        return None
    arr = arr.transpose([layout.index(c) for c in "NHWC" if c in layout])
    return list(arr) if "N" in layout else [arr]


def _emit(values: dict[str, Any], step: Any, walltime: Any = None) -> None:
    """Append one metric entry to the run's buffer (what ``runbase.log`` does)."""
    t = _tracker.active()
    if t is None:
        return
    entry: dict[str, Any] = {}
    for key, v in values.items():
        f = _tracker.to_float(v)
        if f is not None:
            entry[key] = f
    if not entry:
        return
    when = _tracker.to_float(walltime) if walltime is not None else None
    entry[TIME_KEY] = when if when is not None else time.time()
    if step is not None:
        s = _tracker._to_int(step)
        if s is not None:
            entry[STEP_KEY] = s
    t.buf.append(entry)


def _from_covered_framework() -> bool:
    """Was the writer called by a framework that a runbase integration records itself?"""
    covered = _covered()
    if not covered:
        return False
    frame: Any = sys._getframe(2)
    for _ in range(30):
        if frame is None:
            return False
        top = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if top not in _LIBRARIES:
            return _PART_OF.get(top, top) in covered
        frame = frame.f_back
    return False


_covered_cache: frozenset[str] | None = None


def _covered() -> frozenset[str]:
    """Top-level packages with an armed integration other than this one and configs'."""
    global _covered_cache
    if _covered_cache is None:
        off = switched_off() or set()
        tops = {
            module.partition(".")[0]
            for module, target in AUTO.items()
            if name_of(target) not in off and name_of(target) not in ("tensorboard", "configs")
        }
        if "pytorch_lightning" in tops:
            tops.add("lightning")
        _covered_cache = frozenset(tops - set(_LIBRARIES))
    return _covered_cache


# -- tf.summary ----------------------------------------------------------------------------


def hook_tensorflow(module: ModuleType) -> None:
    """TensorFlow was imported: mirror ``tf.summary.scalar``. It calls
    ``tensorboard.summary.v2.scalar`` (imported on its first use), which is wrapped."""
    when_imported("tensorboard.summary.v2", _patch_tf_summary)


def _patch_tf_summary(module: ModuleType) -> None:
    for name, record in (("scalar", _tf_scalar), ("image", _tf_image)):
        original = getattr(module, name, None)
        if original is not None and not getattr(original, _MARK, False):
            setattr(module, name, _tf_mirrored(original, record))


def _tf_mirrored(original: Callable[..., Any], record: Callable[[Any, tuple, dict], None]) -> Any:
    @functools.wraps(original)
    def op(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if _tracker.active() is not None:
            try:
                if not _from_covered_framework():
                    record(result, args, kwargs)
            except Exception:  # noqa: BLE001 - mirroring must never break training
                pass
        return result

    setattr(op, _MARK, True)
    return op


def _tf_scalar(result: Any, args: tuple, kwargs: dict) -> None:
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.executing_eagerly() or not bool(result):
        return  # graph mode (inside tf.function): values are symbolic; or nothing written
    name = str(_arg(args, kwargs, 0, "name"))
    step = _arg(args, kwargs, 2, "step")
    if step is None:
        step = tf.summary.experimental.get_step()
    _emit({_scope() + name: _arg(args, kwargs, 1, "data")}, step)


def _tf_image(result: Any, args: tuple, kwargs: dict) -> None:
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.executing_eagerly() or not bool(result):
        return  # as _tf_scalar
    name = str(_arg(args, kwargs, 0, "name"))
    step = _arg(args, kwargs, 2, "step")
    if step is None:
        step = tf.summary.experimental.get_step()
    from runbase.tracking import media  # lazy: as in _emit_images

    keep = _tracker._to_int(_arg(args, kwargs, 3, "max_outputs", 3)) or 0
    arr = media.as_array(_arg(args, kwargs, 1, "data"))  # [k, h, w, c]
    if arr is not None and arr.ndim == 4 and keep > 0:
        media.log_image(_scope() + name, list(arr[:keep]), step)  # what TensorBoard keeps


def _scope() -> str:
    """The enclosing ``tf.name_scope`` (``"train/"``), as TensorBoard prefixes tags."""
    try:
        from tensorflow.python.eager import context  # lazy: third-party, present when its hook runs

        return str(context.context().scope_name or "")
    except Exception:  # noqa: BLE001 - a private API: no prefix when it moves
        return ""
