"""Jobs as Ray tasks (``--on ray``): stub until the Ray executor lands; same interface
as :class:`runbase.tracking.executor.LocalExecutor`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from runbase.errors import UsageError
from runbase.tracking.executor import Job, Resources


class RayExecutor:
    kind = "ray"

    def __init__(
        self, address: str | None, jobs: int | None, resources: Resources, retries: int
    ) -> None:
        self.address, self.resources, self.retries = address, resources, retries
        self.slots = jobs or 1

    def check(self) -> None:
        raise UsageError("--on ray is not available yet")

    def run(
        self,
        items: Iterable[Job],
        on_done: Callable[[Job, int, int], None] | None = None,
        total: int | None = None,
    ) -> bool:
        self.check()
        return False

    def running(self) -> list[Job]:
        return []

    def cancel(self, job: Job, grace: float = 10.0) -> None:
        job.cancelled = True
