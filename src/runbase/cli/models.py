"""``runbase model``: the model registry (docs/models.md) — versions of a run's output
files by hash, stages that hold one version each, the hash-chained audit log of every
change, delivery of a version's exact bytes and the drift check of a deployed path.

Each command acts on the local store, or with ``--remote NAME`` on a team server's
registry (remote.models). Each takes ``--json`` (the shapes of docs/models.md). Exit
codes: 0 done, 1 not found / conflict / refused / out of sync / a broken chain, 2 bad
usage (as click's own).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import click

from runbase.cli._common import bad_input, echo_json, open_store
from runbase.errors import RunbaseError

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/models.md).")
_REMOTE = click.option(
    "--remote",
    "remote_name",
    metavar="REMOTE",
    help="The registry of a team server's project (`runbase remote add`), not the local store's.",
)
_GIT_TAG = click.option(
    "--git-tag",
    is_flag=True,
    help="Also write the annotated git tag GTO reads (NAME@vX.Y.Z, NAME#STAGE#N).",
)


def _message_option(required: bool, what: str) -> Any:
    return click.option("-m", "--message", required=required, metavar="TEXT", help=what)


@click.group("model")
def model() -> None:
    """The model registry: versions of run outputs, stages, an audit log, delivery and
    drift checks (docs/models.md). References: NAME@vX.Y.Z, NAME@latest, NAME@STAGE."""


# ---------------------------------------------------------------- writes


@model.command("register")
@click.argument("name")
@click.argument("source", metavar="RUN:PATH|FILE")
@click.option(
    "--version", "version", metavar="vX.Y.Z", help="The version number (default: next patch)."
)
@click.option("--bump-major", "bump", flag_value="major", help="The next major version.")
@click.option("--bump-minor", "bump", flag_value="minor", help="The next minor version.")
@click.option(
    "--bump-patch", "bump", flag_value="patch", help="The next patch version (the default)."
)
@_message_option(False, "What this version is.")
@click.option(
    "--external",
    is_flag=True,
    help="Accept bytes no recorded run produced (shown as 'no provenance').",
)
@_GIT_TAG
@_REMOTE
@_JSON
@click.pass_context
def register_cmd(
    ctx: click.Context,
    name: str,
    source: str,
    version: str | None,
    bump: str | None,
    message: str | None,
    external: bool,
    git_tag: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Register a new version of NAME: a file or directory a run wrote (RUN:PATH), or a
    file or directory on disk (FILE: the run that wrote those bytes is found by hash).

    SOURCE is a path when something exists at that path; otherwise RUN:PATH, split at
    its first ':' (a run reference has no ':'; the path may)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name, normalize_version
    from runbase.records import registry

    if version is not None and bump is not None:
        raise click.UsageError("give --version or a --bump-* option, not both")
    with bad_input():
        check_name(name)
        version = normalize_version(version) if version is not None else None
    on_disk = os.path.lexists(source)
    run_ref, _, path = source.partition(":")
    if not on_disk and (not run_ref or not path):
        raise click.UsageError(
            f"{source!r}: no such file or directory, and not RUN:PATH (a run's output)"
        )
    if git_tag and remote_name is not None:
        raise click.UsageError("--git-tag tags the local repository: not with --remote")
    # bytes from outside (--external) may be a project's first record: its store begins here
    store = open_store(ctx, create=on_disk and external)
    with bad_input():
        if on_disk:
            src = registry.source_of_file(store, source, external=external)
        else:
            src = registry.source_of_run_path(store, run_ref, path)
    if remote_name is not None:
        with bad_input():
            answer = _remote_models().remote_register(
                _remote(remote_name), name, src.oid, src.run_id, src.path, version,
                bump or "patch", message, src.run_id is None, kind=src.kind, store=store,
            )  # fmt: skip
        _written(answer["events"], as_json)
        return
    with bad_input():
        if git_tag:
            _gto().check_taggable(
                os.getcwd(), store, name, "register", version=version,
                commit=src.git_commit, bump=bump or "patch",
            )  # fmt: skip
        events = registry.register(
            store,
            name,
            src,
            version=version,
            bump=bump or "patch",
            message=message,
            actor=registry.local_actor(),
        )
    _written(events, as_json, _git_tag(store, events) if git_tag else None)


@model.command("promote")
@click.argument("name")
@click.argument("version", metavar="VERSION")
@click.option("--to", "stage", required=True, metavar="STAGE", help="The stage, e.g. production.")
@_message_option(True, "Why (kept in the audit log).")
@_GIT_TAG
@_REMOTE
@_JSON
@click.pass_context
def promote_cmd(
    ctx: click.Context,
    name: str,
    version: str,
    stage: str,
    message: str,
    git_tag: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Put VERSION (vX.Y.Z, or latest) of NAME in STAGE. On a team server's stage that
    needs two people, this opens a request another approver accepts (`model approve`)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name, check_stage, normalize_version
    from runbase.records import registry

    with bad_input():
        check_name(name)
        check_stage(stage)
        if version != "latest":
            version = normalize_version(version)
    if remote_name is not None:
        if git_tag:
            raise click.UsageError("--git-tag tags the local repository: not with --remote")
        remote = _remote(remote_name)
        with bad_input():
            if version == "latest":
                version = _remote_models().remote_resolve(remote, f"{name}@latest")["version"]
            answer = _remote_models().remote_promote(remote, name, version, stage, message)
        _written(answer["events"], as_json)
        return
    store = open_store(ctx)
    with bad_input():
        if version == "latest":
            version = registry.resolve_ref(store, f"{name}@latest").version
        if git_tag:
            _gto().check_taggable(os.getcwd(), store, name, "promote", version=version, stage=stage)
        events = registry.promote(
            store, name, version, stage, message=message, actor=registry.local_actor()
        )
    _written(events, as_json, _git_tag(store, events) if git_tag else None)


@model.command("demote")
@click.argument("name")
@click.option("--from", "stage", required=True, metavar="STAGE", help="The stage to empty.")
@_message_option(True, "Why (kept in the audit log).")
@_GIT_TAG
@_REMOTE
@_JSON
@click.pass_context
def demote_cmd(
    ctx: click.Context,
    name: str,
    stage: str,
    message: str,
    git_tag: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Take NAME's version out of STAGE (the stage then holds none)."""
    _stage_change(ctx, "demote", name, stage, message, git_tag, remote_name, as_json)


@model.command("rollback")
@click.argument("name")
@click.argument("stage")
@_message_option(True, "Why (kept in the audit log).")
@_GIT_TAG
@_REMOTE
@_JSON
@click.pass_context
def rollback_cmd(
    ctx: click.Context,
    name: str,
    stage: str,
    message: str,
    git_tag: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Give STAGE of NAME back the version it held before its current one."""
    _stage_change(ctx, "rollback", name, stage, message, git_tag, remote_name, as_json)


def _stage_change(
    ctx: click.Context,
    action: str,
    name: str,
    stage: str,
    message: str,
    git_tag: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name, check_stage
    from runbase.records import registry

    with bad_input():
        check_name(name)
        check_stage(stage)
    if remote_name is not None:
        if git_tag:
            raise click.UsageError("--git-tag tags the local repository: not with --remote")
        with bad_input():
            answer = getattr(_remote_models(), f"remote_{action}")(
                _remote(remote_name), name, stage, message
            )
        _written(answer["events"], as_json)
        return
    store = open_store(ctx)
    change = registry.demote if action == "demote" else registry.rollback
    with bad_input():
        if git_tag:
            _gto().check_taggable(os.getcwd(), store, name, action, stage=stage)
        events = change(store, name, stage, message=message, actor=registry.local_actor())
    _written(events, as_json, _git_tag(store, events) if git_tag else None)


@model.command("approve")
@click.argument("request_id")
@_message_option(False, "The approver's note (kept in the audit log).")
@_REMOTE
@_JSON
@click.pass_context
def approve_cmd(
    ctx: click.Context, request_id: str, message: str | None, remote_name: str | None, as_json: bool
) -> None:
    """Accept a promotion request (another approver than its requester)."""
    _decide(ctx, "approve", request_id, message, remote_name, as_json)


@model.command("reject")
@click.argument("request_id")
@_message_option(False, "Why not (kept in the audit log).")
@_REMOTE
@_JSON
@click.pass_context
def reject_cmd(
    ctx: click.Context, request_id: str, message: str | None, remote_name: str | None, as_json: bool
) -> None:
    """Turn a promotion request down (an approver, or its requester withdrawing it)."""
    _decide(ctx, "reject", request_id, message, remote_name, as_json)


def _decide(
    ctx: click.Context,
    action: str,
    request_id: str,
    message: str | None,
    remote_name: str | None,
    as_json: bool,
) -> None:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records import registry

    if remote_name is not None:
        with bad_input():
            events = getattr(_remote_models(), f"remote_{action}")(
                _remote(remote_name), request_id, message
            )["events"]
    else:
        decide = registry.approve if action == "approve" else registry.reject
        with bad_input():
            events = decide(
                open_store(ctx), request_id, message=message, actor=registry.local_actor()
            )
    _written(events, as_json)


def _written(events: list[Any], as_json: bool, tags: list[str] | None = None) -> None:
    """What a write did: ``{"events": [event]}`` (the API's answer; with --git-tag also
    ``"git_tags": [name]``) or one line each."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.models import event_line

    items = [e if isinstance(e, dict) else e.to_json() for e in events]
    if as_json:
        echo_json({"events": items} | ({"git_tags": tags} if tags is not None else {}))
        return
    for e in items:
        click.echo(event_line(e))
    for tag in tags or ():
        click.echo(f"tagged {tag}")
    if tags:  # tags are local until pushed: GTO's CLI, its GitHub Action and CI read the remote's
        quoted = " ".join(f"'{t}'" if "#" in t else t for t in tags)
        click.echo(f"publish them with: git push origin {quoted}")


def _answer(
    ctx: click.Context, report: Any, as_json: bool, text: Any, failed: bool = False
) -> None:
    """A report as JSON or as its text; exit 1 when it says something failed (a broken
    chain, a drift, a tag that could not be imported), for a cron job or a CI gate."""
    if as_json:
        echo_json(report)
    else:
        click.echo(text(report))
    if failed:
        ctx.exit(1)


# ---------------------------------------------------------------- reads


@model.command("ls")
@_REMOTE
@_JSON
@click.pass_context
def ls_cmd(ctx: click.Context, remote_name: str | None, as_json: bool) -> None:
    """List the models: latest version, number of versions, stages."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.render.models import ls_text
    from runbase.render.views.models import model_list

    if remote_name is not None:
        listing = _remote_models().remote_models(_remote(remote_name))
    else:
        listing = model_list(open_store(ctx))
    if as_json:
        echo_json(listing)
    elif not listing["models"]:
        click.echo("no models yet (`runbase model register NAME RUN:PATH`)", err=True)
    else:
        click.echo(ls_text(listing))


@model.command("show")
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    help="markdown: a pull-request comment (docs/ci.md).",
)
@_REMOTE
@_JSON
@click.pass_context
def show_cmd(
    ctx: click.Context, name: str, fmt: str, remote_name: str | None, as_json: bool
) -> None:
    """A model's versions, the stages holding them and their runs' key metrics."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name
    from runbase.render.models import show_markdown, show_text
    from runbase.render.views.models import model_detail

    with bad_input():
        check_name(name)
    if remote_name is not None:
        detail = _remote_models().remote_model(_remote(remote_name), name)
    else:
        detail = model_detail(open_store(ctx), name)
    if as_json or fmt == "json":
        echo_json(detail)
    elif fmt == "markdown":
        click.echo(show_markdown(detail), nl=False)
    else:
        click.echo(show_text(detail))


@model.command("log")
@click.argument("name", required=False)
@_REMOTE
@_JSON
@click.pass_context
def log_cmd(ctx: click.Context, name: str | None, remote_name: str | None, as_json: bool) -> None:
    """The audit log, oldest first: who changed what, when, why, from -> to, the
    version's hash and its run (NAME's events, or every model's)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name
    from runbase.render.models import log_text
    from runbase.render.views.models import model_log

    if name is not None:
        with bad_input():
            check_name(name)
    if remote_name is not None:
        log = _remote_log(_remote(remote_name), name)
    else:
        log = model_log(open_store(ctx), name)
    if as_json:
        echo_json(log)
    elif not log["events"]:
        click.echo("the log is empty", err=True)
    else:
        click.echo(log_text(log["events"]))


@model.command("requests")
@click.argument("name", required=False)
@click.option("--all", "show_all", is_flag=True, help="Decided requests too, not only open ones.")
@_REMOTE
@_JSON
@click.pass_context
def requests_cmd(
    ctx: click.Context, name: str | None, show_all: bool, remote_name: str | None, as_json: bool
) -> None:
    """Promotion requests waiting for a second person (`model approve` / `model reject`)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import check_name
    from runbase.records import registry
    from runbase.render.models import requests_text

    if name is not None:
        with bad_input():
            check_name(name)
    state = None if show_all else "open"
    if remote_name is not None:
        if show_all:
            raise click.UsageError("a team server lists its open requests only: drop --all")
        items = _remote_models().remote_requests(_remote(remote_name), name)
    else:
        items = registry.requests(open_store(ctx), name, state=state)
    if as_json:
        echo_json({"requests": items})
    elif not items:
        click.echo("no open requests" if not show_all else "no requests", err=True)
    else:
        click.echo(requests_text(items))


@model.command("verify")
@_REMOTE
@_JSON
@click.pass_context
def verify_cmd(ctx: click.Context, remote_name: str | None, as_json: bool) -> None:
    """Check the audit log's hash chain, its head, and that replaying it gives the
    registry as it is; exit 1 naming each problem."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records import registry
    from runbase.render.models import verify_text

    if remote_name is not None:
        report = _remote_models().remote_verify(_remote(remote_name))
    else:
        report = registry.verify(open_store(ctx)).to_json()
    _answer(ctx, report, as_json, verify_text, failed=not report["ok"])


# ---------------------------------------------------------------- delivery and drift


@model.command("get")
@click.argument("ref", metavar="REF")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="PATH",
    help="Where to write (default: the version's file name, or NAME for a directory).",
)
@click.option("--force", is_flag=True, help="Replace a file or directory holding other bytes.")
@_REMOTE
@_JSON
@click.pass_context
def get_cmd(
    ctx: click.Context,
    ref: str,
    output: str | None,
    force: bool,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Write the exact bytes of REF (NAME@production, NAME@v1.2.0, NAME@latest), checked
    against their hash as they are written, atomically."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import require_ref
    from runbase.records import registry
    from runbase.records.modelfiles import default_name, materialize
    from runbase.remote.models import version_from_json
    from runbase.render.models import get_text

    with bad_input():
        require_ref(ref)
    with _delivery_store(ctx, remote_name) as store, bad_input():
        if remote_name is not None:
            pulled = _remote_models().pull_version(store, _remote(remote_name), ref)
            version = version_from_json(pulled["version"])
        else:
            version = registry.resolve_ref(store, ref)
        result = materialize(store, version, output or default_name(version), force=force)
    _answer(ctx, result, as_json, get_text)


@model.command("status")
@click.argument("ref", metavar="REF")
@click.argument("path", type=click.Path())
@_REMOTE
@_JSON
@click.pass_context
def status_cmd(
    ctx: click.Context, ref: str, path: str, remote_name: str | None, as_json: bool
) -> None:
    """The drift check: does PATH hold the bytes of REF? "in sync" (exit 0), or "out of
    sync" (exit 1): PATH matches another version / matches no version / is missing."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.core.modelref import require_ref
    from runbase.records.modelfiles import drift, drift_of
    from runbase.remote.models import version_from_json
    from runbase.render.models import status_text

    with bad_input():
        require_ref(ref)
    with _delivery_store(ctx, remote_name) as store, bad_input():
        if remote_name is not None:
            remote = _remote(remote_name)
            expected = version_from_json(_remote_models().remote_resolve(remote, ref))
            versions = _remote_models().remote_model(remote, expected.name)["versions"]
            candidates = [version_from_json(v) for v in versions]
            report = drift_of(store, ref, expected, candidates, path, _fetcher(store, remote))
        else:
            report = drift(store, ref, path)
    _answer(ctx, report, as_json, status_text, failed=not report["in_sync"])


# ---------------------------------------------------------------- git (GTO)


@model.command("import-gto")
@click.argument("repo", required=False, type=click.Path(file_okay=False), default=".")
@_JSON
@click.pass_context
def import_gto_cmd(ctx: click.Context, repo: str, as_json: bool) -> None:
    """Read a GTO registry from REPO's git tags (default: here) into the local registry:
    each tag becomes a register / promote / demote event (docs/models.md, Git)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records import registry
    from runbase.records.gto import import_gto
    from runbase.render.models import gto_import_text

    store = open_store(ctx, create=True)  # a fresh clone has a GTO registry and no store yet
    with bad_input():
        report = import_gto(store, os.path.abspath(repo), registry.local_actor())
    _answer(ctx, report, as_json, gto_import_text, failed=bool(report.get("problems")))


def _gto() -> Any:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records import gto

    return gto


def _git_tag(store: Any, events: list[Any]) -> list[str]:
    """Write the GTO tags of ``events`` in the repository here (checked beforehand by
    ``check_taggable``, so a refusal came before the change); their names."""
    try:
        return list(_gto().tag_events(os.getcwd(), store, events))
    except RunbaseError as e:
        raise click.ClickException(f"{e} (the registry change itself is recorded)") from e


# ---------------------------------------------------------------- remote


def _remote(name: str) -> Any:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import get_remote

    with bad_input():
        return get_remote(name)


def _remote_models() -> Any:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote import models as remote_models

    return remote_models


def _fetcher(store: Any, remote: Any) -> Any:
    """How ``model status --remote`` brings a directory version's manifest from the
    server into ``store`` (re-hashed as it arrives) to compare a tree entry by entry."""

    def fetch(oids: list[str]) -> None:
        # lazy: the HTTP client loads only for a remote
        from runbase.remote.sync import fetch_objects

        fetch_objects(store, remote.client(), remote, oids, what="a model version's manifest")

    return fetch


def _remote_log(remote: Any, name: str | None) -> dict[str, Any]:
    """One model's log, or every model's merged in the log's order."""
    models = _remote_models()
    if name is not None:
        return dict(models.remote_log(remote, name))
    names = [m["name"] for m in models.remote_models(remote)["models"]]
    events = [e for n in names for e in models.remote_log(remote, n)["events"]]
    return {"events": sorted(events, key=lambda e: e["seq"])}


@contextlib.contextmanager
def _delivery_store(ctx: click.Context, remote_name: str | None) -> Iterator[Any]:
    """The store ``get``/``status`` hash and fetch through: the local one, or with
    ``--remote`` and no local store (a deployment machine) a temporary one."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.errors import StoreError
    from runbase.store import Store

    try:
        local = open_store(ctx)
    except StoreError:
        if remote_name is None:
            raise
        local = None
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="runbase-model-") as tmp:
        store = Store.open(os.path.join(tmp, "store"), create=True)
        try:
            yield store
        finally:
            store.close()


COMMANDS = (model,)
