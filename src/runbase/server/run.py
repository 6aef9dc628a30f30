"""``runbase server``: check the database, then serve with uvicorn (N worker processes)."""

from __future__ import annotations

import os

from runbase.server import logs
from runbase.server.service import Server, ServerConfig


def serve(config: ServerConfig, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted. The database is checked here first, so a wrong URL or a
    schema that needs ``runbase server migrate`` fails before any worker starts."""
    import uvicorn  # lazy: `runbase server --help` and migrate need no web server

    Server(config).close()
    # the workers build their app from the environment (uvicorn starts them fresh)
    os.environ["RUNBASE_SERVER_DB"] = config.db
    os.environ["RUNBASE_SERVER_OBJECTS"] = config.objects
    os.environ["RUNBASE_SERVER_SECURE"] = "1" if config.secure_cookies else "0"
    logs.configure()
    uvicorn.run(
        "runbase.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours is structured and leaves out query strings
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_level="info",
    )
