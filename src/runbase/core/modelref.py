"""Names, versions and references of the model registry (docs/models.md).

A model name and a stage name follow GTO's rule for artifact names without its ``/``
(lower-case letters, digits, ``-`` and ``_``), so every name we accept is also a valid
GTO tag (``churn@v1.2.0``, ``churn#production#3``). Versions are SemVer
``vMAJOR.MINOR.PATCH``, as GTO writes them. A reference names one version:

- ``NAME@v1.2.0``: that version;
- ``NAME@latest``: the highest version;
- ``NAME@STAGE``: the version the stage holds now.

Stdlib only: the CLI parses references before it opens a store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from runbase.errors import UsageError

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,98}[a-z0-9])?$")
VERSION_RE = re.compile(r"^v?(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")
BUMPS = ("major", "minor", "patch")
# words the API puts where a model name goes (``/api/models/verify``, ``/api/models/requests/ID``)
RESERVED = frozenset({"verify", "resolve", "requests", "events"})
LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference; ``kind`` is ``version``, ``latest`` or ``stage``."""

    name: str
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}@{self.value}"


def check_name(name: object) -> str:
    """``name`` if it can name a model, else a UsageError saying what can."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"bad model name {name!r}: use lower-case letters, digits, '-' and '_' "
            "(at most 100, starting and ending with a letter or digit)"
        )
    if name in RESERVED:
        raise UsageError(f"{name!r} cannot name a model: the registry's API uses the word")
    return name


def check_stage(stage: object) -> str:
    """``stage`` if it can name a stage: a model name that is neither a version nor
    ``latest`` (both mean something else after ``@``)."""
    if not isinstance(stage, str) or not NAME_RE.match(stage):
        raise UsageError(
            f"bad stage name {stage!r}: use lower-case letters, digits, '-' and '_' "
            "(e.g. production, staging)"
        )
    if stage == LATEST or VERSION_RE.match(stage):
        raise UsageError(f"{stage!r} cannot name a stage: it reads as a version")
    return stage


def parse_version(text: object) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of ``v1.2.0`` or ``1.2.0``."""
    m = VERSION_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise UsageError(f"bad version {text!r}: use vMAJOR.MINOR.PATCH, e.g. v1.2.0")
    return int(m[1]), int(m[2]), int(m[3])


def format_version(v: tuple[int, int, int]) -> str:
    return f"v{v[0]}.{v[1]}.{v[2]}"


def normalize_version(text: object) -> str:
    """``v1.2.0`` for ``1.2.0`` or ``v1.2.0``."""
    return format_version(parse_version(text))


def next_version(existing: Iterable[str], bump: str = "patch") -> str:
    """The version after the highest of ``existing``: the first is ``v0.0.1`` (patch),
    ``v0.1.0`` (minor) or ``v1.0.0`` (major), as GTO numbers them."""
    if bump not in BUMPS:
        raise UsageError(f"bad bump {bump!r}: use one of {', '.join(BUMPS)}")
    parsed = [parse_version(v) for v in existing]
    major, minor, patch = max(parsed) if parsed else (0, 0, 0)
    if bump == "major":
        return format_version((major + 1, 0, 0))
    if bump == "minor":
        return format_version((major, minor + 1, 0))
    return format_version((major, minor, patch + 1))


def parse_ref(text: object) -> ModelRef | None:
    """The reference ``text`` spells, or None when it is not shaped like one (a run id,
    a path, a run name): callers then read it as what it otherwise is."""
    if not isinstance(text, str) or text.count("@") != 1:
        return None
    name, _, value = text.partition("@")
    if not NAME_RE.match(name) or not value:
        return None
    if value == LATEST:
        return ModelRef(name, "latest", LATEST)
    if VERSION_RE.match(value):
        return ModelRef(name, "version", normalize_version(value))
    if NAME_RE.match(value):
        return ModelRef(name, "stage", value)
    return None


def require_ref(text: str) -> ModelRef:
    """``parse_ref`` or a UsageError saying how a reference is written."""
    ref = parse_ref(text)
    if ref is None:
        raise UsageError(
            f"bad model reference {text!r}: use NAME@vX.Y.Z, NAME@latest or NAME@STAGE"
        )
    return ref
