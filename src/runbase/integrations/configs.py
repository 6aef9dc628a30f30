"""Parameters from command-line and config frameworks, with no code change.

* click (source ``click``) and typer (``typer``, on click or its own copy of it): the
  parsed values of every invoked command's params (``ctx.params``: a group's and its
  subcommand's), defaults included.
* Hydra (``hydra``): the composed config of ``@hydra.main`` (config files, defaults
  list and command-line overrides), resolved and flattened to ``a.b.c``; ``hydra.*``
  is left out. ``hydra.compose()`` results too (the Compose API).
* fire (``fire``): the arguments ``fire.Fire`` parsed for each function or class it
  calls, defaults included.
* jsonargparse (``jsonargparse``): the namespace of the outermost ``parse_args``
  (config files, environment and command line merged), flattened to ``a.b.c``.

Parameter overrides (``runbase run -p key=value`` not on the command line) reach them
as they reach argparse: set in the parsed values, converted by the option's type
(click, typer), the config node (Hydra, where the key exists) or like the parsed value
(fire, jsonargparse). Every hook calls the framework first and never raises into it.
"""

from __future__ import annotations

import functools
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType
    from typing import Any

_MARK = "_runbase_hooked"


def _record(values: Any, source: str, flatten: bool = False) -> None:
    from .._child import record_parsed

    record_parsed(values, source, flatten=flatten)


def _overrides() -> dict[str, Any]:
    from ..overrides import active

    return active()


def _warn(key: str, value: Any, e: Exception) -> None:
    from ..overrides import _warn, format_value

    _warn(f"could not apply the override {key}={format_value(value)}: {e}")


# -- click and typer ----------------------------------------------------------------------


def hook_click(module: ModuleType) -> None:
    _patch_command(module.core.Command)


def hook_typer(module: ModuleType) -> None:
    """Typer >= 0.22 parses with its own copy of click (``typer._click``); older typers
    subclass click's ``Command``, which :func:`hook_click` covers."""
    import importlib

    try:
        core = importlib.import_module("typer._click.core")
    except ImportError:
        return
    _patch_command(core.Command)


def _patch_command(cls: type) -> None:
    original = cls.parse_args  # type: ignore[attr-defined]
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def parse_args(self: Any, ctx: Any, args: list[str]) -> Any:
        rest = original(self, ctx, args)
        try:
            _click_parsed(self, ctx)
        except Exception:  # noqa: BLE001 - never break the program's command line
            pass
        return rest

    setattr(parse_args, _MARK, True)
    cls.parse_args = parse_args  # type: ignore[attr-defined]


def _click_parsed(command: Any, ctx: Any) -> None:
    if getattr(ctx, "resilient_parsing", False):  # shell completion
        return
    callback = getattr(command, "callback", None)
    if str(getattr(callback, "__module__", "")).startswith("runbase."):
        return  # runbase's own CLI, started by a tracked program
    ov = _overrides()
    if ov:
        for param in command.get_params(ctx):
            name = getattr(param, "name", None)
            if name in ov and getattr(param, "expose_value", True):
                value = ov[name]
                try:
                    ctx.params[name] = param.process_value(ctx, _as_text(value))
                except Exception as e:  # noqa: BLE001 - the parsed value stays
                    _warn(name, value, e)
    source = "typer" if _is_typer(command) else "click"
    _record({k: _plain(v) for k, v in ctx.params.items()}, source)


def _is_typer(command: Any) -> bool:
    return any(c.__module__.partition(".")[0] == "typer" for c in type(command).__mro__)


def _as_text(value: Any) -> Any:
    """An override as the command line would give it to an option."""
    from ..overrides import format_value

    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return tuple(format_value(v) for v in value)
    return format_value(value)


def _plain(value: Any) -> Any:
    """An open file (``click.File``) is recorded as its name."""
    if hasattr(value, "read") or hasattr(value, "write"):
        name = getattr(value, "name", None)
        if isinstance(name, str):
            return name
    return value


# -- Hydra ------------------------------------------------------------------------------


def hook_hydra(module: ModuleType) -> None:
    import importlib

    from ..capture.params import SKIP_PARSER

    hc = importlib.import_module("hydra.core.hydra_config").HydraConfig
    set_config = hc.set_config
    if getattr(set_config, _MARK, False):
        return

    # the config of a job: @hydra.main sets it before calling the task function with a
    # copy of it (less the hydra node)
    @functools.wraps(set_config)
    def hooked_set_config(self: Any, cfg: Any) -> None:
        try:
            _apply_to_omegaconf(cfg, skip="hydra")
        except Exception:  # noqa: BLE001
            pass
        set_config(self, cfg)
        try:
            _record_omegaconf(cfg, skip="hydra")
        except Exception:  # noqa: BLE001
            pass

    setattr(hooked_set_config, _MARK, True)
    hc.set_config = hooked_set_config

    # Hydra's own command line (its overrides, --cfg, -m, ...) is not the program's
    # params: the argparse hook leaves its parser alone.
    for name in ("hydra._internal.utils", "hydra.main"):
        mod = importlib.import_module(name)
        get_parser = getattr(mod, "get_args_parser", None)
        if get_parser is not None and not getattr(get_parser, _MARK, False):
            mod.get_args_parser = _marking_parser(get_parser, SKIP_PARSER)  # type: ignore[attr-defined]

    # the compose API (notebooks, tests), which @hydra.main uses too: record what it
    # returns (a method, so that `from hydra import compose` before init() is covered)
    cls = importlib.import_module("hydra._internal.hydra").Hydra
    compose = cls.compose_config
    if not getattr(compose, _MARK, False):
        cls.compose_config = _recording_compose(compose)


def _marking_parser(get_parser: Callable[..., Any], attr: str) -> Callable[..., Any]:
    @functools.wraps(get_parser)
    def get_args_parser(*args: Any, **kwargs: Any) -> Any:
        parser = get_parser(*args, **kwargs)
        try:
            setattr(parser, attr, True)
        except Exception:  # noqa: BLE001
            pass
        return parser

    setattr(get_args_parser, _MARK, True)
    return get_args_parser


def _recording_compose(compose: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(compose)
    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        cfg = compose(self, *args, **kwargs)
        try:
            _apply_to_omegaconf(cfg, skip="hydra")
            _record_omegaconf(cfg, skip="hydra")
        except Exception:  # noqa: BLE001
            pass
        return cfg

    setattr(hooked, _MARK, True)
    return hooked


def _omegaconf_dict(cfg: Any, skip: str) -> dict[str, Any]:
    """The config less ``skip``, interpolations resolved where they can be."""
    from omegaconf import DictConfig, OmegaConf

    from ..capture.params import flatten

    data: dict[str, Any] = {}
    for key in cfg:
        if key == skip:
            continue
        try:
            node = cfg._get_node(key)
            if isinstance(node, DictConfig) or OmegaConf.is_list(node):
                try:
                    value = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
                except Exception:  # noqa: BLE001 - an interpolation that cannot resolve
                    value = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
            else:
                try:
                    value = cfg[key]
                except Exception:  # noqa: BLE001 - missing (`???`) or unresolvable
                    value = node._value()
        except Exception:  # noqa: BLE001
            continue
        data[str(key)] = value
    return flatten(data)


def _record_omegaconf(cfg: Any, skip: str) -> None:
    values = _omegaconf_dict(cfg, skip)
    # a mandatory value left unset (`???`) is recorded as null
    _record({k: (None if v == "???" else v) for k, v in values.items()}, "hydra")


def _apply_to_omegaconf(cfg: Any, skip: str) -> None:
    ov = _overrides()
    if not ov:
        return
    from omegaconf import OmegaConf, open_dict, read_write

    from ..overrides import _like

    current = _omegaconf_dict(cfg, skip)
    for key, value in ov.items():
        if key not in current:
            continue
        try:
            with read_write(cfg), open_dict(cfg):
                OmegaConf.update(cfg, key, _like(value, current[key]), merge=False)
        except Exception as e:  # noqa: BLE001 - a value the node's type rejects
            _warn(key, value, e)


# -- fire -------------------------------------------------------------------------------


def hook_fire(module: ModuleType) -> None:
    import importlib

    from ..capture.params import SKIP_PARSER

    core: Any = importlib.import_module("fire.core")
    original = core._MakeParseFn
    if getattr(original, _MARK, False):
        return
    # fire's own flags (--help, --trace, ...) are parsed with argparse: not params
    fire_parser: Any = importlib.import_module("fire.parser")
    fire_parser.CreateParser = _marking_parser(fire_parser.CreateParser, SKIP_PARSER)

    @functools.wraps(original)
    def make_parse_fn(fn: Any, metadata: Any) -> Any:
        parse = original(fn, metadata)

        @functools.wraps(parse)
        def parse_fn(args: Any) -> Any:
            result = parse(args)
            try:
                return _fire_parsed(fn, result)
            except Exception:  # noqa: BLE001
                return result

        return parse_fn

    setattr(make_parse_fn, _MARK, True)
    core._MakeParseFn = make_parse_fn


def _fire_parsed(fn: Any, result: Any) -> Any:
    from fire import inspectutils

    (varargs, kwargs), consumed, remaining, capacity = result
    spec = inspectutils.GetFullArgSpec(fn)
    varargs, kwargs = list(varargs), dict(kwargs)
    ov = _overrides()
    values: dict[str, Any] = {}
    for i, name in enumerate(spec.args[: len(varargs)]):
        if name in ov:
            varargs[i] = _fire_value(ov[name], varargs[i])
        values[name] = varargs[i]
    for name, default in (spec.kwonlydefaults or {}).items():
        kwargs.setdefault(name, default)
    for name in list(kwargs):
        if name in ov:
            kwargs[name] = _fire_value(ov[name], kwargs[name])
    values.update(kwargs)
    for name in spec.kwonlyargs:  # keyword-only and not given: an override may set it
        if name in ov and name not in kwargs:
            kwargs[name] = values[name] = ov[name]
    _record(values, "fire")
    return (varargs, kwargs), consumed, remaining, capacity


def _fire_value(value: Any, current: Any) -> Any:
    from ..overrides import _like

    return _like(value, current)


# -- jsonargparse -------------------------------------------------------------------------

_jsonarg_depth = threading.local()


def hook_jsonargparse(module: ModuleType) -> None:
    from ..capture.params import SKIP_PARSER

    cls = module.ArgumentParser
    setattr(cls, SKIP_PARSER, True)  # a subclass of argparse's: recorded here, not there
    original = cls.parse_args
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def parse_args(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_jsonarg_depth, "n", 0)
        _jsonarg_depth.n = depth + 1
        try:
            cfg = original(self, *args, **kwargs)
        finally:
            _jsonarg_depth.n = depth
        if depth == 0:  # the outermost parse (subcommands are parsed inside it)
            try:
                _jsonargparse_parsed(cfg)
            except Exception:  # noqa: BLE001
                pass
        return cfg

    setattr(parse_args, _MARK, True)
    cls.parse_args = parse_args


def _jsonargparse_parsed(cfg: Any) -> None:
    from ..capture.params import flatten

    values = flatten(_jsonarg_dict(cfg))
    ov = _overrides()
    if ov:
        from ..overrides import _like

        for key, value in ov.items():
            if key in values:
                try:
                    cfg[key] = values[key] = _like(value, values[key])
                except Exception as e:  # noqa: BLE001
                    _warn(key, value, e)
    _record(values, "jsonargparse")


def _jsonarg_dict(cfg: Any) -> dict[str, Any]:
    data = cfg.as_dict() if hasattr(cfg, "as_dict") else vars(cfg)
    return _clean(data)


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """Internal keys (``__path__``) out; jsonargparse's paths as text."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if str(k).startswith("__"):
            continue
        if isinstance(v, dict):
            v = _clean(v)
        elif isinstance(v, list):
            v = [_path_text(x) for x in v]
        else:
            v = _path_text(v)
        out[str(k)] = v
    return out


def _path_text(v: Any) -> Any:
    if type(v).__name__.startswith("Path") and hasattr(v, "relative"):
        return str(v.relative)
    return v
