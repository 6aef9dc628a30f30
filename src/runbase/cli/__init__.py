"""The ``runbase`` command line: thin wrappers over the library."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from runbase.errors import QueryError, RunbaseError, UsageError
from runbase.render import progress as progress_bar


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
    progress_bar.install()  # hashing/storing many bytes draws a bar on a terminal


def _open(ctx: click.Context, create: bool = False) -> Any:
    from runbase.records.lifecycle import recover_orphans
    from runbase.store import Store

    store = Store.open(ctx.obj["store"], create=create)
    try:
        recover_orphans(store)
    except Exception as e:  # noqa: BLE001 - reading must work even if recovery cannot write
        click.echo(f"runbase: warning: could not check for crashed runs: {e}", err=True)
    return store


def _echo_json(data: Any) -> None:
    from runbase.capture.params import jsonable
    from runbase.core import fsname

    data = jsonable(data)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if fsname.needs_encoding(text):  # a lone surrogate an older version stored ("\udce9")
        text = json.dumps(fsname.clean(data), indent=2, ensure_ascii=False)
    click.echo(text)


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
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a tracked run: runbase run -- python train.py --lr 0.1"""
    from runbase.integrations import ENV_VAR as INTEGRATIONS
    from runbase.remote.publish import resolve_target
    from runbase.tracking.supervisor import RunOptions
    from runbase.tracking.supervisor import run as run_command

    opts = RunOptions(
        name=name,
        tags=_parse_tags(tags),
        store=ctx.obj["store"],
        capture_code=not no_code,
        inputs=list(inputs),
        outputs=list(outputs),
        hash_only=hash_only,
        overrides=_parse_overrides(params),
        sweep_id=sweep_id,
        system_interval=system_interval,
        extra_env={INTEGRATIONS: "0"} if no_integrations else {},
        publish=resolve_target(publish),  # checked now, before the run starts
    )
    outcome = run_command(list(command), opts)
    if not quiet:  # on stderr: the command's stdout stays exactly its own
        click.echo(_run_closing_line(ctx, outcome), err=True)
    ctx.exit(outcome.shell_code)


def _run_closing_line(ctx: click.Context, outcome: Any) -> str:
    """``runbase: run 0KZ3… brisk-heron-17 finished (exit 0) - runbase show 0KZ3…``"""
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


def _pull_remote_ref(store: Any, ref: str) -> str:
    """``NAME:RUN`` or a run's URL: pull the run and its data first; its local id."""
    from runbase.remote.client import split_remote_ref
    from runbase.remote.sync import pull

    found = split_remote_ref(ref)
    if found is None:
        return ref
    remote, remote_ref = found
    click.echo(f"pulling {remote_ref} from {remote.url} (project {remote.project})", err=True)
    return pull(store, remote, remote_ref, data=True).run_id


def _parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    from runbase.capture.overrides import parse_assignments

    with _bad_input():
        return parse_assignments(items)


@contextlib.contextmanager
def _bad_input() -> Iterator[None]:
    """Bad input to a command exits 2 with its message, as click's own usage errors do."""
    try:
        yield
    except (UsageError, QueryError) as e:
        raise click.UsageError(str(e)) from e


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
@click.option(
    "--columns",
    "-c",
    metavar="COLS",
    help="Comma-separated columns: id,name,status,started,duration,user,host,sweep and "
    "params.KEY, metrics.KEY, tags.KEY; KEY may be a glob ('params.*'). Default: the run "
    "columns, the params that differ between the listed runs, the metrics.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.pass_context
def ls(
    ctx: click.Context,
    where: str | None,
    sort: str | None,
    limit: int,
    sweep: str | None,
    columns: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    from runbase.core.query import unknown_keys
    from runbase.records.read import count_runs, list_runs, with_sweep
    from runbase.records.record import ls_entry
    from runbase.render.table import choose_columns, render, runs_table, terminal_width

    where = with_sweep(where, sweep)
    store = _open(ctx)
    rows = list_runs(store, where, sort, limit or None)
    for note in unknown_keys(store, where):  # a misspelled key would match nothing, silently
        click.echo(f"runbase: {note}", err=True)
    if as_json:
        _echo_json([ls_entry(r) for r in rows])
        return
    if not rows:
        click.echo(
            "no runs" + (" match" if where else " yet: try `runbase run -- python train.py`")
        )
        return
    with _bad_input():
        chosen, hidden = choose_columns(rows, columns)
    headers, table = runs_table(store, rows, chosen)
    click.echo(render(headers, table, terminal_width(sys.stdout.isatty())))
    total = count_runs(store, where)
    if total > len(rows):
        click.echo(f"({len(rows)} of {total} runs; --limit 0 shows all)")
    if hidden:
        click.echo(
            f"({hidden} params with the same value in every listed run not shown; "
            "--columns 'params.*' shows them)"
        )


@main.command()
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
    from runbase.core import fsname
    from runbase.records.read import resolve
    from runbase.records.record import build_record
    from runbase.render.show import render_cells, render_record

    store = _open(ctx)
    run_id = resolve(store, run_ref)
    if cells:
        from runbase.records.notebook import load_cells

        listed = load_cells(store, run_id)
        if as_json:
            _echo_json(listed)
        else:
            click.echo(render_cells(listed) if listed else f"run {run_id} recorded no cells")
        return
    rec = build_record(store, run_id, include_patch=not no_patch)
    if as_json:
        _echo_json(rec)
    else:
        click.echo(fsname.display(render_record(rec)))  # bytes that are not text: U+FFFD


@main.command()
@click.argument("run_ref", required=False)
@click.option("--stderr", "stderr_only", is_flag=True, help="Only what the run wrote to stderr.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run is running.")
@click.pass_context
def logs(ctx: click.Context, run_ref: str | None, stderr_only: bool, follow: bool) -> None:
    """Print a run's output (stdout and stderr as they were interleaved)."""
    from runbase.records.logs import follow_log, read_log
    from runbase.records.read import resolve

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
    from runbase.records.read import load_metrics, load_row, resolve, series
    from runbase.render.table import fmt_clock, fmt_count, fmt_value, render

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
        _echo_json(
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
    from runbase.tracking.demo import run_demo

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
    from runbase.records.checkout import checkout as do_checkout
    from runbase.records.read import resolve

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
    from runbase.records.lineage import render_tree
    from runbase.records.lineage import trace as do_trace

    graph = do_trace(_open(ctx), target)
    if as_json:
        _echo_json(graph)  # strict JSON whatever the store holds (NaN/inf as strings)
    else:
        click.echo(render_tree(graph))


@main.command()
@click.argument("run_a")
@click.argument("run_b", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/diff-format.md).")
@click.option("--params", is_flag=True, help="Parameters (section flags combine; none: all).")
@click.option("--metrics", is_flag=True, help="Metric summaries, largest change first.")
@click.option("--code", is_flag=True, help="Code files, with a unified diff.")
@click.option("--data", is_flag=True, help="Data inputs and outputs.")
@click.option("--env", is_flag=True, help="Python, packages, OS, CPU/GPU, container.")
@click.pass_context
def diff(ctx: click.Context, run_a: str, run_b: str | None, as_json: bool, **flags: bool) -> None:
    """What differs from run A to run B; with A alone, A's uncommitted code change."""
    from runbase.analysis.diff import diff_head, diff_runs
    from runbase.render.diff import render

    store = _open(ctx)
    sections = [name for name, on in flags.items() if on] or None
    if run_b is None and sections not in (None, ["code"]):
        raise UsageError("with one run, diff shows its code against its commit: give two runs")
    report = diff_runs(store, run_a, run_b, sections) if run_b else diff_head(store, run_a)
    if as_json:
        _echo_json(report)
    else:
        click.echo(render(report, sys.stdout.isatty()))


@main.command()
@click.pass_context
def fsck(ctx: click.Context) -> None:
    """Re-hash every object; exit 1 naming each corrupt or missing one."""
    from runbase.records.maintenance import fsck as do_fsck

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
    """Remove objects no run refers to, and the work directories of ended reproductions
    (safe while runs are in progress)."""
    from runbase.records.maintenance import gc as do_gc
    from runbase.render.table import fmt_bytes

    report = do_gc(_open(ctx), delete=yes)
    verb = "deleted" if yes else "would delete (run with --yes)"
    click.echo(
        f"{verb}: {len(report.unreferenced)} objects, {fmt_bytes(report.bytes)}; "
        f"{report.kept_young} recent unreferenced objects kept"
    )
    if report.work_dirs or report.kept_work_dirs:
        click.echo(
            f"{'deleted' if yes else 'would delete'}: {len(report.work_dirs)} reproduce work "
            f"directories, {fmt_bytes(report.work_bytes)}; {report.kept_work_dirs} recent or "
            "in use kept"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def du(ctx: click.Context, as_json: bool) -> None:
    """Store size by code/data/environment/logs, and what deduplication saved."""
    from runbase.records.maintenance import du as do_du
    from runbase.render.table import fmt_bytes

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
    if u.reproduce_dirs:
        click.echo(
            f"reproduce work directories: {u.reproduce_dirs}, {fmt_bytes(u.reproduce_bytes)}"
            " (runbase gc --yes removes those of ended re-runs)"
        )
    if u.envs_bytes:
        click.echo(f"rebuilt environments (reproduce --env venv): {fmt_bytes(u.envs_bytes)}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    from runbase.tracking import sweep as sw

    seed = sw.new_seed() if seed is None else seed
    with _bad_input():
        trials = sw.combinations(sw.parse_grid(grid), sw.parse_random(random_), samples, seed)
    if dry_run:
        for i, t in enumerate(trials, 1):
            click.echo(f"[{i}] {sw.Trial(i, t).describe()}")
        return
    with _bad_input():
        result = sw.run_sweep(
            list(command),
            trials,
            jobs=jobs,
            name=name,
            tags=_parse_tags(tags),
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


@main.command()
@click.option(
    "--metric", "-m", required=True, help="The metric: KEY (its summary) or KEY.min/.max/.last."
)
@click.option("--where", "-w", help="Which runs, e.g. \"params.model == 'vgg'\" (default: all).")
@click.option("--sweep", help="Only the runs of this sweep.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def importance(
    ctx: click.Context, metric: str, where: str | None, sweep: str | None, as_json: bool
) -> None:
    """Rank parameters by their influence on a metric (random forest, Spearman)."""
    from runbase.analysis.importance import LEGEND, analyze
    from runbase.records.read import with_sweep
    from runbase.render.table import fmt_value, render

    with _bad_input():
        report = analyze(_open(ctx), metric, with_sweep(where, sweep))
    if as_json:
        _echo_json(report.rows)
        return
    keys = ["param", "rf_importance", "spearman", "eta", "kind", "n"]
    click.echo(render(keys, [[fmt_value(r[k]) for k in keys] for r in report.rows]))
    dropped = ", ".join(f"{k} ({why})" for k, why in sorted(report.dropped.items()))
    click.echo(
        f"metric {metric} over {report.n_runs} runs" + (f"; left out: {dropped}" if dropped else "")
    )
    click.echo(LEGEND.replace(" | ", "\n"))
    if report.warning:
        click.echo(f"runbase: warning: {report.warning}", err=True)


@main.command()
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
    from runbase.tracking.reproduce import EXIT_CODES, render
    from runbase.tracking.reproduce import reproduce as do_reproduce

    overrides = _parse_overrides(params)
    try:  # exit 1 means "diverged": any other failure exits 2
        # --json: stdout carries the JSON alone; the command's output goes to stderr
        with _stdout_to_stderr(as_json):
            store = _open(ctx, create=True)
            run_ref = _pull_remote_ref(store, run_ref)
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
        _echo_json(result.as_dict())
    else:
        click.echo(render(result, sys.stdout.isatty()))
        if result.diff is not None:  # tracking renders no diff: render sits above it
            from runbase.render.diff import render as render_diff

            click.echo("")
            click.echo(render_diff(result.diff, sys.stdout.isatty()))
    ctx.exit(EXIT_CODES[result.verdict.outcome])


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Point file descriptor 1 at stderr while a command runs under us, so a child
    process (and anything else) writing to stdout cannot mix with a --json answer."""
    import os

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


@main.command()
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
        import uvicorn

        from runbase.web.app import create_app
    except ImportError as e:
        raise click.ClickException(
            f"runbase ui needs the ui extra ({e.name or e} is missing): pip install 'runbase[ui]'"
        ) from e
    import threading

    server = uvicorn.Server(
        uvicorn.Config(
            # the Host header is checked: a web page cannot reach the UI by DNS rebinding
            create_app(str(_open(ctx).root), allowed_hosts=(host, *allowed_hosts)),
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
    import time
    import webbrowser

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)


@main.command()
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--output",
    "-o",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@click.pass_context
def report(ctx: click.Context, run_refs: tuple[str, ...], output: str) -> None:
    """Write one self-contained HTML file about RUN... (charts, parameters, and for two
    runs their diff) that opens offline."""
    from runbase.render.report import write_report
    from runbase.render.table import fmt_bytes

    path = write_report(_open(ctx), list(run_refs), output)
    click.echo(f"wrote {path} ({fmt_bytes(path.stat().st_size)})")


# commands of their own modules, registered on import (they import `main` from here)
from runbase.cli import remote as cli_remote  # noqa: E402,F401
from runbase.cli import server as cli_server  # noqa: E402,F401
