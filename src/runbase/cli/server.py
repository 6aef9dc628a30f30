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
    type=click.Choice(["reader", "writer", "approver", "admin"]),
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
@click.argument("role", type=click.Choice(["reader", "writer", "approver", "admin", "none"]))
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


_project_option = click.option(
    "--project", default="default", show_default=True, help="The project (server projects list)."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/server.md).")


@server.group()
def stages() -> None:
    """Protected stages of the model registry: promoting to one needs an approver."""


@stages.command("protect")
@click.argument("stage")
@_project_option
@click.option(
    "--approvals",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="2: a promotion is a request a second approver accepts (runbase model approve).",
)
@_db_option
def stages_protect(stage: str, project: str, approvals: int, db: str) -> None:
    """Protect STAGE of every model in the project (again: change its approvals)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.protect_stage(cdb, project, stage, approvals, None)
    who = "an approver" if approvals == 1 else "two approvers (one asks, another approves)"
    click.echo(f"stage {stage} protected in {project}: promoting to it needs {who}")


@stages.command("unprotect")
@click.argument("stage")
@_project_option
@_db_option
def stages_unprotect(stage: str, project: str, db: str) -> None:
    """Make STAGE an ordinary stage again (any writer promotes to it)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.unprotect_stage(cdb, project, stage)
    click.echo(f"stage {stage} of {project} is no longer protected")


@stages.command("ls")
@_project_option
@_json_option
@_db_option
def stages_ls(project: str, as_json: bool, db: str) -> None:
    """List the protected stages of the project."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.cli._common import echo_json
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        rows = control.protected_stage_rows(cdb, project)
    if as_json:
        echo_json({"project": project, "stages": rows})
        return
    if not rows:
        click.echo(f"no protected stages in {project}", err=True)
    for r in rows:
        click.echo(f"{r['stage']}\t{r['approvals']} approval{'s' if r['approvals'] > 1 else ''}")


@server.group()
def hooks() -> None:
    """Webhooks: registry events POSTed, signed, to a URL of yours."""


@hooks.command("add")
@click.argument("url")
@_project_option
@click.option(
    "--events",
    required=True,
    metavar="LIST",
    help="Comma list of register, promote, demote, rollback, request, approve, reject.",
)
@click.option("--secret", help="The signing secret (default: 256 random bits, printed once).")
@_db_option
def hooks_add(url: str, project: str, events: str, secret: str | None, db: str) -> None:
    """POST each event of the project whose action is in --events to URL."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server.admin import add_hook

    # its cursor: the project's last event now (read from the project's store)
    hook = add_hook(db, project, url, events, secret)
    click.echo(f"webhook {hook.id} added to {project}: {url}", err=True)
    if secret is None:
        click.echo("its signing secret (shown once; X-Runbase-Signature-256):", err=True)
        click.echo(hook.secret)


@hooks.command("ls")
@click.option("--project", help="Only this project's (default: every project's).")
@_json_option
@_db_option
def hooks_ls(project: str | None, as_json: bool, db: str) -> None:
    """List webhooks (never their secrets)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.cli._common import echo_json
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        rows = control.hooks(cdb, project)
    if as_json:
        echo_json({"hooks": rows})
        return
    if not rows:
        click.echo("no webhooks", err=True)
    for h in rows:
        off = "  (disabled)" if h["disabled"] else ""
        click.echo(f"{h['id']}\t{h['project']}\t{h['url']}\t{','.join(h['events'])}{off}")


@hooks.command("rm")
@click.argument("hook_id", metavar="ID")
@_db_option
def hooks_rm(hook_id: str, db: str) -> None:
    """Remove webhook ID (its pending deliveries end failed)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        control.remove_hook(cdb, hook_id)
    click.echo(f"webhook {hook_id} removed")


@hooks.command("deliveries")
@click.option("--project", help="Only this project's (default: every project's).")
@click.option("--hook", "hook_id", metavar="ID", help="Only this webhook's.")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@_json_option
@_db_option
def hooks_deliveries(
    project: str | None,
    hook_id: str | None,
    state: str | None,
    limit: int,
    as_json: bool,
    db: str,
) -> None:
    """List webhook deliveries, newest first, with their state and last error."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.cli._common import echo_json
    from runbase.server import control
    from runbase.server.admin import opened

    with opened(db) as cdb:
        rows = control.deliveries(cdb, project, hook_id, state, limit)
    if as_json:
        echo_json({"deliveries": rows})
        return
    if not rows:
        click.echo("no deliveries", err=True)
    for d in rows:
        status = d["last_status"] if d["last_status"] is not None else "-"
        click.echo(
            f"{d['id']}\t{d['state']}\t{d['attempts']} attempt(s)\t{d['hook']}\t"
            f"{d['action'] or '?'}\t{d['event']}\t{status}\t{d['last_error'] or ''}"
        )


COMMANDS = (server,)
