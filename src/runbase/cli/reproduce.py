"""``runbase reproduce``: re-run a run from its record and say whether it reproduced."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from runbase.cli._common import echo_json, open_store, parse_overrides, pull_remote_ref
from runbase.errors import RunbaseError


@click.command()
@click.argument("run_ref")
@click.option(
    "--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="Override a parameter."
)
@click.option(
    "--into",
    type=click.Path(file_okay=False),
    help="Materialize here (default: under .runbase/reproduce/).",
)
@click.option(
    "--env",
    "env_mode",
    type=click.Choice(["current", "venv"]),
    default="current",
    show_default=True,
    help="Run in the current environment, or a virtualenv with the recorded package versions.",
)
@click.option("--rtol", type=click.FloatRange(min=0), default=0.0, help="Relative tolerance.")
@click.option("--atol", type=click.FloatRange(min=0), default=0.0, help="Absolute tolerance.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_context
def reproduce(
    ctx: click.Context,
    run_ref: str,
    params: tuple[str, ...],
    into: str | None,
    env_mode: str,
    rtol: float,
    atol: float,
    as_json: bool,
) -> None:
    """Re-run RUN (a local run, REMOTE:RUN or a run's URL on a team server: pulled with
    its data first) from its record (code and data restored) and say whether it
    reproduced: exit 0 if every metric that measures the result matches within
    tolerance (timing metrics are not compared), 1 if it diverged, 3 if there was
    nothing to compare, 4 if -p changed it by request."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.diff import render as render_diff
    from runbase.tracking.reproduce import EXIT_CODES, render
    from runbase.tracking.reproduce import reproduce as do_reproduce

    overrides = parse_overrides(params)
    try:  # exit 1 means "diverged": any other failure exits 2
        # --json: stdout carries the JSON alone; the command's output goes to stderr
        with _stdout_to_stderr(as_json):
            store = open_store(ctx, create=True)
            run_ref = pull_remote_ref(store, run_ref)
            result = do_reproduce(
                store,
                run_ref,
                overrides,
                into,
                env_mode,
                rtol,
                atol,
                log=lambda line: click.echo(line, err=True),
            )
    except RunbaseError as e:
        raise click.UsageError(str(e)) from e
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(render(result, sys.stdout.isatty()))
        if result.diff is not None:  # tracking renders no diff: render sits above it
            click.echo("")
            click.echo(render_diff(result.diff, sys.stdout.isatty()))
    ctx.exit(EXIT_CODES[result.verdict.outcome])


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Point file descriptor 1 at stderr while a command runs under us, so a child
    process (and anything else) writing to stdout cannot mix with a --json answer."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


COMMANDS = (reproduce,)
