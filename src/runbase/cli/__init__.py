"""The ``runbase`` command line: thin wrappers over the library.

Each module of this package defines one group of commands and knows nothing of the
``runbase`` group; this module builds that group from their ``COMMANDS``. Nothing in
runbase imports ``runbase.cli`` (it is the top layer: docs/architecture.md).

Start-up matters (every command pays it): a command's module is imported when that
command runs (``runbase run`` loads cli.runs alone) or when ``--help`` lists them all;
``runbase --version`` loads none. The command modules import click and their shared
helpers only; each command imports what it runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from runbase.core.version import __version__
from runbase.errors import RunbaseError

__all__ = ["main"]

# command -> the module of this package that defines it (in its COMMANDS);
# tests/test_architecture.py checks this table against the modules
COMMANDS: dict[str, str] = {
    **dict.fromkeys(("init", "run", "ls", "show", "logs", "metrics"), "runs"),
    **dict.fromkeys(("checkout", "trace"), "data"),
    **dict.fromkeys(("fsck", "gc", "du"), "store"),
    "sweep": "sweep",
    "reproduce": "reproduce",
    "explain": "explain",
    **dict.fromkeys(("diff", "importance", "report"), "compare"),
    "ui": "ui",
    "demo": "demo",
    **dict.fromkeys(("login", "remote", "push", "pull", "search"), "remote"),
    "server": "server",
    "views": "views",
    "model": "models",
    **dict.fromkeys(("import", "export"), "interop"),
}


class _Group(click.Group):
    """The ``runbase`` group: commands loaded on first use, runbase errors as click's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        commands = import_module(f"{__name__}.{module}").COMMANDS
        return next(c for c in commands if c.name == cmd_name)

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
    # lazy: --help and --version exit before this runs and need no progress bar
    from runbase.render import progress as progress_bar

    ctx.obj = {"store": store}
    progress_bar.install()  # hashing/storing many bytes draws a bar on a terminal
