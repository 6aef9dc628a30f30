"""``runbase checkout / trace``: a run's files back on disk, and where bytes came from."""

from __future__ import annotations

import click

from runbase.cli._common import echo_json, open_store


@click.command()
@click.argument("run_ref")
@click.option(
    "--into",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write.",
)
@click.option("--code", "code_only", is_flag=True, help="Only the code.")
@click.option("--data", "data_only", is_flag=True, help="Only the data inputs.")
@click.option("--outputs", is_flag=True, help="Also the run's outputs.")
@click.option("--force", is_flag=True, help="Overwrite local files that differ.")
@click.pass_context
def checkout(
    ctx: click.Context,
    run_ref: str,
    into: str,
    code_only: bool,
    data_only: bool,
    outputs: bool,
    force: bool,
) -> None:
    """Restore a run's code and inputs (and outputs) at their recorded paths."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.checkout import checkout as do_checkout
    from runbase.records.read import resolve

    store = open_store(ctx)
    code, data = (True, True) if code_only == data_only else (code_only, data_only)
    report = do_checkout(
        store, resolve(store, run_ref), into, code=code, data=data, outputs=outputs, force=force
    )
    click.echo(
        f"{len(report.written)} files written, {len(report.unchanged)} already up to date in {into}"
    )
    for path, why in report.not_restorable:
        click.echo(f"  not restored: {path} ({why})", err=True)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage graph as JSON.")
@click.pass_context
def trace(ctx: click.Context, target: str, as_json: bool) -> None:
    """Which run produced TARGET's exact bytes (a path or blake3:… id), from which inputs."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.lineage import render_tree
    from runbase.records.lineage import trace as do_trace

    graph = do_trace(open_store(ctx), target)
    if as_json:
        echo_json(graph)  # strict JSON whatever the store holds (NaN/inf as strings)
    else:
        click.echo(render_tree(graph))


COMMANDS = (
    checkout,
    trace,
)
