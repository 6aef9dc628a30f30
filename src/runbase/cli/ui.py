"""``runbase ui``: the local web UI."""

from __future__ import annotations

import threading
import time
from typing import Any

import click

from runbase.cli._common import open_store


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8765, show_default=True, help="The port to listen on.")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also serve requests for this host name (IP addresses and localhost always are; "
    "others get 403, against DNS rebinding). Repeatable; '*' turns the check off.",
)
@click.pass_context
def ui(
    ctx: click.Context, host: str, port: int, no_browser: bool, allowed_hosts: tuple[str, ...]
) -> None:
    """Browse the runs in a web browser: tables, charts, code, data, lineage, comparisons."""
    try:
        # lazy: uvicorn is the optional ui extra (and slow to import)
        import uvicorn

        from runbase.web.app import create_app  # lazy: FastAPI, of the ui extra
    except ImportError as e:
        raise click.ClickException(
            f"runbase ui needs the ui extra ({e.name or e} is missing): pip install 'runbase[ui]'"
        ) from e
    server = uvicorn.Server(
        uvicorn.Config(
            # the Host header is checked: a web page cannot reach the UI by DNS rebinding
            create_app(str(open_store(ctx).root), allowed_hosts=(host, *allowed_hosts)),
            host=host,
            port=port,
            log_level="warning",
        )
    )
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    click.echo(f"runbase ui: {url} (Ctrl-C stops it)", err=True)
    if not no_browser:  # once the server listens
        threading.Thread(target=_open_browser, args=(server, url), daemon=True).start()
    server.run()


def _open_browser(server: Any, url: str) -> None:
    import webbrowser  # lazy: only when a browser is opened

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)


COMMANDS = (ui,)
