"""The options that say where a command's runs go (``--on``, ``--cpus``, ``--gpus``,
``--memory``, ``--retries``), shared by ``runbase sweep``, ``explain`` and ``reproduce``.

    @executor_options
    def sweep(..., jobs, on, cpus, gpus, memory, retries): ...
        ex = executor_from(jobs, on, cpus, gpus, memory, retries)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from runbase.cli._common import bad_input

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option(
        "--on",
        "on",
        default=None,
        metavar="WHERE",
        help="Where the runs go: local (this machine, the default), ray (the Ray cluster "
        "at RAY_ADDRESS, else the local one) or ray://HOST:PORT (Ray Client). Ray workers "
        "must reach the store's directory at the same path (docs/ray.md).",
    ),
    click.option(
        "--cpus",
        type=float,
        default=None,
        help="CPUs each run needs on a Ray node (default 1).",
    ),
    click.option(
        "--gpus",
        type=float,
        default=None,
        help="GPUs each run needs on a Ray node (default 0; fractions share a GPU).",
    ),
    click.option(
        "--memory",
        default=None,
        metavar="SIZE",
        help="Memory each run needs on a Ray node: 4G, 512MiB, 1.5GB.",
    ),
    click.option(
        "--retries",
        type=int,
        default=None,
        help="How many times Ray re-runs a run whose node died (default 0); the "
        "run of the lost attempt is marked lost.",
    ),
]


def executor_options(f: F) -> F:
    """Add ``--on``, ``--cpus``, ``--gpus``, ``--memory``, ``--retries`` to a command."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def executor_from(
    jobs: int | None,
    on: str | None,
    cpus: float | None,
    gpus: float | None,
    memory: str | None,
    retries: int | None,
) -> Any:
    """The executor these options ask for; click.UsageError on bad input (an unknown
    ``--on``, a bad size, Ray options without ``--on ray``). Not checked yet: call
    ``check()`` before the first run."""
    # lazy: the CLI's start-up loads click alone; each command imports what it runs
    from runbase.tracking.executor import Resources, make_executor, parse_memory

    with bad_input():
        local = on is None or on.strip() == "local"
        asked = [
            name
            for name, value in (("--cpus", cpus), ("--gpus", gpus), ("--memory", memory))
            if value is not None
        ] + (["--retries"] if retries else [])
        if local and asked:
            # lazy: the CLI's start-up loads click alone; each command imports what it runs
            from runbase.errors import UsageError

            raise UsageError(f"{asked[0]} needs --on ray (local runs take what they need)")
        resources = Resources(
            cpus=1.0 if cpus is None else cpus,
            gpus=0.0 if gpus is None else gpus,
            memory=None if memory is None else parse_memory(memory),
        )
        return make_executor(on, jobs, resources, retries or 0)
