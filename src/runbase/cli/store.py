"""``runbase fsck / gc / du``: the store's health and size."""

from __future__ import annotations

import click

from runbase.cli._common import echo_json, open_store


@click.command()
@click.pass_context
def fsck(ctx: click.Context) -> None:
    """Re-hash every object and verify the model registry's audit chain; exit 1 naming
    each corrupt or missing object and each break in the chain."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.maintenance import fsck as do_fsck

    report = do_fsck(open_store(ctx))
    for oid in report.corrupt:
        click.echo(f"corrupt: {oid}", err=True)
    for oid, kind, run_id in report.missing:
        click.echo(f"missing: {oid} ({kind} of run {run_id or '-'})", err=True)
    for problem in report.registry.problems:  # the model registry's chain (model verify)
        click.echo(f"model registry: {problem}", err=True)
    click.echo(
        f"{report.checked} objects checked, {len(report.corrupt)} corrupt, {len(report.missing)} missing"
    )
    if report.registry.events or report.registry.problems:
        state = "intact" if report.registry.ok else "BROKEN"
        click.echo(f"model registry: {report.registry.events} events, audit chain {state}")
    if not report.ok:
        ctx.exit(1)


@click.command()
@click.option("--yes", is_flag=True, help="Delete (default: only list what would go).")
@click.pass_context
def gc(ctx: click.Context, yes: bool) -> None:
    """Remove objects no run refers to, and the work directories of ended reproductions
    (safe while runs are in progress)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.maintenance import gc as do_gc
    from runbase.render.table import fmt_bytes

    report = do_gc(open_store(ctx), delete=yes)
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def du(ctx: click.Context, as_json: bool) -> None:
    """Store size by code/data/environment/logs, and what deduplication saved."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.maintenance import du as do_du
    from runbase.render.table import fmt_bytes

    u = do_du(open_store(ctx))
    if as_json:
        echo_json({**u.__dict__, "saved_by_dedup": u.saved_by_dedup})
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


COMMANDS = (
    fsck,
    gc,
    du,
)
