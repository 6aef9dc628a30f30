"""Which remote a run publishes to, checked before the run starts.

Apart from remote.publish (the publisher, which loads the bundle and sync code) so
that ``runbase.init()`` and ``runbase run`` check the target without loading them, and
without the HTTP client when no remote is named (the common case).
"""

from __future__ import annotations

import os

from runbase.core.config import publish_default
from runbase.errors import UsageError


def resolve_target(name: str | None) -> str | None:
    """The remote a run publishes to: ``name``, else ``$RUNBASE_PUBLISH``, else the
    config's ``"publish"``; ``"-"`` or nothing: none. Checked before the run starts
    (an unknown remote or one not logged in raises UsageError: fail loudly then)."""
    name = name or os.environ.get("RUNBASE_PUBLISH") or publish_default()
    if not name or name == "-":
        return None
    # lazy: the HTTP client (http.client, ssl, email) loads only when a run publishes
    from runbase.remote.client import get_remote

    remote = get_remote(name)
    if not remote.token:
        raise UsageError(f"cannot publish to {name}: not logged in (runbase login {remote.url})")
    remote.client()  # refuses a token over plain http to another host, now
    return name
