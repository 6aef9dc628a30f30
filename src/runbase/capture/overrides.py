"""Parameter overrides: ``runbase run -p lr=0.1``, ``runbase sweep``, ``runbase reproduce -p``.

An override reaches the command in one of two ways:

* on the command line: ``--lr 0.01``, ``--lr=0.01``, ``--learning-rate 0.01`` (key
  ``learning_rate``) or ``lr=0.01`` are rewritten in argv (:func:`apply_to_argv`);
* through the run's environment (``$RUNBASE_OVERRIDES``, a JSON object) for everything
  argv does not show: an argparse argument left at its default, or an inline
  ``runbase.param("lr", 0.1)``. In the command's Python processes the argparse hook sets
  the parsed attribute (converted with the argument's ``type``) and ``runbase.param`` /
  ``runbase.params`` return (and record) the override instead of the coded value; the
  click, typer, Hydra, fire and jsonargparse hooks (runbase.integrations.configs) set
  it in what they parsed.

    overrides = parse_assignments(["lr=0.01", "model=vgg"])
    argv, rest = apply_to_argv(["python", "train.py", "--lr", "0.1"], overrides)
    env = {**os.environ, **to_env(rest)}

This module is imported by every tracked Python process: it must stay light (no json
or typing at import) and, on the child side, must never raise into user code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping  # loaded at start-up already

from runbase.core._safe import warn_once
from runbase.errors import UsageError

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

ENV_VAR = "RUNBASE_OVERRIDES"
# The tag that records a run's overrides (JSON), so that it can be reproduced exactly:
# the command line shows the rewritten ones, the tag also those passed by environment.
TAG = "overrides"
# a run's index in its sweep or multirun: the trial (runbase sweep, from 1), the job
# (runbase.tracking.jobs: as the launcher numbers them, Hydra from 0)
INDEX_TAG = "sweep_index"

_active: dict[str, Any] | None = None

# -- the supervisor side: parsing, rewriting argv --------------------------------------


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"lr=0.1"`` -> ``("lr", 0.1)``. Values are typed like argv params (numbers, true/
    false; other text stays a string); a value starting with ``[``, ``{`` or ``"`` is JSON.

    Raises :class:`~runbase.errors.UsageError` for anything but ``KEY=VALUE``.
    """
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key or key.startswith("-") or any(c.isspace() for c in key):
        raise UsageError(f"bad parameter {text!r}: use KEY=VALUE, e.g. lr=0.1")
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    """The typed value of an override's text (see :func:`parse_assignment`)."""
    # lazy: capture.params loads json and typing; this module stays light (tracked processes)
    from runbase.capture.params import typed

    if raw[:1] in ("[", "{", '"'):
        from runbase.core.shapes import TooDeep, loads  # lazy: core.shapes loads json

        try:
            return loads(raw)  # nesting bounded (shapes.MAX_DEPTH), as a bundle's params
        except TooDeep as e:
            raise UsageError(f"bad parameter value {raw[:40]!r}...: {e}") from None
        except ValueError:
            return raw
    return typed(raw)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["lr=0.1", "model=vgg"]`` -> ``{"lr": 0.1, "model": "vgg"}`` (later ones win)."""
    return dict(parse_assignment(item) for item in items)


def format_value(value: Any) -> str:
    """The command-line text of a value: ``0.1``, ``3``, ``true``, ``vgg``, JSON for lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    import json  # lazy: no json at import (every tracked process loads this module)

    return json.dumps(value)


def apply_to_argv(
    argv: list[str],
    overrides: Mapping[str, Any],
    param_sources: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Rewrite the overrides that appear on the command line; return the new argv and
    the overrides that remain, to pass with :func:`to_env`.

    ``param_sources`` (a recorded run's ``param_sources``) keeps an ``inline`` param
    off the command line even when a like-named option is there: the script reads it
    from ``runbase.param``, not from argv.

    >>> apply_to_argv(["python", "t.py", "--lr", "0.1", "--batch-size=8"],
    ...               {"lr": 0.01, "batch_size": 16, "seed": 1})
    (['python', 't.py', '--lr', '0.01', '--batch-size=16'], {'seed': 1})
    """
    out = list(argv)
    remaining: dict[str, Any] = {}
    for key, value in overrides.items():
        if (param_sources or {}).get(key) == "inline" or not _rewrite(out, key, value):
            remaining[key] = value
    return out, remaining


def _spellings(key: str) -> set[str]:
    return {f"--{key}", f"--{key.replace('_', '-')}", f"--{key.replace('-', '_')}"}


def _rewrite(argv: list[str], key: str, value: Any) -> bool:
    """Set every occurrence of ``key`` in ``argv`` (after the program) to ``value``."""
    names = _spellings(key)
    text = format_value(value)
    found = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, eq, _ = arg.partition("=")
        if eq and name in names:  # --lr=0.1
            argv[i] = f"{name}={text}"
            found = True
        elif eq and name == key and not arg.startswith("-"):  # lr=0.1 (Hydra style)
            argv[i] = f"{key}={text}"
            found = True
        elif arg in names:
            if _takes_value(argv, i, value):  # --lr 0.1
                argv[i + 1] = text
                i += 1
                found = True
            elif isinstance(value, bool):  # --augment, a flag: present means true
                if not value:
                    del argv[i]
                    i -= 1
                found = True
        i += 1
    return found


def _takes_value(argv: list[str], i: int, value: Any) -> bool:
    # lazy: capture.params loads json and typing; this module stays light (tracked processes)
    from runbase.capture.params import _looks_like_flag

    if i + 1 >= len(argv) or _looks_like_flag(argv[i + 1]):
        return False
    if isinstance(value, bool):
        # `--augment data.csv`: a flag and a positional argument, unless it reads as a bool
        return argv[i + 1].lower() in ("true", "false", "1", "0", "yes", "no")
    return True


def to_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables that pass ``overrides`` to a tracked command."""
    if not overrides:
        return {}
    import json  # lazy: no json at import (this module loads in every tracked process)

    from runbase.capture.params import jsonable  # lazy: capture.params loads typing

    return {ENV_VAR: json.dumps(jsonable(dict(overrides)), ensure_ascii=False)}


def unused(
    overrides: Mapping[str, Any], rewritten: Iterable[str], param_sources: Mapping[str, str]
) -> list[str]:
    """Overrides that nothing consumed: not on the command line, and no parser's
    argument (argparse, click, Hydra, ...) or ``runbase.param`` of that name was
    recorded by the run."""
    # lazy: capture.params loads json and typing; this module stays light (tracked processes)
    from runbase.capture.params import PARSERS

    done = set(rewritten) | {
        k.replace("-", "_") for k, s in param_sources.items() if s in PARSERS or s == "inline"
    }
    return [k for k in overrides if k not in done and k.replace("-", "_") not in done]


# -- the child side: applied inside the tracked Python processes -----------------------


def active() -> dict[str, Any]:
    """The overrides passed to this process (``$RUNBASE_OVERRIDES``), read once."""
    global _active
    if _active is None:
        _active = _from_env(os.environ.get(ENV_VAR))
    return _active


def _from_env(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    from runbase.core.shapes import loads  # lazy: core.shapes loads json (only with overrides)

    try:
        data = loads(text)  # never a RecursionError (TooDeep is a ValueError)
    except ValueError as e:
        _warn(f"${ENV_VAR} is not JSON ({e}); parameter overrides ignored")
        return {}
    if not isinstance(data, dict):
        _warn(f"${ENV_VAR} is not a JSON object; parameter overrides ignored")
        return {}
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _warn(message: str) -> None:
    warn_once("overrides", message)


def for_param(name: str, coded: Any) -> Any:
    """What ``runbase.param(name, coded)`` returns: the override, else ``coded``."""
    ov = active()
    key = name.replace("-", "_")
    if key not in ov:
        return coded
    try:
        return _like(ov[key], coded)
    except Exception as e:  # noqa: BLE001 - never raise into user code
        _warn(f"could not apply the override of {name!r}: {e}")
        return coded


def _like(value: Any, coded: Any) -> Any:
    """The override in the coded value's type where that is lossless (0.1 for 1 -> 1.0)."""
    if isinstance(coded, bool) or isinstance(value, bool) or value is None:
        return value
    if isinstance(coded, float) and isinstance(value, int):
        return float(value)
    if isinstance(coded, str) and not isinstance(value, str):
        return format_value(value)
    return value


def apply_to_mapping(mapping: Any) -> Any:
    """``runbase.params(config)``: set the overridden keys (``a.b.c`` for nested ones) in
    ``config``, in place when it is mutable (a dict, a Namespace), else in a new dict;
    return it."""
    ov = active()
    if not ov:
        return mapping
    try:
        return _apply_nested(mapping, ov, "")
    except Exception as e:  # noqa: BLE001 - never raise into user code
        _warn(f"could not apply parameter overrides to params(): {e}")
        return mapping


def _apply_nested(obj: Any, ov: dict[str, Any], prefix: str) -> Any:
    if isinstance(obj, Mapping):
        target: Any = obj if isinstance(obj, MutableMapping) else dict(obj)
        for k in list(target):
            target[k] = _apply_item(target[k], ov, f"{prefix}{k}")
        return target
    if type(obj).__name__ == "Namespace" and hasattr(obj, "__dict__"):
        for k, v in list(vars(obj).items()):
            setattr(obj, k, _apply_item(v, ov, f"{prefix}{k}"))
    return obj


def _apply_item(value: Any, ov: dict[str, Any], key: str) -> Any:
    if isinstance(value, Mapping) and value:
        return _apply_nested(value, ov, key + ".")
    norm = key.replace("-", "_")
    return _like(ov[norm], value) if norm in ov else value


def apply_to_namespace(parser: Any, namespace: Any) -> None:
    """The argparse hook: set each overridden destination of ``namespace``, converted
    with its argument's ``type`` as if it had been given on the command line."""
    ov = active()
    if not ov:
        return
    actions = _actions_by_dest(parser)
    for key, value in ov.items():
        action = actions.get(key)
        if action is None and not hasattr(namespace, key):
            continue
        try:
            setattr(namespace, key, _converted(action, value, getattr(namespace, key, None)))
        except Exception as e:  # noqa: BLE001 - a bad value must not stop the script
            _warn(f"could not apply the override {key}={format_value(value)}: {e}")


def _actions_by_dest(parser: Any) -> dict[str, Any]:
    """Every argument of ``parser`` and of its subcommands, by destination."""
    out: dict[str, Any] = {}
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in getattr(p, "_actions", []):
            out.setdefault(action.dest, action)
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # a subparsers action
                stack.extend(choices.values())
    return out


def _converted(action: Any, value: Any, current: Any) -> Any:
    convert = getattr(action, "type", None) if action is not None else None
    if callable(convert) and not isinstance(value, bool):
        if isinstance(value, list):
            return [convert(format_value(v)) for v in value]
        return convert(format_value(value))
    if getattr(action, "nargs", None) == 0:  # store_true & co: the value as given
        return value
    if isinstance(current, str) and not isinstance(value, str):
        return format_value(value)  # argparse gives untyped arguments as text
    return _like(value, current)
