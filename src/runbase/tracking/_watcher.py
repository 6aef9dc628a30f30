"""The watcher of a run started by ``runbase.init()`` (no supervisor).

A small detached process: ingests the run's spool every second (so live views and
crash recovery work without slowing the training process), and finalizes the run as
``crashed`` if the training process disappears without calling ``finish()``. It also
samples the system metrics of the training process (``sys/*``, capture/sysmetrics.py).
Usage: ``python -m runbase.tracking._watcher STORE RUN_ID OWNER_PID OWNER_START``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from runbase.capture.proc import is_alive
from runbase.capture.sysmetrics import SystemSampler, resolve_interval
from runbase.records import lifecycle
from runbase.records.read import run_status
from runbase.store import Store


def main(argv: list[str]) -> int:
    store_root, run_id, pid, start = argv[0], argv[1], int(argv[2]), argv[3] or None
    store = Store.open(store_root)
    sampler = _start_sampler(store, run_id, pid)
    publisher = _start_publisher(store, run_id)
    try:
        _watch(store, run_id, pid, start, sampler)
    finally:
        if publisher is not None:  # the run has ended: send all of it
            publisher.stop()
            publisher.finish()
    return 0


def _start_publisher(store: Any, run_id: str) -> Any:
    """The run's publisher when ``runbase.init(publish=...)`` asked for one."""
    remote = os.environ.get("RUNBASE_PUBLISH_TO")
    if not remote:
        return None
    from runbase.remote.publish import start_publisher  # lazy: the HTTP client; if publishing

    return start_publisher(store, remote, run_id)


def _watch(store: Any, run_id: str, pid: int, start: str | None, sampler: Any) -> None:
    beat_at = time.monotonic()
    while True:
        if run_status(store, run_id) != "running":
            return
        alive = is_alive(pid, start)
        try:
            beat_at = lifecycle.ingest_live(store, run_id, beat_at)
        except Exception:  # noqa: BLE001 - try again next second
            pass
        if not alive:
            if sampler is not None:
                sampler.stop()  # its last frame goes in with the finalization
            lifecycle.finalize(store, run_id, "crashed", error="the training process disappeared")
            return
        time.sleep(1.0)


def _start_sampler(store: Any, run_id: str, pid: int) -> Any:
    """Sample the training process's tree and the machine (``sys/*`` metrics), every
    ``$RUNBASE_SYSTEM_INTERVAL`` seconds (default 5; 0: off)."""
    try:
        interval = resolve_interval()
        if not interval:
            return None
        sampler = SystemSampler(
            store.spool_dir(run_id),
            interval,
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        sampler.start(pid)
        return sampler
    except Exception:  # noqa: BLE001 - the watcher's other work goes on
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
