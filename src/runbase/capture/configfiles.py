"""Config files named on a command line become parameters (source ``config``).

``python train.py --config cfg.yaml``, ``-c cfg.toml``, ``--model-config=m.json`` or a
positional ``params.json``: a YAML, TOML or JSON file that exists when the run starts
and holds a mapping is read and flattened to ``a.b.c`` parameters. Later files win over
earlier ones. Only the values of config-looking options (their name has ``config``,
``cfg``, ``conf``, ``params``, ``hparams``, ``settings`` in it, or is ``-c``) and
positional arguments are read, so that ``--output results.json`` (a file the run is
about to replace) is not mistaken for a config. A file over 1 MiB, with over
:data:`MAX_KEYS` keys (data, not a config), unreadable or not a mapping is skipped.
YAML needs PyYAML in runbase's Python (it usually is there); TOML needs Python 3.11+ or
``tomli``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from typing import Any

from runbase.capture.params import flatten

SUFFIXES = (".yaml", ".yml", ".toml", ".json")
MAX_BYTES = 1 << 20
MAX_KEYS = 1000
_OPTION_WORDS = (
    "config",
    "configs",
    "configuration",
    "cfg",
    "conf",
    "params",
    "hparams",
    "hyperparams",
    "settings",
)


def config_files(argv: list[str], cwd: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``[(path, flattened params)]`` for the config files on ``argv`` (``argv[0]`` is
    the program), in command-line order.

    >>> config_files(["python", "train.py", "--config", "missing.yaml"])
    []
    """
    out = []
    for arg in candidates(argv):
        path = os.path.join(cwd or os.getcwd(), os.path.expanduser(arg))
        values = read_config(path)
        if values is not None:
            out.append((arg, values))
    return out


def candidates(argv: list[str]) -> list[str]:
    """The arguments that may name a config file: values of config-looking options and
    positional arguments with a config suffix.

    >>> candidates(["python", "t.py", "--config", "a.yaml", "--out", "b.json", "c.toml",
    ...             "--cfg=d.yml", "-c", "e.json", "--lr", "0.1"])
    ['a.yaml', 'c.toml', 'd.yml', 'e.json']
    """
    out: list[str] = []
    prev_option: str | None = None  # the option the current argument may be a value of
    for arg in argv[1:]:
        if arg == "--":
            prev_option = None
            continue
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name, eq, value = arg.partition("=")
            if eq:
                if _config_option(name) and _has_suffix(value):
                    out.append(value)
                prev_option = None
            else:
                prev_option = name
            continue
        if _has_suffix(arg) and (prev_option is None or _config_option(prev_option)):
            out.append(arg)
        prev_option = None
    return out


def _config_option(option: str) -> bool:
    name = option.lstrip("-").lower().replace("-", "_")
    if option == "-c":
        return True
    return any(word in name.split("_") or name.endswith(word) for word in _OPTION_WORDS)


def _has_suffix(arg: str) -> bool:
    return arg.lower().endswith(SUFFIXES) and "://" not in arg


def _is_number(arg: str) -> bool:
    try:
        float(arg)
        return True
    except ValueError:
        return False


def read_config(path: str) -> dict[str, Any] | None:
    """The flattened params of a YAML/TOML/JSON file, or None (not a config)."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_BYTES:
            return None
        with open(path, "rb") as f:
            data = f.read()
        parsed = _parse(path.lower(), data)
    except Exception:  # noqa: BLE001 - unreadable, invalid or no parser: not a config
        return None
    if not isinstance(parsed, Mapping) or not parsed:
        return None
    values = flatten({str(k): v for k, v in parsed.items()})
    if len(values) > MAX_KEYS:
        return None
    return values


def _parse(lower_path: str, data: bytes) -> Any:
    if lower_path.endswith(".json"):
        return json.loads(data)
    if lower_path.endswith(".toml"):
        try:
            toml = importlib.import_module("tomllib")
        except ImportError:  # Python 3.10
            toml = importlib.import_module("tomli")
        return toml.loads(data.decode("utf-8"))
    import yaml  # lazy: PyYAML is optional, needed only for a YAML config file

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader
