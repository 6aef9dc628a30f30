"""The watcher of a run started by ``runbase.init()`` (no supervisor).

A small detached process: ingests the run's spool every second (so live views and
crash recovery work without slowing the training process), and finalizes the run as
``crashed`` if the training process disappears without calling ``finish()``.
Usage: ``python -m runbase._watcher STORE RUN_ID OWNER_PID OWNER_START``.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    from . import lifecycle
    from .capture.proc import is_alive
    from .store import Store

    store_root, run_id, pid, start = argv[0], argv[1], int(argv[2]), argv[3] or None
    store = Store.open(store_root)
    while True:
        row = store.db.query_one("SELECT status FROM runs WHERE id = ?", (run_id,))
        if row is None or row[0] != "running":
            return 0
        alive = is_alive(pid, start)
        try:
            lifecycle.ingest_and_handle(store, run_id)
        except Exception:  # noqa: BLE001 - try again next second
            pass
        if not alive:
            lifecycle.finalize(store, run_id, "crashed", error="the training process disappeared")
            return 0
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
