"""``runbase reproduce``: re-run a run from its record and say whether it reproduced."""

from __future__ import annotations

import sys
from typing import Any

import click

from runbase.cli._common import (
    echo_json,
    open_store,
    parse_overrides,
    pull_remote_ref,
    stdout_to_stderr,
)
from runbase.cli._executor import executor_from, executor_options
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
@click.option(
    "--explain",
    "then_explain",
    is_flag=True,
    help="If it diverged, run `runbase explain RUN NEW` at once: which change moved the metric.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@executor_options
@click.pass_context
def reproduce(
    ctx: click.Context,
    run_ref: str,
    params: tuple[str, ...],
    into: str | None,
    env_mode: str,
    rtol: float,
    atol: float,
    then_explain: bool,
    as_json: bool,
    on: str | None,
    cpus: float | None,
    gpus: float | None,
    memory: str | None,
    retries: int | None,
) -> None:
    """Re-run RUN (a local run, REMOTE:RUN or a run's URL on a team server: pulled with
    its data first) from its record (code and data restored) and say whether it
    reproduced: exit 0 if every metric that measures the result matches within
    tolerance (timing metrics are not compared), 1 if it diverged, 3 if there was
    nothing to compare, 4 if -p changed it by request. When it diverged, --explain
    runs `runbase explain` on the two runs (the exit status stays the verdict's).
    --on ray re-runs it as a task on a Ray cluster (docs/ray.md)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking.reproduce import DIVERGED, EXIT_CODES
    from runbase.tracking.reproduce import reproduce as do_reproduce

    overrides = parse_overrides(params)
    executor = executor_from(None, on, cpus, gpus, memory, retries)
    try:  # exit 1 means "diverged": any other failure exits 2
        # --json: stdout carries the JSON alone; the command's output goes to stderr
        with stdout_to_stderr(as_json):
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
                executor=executor if on is not None else None,
            )
    except RunbaseError as e:
        raise click.UsageError(str(e)) from e
    diverged = result.verdict.outcome == DIVERGED
    on_cluster = executor if on is not None else None  # --explain's hybrids go there too
    report = (
        _explain(ctx, result, env_mode, as_json, on_cluster) if diverged and then_explain else None
    )
    if as_json:
        out = result.as_dict()
        if then_explain:  # the key only when asked for: the document stays as it was
            out["explain"] = report
        echo_json(out)
    else:
        _echo_text(result, report)
    if diverged and not then_explain:
        command = f"runbase explain {result.original} {result.run_id}"
        if _explain_env(result, env_mode) != env_mode:
            command += " --env venv"
        click.echo(("" if as_json else "\n") + f"explain the difference: {command}", err=as_json)
    ctx.exit(EXIT_CODES[result.verdict.outcome])


def _echo_text(result: Any, report: dict[str, Any] | None) -> None:
    """The verdict, the diff when it diverged, and the explanation when one was made."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.diff import render as render_diff
    from runbase.tracking.reproduce import render

    color = sys.stdout.isatty()
    click.echo(render(result, color))
    if result.diff is not None:  # tracking renders no diff: render sits above it
        click.echo("")
        click.echo(render_diff(result.diff, color))
    if report is not None:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.render.explain import render as render_explain

        click.echo("")
        click.echo(render_explain(report, color))


def _explain(
    ctx: click.Context, result: Any, env_mode: str, as_json: bool, executor: Any = None
) -> dict[str, Any] | None:
    """``runbase explain ORIGINAL NEW`` on the first metric that moved (None: let explain
    choose, e.g. when only the exit status differs); None when it cannot be made (why,
    on stderr): the verdict is still the answer to what was asked."""
    # lazy: reproduce --explain alone needs the explain command's runner
    from runbase.cli.explain import run_explain

    moved = [m.key for m in result.verdict.diverged if m.original is not None and m.new is not None]
    options = {
        "metric": moved[0] if moved else None,
        "env": _explain_env(result, env_mode),
        "executor": executor,
    }
    click.echo(f"runbase: explaining {result.original} -> {result.run_id}", err=True)
    try:
        return run_explain(ctx, result.original, result.run_id, options, as_json, pull=False)
    except click.UsageError as e:
        click.echo(f"runbase: cannot explain the difference: {e.message}", err=True)
        return None


def _explain_env(result: Any, env_mode: str) -> str:
    """The environment mode that can explain this divergence: package versions are
    tested only in virtualenvs built from the recorded ones, so a re-run in the current
    environment whose packages drifted from the record (the same script months later,
    after upgrades) is explained with ``--env venv``."""
    if env_mode == "current" and (result.drift or {}).get("packages"):
        return "venv"
    return env_mode


COMMANDS = (reproduce,)
