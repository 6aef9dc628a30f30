"""What an import did: the runs it created, found already there or updated, and what
it could not carry over (with why and how many), for the CLI's summary and ``--json``.

Every importer (``import_<system>(store, source, *, experiment=None, progress=None)``)
returns one :class:`ImportReport` and reports its progress through a :data:`Progress`
callback, one call per run. Within a run, the work done (metric points read and
stored, artifact bytes stored) goes to the callback's ``within(kind, n)`` method when
it has one (the CLI's bar), through :meth:`ImportReport.advance`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (runs done so far, runs in all if known, what is being imported now: a run's name or id)
Progress = Callable[[int, "int | None", str], None]


def new_report(system: str, progress: Progress | None) -> ImportReport:
    """The report of one import, passing work within a run to ``progress.within``."""
    return ImportReport(system, within=getattr(progress, "within", None))


def report_step(progress: Progress | None, done: int, total: int | None, what: str) -> None:
    """Tell ``progress`` (if any) that ``done`` of ``total`` runs are through."""
    if progress is not None:
        progress(done, total, what)


@dataclass
class ImportReport:
    """One import's outcome. Run lists hold runbase run ids.

    ``created``: runs new to the store; ``unchanged``: runs an earlier import already
    brought in, identical at the source; ``updated``: runs already here to which the
    source had added something since (metric points, tags, artifacts) and which were
    completed; ``skipped``: (what, why) for things not imported (a run that failed to
    read, an unsafe artifact path); ``not_mapped``: kinds of records the other system
    has and runbase does not keep (``"traces": 4``), with how many were left behind.
    """

    system: str
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    not_mapped: dict[str, int] = field(default_factory=dict)
    # (what, how many more): work within the current run, for a progress display
    within: Callable[[str, int], None] | None = field(default=None, repr=False, compare=False)

    def advance(self, what: str, n: int) -> None:
        """``n`` more of ``what`` (``"points"``, ``"bytes"``) done in the current run."""
        if self.within is not None and n:
            self.within(what, n)

    def not_mapped_add(self, what: str, count: int = 1) -> None:
        """Count ``count`` more records of kind ``what`` left behind."""
        if count > 0:
            self.not_mapped[what] = self.not_mapped.get(what, 0) + count

    def lines(self) -> list[str]:
        """The human summary: counts first, then each skipped thing and what was not mapped."""
        head = f"{self.system}: {_runs(len(self.created))} imported"
        if self.updated:
            head += f", {len(self.updated)} updated"
        head += f", {len(self.unchanged)} already there"
        if self.skipped:
            head += f", {len(self.skipped)} skipped"
        out = [head]
        out += [f"  skipped {what}: {why}" for what, why in self.skipped]
        if self.not_mapped:
            kinds = ", ".join(f"{k} ({n})" for k, n in sorted(self.not_mapped.items()))
            out.append(f"  not mapped: {kinds}")
        return out

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON (``runbase import ... --json``)."""
        return {
            "system": self.system,
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "skipped": [{"what": w, "why": y} for w, y in self.skipped],
            "not_mapped": dict(sorted(self.not_mapped.items())),
        }


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
