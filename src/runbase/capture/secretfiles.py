"""Files that commonly hold credentials: one policy for the code snapshot and for data.

``.env``, ``client.pem``, ``id_rsa``, ``*.key``, ``credentials.json``, ``.netrc``,
``.pgpass``, ... are never stored: the code snapshot leaves them out, and a run that
reads or writes one records it as an input/output by name and hash only (``stored``
false, so it is never pushed), which ``runbase show`` reports as withheld.

The list is extended per project (``pyproject.toml``)::

    [tool.runbase]
    secret-files = ["*.secret", "vault/*"]

or per user (``"secret_files": [...]`` in the runbase config, see runbase.core.config). A
pattern without ``/`` matches a file's name in any directory; one with ``/`` matches
its path relative to the project root (fnmatch syntax, ``*`` crosses ``/``).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import os
import re
from typing import Any

from runbase.core.config import load_config

# documented in docs/security.md ("Secret files")
DEFAULT_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".htpasswd",
    ".dockercfg",
    ".git-credentials",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.ppk",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "credentials",
    "credentials.json",
    "secrets.*",
)
MAX_PATTERNS = 200


def is_secret_file(path: str, project_root: str | None = None) -> bool:
    """Whether ``path`` (relative to ``project_root``, or absolute) may hold secrets.

    >>> is_secret_file("conf/.env"), is_secret_file("keys/client.pem"), is_secret_file("a.csv")
    (True, True, False)
    """
    rel = _relative(path, project_root)
    names, paths = _matchers(_root_key(project_root))
    return bool(names.match(rel.rsplit("/", 1)[-1]) or (paths and paths.match(rel)))


def _relative(path: str, project_root: str | None) -> str:
    if project_root and os.path.isabs(path):
        root = project_root.rstrip("/") + "/"
        if path.startswith(root):
            return path[len(root) :]
    return path


def _root_key(project_root: str | None) -> str:
    return os.path.abspath(project_root) if project_root else ""


@functools.lru_cache(maxsize=16)
def _matchers(project_root: str) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    """(file-name patterns, relative-path patterns) in effect for a project."""
    names: list[str] = []
    paths: list[str] = []
    for p in (*DEFAULT_PATTERNS, *extra_patterns(project_root or None)):
        (paths if "/" in p else names).append(fnmatch.translate(p))
    return re.compile("|".join(names)), re.compile("|".join(paths)) if paths else None


def extra_patterns(project_root: str | None) -> list[str]:
    """The patterns a project's ``pyproject.toml`` and the user's config add."""
    out = _valid(_user_config().get("secret_files"))
    if project_root:
        out += _valid(_pyproject(project_root).get("secret-files"))
    return out[:MAX_PATTERNS]


def _valid(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [p.strip().lstrip("/") for p in value if isinstance(p, str) and p.strip()]


def _user_config() -> dict[str, Any]:
    try:
        return load_config()
    except Exception:  # noqa: BLE001 - an unreadable config must not stop a run
        return {}


def _pyproject(project_root: str) -> dict[str, Any]:
    """``[tool.runbase]`` of the project's pyproject.toml ({} without one, or without a
    TOML parser: Python 3.10 without ``tomli``)."""
    try:
        with open(os.path.join(project_root, "pyproject.toml"), "rb") as f:
            data = f.read(1 << 20)
        try:
            toml = importlib.import_module("tomllib")
        except ImportError:
            toml = importlib.import_module("tomli")
        tool = toml.loads(data.decode("utf-8")).get("tool", {}).get("runbase", {})
    except Exception:  # noqa: BLE001 - no file, no parser, invalid TOML: the defaults hold
        return {}
    return tool if isinstance(tool, dict) else {}
