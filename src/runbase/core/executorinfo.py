"""What ran a run: the run record's ``executor`` (docs/run-record.md).

``{"kind": "local", "host": HOST}`` for a run ``runbase run`` started on this machine;
``{"kind": "ray", "host": HOST, "node_id": ID, "attempt": N, "retry_of": RUN}`` for a
trial a Ray executor ran (``attempt`` 0-based; ``retry_of``: the run a lost node took
with it, this run being its retry). The executor hands it to ``runbase run`` in the
environment variable :data:`ENV_VAR`; stdlib only, so the supervisor, the records and
bundle validation share one check.
"""

from __future__ import annotations

import json
from typing import Any

from runbase.core.ids import is_valid_id

ENV_VAR = "RUNBASE_EXECUTOR"
KINDS = ("local", "ray")
_MAX_TEXT = 256  # a host name, a Ray node id (56 hex digits)
_MAX_ATTEMPT = 1 << 20


def problem(value: Any) -> str | None:
    """Why ``value`` is not an executor object, or None when it is one."""
    if not isinstance(value, dict):
        return "must be a JSON object"
    if value.get("kind") not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    for key in ("host", "node_id"):
        text = value.get(key)
        if text is not None and (not isinstance(text, str) or not 0 < len(text) <= _MAX_TEXT):
            return f"{key} must be a string of 1 to {_MAX_TEXT} characters"
    attempt = value.get("attempt")
    if attempt is not None and (type(attempt) is not int or not 0 <= attempt < _MAX_ATTEMPT):
        return "attempt must be a whole number from 0"
    retry_of = value.get("retry_of")
    if retry_of is not None and (not isinstance(retry_of, str) or not is_valid_id(retry_of)):
        return "retry_of must be a run id"
    unknown = sorted(set(value) - {"kind", "host", "node_id", "attempt", "retry_of"})
    if unknown:
        return f"unknown key {unknown[0]!r}"
    return None


def clean(value: Any) -> dict[str, Any] | None:
    """``value`` without its null fields when it is an executor object, else None."""
    if problem(value) is not None:
        return None
    return {k: v for k, v in value.items() if v is not None}


def parse(text: str | None) -> dict[str, Any] | None:
    """The executor object of ``text`` (JSON, as :data:`ENV_VAR` holds it), or None when
    ``text`` is empty or not one (the caller warns)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return clean(value)


def describe(info: dict[str, Any] | None) -> str | None:
    """One line for ``runbase show``: ``ray node 1a2b3c4d on HOST (attempt 2)`` (a
    retry: ``attempt`` 1); None
    for a local run or none (the host line says where it ran)."""
    if not info or info.get("kind") != "ray":
        return None
    text = "ray"
    if info.get("node_id"):
        text += f" node {str(info['node_id'])[:8]}"
    if info.get("host"):
        text += f" on {info['host']}"
    if info.get("attempt"):  # 0-based: the second attempt reads "attempt 2"
        text += f" (attempt {int(info['attempt']) + 1})"
    if info.get("retry_of"):
        text += f", retry of {str(info['retry_of'])[:10]}"
    return text


def retry_of(info: Any) -> str | None:
    """The run that run's executor ``info`` says it retries (None: a first attempt)."""
    of = info.get("retry_of") if isinstance(info, dict) else None
    return of if isinstance(of, str) else None


def retry_chain(first: str, retries: dict[str, str | None]) -> list[str]:
    """``first`` and its retries in order, from ``retries`` (run id -> the run it
    retries, :func:`retry_of`): each next attempt the one retrying the one before."""
    chain = [first]
    while True:
        nxt = [rid for rid, of in retries.items() if of == chain[-1] and rid not in chain]
        if not nxt:
            return chain
        chain.append(nxt[0])
