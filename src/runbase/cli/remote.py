"""``runbase login / remote / push / pull``: the client side of a team server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from runbase.cli._common import open_store

if TYPE_CHECKING:
    from runbase.remote.models import ModelPushReport


@click.command()
@click.argument("url")
@click.option("--token", envvar="RUNBASE_TOKEN", help="An API token (default: prompt).")
def login(url: str, token: str | None) -> None:
    """Keep an API token for the server at URL (in your config, mode 0600)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.config import config_path
    from runbase.remote.client import login as do_login

    if not token:
        token = click.prompt("API token", hide_input=True)
    me = do_login(url, token.strip())
    names = ", ".join(p["name"] for p in me.get("projects", [])) or "none"
    click.echo(
        f"logged in to {url} as {me.get('user')} (projects: {names}); token in {config_path()}"
    )


@click.group()
def remote() -> None:
    """Named team servers (and projects) to push to and pull from."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--project", "-p", default="default", show_default=True, help="The server project.")
def remote_add(name: str, url: str, project: str) -> None:
    """Add remote NAME: project PROJECT on the server at URL."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import add_remote

    r = add_remote(name, url, project)
    hint = "" if r.token else f" (no token yet: runbase login {r.url})"
    click.echo(f"remote {name}: {r.url} project {project}{hint}")


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Forget remote NAME."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import remove_remote

    remove_remote(name)


@remote.command("list")
def remote_list() -> None:
    """List remotes."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import remotes

    for r in remotes().values():
        click.echo(f"{r.name}\t{r.url}\t{r.project}\t{'logged in' if r.token else 'no token'}")


@click.command()
@click.argument("run_refs", nargs=-1, metavar="[RUN]...")
@click.option("--all", "all_runs", is_flag=True, help="Push every run of the store.")
@click.option(
    "--models",
    "all_models",
    is_flag=True,
    help="Push every version of the local model registry (and its run) with its history.",
)
@click.option("--to", "remote_name", metavar="REMOTE", help="The remote (default: the only one).")
@click.option("--no-data", is_flag=True, help="Keep data files local (their hashes are sent).")
@click.option("--jobs", "-j", default=8, show_default=True, help="Parallel uploads.")
@click.pass_context
def push(
    ctx: click.Context,
    run_refs: tuple[str, ...],
    all_runs: bool,
    all_models: bool,
    remote_name: str | None,
    no_data: bool,
    jobs: int,
) -> None:
    """Push runs (default: the latest, and runs whose publishing did not complete) and
    the objects they reference to a remote; then the model versions those runs (or runs
    pushed before) produced, with their bytes and stage history (--models: every
    version). Exits 1 when the server refused a registry event (each is listed)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import get_remote
    from runbase.remote.models import push_models
    from runbase.remote.sync import push as do_push
    from runbase.remote.sync import pushable_runs
    from runbase.render.table import fmt_bytes

    store = open_store(ctx)
    r = get_remote(remote_name)
    progress = lambda m: click.echo(m, err=True)  # noqa: E731
    ids: list[str] | None = None  # --models alone: the registry's runs, not the latest
    if not all_models or run_refs or all_runs:
        ids = pushable_runs(store, run_refs, all_runs, r.name)
        report = do_push(store, r, ids, data=not no_data, jobs=jobs, progress=progress)
        click.echo(
            f"{len(report.runs)} run(s) pushed, {len(report.unchanged)} unchanged; "
            f"{report.objects_sent} objects ({fmt_bytes(report.bytes_sent)}) sent, "
            f"{report.objects_skipped} already there"
        )
    models = push_models(
        store, r, None if all_models else ids, data=not no_data, jobs=jobs, progress=progress
    )
    if _echo_models(models):
        ctx.exit(1)


def _echo_models(report: ModelPushReport) -> bool:
    """Print each registry event the server applied or refused, and a summary line;
    whether any was refused."""
    if not report.versions:
        return False
    if report.runs:
        click.echo(f"{len(report.runs)} run(s) of model versions pushed")
    for r in report.results:
        if r["result"] in ("exists", "settled"):  # a settled refusal was shown when it was made
            continue
        target = f"{r['model']}@{r['stage']}" if r["stage"] else f"{r['model']}@{r['version']}"
        to = f" -> {r['version'] or 'empty'}" if r["stage"] else ""
        line = f"  {r['result']}: {r['action']} {target}{to}"
        click.echo(line + (f": {r['detail']}" if r["result"] == "refused" else ""))
    if report.unchanged:
        click.echo(f"{len(report.versions)} model version(s): registry unchanged since last push")
    else:
        settled = report.count("settled")
        click.echo(
            f"{len(report.versions)} model version(s): {report.count('applied')} event(s) "
            f"applied, {report.count('exists')} already there, {report.count('refused')} refused"
            + (f", {settled} refused by an earlier push" if settled else "")
        )
    return report.count("refused") > 0


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--from", "remote_name", metavar="REMOTE", help="The remote (default: the only one).")
@click.option("--data", is_flag=True, help="Also fetch the run's data files.")
@click.option("--jobs", "-j", default=8, show_default=True, help="Parallel downloads.")
@click.pass_context
def pull(ctx: click.Context, run_ref: str, remote_name: str | None, data: bool, jobs: int) -> None:
    """Bring RUN (an id, NAME:RUN or its URL) from a remote into the local store."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import get_remote, split_remote_ref
    from runbase.remote.sync import pull as do_pull
    from runbase.render.table import fmt_bytes

    store = open_store(ctx, create=True)
    found = split_remote_ref(run_ref)
    r, ref = found if found else (get_remote(remote_name), run_ref)
    report = do_pull(store, r, ref, data=data, jobs=jobs)
    click.echo(
        f"pulled {report.run_id}: {report.objects_fetched} objects "
        f"({fmt_bytes(report.bytes_fetched)})"
    )


@click.command()
@click.option(
    "--where", "-w", help="Filter, as `runbase ls --where`: params, metrics, tags, user..."
)
@click.option(
    "--data",
    "-d",
    metavar="PATH|HASH",
    help="Runs that read or wrote these exact bytes: a local file or directory (hashed "
    "here) or an object id.",
)
@click.option("--on", "remote_name", metavar="REMOTE", help="The server (default: the only one).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(
    ctx: click.Context,
    where: str | None,
    data: str | None,
    remote_name: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Search the runs of every project you can read on a team server: which runs used
    this exact dataset (--data), which match a filter (--where), or both."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import get_remote
    from runbase.remote.sync import search as do_search
    from runbase.render.table import render

    if not where and not data:
        raise click.UsageError("give --where, --data or both")
    oid = None
    if data:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.records.lineage import oid_of

        oid = data if data.startswith("blake3:") else oid_of(open_store(ctx, create=True), data)[0]
    found = do_search(get_remote(remote_name), where, oid, limit)
    if as_json:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.capture.params import jsonable

        # strict JSON: a server's answer may hold NaN/inf (json.loads takes them)
        click.echo(json.dumps(jsonable(found), indent=2))
        return
    rows = [
        [r["project"], r["id"][:10], r.get("name") or "", r.get("status") or "",
         r.get("user") or "", (r.get("started_at") or "")[:19], r.get("data_role") or ""]
        for r in found["runs"]
    ]  # fmt: skip
    headers = ["project", "id", "name", "status", "user", "started", "data"]
    click.echo(render(headers, rows))
    click.echo(f"{found['total']} run(s)" + (f" for {oid}" if oid else ""), err=True)


COMMANDS = (login, remote, push, pull, search)
