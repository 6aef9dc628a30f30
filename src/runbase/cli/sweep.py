"""``runbase sweep``: one command over a grid or random sample of parameters."""

from __future__ import annotations

import sys
from typing import Any

import click

from runbase.cli._common import bad_input, parse_tags


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--grid",
    "-g",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Try each value (repeatable: a product).",
)
@click.option(
    "--random",
    "-r",
    "random_",
    multiple=True,
    metavar="KEY=DIST",
    help="Sample uniform(a,b), loguniform(a,b), int(a,b) or choice(v1,v2,...) (repeatable).",
)
@click.option(
    "-n",
    "samples",
    type=int,
    help="Random samples per grid point (default: 10 with --random, else 1).",
)
@click.option("--seed", type=int, help="Seed of the random sampling (default: a new one, printed).")
@click.option("--jobs", "-j", default=1, show_default=True, help="How many runs at a time.")
@click.option("--name", help="Name the runs NAME-1, NAME-2, ...")
@click.option(
    "--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Tag every run (repeatable)."
)
@click.option("--no-code", is_flag=True, help="Do not snapshot the code.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the parameter combinations; run nothing (no COMMAND needed).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sweep(
    ctx: click.Context,
    grid: tuple[str, ...],
    random_: tuple[str, ...],
    samples: int | None,
    seed: int | None,
    jobs: int,
    name: str | None,
    tags: tuple[str, ...],
    no_code: bool,
    dry_run: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND once per parameter combination, JOBS at a time, as one sweep:
    runbase sweep --grid lr=0.1,0.01 -j 2 -- python train.py"""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking import sweep as sw

    seed = sw.new_seed() if seed is None else seed
    with bad_input():
        trials = sw.combinations(sw.parse_grid(grid), sw.parse_random(random_), samples, seed)
    if dry_run:
        for i, t in enumerate(trials, 1):
            click.echo(f"[{i}] {sw.Trial(i, t).describe()}")
        return
    with bad_input():
        result = sw.run_sweep(
            list(command),
            trials,
            jobs=jobs,
            name=name,
            tags=parse_tags(tags),
            store=ctx.obj["store"],
            capture_code=not no_code,
            on_start=lambda r: click.echo(
                f"sweep {r.sweep_id}: {len(trials)} runs, {jobs} at a time"
                + (f" (seed {seed})" if random_ else ""),
                err=True,
            ),
            on_done=_echo_trial,
        )
    _echo_sweep(ctx, result)


def _echo_trial(trial: Any, done: int, total: int) -> None:
    # [runs ended/runs]: with -j > 1, trials end in any order; #N is the trial's index
    status = "finished" if trial.ok else f"failed (exit {trial.returncode})"
    click.echo(f"[{done}/{total}] trial {trial.index} {status}: {trial.describe()}", err=True)
    last = trial.stderr_tail.strip().splitlines()[-1:] if trial.stderr_tail else []
    for line in last:
        click.echo(f"    {line}", err=True)


def _echo_sweep(ctx: click.Context, result: Any) -> None:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.read import list_runs, with_sweep
    from runbase.render.table import render, runs_table, terminal_width
    from runbase.store import Store
    from runbase.tracking.sweep import in_trial_order

    store = Store.open(result.store_root)
    rows = in_trial_order(list_runs(store, with_sweep(None, result.sweep_id), "started_at", None))
    if rows:
        headers, table = runs_table(store, rows)
        click.echo(render(headers, table, terminal_width(sys.stdout.isatty())))
    failed, not_run = len(result.failed), len(result.not_run)
    finished = len(result.trials) - failed - not_run
    click.echo(
        f"sweep {result.sweep_id}: {finished} finished, {failed} failed"
        + (f", {not_run} not run (interrupted)" if result.interrupted else "")
        + f" - runbase ls --sweep {result.sweep_id}"
    )
    ctx.exit(130 if result.interrupted else 1 if failed else 0)


COMMANDS = (sweep,)
