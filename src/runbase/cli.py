"""The ``runbase`` command line: thin wrappers over the library."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import RunbaseError, UsageError


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
@click.version_option(package_name="runbase")
@click.pass_context
def main(ctx: click.Context, store: str | None) -> None:
    """runbase: every run recorded - code, data, environment, parameters, metrics."""
    ctx.obj = {"store": store}


def _open(ctx: click.Context, create: bool = False) -> Any:
    from .lifecycle import recover_orphans
    from .store import Store

    store = Store.open(ctx.obj["store"], create=create)
    try:
        recover_orphans(store)
    except Exception as e:  # noqa: BLE001 - reading must work even if recovery cannot write
        click.echo(f"runbase: warning: could not check for crashed runs: {e}", err=True)
    return store


def _echo_json(data: Any) -> None:
    from .capture.params import jsonable

    click.echo(json.dumps(jsonable(data), indent=2, ensure_ascii=False))


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the store (.runbase/ at the project root)."""
    store = _open(ctx, create=True)
    click.echo(f"runbase store at {store.root}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a tracked run: runbase run -- python train.py --lr 0.1"""
    from .supervisor import RunOptions
    from .supervisor import run as run_command

    opts = RunOptions(
        name=name,
        tags=_parse_tags(tags),
        store=ctx.obj["store"],
        capture_code=not no_code,
        inputs=list(inputs),
        outputs=list(outputs),
        hash_only=hash_only,
    )
    outcome = run_command(list(command), opts)
    if sys.stderr.isatty():  # a line for a human; pipelines get only the command's output
        short = outcome.run_id[:10]
        click.echo(f"runbase: run {short} {outcome.status} (runbase show {short})", err=True)
    ctx.exit(outcome.shell_code)


def _parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for t in tags:
        k, _, v = t.partition("=")
        if not k:
            raise UsageError(f"bad tag {t!r}: use KEY=VALUE or KEY")
        out[k] = v
    return out


@main.command("ls")
@click.option("--where", "-w", help='Filter, e.g. "params.lr < 0.1 and metrics.acc > 0.9".')
@click.option("--sort", "-s", help='Sort key, e.g. "-metrics.acc" (descending) or "started_at".')
@click.option(
    "--limit", "-l", default=20, show_default=True, help="At most this many runs (0: all)."
)
@click.option("--sweep", help="Only the runs of this sweep.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.pass_context
def ls(
    ctx: click.Context,
    where: str | None,
    sort: str | None,
    limit: int,
    sweep: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    from .read import count_runs, list_runs
    from .record import ls_entry
    from .table import render, runs_table, terminal_width

    if sweep:
        where = f"sweep == {json.dumps(sweep)}" + (f" and ({where})" if where else "")
    store = _open(ctx)
    rows = list_runs(store, where, sort, limit or None)
    if as_json:
        _echo_json([ls_entry(r) for r in rows])
        return
    if not rows:
        click.echo(
            "no runs" + (" match" if where else " yet: try `runbase run -- python train.py`")
        )
        return
    headers, table = runs_table(store, rows)
    click.echo(render(headers, table, terminal_width(sys.stdout.isatty())))
    total = count_runs(store, where)
    if total > len(rows):
        click.echo(f"({len(rows)} of {total} runs; --limit 0 shows all)")


@main.command()
@click.argument("run_ref", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the run record (docs/run-record.md).")
@click.option("--no-patch", is_flag=True, help="Leave the code patch out.")
@click.pass_context
def show(ctx: click.Context, run_ref: str | None, as_json: bool, no_patch: bool) -> None:
    """Show a run (the latest when RUN is omitted)."""
    from .read import resolve
    from .record import build_record
    from .show import render_record

    store = _open(ctx)
    rec = build_record(store, resolve(store, run_ref), include_patch=not no_patch)
    if as_json:
        _echo_json(rec)
    else:
        click.echo(render_record(rec))


@main.command()
@click.argument("run_ref", required=False)
@click.option("--stderr", "stderr_only", is_flag=True, help="Only what the run wrote to stderr.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run is running.")
@click.pass_context
def logs(ctx: click.Context, run_ref: str | None, stderr_only: bool, follow: bool) -> None:
    """Print a run's output (stdout and stderr as they were interleaved)."""
    from .logs import follow_log, read_log
    from .read import resolve

    store = _open(ctx)
    run_id = resolve(store, run_ref)
    which = "stderr" if stderr_only else "output"

    def write(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    if follow:
        follow_log(store, run_id, write, which)
    else:
        write(read_log(store, run_id, which))


@main.command()
@click.argument("run_ref")
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def metrics(ctx: click.Context, run_ref: str, key: str | None, as_json: bool) -> None:
    """A run's metric KEY over time (or, without KEY, every metric's summary)."""
    from .read import load_metrics, resolve, series
    from .table import fmt_value, render

    store = _open(ctx)
    run_id = resolve(store, run_ref)
    if key is None:
        summ = load_metrics(store, [run_id])[run_id]
        if as_json:
            _echo_json(summ)
            return
        rows = [
            [
                k,
                fmt_value(m["value"]),
                fmt_value(m["last"]),
                fmt_value(m["min"]),
                fmt_value(m["max"]),
                str(m["count"]),
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
        _echo_json(
            {"run": run_id, "key": key, "steps": s.steps, "times": s.times, "values": s.values}
        )
        return
    click.echo(
        render(
            ["step", key, "time"],
            [
                [str(st), fmt_value(v), f"{t:.3f}"]
                for st, v, t in zip(s.steps, s.values, s.times, strict=True)
            ],
        )
    )


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Where to create the example project (default: a new temp dir).",
)
@click.pass_context
def demo(ctx: click.Context, directory: str | None) -> None:
    """Create an example project, run a few tracked runs, show the table."""
    from .demo import run_demo

    run_demo(directory, echo=click.echo)


@main.command()
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
    from .checkout import checkout as do_checkout
    from .read import resolve

    store = _open(ctx)
    code, data = (True, True) if code_only == data_only else (code_only, data_only)
    report = do_checkout(
        store, resolve(store, run_ref), into, code=code, data=data, outputs=outputs, force=force
    )
    click.echo(
        f"{len(report.written)} files written, {len(report.unchanged)} already up to date in {into}"
    )
    for path, why in report.not_restorable:
        click.echo(f"  not restored: {path} ({why})", err=True)


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage graph as JSON.")
@click.pass_context
def trace(ctx: click.Context, target: str, as_json: bool) -> None:
    """Which run produced TARGET's exact bytes (a path or blake3:… id), from which inputs."""
    from .lineage import render_tree
    from .lineage import trace as do_trace

    graph = do_trace(_open(ctx), target)
    click.echo(json.dumps(graph, indent=2) if as_json else render_tree(graph))


@main.command()
@click.pass_context
def fsck(ctx: click.Context) -> None:
    """Re-hash every object; exit 1 naming each corrupt or missing one."""
    from .maintenance import fsck as do_fsck

    report = do_fsck(_open(ctx))
    for oid in report.corrupt:
        click.echo(f"corrupt: {oid}", err=True)
    for oid, kind, run_id in report.missing:
        click.echo(f"missing: {oid} ({kind} of run {run_id or '-'})", err=True)
    click.echo(
        f"{report.checked} objects checked, {len(report.corrupt)} corrupt, {len(report.missing)} missing"
    )
    if not report.ok:
        ctx.exit(1)


@main.command()
@click.option("--yes", is_flag=True, help="Delete (default: only list what would go).")
@click.pass_context
def gc(ctx: click.Context, yes: bool) -> None:
    """Remove objects no run refers to (safe while runs are in progress)."""
    from .maintenance import gc as do_gc
    from .table import fmt_bytes

    report = do_gc(_open(ctx), delete=yes)
    verb = "deleted" if yes else "would delete (run with --yes)"
    click.echo(
        f"{verb}: {len(report.unreferenced)} objects, {fmt_bytes(report.bytes)}; "
        f"{report.kept_young} recent unreferenced objects kept"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def du(ctx: click.Context, as_json: bool) -> None:
    """Store size by code/data/environment/logs, and what deduplication saved."""
    from .maintenance import du as do_du
    from .table import fmt_bytes

    u = do_du(_open(ctx))
    if as_json:
        _echo_json({**u.__dict__, "saved_by_dedup": u.saved_by_dedup})
        return
    click.echo(
        f"{u.runs} runs, {u.objects} objects, {fmt_bytes(u.total_bytes)} of objects, "
        f"{fmt_bytes(u.database_bytes)} of metadata"
    )
    for kind, size in sorted(u.by_kind.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {kind:<13}{fmt_bytes(size):>10}")
    click.echo(f"saved by deduplication: {fmt_bytes(u.saved_by_dedup)}")
