"""Parameters: value coercion, argv parsing, and the argparse hook.

Every parameter records its source: ``inline`` (``runbase.param``), a parser of the
command line (``argparse``, and through runbase.integrations ``click``, ``typer``,
``fire``, ``jsonargparse``, ``hydra``: defaults included), ``tensorboard``
(``add_hparams``), a framework's own configuration (``lightning``, ``keras``,
``transformers``, ``sklearn``, ``xgboost``, ``lightgbm``), ``argv`` (parsed from the
command line as a fallback, for non-Python commands) or ``config`` (a YAML/TOML/JSON file named on the command line).
When a Python process of the run captured parameters with a parser, ``argv`` guesses
are dropped.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping
from enum import Enum
from typing import Any

from runbase.capture.secrets import redact_value
from runbase.core import fsname
from runbase.core.shapes import I64

# Where a parameter came from, by precedence: a source never replaces a parameter that
# one of a higher rank recorded; of equal ranks, the later one wins.
SOURCE_RANK = {
    "config": 0,
    "argv": 1,
    "tensorboard": 2,
    # a framework's own configuration, via runbase.integrations (lightning hparams,
    # keras model/optimizer config, transformers TrainingArguments, sklearn get_params,
    # xgboost/lightgbm booster params)
    "lightning": 2,
    "keras": 2,
    "transformers": 2,
    "sklearn": 2,
    "xgboost": 2,
    "lightgbm": 2,
    # the MLflow client's params in a tracked process (runbase.integrations.mlflow)
    "mlflow": 2,
    "argparse": 3,
    "click": 3,
    "typer": 3,
    "fire": 3,
    "jsonargparse": 3,
    "hydra": 3,
    "papermill": 4,  # a notebook's parameters cell (runbase.records.notebook)
    "inline": 5,
}
SOURCES = tuple(SOURCE_RANK)
# The parsers of a command line: once one of them captured params, argv guesses go.
PARSERS = frozenset(("argparse", "click", "typer", "fire", "jsonargparse", "hydra"))
# A framework's own report of its configuration (runbase.integrations). When one and
# another source give one name different values, both are kept: the bare name stays
# with the other source (what the user set: command line, config, inline; of two
# frameworks, the first), the framework's value goes under "<framework>.<name>", e.g.
# "sklearn.n_estimators" (docs/run-record.md, "Parameter names").
INTEGRATION_SOURCES = frozenset(
    (
        "tensorboard",
        "lightning",
        "keras",
        "transformers",
        "sklearn",
        "xgboost",
        "lightgbm",
        "mlflow",
    )
)
# Values larger than this are kept in full as an object by the ingester (nothing is
# lost); the params table holds a preview and the object id.
MAX_INLINE_VALUE = 16 * 1024


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def as_number(value: Any) -> Any:
    """A number of the record as a number again: :func:`jsonable` writes NaN and the
    infinities as the strings "NaN"/"Infinity"/"-Infinity" (strict JSON); other values
    come back as they are."""
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Coerce a value to JSON types (documented in docs/run-record.md).

    numbers/str/bool/None stay; NaN/inf become the strings "NaN"/"Infinity"/"-Infinity";
    numpy/torch scalars become numbers (``.item()``); paths become strings; tuples and
    sets become lists; mappings keep string keys; argparse Namespaces become dicts;
    enum members become their value; anything else becomes its ``repr``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if _depth > 20:
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, _depth + 1) for v in items]
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return jsonable(vars(value), _depth + 1)
    if isinstance(value, Enum):
        return jsonable(value.value, _depth + 1)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item(), _depth + 1)
        except Exception:
            pass
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def encode_value(key: str, value: Any, found: set[str] | None = None) -> str:
    """JSON text of a parameter value with its secrets redacted (capture.secrets
    decides on the name and the value); the values removed are added to ``found``, for
    the log scrubbers."""
    return json.dumps(
        redact_value(key, jsonable(value), found), ensure_ascii=False, allow_nan=False
    )


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (params from nested configs)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def numeric(value_json: str) -> float | None:
    """The number a JSON value represents, for filtering and sorting (bools are 0/1);
    None when it is not one a float holds (an int of 309 digits or more). Never raises:
    every write of a param calls it."""
    try:
        v = json.loads(value_json)
    except (ValueError, RecursionError):  # also an int over Python's digit limit
        return None
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:  # |int| > 1.8e308: no float; sorted as text
            return None
    if v in ("NaN", "Infinity", "-Infinity"):
        return float(v.replace("Infinity", "inf"))
    return None


def mlflow_param_value(text: str) -> Any:
    """An MLflow param (always a string) as runbase keeps it: the finite number or the
    boolean it spells when that value's JSON text is exactly ``text`` (``"0.1"``,
    ``"32"``, ``"true"``), so runbase filters and sorts on it and MLflow reads back the
    same string; any other text stays a string (``"1e-3"``, ``"True"``, ``"-0"``,
    ``"NaN"``, an int outside 64 bits). Lossless both ways. The one rule of every
    path an MLflow param takes: the server's MLflow API and the importer
    (records.external) and the mirror of a script's ``mlflow.log_param``
    (integrations.mlflow)."""
    if text in ("true", "false"):
        return text == "true"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # also an int over Python's digit limit
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    if isinstance(value, int) and not -I64 <= value < I64:
        return text  # MLflow's own stores and clients hold no wider int: kept as it came
    return value if json.dumps(value) == text else text


def parse_argv(argv: list[str]) -> dict[str, str]:
    """Fallback parameters from a command line: ``--k v``, ``--k=v``, ``k=v``, flags.

    >>> parse_argv(["train.sh", "--lr", "0.1", "epochs=3", "--fast"])
    {'lr': '0.1', 'epochs': '3', 'fast': 'true'}
    """
    out: dict[str, str] = {}
    # names and values are stored text: an argument that is not UTF-8 (a file name of
    # bytes) is kept in runbase.core.fsname's lossless stored form
    argv = [fsname.encode(a) for a in argv]
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            continue
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            key = name.replace("-", "_")
            if eq:
                out[key] = value
            elif i + 1 < len(argv) and not _looks_like_flag(argv[i + 1]):
                out[key] = argv[i + 1]
                i += 1
            else:
                out[key] = "true"
        elif "=" in arg and not arg.startswith("-"):
            name, _, value = arg.partition("=")
            if name.replace(".", "").replace("_", "").replace("-", "").isalnum():
                out[name] = value
        i += 1
    return out


def _looks_like_flag(arg: str) -> bool:
    if not arg.startswith("-"):
        return False
    try:
        float(arg)
        return False  # a negative number is a value
    except ValueError:
        return True


def typed(text: str) -> Any:
    """``'0.1'`` -> 0.1, ``'3'`` -> 3, ``'true'`` -> True; other text stays a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# -- argparse hook ------------------------------------------------------------------

_depth = threading.local()
# Set (to True) on a parser, or a parser class, whose parse is not the program's params:
# a framework's own command line (Hydra's), captured by its integration instead.
SKIP_PARSER = "_runbase_skip"


def install_argparse_hook(record: Any, override: Any = None) -> None:
    """Patch ``ArgumentParser.parse_known_args`` to report the outermost parse.

    ``record(namespace_dict)`` is called with every destination and its value,
    defaults included. Nested parses (subparsers) are part of the outer result.
    ``override(parser, namespace)``, when given, may first change the parsed values
    (parameter overrides, see runbase.capture.overrides). A parse no user code asked for (a
    launcher's, see capture.origin) is neither overridden nor recorded.
    """
    import argparse  # lazy: installing the hook is what loads argparse, not importing this

    original = argparse.ArgumentParser.parse_known_args
    if getattr(original, "_runbase_hooked", False):
        return

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        if getattr(self, SKIP_PARSER, False) or type(self).__module__.startswith("traitlets."):
            # a framework's own parser: Hydra's; traitlets' (a Jupyter kernel's command line)
            return original(self, args, namespace)
        depth = getattr(_depth, "n", 0)
        _depth.n = depth + 1
        try:
            result = original(self, args, namespace)
        finally:
            _depth.n = depth
        if depth == 0:
            # lazy: capture.origin loads sysconfig; needed once a parse has ended
            from runbase.capture.origin import stack_has_user_code

            if not stack_has_user_code():
                return result  # a launcher's own options (torchrun, loky workers, ...)
            if override is not None:
                try:
                    override(self, result[0])
                except Exception:
                    pass
            try:
                ns = result[0]
                record({k: v for k, v in vars(ns).items() if not k.startswith("_")})
            except Exception:
                pass
        return result

    parse_known_args._runbase_hooked = True  # type: ignore[attr-defined]
    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]
