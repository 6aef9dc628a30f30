"""The ``runbase`` command line: thin wrappers over the library.

Each module of this package defines one group of commands and knows nothing of the
``runbase`` group; this module builds that group from their ``COMMANDS``. Nothing in
runbase imports ``runbase.cli`` (it is the top layer: docs/architecture.md).

Start-up matters (``runbase --help`` and every command pay it): the command modules
import click and their shared helpers only; each command imports what it runs.
"""

from __future__ import annotations

from typing import Any

import click

from runbase.cli import compare, data, demo, remote, reproduce, runs, server, store, sweep, ui
from runbase.core.version import __version__
from runbase.errors import RunbaseError
from runbase.render import progress as progress_bar

__all__ = ["main"]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunbaseError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="RUNBASE_DIR",
    metavar="PATH",
    help="The store directory (default: .runbase at the project root).",
)
# the version as a constant: asking the installed metadata for it (click's default)
# imports importlib.metadata, email and zipfile, which made --version the slowest command
@click.version_option(__version__)
@click.pass_context
def main(ctx: click.Context, store: str | None) -> None:
    """runbase: every run recorded - code, data, environment, parameters, metrics."""
    ctx.obj = {"store": store}
    progress_bar.install()  # hashing/storing many bytes draws a bar on a terminal


for _module in (runs, data, store, sweep, reproduce, compare, ui, demo, remote, server):
    for _command in _module.COMMANDS:
        main.add_command(_command)
