"""``%load_ext runbase`` and the ``%runbase start|stop|status`` line magic.

IPython finds ``load_ipython_extension``/``unload_ipython_extension`` on the
``runbase`` package (its facade loads them from here). The cells themselves are
recorded by runbase.tracking.cells, started by ``runbase.init()``.
"""

from __future__ import annotations

from typing import Any

from runbase.tracking import api
from runbase.tracking.cells import unregister


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext runbase``: start a run (as ``runbase.init()`` does) and add the
    ``%runbase start [NAME] | stop | status`` line magic."""
    ipython.register_magic_function(runbase_magic, magic_kind="line", magic_name="runbase")
    run = api.active_run()
    if run is None:
        run = api.init()
        print(f"runbase: run {run.id} ({run.name}) started; `%runbase stop` finishes it")


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext runbase``: finish the active run and stop recording cells."""
    api.finish()
    unregister(ipython)


def runbase_magic(line: str) -> None:
    """%runbase start [NAME]  |  %runbase stop  |  %runbase status"""
    args = line.split()
    cmd = args[0] if args else "status"
    run = api.active_run()
    if cmd == "start":
        if run is not None:
            print(f"runbase: run {run.id} ({run.name}) is running; `%runbase stop` finishes it")
            return
        run = api.init(" ".join(args[1:]) or None)
        print(f"runbase: run {run.id} ({run.name}) started")
    elif cmd == "stop":
        if run is None:
            print("runbase: no run is active")
            return
        api.finish()
        print(f"runbase: run {run.id} ({run.name}) finished")
    elif cmd == "status":
        if run is None:
            print("runbase: no run is active; `%runbase start [NAME]` starts one")
            return
        cells = run._cells.count if run._cells is not None else 0
        where = f", notebook {run.notebook}" if run.notebook else ""
        print(f"runbase: run {run.id} ({run.name}) running, {cells} cells recorded{where}")
    else:
        print("usage: %runbase start [NAME] | stop | status")
