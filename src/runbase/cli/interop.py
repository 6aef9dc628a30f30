"""``runbase import`` and ``runbase export``: runs from MLflow, Weights & Biases,
TensorBoard and Neptune into the store, and runs out of it as an MLflow file store
(docs/interop.md).

Exit codes: 0 done (what could not be carried over is listed, and under ``--json``),
1 a source or store that cannot be read or written, 2 bad usage (a missing path, a
directory that is not the format asked for, as click's own usage errors).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from runbase.cli._common import bad_input, echo_json, open_store

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
_EXPERIMENT = click.option(
    "--experiment",
    metavar="NAME",
    help="The experiment the runs go into (default: the source's project or directory).",
)


@click.group("import")
def import_() -> None:
    """Bring runs from another tracker into the store (docs/interop.md). Importing
    again adds only what is new: a run already imported is found by its original id."""


@import_.command("mlflow")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="An MLflow tracking server (http://..., a runbase server's /p/PROJECT/mlflow), "
    "instead of an mlruns directory.",
)
@click.option(
    "--experiment", metavar="NAME", help="Import this experiment only (default: every one)."
)
@click.option(
    "--include-deleted", is_flag=True, help="Deleted runs and experiments too (default: active)."
)
@_JSON
@click.pass_context
def import_mlflow(
    ctx: click.Context,
    path: Path | None,
    tracking_uri: str | None,
    experiment: str | None,
    include_deleted: bool,
    as_json: bool,
) -> None:
    """Import MLflow runs from PATH (an mlruns directory) or --tracking-uri URI:
    params, tags, every metric point, parent runs, datasets and artifacts."""
    # lazy: each command imports what it runs
    from runbase.interop.mlflow_import import import_mlflow as run_import
    from runbase.interop.mlflow_import import shown_uri

    if (path is None) == (tracking_uri is None):
        raise click.UsageError("give an mlruns directory PATH or --tracking-uri URI (one of them)")
    source: Path | str = path if path is not None else str(tracking_uri)
    if tracking_uri is not None:  # MLflow's client waits minutes, silent, on a dead server
        click.echo(
            f"runbase: reading {shown_uri(tracking_uri)} (MLflow's client retries a server that does not "
            "answer for minutes: MLFLOW_HTTP_REQUEST_MAX_RETRIES; Ctrl-C stops)",
            err=True,
        )
    with bad_input():
        _import(
            ctx,
            lambda store, progress: run_import(
                store,
                source,
                experiment=experiment,
                progress=progress,
                include_deleted=include_deleted,
            ),
            as_json,
        )


def _other(system: str, what: str) -> click.Command:
    """``runbase import <system> PATH``: the importers of runbase.interop.<system>_import."""

    @click.command(system, help=f"Import runs from {what} (docs/interop.md).")
    @click.argument("path", type=click.Path(path_type=Path))
    @_EXPERIMENT
    @_JSON
    @click.pass_context
    def command(ctx: click.Context, path: Path, experiment: str | None, as_json: bool) -> None:
        from importlib import import_module  # lazy: each command imports what it runs

        if not path.exists():  # bad usage (exit 2), as for `import mlflow`
            raise click.UsageError(f"{path} does not exist")
        run_import = getattr(import_module(f"runbase.interop.{system}_import"), f"import_{system}")
        with bad_input():
            _import(
                ctx,
                lambda store, progress: run_import(
                    store, path, experiment=experiment, progress=progress
                ),
                as_json,
            )

    return command


import_.add_command(_other("wandb", "Weights & Biases run directories (wandb/, offline runs)"))
import_.add_command(_other("tensorboard", "a TensorBoard log directory (one run per event dir)"))
import_.add_command(_other("neptune", "the Parquet files of neptune-exporter"))


def _import(ctx: click.Context, run_import: Any, as_json: bool) -> None:
    """Open (or create) the store, run the import with progress on stderr, print its
    report."""
    store = open_store(ctx, create=True)
    shown = _Progress.on(sys.stderr, plain=not as_json)
    try:
        report = run_import(store, shown)
    finally:
        if shown is not None:
            shown.close()
        store.close()
    if as_json:
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)


class _Progress:
    """The import's progress on stderr. On a terminal, a bar of the runs (tqdm, as
    render.progress draws bytes) whose text moves with the work inside the current
    run: metric points read and stored, artifact bytes; elsewhere (a log, a pipe) one
    plain line per run. Nothing with ``$RUNBASE_NO_PROGRESS``."""

    REDRAW_S = 0.2  # at most five redraws a second: a 1 MiB chunk each is many more

    def __init__(self, stream: Any, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.bar: Any = None
        self.what = ""
        self.counts: dict[str, int] = {}
        self.drawn = 0.0

    @classmethod
    def on(cls, stream: Any, plain: bool) -> _Progress | None:
        """The display for ``stream``; None when nothing is to be shown there (plain
        lines are not wanted where the output is JSON)."""
        if os.environ.get("RUNBASE_NO_PROGRESS"):
            return None
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):
            tty = False
        return cls(stream, tty) if tty or plain else None

    def __call__(self, done: int, total: int | None, what: str) -> None:
        """Run ``done + 1`` of ``total`` begins (``what`` names it; "" once all are done)."""
        self.what, self.counts = what[:60], {}
        if not self.tty:
            if what:
                of = f"/{total}" if total is not None else ""
                self.stream.write(f"importing run {done + 1}{of}: {what[:200]}\n")
                self.stream.flush()
            return
        if self.bar is None:
            from tqdm import tqdm  # lazy: only an import on a terminal draws a bar

            self.bar = tqdm(
                total=total,
                desc="importing",
                unit="run",
                file=self.stream,
                leave=False,
                dynamic_ncols=True,
                mininterval=self.REDRAW_S,
            )
        self.bar.n = done
        self._draw(force=True)

    def within(self, what: str, n: int) -> None:
        """``n`` more of ``what`` done in the current run: the bar's text moves."""
        self.counts[what] = self.counts.get(what, 0) + n
        if self.bar is not None:
            self._draw(force=False)

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.drawn < self.REDRAW_S:
            return
        self.drawn = now
        from runbase.render.table import fmt_bytes  # lazy: command modules load only click

        done = [fmt_bytes(n) if k == "bytes" else f"{n:,} {k}" for k, n in self.counts.items()]
        self.bar.set_postfix_str(": ".join(filter(None, [self.what, ", ".join(done)])), False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("export")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.argument("dest", type=click.Path(path_type=Path), metavar="DIR")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mlflow"]),
    required=True,
    help="mlflow: an MLflow file store (mlruns layout) that MLflow's client and UI read.",
)
@_JSON
@click.pass_context
def export(ctx: click.Context, runs: tuple[str, ...], dest: Path, fmt: str, as_json: bool) -> None:
    """Write runs into DIR in another tracker's format: params, tags, every metric
    point, status, times and the stored outputs as artifacts (docs/interop.md). DIR must
    be new, empty, or an MLflow file store to add to; a run already there is kept."""
    # lazy: each command imports what it runs
    from runbase.interop.mlflow_export import export_mlflow
    from runbase.records.read import resolve

    store = open_store(ctx)
    try:
        run_ids = [resolve(store, ref) for ref in runs]
        with bad_input():
            result = export_mlflow(store, run_ids, dest)
    finally:
        store.close()
    if as_json:
        echo_json(result)
        return
    exps = ", ".join(f"{name} ({i})" for name, i in result["experiments"].items())
    n = len(result["runs"])
    click.echo(
        f"exported {n} run{'' if n == 1 else 's'} ({result['artifacts']} artifacts) "
        f"to {result['dest']}" + (f"; experiments: {exps}" if exps else "")
    )
    for s in result["skipped"]:
        click.echo(f"  skipped {s['what']}: {s['why']}")


COMMANDS = (import_, export)
