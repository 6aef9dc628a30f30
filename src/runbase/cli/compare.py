"""``runbase diff / importance / report``: runs compared, as text, tables or HTML."""

from __future__ import annotations

import sys
from typing import Any

import click

from runbase.cli._common import bad_input, echo_json, open_store
from runbase.errors import UsageError


@click.command()
@click.argument("run_a")
@click.argument("run_b", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    help="text (default), json (docs/diff-format.md: the stable format) or markdown (a "
    "pull-request comment: docs/ci.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: --format json.")
@click.option("--params", is_flag=True, help="Parameters (section flags combine; none: all).")
@click.option("--metrics", is_flag=True, help="Metric summaries, largest change first.")
@click.option("--code", is_flag=True, help="Code files, with a unified diff.")
@click.option("--data", is_flag=True, help="Data inputs and outputs.")
@click.option("--env", is_flag=True, help="Python, packages, OS, CPU/GPU, container.")
@click.pass_context
def diff(
    ctx: click.Context,
    run_a: str,
    run_b: str | None,
    fmt: str | None,
    as_json: bool,
    **flags: bool,
) -> None:
    """What differs from run A to run B; with A alone, A's uncommitted code change.
    A and B may be REMOTE:RUN or a run's URL on a team server: pulled first (without
    their data files)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.analysis.diff import diff_head, diff_runs

    fmt = _output_format(fmt, as_json)
    sections = [name for name, on in flags.items() if on] or None
    if run_b is None and sections not in (None, ["code"]):
        raise UsageError("with one run, diff shows its code against its commit: give two runs")
    with bad_input():
        remote = any(_remote_ref(ref) for ref in (run_a, run_b) if ref)
        store = open_store(ctx, create=remote)  # a fresh CI checkout has no store yet
        run_a = _pulled(store, run_a)
        run_b = _pulled(store, run_b) if run_b else None
    report = diff_runs(store, run_a, run_b, sections) if run_b else diff_head(store, run_a)
    if fmt == "json":
        echo_json(report)
    elif fmt == "markdown":
        # lazy: each output format loads its own renderer
        from runbase.render.markdown import diff_markdown

        click.echo(diff_markdown(report), nl=False)
    else:
        # lazy: each output format loads its own renderer
        from runbase.render.diff import render

        click.echo(render(report, sys.stdout.isatty()))


def _output_format(fmt: str | None, as_json: bool) -> str:
    """``--format`` with ``--json`` as its alias; both naming different formats is an
    error rather than one silently winning."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} ask for different formats")
    return "json" if as_json else (fmt or "text")


def _remote_ref(ref: str) -> bool:
    # lazy: reading the remotes loads the user config, only when a ref could be one
    from runbase.remote.client import split_remote_ref

    return ":" in ref and split_remote_ref(ref) is not None


def _pulled(store: Any, ref: str) -> str:
    """``REMOTE:RUN`` or a run's URL: the run pulled into the local store (code and
    environment, not its data files: the diff compares their recorded hashes), its
    local id; any other ref as it is."""
    # lazy: only a remote ref needs the client and the sync code
    from runbase.remote.client import split_remote_ref
    from runbase.remote.sync import pull

    found = split_remote_ref(ref) if ":" in ref else None
    if found is None:
        return ref
    remote, remote_ref = found
    click.echo(f"pulling {remote_ref} from {remote.url} (project {remote.project})", err=True)
    return pull(store, remote, remote_ref, data=False).run_id


@click.command()
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
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.analysis.importance import LEGEND, analyze
    from runbase.records.read import with_sweep
    from runbase.render.table import fmt_value, render

    with bad_input():
        report = analyze(open_store(ctx), metric, with_sweep(where, sweep))
    if as_json:
        echo_json(report.rows)
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


@click.command()
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
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.report import write_report
    from runbase.render.table import fmt_bytes

    path = write_report(open_store(ctx), list(run_refs), output)
    click.echo(f"wrote {path} ({fmt_bytes(path.stat().st_size)})")


COMMANDS = (
    diff,
    importance,
    report,
)
