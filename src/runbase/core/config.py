"""The user's runbase config file: servers' tokens, named remotes, secret-file patterns.

JSON at ``$RUNBASE_CONFIG``, else ``$XDG_CONFIG_HOME/runbase/config.json``
(``~/.config/runbase/config.json``), written atomically with mode 0600 because it holds
tokens::

    {"servers": {"https://runbase.example.com": {"token": "rbt_…"}},
     "remotes": {"team": {"url": "https://runbase.example.com", "project": "vision"}},
     "publish": "team",
     "secret_files": ["*.credentials"]}

Stdlib only and below every package that reads it: remote sync (runbase.remote.client)
and the capture of secret files (runbase.capture.secretfiles).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from runbase.errors import UsageError


def config_path() -> Path:
    explicit = os.environ.get("RUNBASE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runbase" / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UsageError(f"unreadable runbase config {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def save_config(data: dict[str, Any]) -> Path:
    """Write the config atomically, readable by its owner only (it holds tokens)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import tempfile  # lazy: only writing the config needs it (reading is every command's)

    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def publish_default() -> str | None:
    """The remote runs publish to when nothing else says (the config's ``"publish"``)."""
    value = load_config().get("publish")
    return value if isinstance(value, str) else None
