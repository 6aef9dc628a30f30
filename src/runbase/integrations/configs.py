"""Parameters from command-line and config frameworks, with no code change.

* click (source ``click``) and typer (``typer``, on click or its own copy of it): the
  parsed values of every invoked command's params (``ctx.params``: a group's and its
  subcommand's), defaults included.
* Hydra (``hydra``): the composed config of ``@hydra.main`` (config files, defaults
  list and command-line overrides), resolved and flattened to ``a.b.c``; ``hydra.*``
  is left out. ``hydra.compose()`` results too (the Compose API). In a multirun
  (``-m``), each job is a job run of its own (runbase.tracking.jobs) with its composed config
  and the files written in its output directory; the process's run records none.
* fire (``fire``): the arguments ``fire.Fire`` parsed for each function or class it
  calls, defaults included.
* jsonargparse (``jsonargparse``): the namespace of the outermost ``parse_args``
  (config files, environment and command line merged), flattened to ``a.b.c``.

Parameter overrides (``runbase run -p key=value`` not on the command line) reach them
as they reach argparse: set in the parsed values, converted by the option's type
(click, typer), the config node (Hydra, where the key exists) or like the parsed value
(fire, jsonargparse). Every hook calls the framework first and never raises into it.
A launcher's own command line (``python -m papermill``'s options; any parse that no
user code asked for, see runbase.capture.origin) is not recorded.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import time

from runbase.capture.origin import parse_is_users
from runbase.capture.overrides import _like, active, format_value
from runbase.capture.overrides import _warn as _warn_override
from runbase.capture.params import SKIP_PARSER, flatten
from runbase.core._safe import warn_once
from runbase.tracking import api
from runbase.tracking.params import record_parsed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType
    from typing import Any

_MARK = "_runbase_hooked"


def _record(values: Any, source: str, flatten: bool = False) -> None:
    record_parsed(values, source, flatten=flatten)


def _overrides() -> dict[str, Any]:
    return active()


def _users(fn: Any) -> bool:
    """Whether a parse gives the user's params, not a launcher's (capture.origin): by
    the module of ``fn`` (a click callback, fire's component) or the calling stack."""
    return parse_is_users(fn)


def _warn(key: str, value: Any, e: Exception) -> None:
    _warn_override(f"could not apply the override {key}={format_value(value)}: {e}")


# -- click and typer ----------------------------------------------------------------------


def hook_click(module: ModuleType) -> None:
    _patch_command(module.core.Command)


def hook_typer(module: ModuleType) -> None:
    """Typer >= 0.22 parses with its own copy of click (``typer._click``); older typers
    subclass click's ``Command``, which :func:`hook_click` covers."""
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
    if not _users(callback):
        return  # a launcher's own options: `python -m papermill`'s --kernel, --cwd, ...
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
            if not _multirun(cfg):  # a multirun job's config is its job run's (below)
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
    _hook_hydra_jobs()


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
            # composed for a multirun (or to find out whether it is one: @hydra.main
            # asks first): no job runs that config as it is
            if _mode_name(kwargs.get("run_mode")) != "MULTIRUN" and not _multirun(cfg):
                _record_omegaconf(cfg, skip="hydra")
        except Exception:  # noqa: BLE001
            pass
        return cfg

    setattr(hooked, _MARK, True)
    return hooked


def _mode_name(mode: Any) -> str | None:
    return getattr(mode, "name", None)


def _multirun(cfg: Any) -> bool:
    from omegaconf import OmegaConf  # lazy: third-party, present when its hook runs

    return _mode_name(OmegaConf.select(cfg, "hydra.mode", default=None)) == "MULTIRUN"


# Hydra's launchers call the Callbacks of a job around it, in whichever process runs it
# (BasicLauncher: this one; joblib, submitit: workers, attached to the same run): the
# hook point for every launcher. A job starts after Hydra has written its .hydra/ files
# and opened its log: at its end, every file of its output directory written since the
# multirun began is recorded as its output.
_hydra_jobs: dict[str, Any] = {}
GROUP_ENV = "RUNBASE_JOB_GROUP"  # a multirun's group id, for launchers' worker processes


def _hook_hydra_jobs() -> None:
    cls = importlib.import_module("hydra._internal.callbacks").Callbacks
    if getattr(cls.on_job_start, _MARK, False):
        return
    _wrap(cls, "on_multirun_start", after=_multirun_started)
    _wrap(cls, "on_multirun_end", after=_multirun_ended)
    _wrap(cls, "on_job_start", before=_job_started)  # the user's callbacks run in the job
    _wrap(cls, "on_job_end", after=_job_ended)
    _job_in_progress()


def _wrap(cls: type, name: str, before: Any = None, after: Any = None) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        if before is not None:
            _quietly(before, kwargs)
        result = original(self, *args, **kwargs)
        if after is not None:
            _quietly(after, kwargs)
        return result

    setattr(hooked, _MARK, True)
    setattr(cls, name, hooked)


def _quietly(fn: Callable[[dict[str, Any]], None], kwargs: dict[str, Any]) -> None:
    try:
        fn(kwargs)
    except Exception as e:  # noqa: BLE001 - never break the launcher
        warn_once("hydra-jobs", f"could not record a Hydra multirun job: {e}")


def _multirun_started(kwargs: dict[str, Any]) -> None:
    os.environ[GROUP_ENV] = _new_group(None).id


def _new_group(group_id: str | None) -> Any:
    """The multirun's job group (a new one, or ``group_id``'s in a launcher's worker)."""
    from runbase.tracking.jobs import Group  # lazy: loads the store; Hydra multirun only

    group = Group(group_id, drop_argv_params=True)  # Hydra's command line is Hydra's: no params
    _hydra_jobs.update(group=group, since=time.time())
    return group


def _multirun_ended(_kwargs: dict[str, Any]) -> None:
    _hydra_jobs.clear()
    os.environ.pop(GROUP_ENV, None)


def _group() -> Any:
    group = _hydra_jobs.get("group")
    if group is None:  # a launcher's worker process, or runbase.init() inside a job
        group = _new_group(os.environ.get(GROUP_ENV))
    return group


def _job_started(kwargs: dict[str, Any]) -> None:
    cfg = kwargs.get("config")
    if cfg is not None and _multirun(cfg):
        _start_job(cfg)


def _start_job(cfg: Any) -> None:
    from omegaconf import OmegaConf  # lazy: third-party, present when its hook runs

    num = OmegaConf.select(cfg, "hydra.job.num", default=None)
    task = [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task", default=[]) or []]
    # the command that runs this job alone: its overrides, not the sweep's, and no -m
    argv = [a for a in sys.argv[1:] if a not in ("-m", "--multirun") and not _task_override(a)]
    values = _omegaconf_dict(cfg, skip="hydra")
    _group().job(
        index=int(num) if num is not None else None,
        params={k: (None if v == "???" else v) for k, v in values.items()},
        argv=argv + task,
        source="hydra",
    )


def _task_override(arg: str) -> bool:
    """``lr=0.1,0.01``, ``+model=b``, ``~seed``: an override of the task's config (not
    Hydra's own ``hydra.sweep.dir=...``, not an option like ``--config-name=x``)."""
    key = arg.partition("=")[0].lstrip("+~")
    return (
        not arg.startswith("-")
        and ("=" in arg or arg.startswith("~"))
        and not (key == "hydra" or key.startswith(("hydra.", "hydra/")))
    )


def _job_ended(kwargs: dict[str, Any]) -> None:
    from runbase.tracking.jobs import (  # lazy: loads the store; Hydra multirun only
        claim_outputs,
        current,
        files_since,
    )

    job = current()
    cfg = kwargs.get("config")
    if job is None or cfg is None or not _multirun(cfg):
        return
    from omegaconf import OmegaConf  # lazy: third-party, present when its hook runs

    out = OmegaConf.select(cfg, "hydra.runtime.output_dir", default=None)
    if out:
        claim_outputs(files_since(str(out), _hydra_jobs.get("since", 0.0)))
    ret = kwargs.get("job_return")
    failed = getattr(getattr(ret, "status", None), "name", "") == "FAILED"
    exc = getattr(ret, "_return_value", None) if failed else None
    job.end("failed" if failed else None, exc=exc if isinstance(exc, BaseException) else None)
    if failed:
        _multirun_fails(job)


def _multirun_fails(job: Any) -> None:
    """Hydra fails the whole multirun once its jobs have run, by ``sys.exit(1)``, which
    a process's own run (``runbase.init()``) cannot see: it is told here."""
    run = api._run
    if run is not None and run.own and run._failure is None:
        run._failure = ("failed", 1, None, f"Hydra multirun job #{job.index} failed: run {job.id}")


def _job_in_progress() -> None:
    """``runbase.init()`` called inside a multirun's task function starts the run (and
    these hooks) while the first job runs: that job becomes a job run now."""
    from hydra.core.hydra_config import HydraConfig  # lazy: third-party, present when its hook runs

    from runbase.tracking.jobs import current  # lazy: loads the store; Hydra multirun only

    if not HydraConfig.initialized() or current() is not None:
        return
    masked: Any = HydraConfig.instance().cfg  # the hydra node; its parent: the job config
    cfg = masked.hydra._get_parent() if masked is not None else None
    if cfg is not None and _multirun(cfg) and "job" in cfg.hydra:
        _quietly(lambda _kwargs: _start_job(cfg), {})


def _omegaconf_dict(cfg: Any, skip: str) -> dict[str, Any]:
    """The config less ``skip``, interpolations resolved where they can be."""
    from omegaconf import DictConfig, OmegaConf  # lazy: third-party, present when its hook runs

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
    from omegaconf import (  # lazy: third-party, present when its hook runs
        OmegaConf,
        open_dict,
        read_write,
    )

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
    from fire import inspectutils  # lazy: third-party, present when its hook runs

    if not _users(fn):
        return result  # a library's command line made with fire: not the run's params
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
    return _like(value, current)


# -- jsonargparse -------------------------------------------------------------------------

_jsonarg_depth = threading.local()


def hook_jsonargparse(module: ModuleType) -> None:
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
    if not _users(None):
        return  # a launcher's own options; LightningCLI in a user's script is the user's
    values = flatten(_jsonarg_dict(cfg))
    ov = _overrides()
    if ov:
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
