"""Params sent to the active run, and the secret values scrubbed from what it records.

Below the API (``runbase.param``/``params``/``init(params=...)``) and the child
bootstrap (what argparse, click, Hydra... parsed, through ``record_parsed``), which
both send params here; the notebook's papermill cells too. Values a param redacts
become secrets scrubbed from everything recorded after (tracebacks, console capture,
``runbase run``'s logs): the API registers what its console captures need to hear
(:func:`on_new_secrets`), so nothing here calls up into it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runbase.core._safe import warn_once
from runbase.errors import UsageError
from runbase.tracking import tracker as _tracker

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_secret_values: set[str] | None = None
_listeners: list[Callable[[set[str]], None]] = []


def known_secrets() -> set[str]:
    """The secret values of this process (its environment's, and those found since):
    one set, shared by every recorder that scrubs."""
    global _secret_values
    if _secret_values is None:
        # lazy: secrets/withhold load re, json and typing: not at every tracked child's start
        from runbase.capture.secrets import known_secret_values
        from runbase.capture.withhold import guard

        _secret_values = known_secret_values()
        guard(_secret_values)  # files holding one are not stored (its job runs' outputs)
    return _secret_values


def on_new_secrets(listener: Callable[[set[str]], None]) -> None:
    """Call ``listener`` with the values found secret from now on (the API's consoles)."""
    _listeners.append(listener)


def add_secrets(values: set[str]) -> None:
    """Values redacted from params are scrubbed from everything recorded after: this
    process's tracebacks and console capture, and ``runbase run``'s logs."""
    from runbase.capture.secrets import report_secrets  # lazy: as in known_secrets

    known_secrets().update(values)  # the set the notebook recorder holds, too
    for listener in _listeners:
        listener(values)
    report_secrets(values)


def record_params(
    values: Mapping[str, Any] | Any, source: str, flatten: bool = False, weak: bool = False
) -> None:
    """Send parameters to the run (redacted, coerced to JSON; see docs/run-record.md),
    starting one if there is none (as ``runbase.log`` does)."""
    try:
        if not isinstance(values, Mapping):
            if hasattr(values, "__dict__"):  # argparse.Namespace, simple objects
                values = vars(values)
            else:
                raise UsageError(f"params() takes a mapping, got {type(values).__name__}")
        # lazy: capture.params loads json and enum; a tracked child pays at its first param
        from runbase.capture import params as _params
        from runbase.capture.secrets import scrub

        if flatten:
            values = _params.flatten(values)
        # an active tracker is a started run (init() itself may still be starting it)
        if not _tracker.start_run():
            return
        t = _tracker.active()
        if t is None:
            return
        secrets = known_secrets()
        found: set[str] = set()
        for key, value in values.items():
            text = _params.encode_value(str(key), value, found)
            if secrets:
                text = scrub(text, secrets)
            if weak:
                t.event("param", key=str(key), value=text, source=source, weak=True)
            else:
                t.event("param", key=str(key), value=text, source=source)
        if found - secrets:
            add_secrets(found - secrets)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001
        warn_once("params", f"could not record params: {e}")


def record_parsed(values: object, source: str, flatten: bool = False) -> None:
    """Record the params a parser of the command line (argparse, click, Hydra, ...) gave
    this process; nothing when the process has no active run (after ``finish()``)."""
    if _tracker.active() is None:
        return
    # The command's own Python process sets the run's parsed params; a Python script
    # it starts (an evaluation step, say) only fills in keys that are not set yet.
    top = os.environ.get("RUNBASE_SUPERVISOR_PID") in (None, str(os.getppid()))
    record_params(values, source=source, flatten=flatten, weak=not top)
