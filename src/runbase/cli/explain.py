"""``runbase explain A B``: which change from run A to run B moved a metric, found by
re-running hybrids of the two (docs/explain.md)."""

from __future__ import annotations

import sys
from typing import Any

import click

from runbase.cli._common import echo_json, open_store, pull_remote_ref, stdout_to_stderr
from runbase.cli._executor import executor_from, executor_options
from runbase.errors import RunbaseError

# exit status when Ctrl-C/SIGTERM stopped the hybrids (128 + SIGINT, as a shell reports)
EXIT_INTERRUPTED = 130


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--metric", "-m", help="The metric to explain (default: the one that moved most, relatively)."
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="Hybrids run at once (default: the number of CPU cores).",
)
@click.option(
    "--budget",
    type=int,
    help="At most this many hybrids beyond the re-runs of A and B (default: 50).",
)
@click.option(
    "--repeats",
    type=int,
    default=1,
    show_default=True,
    help="Re-run A and B this many times each, to measure the run-to-run noise.",
)
@click.option("--hunks", is_flag=True, help="Test each hunk of a changed code file on its own.")
@click.option(
    "--env",
    "env_mode",
    type=click.Choice(["current", "venv"]),
    default="current",
    show_default=True,
    help="Run in the current environment, or in virtualenvs with the recorded package "
    "versions (package changes are tested only then).",
)
@click.option("--fresh", is_flag=True, help="Run every hybrid again instead of re-using them.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    help="text (default), json (docs/explain.md: the stable format) or markdown (a "
    "pull-request comment: docs/ci.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON: --format json.")
@executor_options
@click.pass_context
def explain(
    ctx: click.Context,
    run_a: str,
    run_b: str,
    metric: str | None,
    jobs: int | None,
    budget: int | None,
    repeats: int,
    hunks: bool,
    env_mode: str,
    fresh: bool,
    fmt: str | None,
    as_json: bool,
    on: str | None,
    cpus: float | None,
    gpus: float | None,
    memory: str | None,
    retries: int | None,
) -> None:
    """Find which change from run A to run B moved a metric, by experiment: re-run A and
    B (the noise), then hybrids (A with some of B's params, code files, input files,
    package versions or command) and rank the changes by their effect. A and B may be
    local runs, REMOTE:RUN or a run's URL on a team server (pulled with their data).
    Exit 0 with the report, 2 if it could not be made, 130 if interrupted (the finished
    hybrids are kept: the next explain re-uses them). --on ray runs the hybrids as
    tasks on a Ray cluster (docs/ray.md)."""
    executor = executor_from(jobs, on, cpus, gpus, memory, retries)
    options = {
        "metric": metric,
        "jobs": jobs,
        "budget": budget,
        "repeats": repeats,
        "hunks": hunks,
        "env": env_mode,
        "fresh": fresh,
        "executor": executor if on is not None else None,
    }
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} ask for different formats")
    fmt = "json" if as_json else (fmt or "text")
    # markdown goes to stdout alone too (a CI job writes it to a file to post it)
    report = run_explain(ctx, run_a, run_b, options, fmt != "text", pull=True)
    if fmt == "json":
        echo_json(report)
    elif fmt == "markdown":
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.render.markdown import explain_markdown

        click.echo(explain_markdown(report), nl=False)
    else:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.render.explain import render

        click.echo(render(report, sys.stdout.isatty()))


def run_explain(
    ctx: click.Context,
    a: str,
    b: str,
    options: dict[str, Any],
    as_json: bool,
    *,
    pull: bool,
) -> dict[str, Any]:
    """The report of ``tracking.explain.explain`` (shared with ``reproduce --explain``):
    progress on stderr, and with ``as_json`` the hybrids' own output too, so stdout
    carries the JSON alone; a runbase error exits 2, an interruption 130."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking.explain import explain as do_explain

    try:
        with stdout_to_stderr(as_json):
            store = open_store(ctx, create=True)
            if pull:
                a, b = pull_remote_ref(store, a), pull_remote_ref(store, b)
            return do_explain(store, a, b, log=lambda line: click.echo(line, err=True), **options)
    except RunbaseError as e:
        raise click.UsageError(str(e)) from e
    except KeyboardInterrupt:
        click.echo(
            "runbase: explain interrupted; the finished hybrids are kept and the next "
            "explain of these runs re-uses them",
            err=True,
        )
        ctx.exit(EXIT_INTERRUPTED)


COMMANDS = (explain,)
