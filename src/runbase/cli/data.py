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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: the lineage graph, and a model version's details (docs/trace.md).",
)
@click.pass_context
def trace(ctx: click.Context, target: str, as_json: bool) -> None:
    """Which run produced TARGET's exact bytes, from which inputs, recursively. TARGET
    is a path, a blake3:… id, or a model version (churn@production, churn@v1.2.0):
    then also the version and its run's code, params, metrics and environment."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.trace import render_trace, trace_view

    view = trace_view(open_store(ctx), target)
    if as_json:
        echo_json(view)  # strict JSON whatever the store holds (NaN/inf as strings)
    else:
        click.echo(render_trace(view))


COMMANDS = (
    checkout,
    trace,
)
