"""``runbase init / run / ls / show / logs / metrics``: making and reading runs."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from runbase.cli._common import bad_input, echo_json, open_store, parse_overrides, parse_tags
from runbase.errors import UsageError


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the store (.runbase/ at the project root)."""
    store = open_store(ctx, create=True)
    click.echo(f"runbase store at {store.root}")


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--name", "-n", help="A human name for the run.")
@click.option(
    "--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the run (repeatable)."
)
@click.option("--no-code", is_flag=True, help="Do not snapshot the code.")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="PATH",
    help="Declare a data input (file, directory or URL; repeatable).",
)
@click.option(
    "--output",
    "-o",
    "outputs",
    multiple=True,
    metavar="PATH",
    help="Declare a data output (repeatable).",
)
@click.option(
    "--hash-only", is_flag=True, help="Hash data, keep no copies (data too large to store)."
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a parameter: argparse (on the command line or not) or runbase.param (repeatable).",
)
@click.option(
    "--no-integrations",
    is_flag=True,
    help="Do not hook frameworks (TensorBoard, Lightning, Keras, ...): runbase.integrations.",
)
@click.option(
    "--system-interval",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Sample CPU, memory, disk, network and GPU metrics (sys/*) this often; 0: off. "
    "[default: $RUNBASE_SYSTEM_INTERVAL, else 5]",
)
@click.option(
    "--publish",
    metavar="REMOTE",
    envvar="RUNBASE_PUBLISH",
    help='Stream the run to this remote while it runs (default: the config\'s "publish"; '
    "'-': do not).",
)
@click.option("--sweep-id", hidden=True, help="The sweep this run belongs to (runbase sweep).")
@click.option(
    "--spec",
    "spec_file",
    hidden=True,
    type=click.Path(dir_okay=False),
    help="A JSON file of run options (runbase explain's hybrids); the options above go on top.",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    envvar="RUNBASE_QUIET",
    help="No closing line on stderr (run id, name, status). [env: RUNBASE_QUIET=1]",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.pass_context
def run(
    ctx: click.Context,
    name: str | None,
    tags: tuple[str, ...],
    no_code: bool,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    hash_only: bool,
    params: tuple[str, ...],
    no_integrations: bool,
    system_interval: float | None,
    publish: str | None,
    sweep_id: str | None,
    spec_file: str | None,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a tracked run: runbase run -- python train.py --lr 0.1"""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.integrations import ENV_VAR as INTEGRATIONS
    from runbase.remote.target import resolve_target
    from runbase.tracking.executor import read_run_spec
    from runbase.tracking.supervisor import RunOptions
    from runbase.tracking.supervisor import run as run_command

    with bad_input():
        spec = read_run_spec(spec_file) if spec_file else {}
    opts = RunOptions(
        name=name or spec.get("name"),
        tags={**spec.get("tags", {}), **parse_tags(tags)},
        store=ctx.obj["store"],
        capture_code=not no_code,
        inputs=list(inputs),
        outputs=list(outputs),
        hash_only=hash_only,
        overrides={**spec.get("overrides", {}), **parse_overrides(params)},
        sweep_id=sweep_id,
        system_interval=system_interval,
        extra_env={**spec.get("extra_env", {}), **({INTEGRATIONS: "0"} if no_integrations else {})},
        publish=resolve_target(publish),  # checked now, before the run starts
        code_record=spec.get("code_record"),
        project_root=spec.get("project_root"),
        param_sources=spec.get("param_sources", {}),
        reproduces=spec.get("reproduces"),
        run_id=spec.get("run_id"),
    )
    outcome = run_command(list(command), opts)
    if not quiet:  # on stderr: the command's stdout stays exactly its own
        click.echo(_run_closing_line(ctx, outcome), err=True)
    ctx.exit(outcome.shell_code)


def _run_closing_line(ctx: click.Context, outcome: Any) -> str:
    """``runbase: run 0KZ3… brisk-heron-17 finished (exit 0) - runbase show 0KZ3…``"""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.read import load_row
    from runbase.store import Store

    short = outcome.run_id[:10]
    name = ""
    with contextlib.suppress(Exception):  # the line must never fail the run's exit status
        store = Store.open(ctx.obj["store"])
        try:
            name = f" {load_row(store, outcome.run_id)['name']}"
        finally:
            store.close()
    status = outcome.status
    if outcome.exit_code is not None:
        status += f" (exit {outcome.exit_code})"
    elif outcome.exit_signal:
        status += f" (signal {outcome.exit_signal})"
    return f"runbase: run {short}{name} {status} - runbase show {short}"


@click.command("ls")
@click.option("--where", "-w", help='Filter, e.g. "params.lr < 0.1 and metrics.acc > 0.9".')
@click.option("--sort", "-s", help='Sort key, e.g. "-metrics.acc" (descending) or "started_at".')
@click.option(
    "--limit", "-l", default=20, show_default=True, help="At most this many runs (0: all)."
)
@click.option("--sweep", help="Only the runs of this sweep.")
@click.option(
    "--columns",
    "-c",
    metavar="COLS",
    help="Comma-separated columns: id,name,status,started,duration,user,host,sweep and "
    "params.KEY, metrics.KEY, tags.KEY; KEY may be a glob ('params.*'). Default: the run "
    "columns, the params that differ between the listed runs, the metrics.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.option(
    "--all",
    "all_runs",
    is_flag=True,
    help="Also list the hybrid runs of `runbase explain` (tagged explain), hidden by default.",
)
@click.option(
    "--remote",
    "remote_name",
    metavar="NAME",
    help="The runs of a team server's project (`runbase remote add`), not the local store's.",
)
@click.pass_context
def ls(
    ctx: click.Context,
    where: str | None,
    sort: str | None,
    limit: int,
    sweep: str | None,
    columns: str | None,
    as_json: bool,
    all_runs: bool,
    remote_name: str | None,
) -> None:
    """List runs, newest first."""
    if remote_name is not None:
        _ls_remote(remote_name, where, sort, limit, sweep, columns, as_json, all_runs)
        return
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.listing import unknown_keys
    from runbase.records.read import count_runs, hide_explain, list_runs, with_sweep
    from runbase.records.record import ls_entry

    asked = with_sweep(where, sweep)
    where = hide_explain(asked, all_runs)
    store = open_store(ctx)
    rows = list_runs(store, where, sort, limit or None)
    # the user's keys only: the hiding clause names tags.explain, which no run may have
    for note in unknown_keys(store, asked):  # a misspelled key would match nothing, silently
        click.echo(f"runbase: {note}", err=True)
    if as_json:
        echo_json([ls_entry(r) for r in rows])
        return
    total = count_runs(store, where)
    hybrids = 0 if where == asked else count_runs(store, asked) - total
    if rows:
        _ls_table(store, rows, columns, total)
    elif asked or hybrids:
        click.echo("no runs match" if asked else "no runs")
    else:
        click.echo("no runs yet: try `runbase run -- python train.py`")
    if hybrids:
        click.echo(
            f"({hybrids} hybrid run{'s' if hybrids != 1 else ''} of `runbase explain` "
            "not shown; --all shows them)"
        )


def _ls_remote(
    name: str,
    where: str | None,
    sort: str | None,
    limit: int,
    sweep: str | None,
    columns: str | None,
    as_json: bool,
    all_runs: bool,
) -> None:
    """``runbase ls --remote NAME``: the same listing, read through the server's API
    (runbase.remote.runs), which filters and sorts with ls's own expressions."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.ids import abbreviate_among
    from runbase.remote.client import get_remote
    from runbase.remote.runs import listing_client, remote_entries, remote_runs

    if limit < 0:
        raise click.BadParameter("0 (all) or more", param_hint="--limit")
    with bad_input():  # an unknown remote, or a token refused over plain http: exit 2
        remote = get_remote(name)
        client = listing_client(remote)
    found = remote_runs(remote, where, sort, limit or None, sweep, all_runs, client)
    for note in found.notes:  # a misspelled key would match nothing, silently
        click.echo(f"runbase: {note}", err=True)
    if as_json:  # the lines of local `ls --json`, from the runs' records
        echo_json(remote_entries(remote, [r["id"] for r in found.rows], client))
        return
    if found.rows:
        short = abbreviate_among([r["id"] for r in found.rows])
        _ls_table(None, found.rows, columns, found.total, short)
    elif where or sweep or found.hidden:
        click.echo("no runs match" if where or sweep else "no runs")
    else:
        click.echo(f"no runs in project {remote.project} of {remote.url}")
    if found.hidden:
        click.echo(
            f"({found.hidden} hybrid run{'s' if found.hidden != 1 else ''} of `runbase explain` "
            "not shown; --all shows them)"
        )


def _ls_table(
    store: Any,
    rows: list[dict[str, Any]],
    columns: str | None,
    total: int,
    short: dict[str, str] | None = None,
) -> None:
    """The table of ``runbase ls``, with its notes on what it leaves out."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.table import choose_columns, render, runs_table, terminal_width

    with bad_input():
        chosen, hidden = choose_columns(rows, columns)
    headers, table = runs_table(store, rows, chosen, short)
    click.echo(render(headers, table, terminal_width(sys.stdout.isatty())))
    if total > len(rows):
        click.echo(f"({len(rows)} of {total} runs; --limit 0 shows all)")
    if hidden:
        click.echo(
            f"({hidden} params with the same value in every listed run not shown; "
            "--columns 'params.*' shows them)"
        )


@click.command()
@click.argument("run_ref", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the run record (docs/run-record.md).")
@click.option("--no-patch", is_flag=True, help="Leave the code patch out.")
@click.option(
    "--cells",
    is_flag=True,
    help="The notebook cells the run executed, in order (with --json: their JSON list).",
)
@click.pass_context
def show(
    ctx: click.Context, run_ref: str | None, as_json: bool, no_patch: bool, cells: bool
) -> None:
    """Show a run (the latest when RUN is omitted)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core import fsname
    from runbase.records.read import resolve
    from runbase.records.record import build_record
    from runbase.render.show import render_cells, render_record

    store = open_store(ctx)
    run_id = resolve(store, run_ref)
    if cells:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.records.notebook import load_cells

        listed = load_cells(store, run_id)
        if as_json:
            echo_json(listed)
        else:
            click.echo(render_cells(listed) if listed else f"run {run_id} recorded no cells")
        return
    rec = build_record(store, run_id, include_patch=not no_patch)
    if as_json:
        echo_json(rec)
    else:
        click.echo(fsname.display(render_record(rec)))  # bytes that are not text: U+FFFD


@click.command()
@click.argument("run_ref", required=False)
@click.option("--stderr", "stderr_only", is_flag=True, help="Only what the run wrote to stderr.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run is running.")
@click.pass_context
def logs(ctx: click.Context, run_ref: str | None, stderr_only: bool, follow: bool) -> None:
    """Print a run's output (stdout and stderr as they were interleaved)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.logs import follow_log, read_log
    from runbase.records.read import resolve

    store = open_store(ctx)
    run_id = resolve(store, run_ref)
    which = "stderr" if stderr_only else "output"

    def write(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    if follow:
        follow_log(store, run_id, write, which)
    else:
        write(read_log(store, run_id, which))


@click.command()
@click.argument("run_ref")
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def metrics(ctx: click.Context, run_ref: str, key: str | None, as_json: bool) -> None:
    """A run's metric KEY over time (or, without KEY, every metric's summary)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.read import load_metrics, load_row, resolve, series
    from runbase.render.table import fmt_clock, fmt_count, fmt_value, render

    store = open_store(ctx)
    run_id = resolve(store, run_ref)
    if key is None:
        summ = load_metrics(store, [run_id])[run_id]
        if as_json:
            echo_json(summ)
            return
        rows = [
            [
                k,
                fmt_value(m["value"]),
                fmt_value(m["last"]),
                fmt_value(m["min"]),
                fmt_value(m["max"]),
                fmt_count(m),
            ]
            for k, m in sorted(summ.items())
        ]
        click.echo(render(["key", "value", "last", "min", "max", "count"], rows))
        return
    try:
        s = series(store, run_id, key)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from e
    if as_json:
        echo_json(
            {"run": run_id, "key": key, "steps": s.steps, "times": s.times, "values": s.values}
        )
        return
    start = load_row(store, run_id)["started_at"]
    click.echo(
        render(
            ["step", key, "since start", "time (UTC)"],
            [
                # a start time the store does not hold as a time reads as null
                [
                    str(st),
                    fmt_value(v),
                    f"{t - start:.3f}s" if start is not None else "",
                    fmt_clock(t),
                ]
                for st, v, t in zip(s.steps, s.values, s.times, strict=True)
            ],
        )
    )


COMMANDS = (
    init,
    run,
    ls,
    show,
    logs,
    metrics,
)
