"""What the command modules share: the store a command works on, JSON output, bad
input as click's usage errors, a remote run pulled before it is used."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from runbase.errors import QueryError, UsageError


def open_store(ctx: click.Context, create: bool = False) -> Any:
    """The store the command works on (``--store``), after finalizing crashed runs."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.records.lifecycle import recover_orphans
    from runbase.store import Store

    store = Store.open(ctx.obj["store"], create=create)
    try:
        recover_orphans(store)
    except Exception as e:  # noqa: BLE001 - reading must work even if recovery cannot write
        click.echo(f"runbase: warning: could not check for crashed runs: {e}", err=True)
    return store


def echo_json(data: Any) -> None:
    """``data`` as strict, readable JSON on stdout (NaN/inf as the record writes them)."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.capture.params import jsonable
    from runbase.core import fsname

    data = jsonable(data)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if fsname.needs_encoding(text):  # a lone surrogate an older version stored ("\udce9")
        text = json.dumps(fsname.clean(data), indent=2, ensure_ascii=False)
    click.echo(text)


def pull_remote_ref(store: Any, ref: str) -> str:
    """``NAME:RUN`` or a run's URL: pull the run and its data first; its local id."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.remote.client import split_remote_ref
    from runbase.remote.sync import pull

    found = split_remote_ref(ref)
    if found is None:
        return ref
    remote, remote_ref = found
    click.echo(f"pulling {remote_ref} from {remote.url} (project {remote.project})", err=True)
    return pull(store, remote, remote_ref, data=True).run_id


def parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.capture.overrides import parse_assignments

    with bad_input():
        return parse_assignments(items)


@contextlib.contextmanager
def bad_input() -> Iterator[None]:
    """Bad input to a command exits 2 with its message, as click's own usage errors do."""
    try:
        yield
    except (UsageError, QueryError) as e:
        raise click.UsageError(str(e)) from e


def parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for t in tags:
        k, _, v = t.partition("=")
        if not k:
            raise UsageError(f"bad tag {t!r}: use KEY=VALUE or KEY")
        out[k] = v
    return out


@contextlib.contextmanager
def stdout_to_stderr(active: bool) -> Iterator[None]:
    """Point file descriptor 1 at stderr while a command runs under us, so a child
    process (and anything else) writing to stdout cannot mix with a --json answer."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
