"""``runbase demo``: an example project with a few tracked runs."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Where to create the example project (default: a new temp dir).",
)
@click.pass_context
def demo(ctx: click.Context, directory: str | None) -> None:
    """Create an example project, run a few tracked runs, show the table."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking.demo import run_demo

    run_demo(directory, echo=click.echo)


COMMANDS = (demo,)
