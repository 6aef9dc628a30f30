"""A run's statuses: ``running``, then one terminal status.

``finished`` (exit 0), ``failed`` (non-zero exit or an exception), ``killed`` (ended
by a signal), ``crashed`` (the owning process vanished without finalizing),
``pruned`` (a sweep's pruner stopped it early: its metrics were behind) and ``lost``
(the node or worker running it died; the executor retried the trial elsewhere, as a
new run). Stdlib only, so the tracking API, the records and bundle validation share
one list.
"""

from __future__ import annotations

STATUSES = ("running", "finished", "failed", "killed", "crashed", "pruned", "lost")
TERMINAL = STATUSES[1:]


def is_terminal(status: str | None) -> bool:
    """Whether ``status`` ends a run (anything but ``running``)."""
    return status in TERMINAL
