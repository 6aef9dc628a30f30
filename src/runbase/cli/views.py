"""``runbase views``: the saved views of the runs page (docs/views.md), listed, shown,
removed and made the default, in the local store or (list, show) on a team server."""

from __future__ import annotations

import json
from typing import Any

import click

from runbase.cli._common import bad_input, echo_json, open_store

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_REMOTE = click.option(
    "--remote",
    "remote_name",
    metavar="REMOTE",
    help="The views of a team server's project (`runbase remote add`), not the local store's.",
)


@click.group(invoke_without_command=True)
@_JSON
@_REMOTE
@click.pass_context
def views(ctx: click.Context, as_json: bool, remote_name: str | None) -> None:
    """Saved views of the runs page (filter, sort, columns, charts), by name: `runbase
    views` lists them; `runbase ui` opens one at /?view=NAME, and the default view at /."""
    if ctx.invoked_subcommand is None:
        _list(ctx, as_json, remote_name)


@views.command("ls")
@_JSON
@_REMOTE
@click.pass_context
def views_ls(ctx: click.Context, as_json: bool, remote_name: str | None) -> None:
    """List the saved views (* marks the default one)."""
    _list(ctx, as_json, remote_name)


@views.command("show")
@click.argument("name")
@_JSON
@_REMOTE
@click.pass_context
def views_show(ctx: click.Context, name: str, as_json: bool, remote_name: str | None) -> None:
    """Show a saved view and its spec."""
    if remote_name is not None:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.remote.client import get_remote
        from runbase.remote.views import remote_view

        with bad_input():
            view = remote_view(get_remote(remote_name), name)
    else:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.render.views.saved import saved_view

        with bad_input():
            view = saved_view(open_store(ctx), name)
    if as_json:
        echo_json(view)
        return
    click.echo(_describe(view))
    click.echo(json.dumps(view["spec"], indent=2, ensure_ascii=False))


@views.command("rm")
@click.argument("name")
@_JSON
@click.pass_context
def views_rm(ctx: click.Context, name: str, as_json: bool) -> None:
    """Delete a saved view."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.views.saved import delete_view, saved_views

    store = open_store(ctx)
    with bad_input():
        delete_view(store, name)
    if as_json:
        echo_json({"deleted": name, **saved_views(store)})
        return
    click.echo(f"deleted view {_text(name)}")


@views.command("default")
@click.argument("name", required=False)
@click.option("--none", "no_default", is_flag=True, help="No default view from now on.")
@_JSON
@click.pass_context
def views_default(ctx: click.Context, name: str | None, no_default: bool, as_json: bool) -> None:
    """Make NAME the view `runbase ui` opens at / (--none: the plain runs page)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.views.saved import set_default_view

    if (name is None) == (not no_default):
        raise click.UsageError("give a view's NAME or --none")
    with bad_input():
        listing = set_default_view(open_store(ctx), name)
    if as_json:
        echo_json(listing)
    elif name is None:
        click.echo("no default view")
    else:
        click.echo(f"{_text(name)} is the default view")


def _list(ctx: click.Context, as_json: bool, remote_name: str | None) -> None:
    if remote_name is not None:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.remote.client import get_remote
        from runbase.remote.views import remote_views

        listing = remote_views(get_remote(remote_name))
    else:
        # lazy: the CLI's start-up loads click alone; each command imports what it runs
        from runbase.render.views.saved import saved_views

        listing = saved_views(open_store(ctx))
    if as_json:
        echo_json(listing)
        return
    if not listing["views"]:
        click.echo("no saved views (save one from the runs page of `runbase ui`)", err=True)
        return
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.table import render

    rows = [
        [_text(v["name"]), "*" if v["default"] else "", _text(v["user"] or ""),
         _text((v["updated_at"] or "")[:19].replace("T", " "))]
        for v in listing["views"]
    ]  # fmt: skip
    click.echo(render(["name", "default", "user", "updated"], rows))


def _describe(view: dict[str, Any]) -> str:
    lines = [
        f"view:     {_text(view['name'])}" + ("  (default)" if view["default"] else ""),
        f"user:     {_text(view['user'] or '-')}",
        f"created:  {_text(view['created_at'] or '-')}",
        f"updated:  {_text(view['updated_at'] or '-')}",
    ]
    return "\n".join(lines)


def _text(value: str) -> str:
    """Text from a store or a server, safe on a terminal (escape sequences escaped)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.text import printable

    return printable(value)


COMMANDS = (views,)
