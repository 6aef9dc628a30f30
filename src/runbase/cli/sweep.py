"""``runbase sweep``: one command over a grid, a random sample or an Optuna search of
parameters, here or on a Ray cluster (docs/sweeps.md)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from runbase.cli._common import bad_input, parse_tags
from runbase.cli._executor import executor_from, executor_options

SEARCHES = ("grid", "random", "tpe", "cmaes")  # tracking.search.SEARCHES (not loaded here)
STUDY_STORAGE_ENV = "RUNBASE_STUDY_STORAGE"  # --study-storage's default (off the command line)
# what the plan of a sweep says: a resumed sweep keeps its own
_PLAN_OPTIONS = (
    "grid",
    "random_",
    "samples",
    "seed",
    "search",
    "objective",
    "direction",
    "trials",
    "prune",
    "prune_startup",
    "name",
    "tags",
    "no_code",
    "publish",
    "inputs",
)


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
    "--search",
    type=click.Choice(SEARCHES),
    help="How trials are chosen: every grid point (grid), runbase's random sampling "
    "(random), or Optuna's TPE or CMA-ES over the --grid/--random space, from the "
    "results so far. [default: random with --random, else grid]",
)
@click.option("--objective", metavar="METRIC", help="The metric to optimize (its summary value).")
@click.option(
    "--direction",
    type=click.Choice(("max", "min")),
    help="Whether a higher (max) or lower (min) --objective is better.",
)
@click.option(
    "--trials",
    type=int,
    help="How many trials: tpe/cmaes's budget (default 20); grid/random: at most this many.",
)
@click.option(
    "-n",
    "samples",
    type=int,
    help="Random samples per grid point (default: 10 with --random, else 1).",
)
@click.option(
    "--prune",
    type=click.Choice(("median", "asha")),
    help="Stop trials early from the --objective values they log while they run: median "
    "(worse than the median of completed trials at the same step) or asha "
    "(asynchronous successive halving). A stopped trial's run is pruned.",
)
@click.option(
    "--prune-startup",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Trials that complete before the median pruner stops any.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds a pruned trial has to stop after SIGTERM, before SIGKILL. [default: 10]",
)
@click.option("--seed", type=int, help="Seed of the sampling (default: a new one, printed).")
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=None,
    help="How many runs at a time. [default: 1; with --on ray: what the cluster holds]",
)
@executor_options
@click.option("--name", help="Name the runs NAME-1, NAME-2, ...")
@click.option(
    "--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Tag every run (repeatable)."
)
@click.option("--no-code", is_flag=True, help="Do not snapshot the code.")
@click.option("--publish", metavar="REMOTE", help="Stream every run to this remote as it runs.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="PATH",
    help="Declare a data input of every run (a file or directory under the project; "
    "repeatable): stored once, recorded by each run, and copied to the Ray node that runs "
    "a trial.",
)
@click.option(
    "--resume",
    metavar="SWEEP",
    help="Go on with this sweep (interrupted) until its trials are done, with its own plan "
    "(--on, -j, --cpus... given again replace the recorded ones). COMMAND: only when the "
    "record hides a secret of it and this store has no copy (--resume ID -- COMMAND).",
)
@click.option(
    "--join",
    metavar="SWEEP",
    help="Drive this tpe/cmaes sweep alongside its other drivers (another machine, another "
    "store), from its study in --study-storage (a database every driver reaches), which "
    "holds the sweep's plan and command: trials are asked from the shared study until it "
    "has the sweep's --trials in all. -j, --on, --cpus..., --grace and --publish are this "
    "machine's. COMMAND: only when the recorded one hides a secret (--join ID -- COMMAND).",
)
@click.option(
    "--yes",
    is_flag=True,
    help="With --resume or --join: go on with a sweep another user recorded (its command "
    "runs here).",
)
@click.option(
    "--study-storage",
    metavar="URL",
    help="The database of the Optuna study (postgresql://USER@HOST/DB), instead of SQLite "
    f"in the store. [default: ${STUDY_STORAGE_ENV}] Its password is never recorded; keep it "
    "off the command line: in that variable, or libpq's PGPASSWORD or ~/.pgpass.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the parameter combinations; run nothing (no COMMAND needed).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sweep(ctx: click.Context, **opts: Any) -> None:
    """Run COMMAND once per parameter combination, JOBS at a time, as one sweep:
    runbase sweep --grid lr=0.1,0.01 -j 2 -- python train.py

    A search: runbase sweep --search tpe --random lr=loguniform(1e-4,1e-1)
    --objective acc --direction max --trials 40 --prune median -- python train.py"""
    if opts["resume"] and opts["join"]:
        raise click.UsageError("--resume or --join, not both")
    if opts["resume"]:
        _resume(ctx, opts)
        return
    if opts["join"]:
        _join(ctx, opts)
        return
    if opts["yes"]:
        raise click.UsageError("--yes is for --resume and --join (a sweep another user recorded)")
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking import sweep as sw

    seed = sw.new_seed() if opts["seed"] is None else opts["seed"]
    with bad_input():
        plan = sw.SweepPlan(
            command=list(opts["command"]),
            grid=sw.parse_grid(opts["grid"]),
            random=sw.parse_random(opts["random_"]),
            search=opts["search"] or ("random" if opts["random_"] else "grid"),
            samples=opts["samples"],
            seed=seed,
            objective=opts["objective"],
            direction=opts["direction"],
            trials=opts["trials"],
            prune=opts["prune"],
            prune_startup=opts["prune_startup"],
            grace=10.0 if opts["grace"] is None else opts["grace"],
            name=opts["name"],
            tags=parse_tags(opts["tags"]),
            capture_code=not opts["no_code"],
            publish=opts["publish"],
            inputs=list(opts["inputs"]),
        )
        plan.check()
    if opts["dry_run"]:
        _dry_run(plan)
        return
    executor = executor_from(*_executor_args(opts))
    storage = opts["study_storage"]
    if storage is None and plan.needs_study:  # the variable: for a sweep with a study only
        storage = os.environ.get(STUDY_STORAGE_ENV) or None
    with bad_input():
        result = sw.run_sweep(
            plan,
            store=ctx.obj["store"],
            executor=executor,
            execution=_execution(opts),
            study_storage=storage,
            say=_say,
            on_start=lambda r: _say(
                f"sweep {r.sweep_id}: {r.total} runs, {r.slots} at a time"
                + (f" ({plan.search}, seed {seed})" if plan.search != "grid" else "")
            ),
            on_done=_echo_trial,
        )
    _echo_sweep(ctx, result)


def _refuse_plan_options(opts: dict[str, Any], mode: str, allowed: tuple[str, ...] = ()) -> None:
    """UsageError for an option that would change a recorded sweep's plan (``mode``:
    --resume or --join goes on with it)."""
    given = [
        name
        for name in _PLAN_OPTIONS
        if opts[name] not in (None, (), False)
        and not (name == "prune_startup" and opts[name] == 5)
        and name not in allowed
    ]
    if opts["dry_run"]:
        given.insert(0, "dry_run")
    if given:
        # the option as typed: its parameter's name, where they differ
        flag = {"inputs": "--input", "tags": "--tag", "samples": "-n"}.get(given[0])
        what = flag or "--" + given[0].rstrip("_").replace("_", "-")
        raise click.UsageError(
            f"{mode} goes on with the sweep's own plan and command: {what} cannot change it"
        )


def _join(ctx: click.Context, opts: dict[str, Any]) -> None:
    # --publish: remote names are this machine's (the recorded one by default)
    _refuse_plan_options(opts, "--join", allowed=("publish",))
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking import sweep as sw

    storage = opts["study_storage"] or os.environ.get(STUDY_STORAGE_ENV) or None
    executor = executor_from(*_executor_args(opts))  # this machine's: -j, --on (not recorded)
    with bad_input():
        result = sw.join_sweep(
            opts["join"],
            study_storage=storage,
            store=ctx.obj["store"],
            executor=executor,
            grace=opts["grace"],
            publish=opts["publish"],
            command=list(opts["command"]) or None,
            yes=opts["yes"],
            say=_say,
            on_start=lambda r: _say(
                f"sweep {r.sweep_id}: joined, at most {r.total} runs here, {r.slots} at a time"
            ),
            on_done=_echo_trial,
        )
    _echo_sweep(ctx, result)


def _resume(ctx: click.Context, opts: dict[str, Any]) -> None:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking import sweep as sw

    _refuse_plan_options(opts, "--resume")
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.errors import StoreError
    from runbase.records.sweeps import get_sweep
    from runbase.store import Store

    try:
        store = Store.open(ctx.obj["store"])
    except StoreError as e:  # no store here: no sweep to resume either
        raise click.UsageError(f"no sweep {opts['resume']}: {e}") from None
    with bad_input():
        rec = get_sweep(store, opts["resume"])
    store.close()
    if rec is None:
        raise click.UsageError(f"no sweep {opts['resume']} in this store")
    recorded = rec["spec"]
    storage = opts["study_storage"]
    if storage is None and (rec["study"] or {}).get("storage", "local") != "local":
        storage = os.environ.get(STUDY_STORAGE_ENV) or None
    executor = executor_from(*_executor_args(opts, recorded))
    with bad_input():
        result = sw.resume_sweep(
            opts["resume"],
            store=ctx.obj["store"],
            executor=executor,
            grace=opts["grace"],
            study_storage=storage,
            command=list(opts["command"]) or None,
            yes=opts["yes"],
            say=_say,
            on_start=lambda r: _say(
                f"sweep {r.sweep_id}: resumed, {r.total} runs left, {r.slots} at a time"
            ),
            on_done=_echo_trial,
        )
    _echo_sweep(ctx, result)


def _executor_args(opts: dict[str, Any], recorded: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """``executor_from``'s arguments: the options given, else (a resume) the recorded."""
    rec = recorded or {}
    res = rec.get("resources") or {}
    memory = opts["memory"]
    if memory is None and res.get("memory") is not None:
        memory = str(res["memory"])  # bytes
    on = opts["on"] or rec.get("on")
    ray = (on or "local") != "local"
    return (
        opts["jobs"] if opts["jobs"] is not None else rec.get("jobs"),
        on,
        opts["cpus"] if opts["cpus"] is not None else (res.get("cpus") if ray else None),
        opts["gpus"] if opts["gpus"] is not None else (res.get("gpus") if ray else None),
        memory if ray or opts["memory"] is not None else None,
        opts["retries"] if opts["retries"] is not None else (rec.get("retries") if ray else None),
    )


def _execution(opts: dict[str, Any]) -> dict[str, Any]:
    """The executor's options as the sweep's record keeps them (spec: on, resources,
    retries, jobs)."""
    from runbase.tracking.executor import parse_memory  # lazy: the CLI's start-up

    memory = None if opts["memory"] is None else parse_memory(opts["memory"])
    return {
        "on": opts["on"] or "local",
        "resources": {
            "cpus": 1.0 if opts["cpus"] is None else opts["cpus"],
            "gpus": 0.0 if opts["gpus"] is None else opts["gpus"],
            "memory": memory,
        },
        "retries": opts["retries"] or 0,
        "jobs": opts["jobs"],
    }


def _dry_run(plan: Any) -> None:
    from runbase.tracking import sweep as sw  # lazy: the CLI's start-up loads click alone

    if plan.model:
        space = [f"{k}={','.join(map(str, v))}" for k, v in plan.grid.items()]
        space += [f"{k}={d.text}" for k, d in plan.random.items()]
        click.echo(
            f"{plan.search} search: {plan.total()} trials chosen as results come in, over "
            + " ".join(space)
        )
        return
    for i, t in enumerate(plan.points(), 1):
        click.echo(f"[{i}] {sw.Trial(i, t).describe()}")


def _say(line: str) -> None:
    click.echo(line, err=True)


def _echo_trial(trial: Any, done: int, total: int) -> None:
    # [runs ended/runs]: with -j > 1, trials end in any order; #N is the trial's index
    if trial.status in ("finished", "pruned"):
        status = trial.status
    else:
        status = f"{trial.status or 'failed'} (exit {trial.returncode})"
    if trial.value is not None:
        status += f" ({trial.value:.6g})"
    _say(f"[{done}/{total}] trial {trial.index} {status}: {trial.describe()}")
    last = trial.stderr_tail.strip().splitlines()[-1:] if trial.stderr_tail else []
    if trial.status != "pruned":  # a pruned run's stderr ends with its SIGTERM
        for line in last:
            _say(f"    {line}")


def _echo_sweep(ctx: click.Context, result: Any) -> None:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.sweeps import trial_runs
    from runbase.render.table import render, runs_table, terminal_width
    from runbase.store import Store

    store = Store.open(result.store_root)
    rows = trial_runs(store, result.sweep_id)
    if rows:
        headers, table = runs_table(store, rows)
        click.echo(render(headers, table, terminal_width(sys.stdout.isatty())))
    failed, pruned, not_run = len(result.failed), len(result.pruned), result.not_run
    plan = result.plan
    line = f"sweep {result.sweep_id}: {len(result.finished)} finished, {failed} failed"
    if pruned or (plan is not None and plan.prune):
        line += f", {pruned} pruned"
    if result.interrupted:
        line += f", {not_run} not run (interrupted)"
    best = result.best
    if best is not None and best.value is not None and plan is not None:
        line += f"; best {plan.objective} {best.value:.6g}: trial {best.index}, run {best.run_id}"
    click.echo(line + f" - runbase ls --sweep {result.sweep_id}")
    ctx.exit(130 if result.interrupted else 1 if failed else 0)


COMMANDS = (sweep,)
