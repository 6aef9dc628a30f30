"""``runbase server ...``: run and administer a team server (docs/server.md)."""

from __future__ import annotations

from typing import Any

import click

DEFAULT_DB = "runbase-server/server.db"
DEFAULT_OBJECTS = "runbase-server/objects"


def _url_option(name: str, default: str, help: str) -> Any:
    """``--db`` / ``--objects``: on every server command, from the environment too."""
    envvar = "RUNBASE_SERVER_" + name.upper()
    return click.option(
        f"--{name}", envvar=envvar, default=default, show_default=True, metavar="URL", help=help
    )


_db_option = _url_option("db", DEFAULT_DB, "postgresql://user:pass@host/db, or a SQLite file.")
_objects_option = _url_option(
    "objects",
    DEFAULT_OBJECTS,
    "s3://bucket/prefix (endpoint: $RUNBASE_S3_ENDPOINT_URL), or a directory.",
)


def _need_server_extra() -> None:
    try:
        # lazy: the server is the optional ui extra; this only asks whether it is installed
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise click.ClickException(
            f"runbase server needs the ui extra ({e.name} is missing): pip install 'runbase[ui]'"
        ) from e


@click.group(invoke_without_command=True)
@_db_option
@_objects_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Server processes (stateless: any number can share one database).",
)
@click.option("--secure-cookies", is_flag=True, help="Served over HTTPS (behind a TLS proxy).")
@click.pass_context
def server(
    ctx: click.Context,
    db: str,
    objects: str,
    host: str,
    port: int,
    workers: int,
    secure_cookies: bool,
) -> None:
    """Serve the team knowledge base: runbase server --db postgresql://... --objects s3://..."""
    if ctx.invoked_subcommand is not None:
        return
    _need_server_extra()
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server.run import serve
    from runbase.server.service import ServerConfig

    click.echo(f"runbase server on http://{host}:{port}/ ({workers} worker(s))", err=True)
    serve(ServerConfig(db, objects, secure_cookies=secure_cookies), host, port, workers)


@server.command()
@_db_option
@_objects_option
def migrate(db: str, objects: str) -> None:
    """Create or upgrade the server's tables and every project's schema."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server.admin import migrate as do_migrate

    report = do_migrate(db, objects)
    click.echo(
        f"server tables at version {report.control_version}, run stores at version "
        f"{report.store_version}; projects: {', '.join(report.projects)}"
    )


@server.group()
def users() -> None:
    """Add and list users."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["user", "admin"]),
    default="user",
    show_default=True,
    help="Server role: an admin manages users and projects.",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    default=["default"],
    show_default=True,
    help="Make them a member of this project (repeatable).",
)
@click.option(
    "--project-role",
    type=click.Choice(["reader", "writer", "admin"]),
    default="writer",
    show_default=True,
    help="Their role in those projects.",
)
@click.option(
    "--expires-days",
    type=click.FloatRange(min=0, min_open=True),
    help="The first token's lifetime (default: no expiry).",
)
@_db_option
def users_add(
    name: str,
    role: str,
    projects: tuple[str, ...],
    project_role: str,
    expires_days: float | None,
    db: str,
) -> None:
    """Add user NAME and print their first API token (shown this once)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server.admin import add_user

    ttl = expires_days * 86400 if expires_days else None
    token = add_user(db, name, role, projects, project_role, ttl)
    click.echo(f"user {name} added ({role}); {project_role} in {', '.join(projects)}", err=True)
    click.echo("their API token (shown once; `runbase login URL --token T`):", err=True)
    click.echo(token.secret)


@users.command("list")
@_db_option
def users_list(db: str) -> None:
    """List users."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        for u in control.list_users(cdb):
            click.echo(f"{u['name']}\t{u['role']}{'  (disabled)' if u['disabled'] else ''}")


@users.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable NAME again instead.")
@_db_option
def users_disable(name: str, enable: bool, db: str) -> None:
    """Disable user NAME: their tokens and sessions stop working at once."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.set_disabled(cdb, name, not enable)
    click.echo(f"user {name} {'enabled' if enable else 'disabled'}")


@server.group()
def projects() -> None:
    """Add and list projects."""


@projects.command("add")
@click.argument("name")
@_db_option
def projects_add(name: str, db: str) -> None:
    """Add project NAME."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.add_project(cdb, name)
    click.echo(f"project {name} added")


@projects.command("list")
@_db_option
def projects_list(db: str) -> None:
    """List projects."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.accounts import project_names
    from runbase.server.admin import opened

    with opened(db) as cdb:
        for name in project_names(cdb):
            click.echo(name)


@server.command("member")
@click.argument("project")
@click.argument("user")
@click.argument("role", type=click.Choice(["reader", "writer", "admin", "none"]))
@_db_option
def member(project: str, user: str, role: str, db: str) -> None:
    """Give USER ROLE in PROJECT (none removes them)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.set_member(cdb, project, user, None if role == "none" else role)
    click.echo(f"{user}: {role} in {project}")


@server.command("token")
@click.argument("user")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True))
@click.option("--revoke", metavar="TOKEN_ID", help="Revoke this token of USER instead.")
@click.option("--list", "list_them", is_flag=True, help="List USER's tokens (never secrets).")
@_db_option
def token(
    user: str, expires_days: float | None, revoke: str | None, list_them: bool, db: str
) -> None:
    """Issue a new API token for USER (printed once), --list them, or --revoke one."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        if list_them:
            for info in control.list_tokens(cdb, user):
                state = "revoked" if info["revoked_at"] else "active"
                click.echo(f"{info['id']}\t{state}\t{info['label']}")
            return
        if revoke:
            control.revoke_token(cdb, revoke, control.User(user, "user"))
            click.echo(f"token {revoke} revoked")
            return
        t = control.create_token(cdb, user, "cli", expires_days * 86400 if expires_days else None)
    click.echo(t.secret)


COMMANDS = (server,)
