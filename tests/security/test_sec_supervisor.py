"""Killing ``runbase run`` (SIGKILL: nothing can be caught) while its command runs:
the command goes on, every point it logs and every line it prints is kept, the run
shows as ``running (supervisor lost)`` while it lives, and is finalized honestly once
it has ended (issue 14, item 6; docs/security.md, "Processes: killing the supervisor").
Real ``runbase run`` subprocesses in a real git repo; no timed assertions: the script
waits for a file the test writes, and the test polls for states with a generous cap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from conftest import runbase_cmd, wait_until, write

# Logs a point every few ms; after `go` exists it prints and logs a little more (with
# no reader left for the pipe the supervisor gave it) and writes how many it logged.
TRAIN = """
import os, sys, time
import runbase

open("child.pid", "w").write(str(os.getpid()))
i = 0
while not os.path.exists("go"):
    runbase.log(step=i, x=float(i))
    if i == 50:
        open("started", "w").close()
    if i % 20 == 0:
        print("tick", i, flush=True)
        print("err", i, file=sys.stderr, flush=True)
    i += 1
    time.sleep(0.003)
for _ in range(100):  # after the supervisor is gone
    runbase.log(step=i, x=float(i))
    print("after", i, flush=True)
    i += 1
print("the end", flush=True)
open("count", "w").write(str(i))
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _ls(project: Path) -> list[dict[str, Any]]:
    out = runbase_cmd("ls", "--json", cwd=project, check=True)
    return json.loads(out.stdout)


def test_sigkill_of_the_supervisor_keeps_every_point(project: Path) -> None:
    write(project, "train.py", TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env["RUNBASE_CONFIG"] = os.environ["RUNBASE_CONFIG"]
    sup = subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--", sys.executable, "train.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: (project / "started").exists(), what="the command to log", timeout=120)
        child = int((project / "child.pid").read_text())
        os.kill(sup.pid, signal.SIGKILL)
        sup.wait()
        # whoever reads `runbase run`'s output (a CI harness that killed it) sees it
        # end now, though the command goes on: nothing runbase left holds that pipe
        assert sup.stdout is not None
        reader = threading.Thread(target=sup.stdout.read, daemon=True)
        reader.start()
        reader.join(timeout=120)  # a cap against a hang, not a timing assertion
        assert not reader.is_alive(), "runbase run's output stayed open after it was killed"
    finally:
        if sup.poll() is None:
            sup.kill()

    # the command lives on (it waits for `go`): the run is not crashed, and the
    # commands of the store ingest its spool instead of deleting it
    assert _alive(child)
    [run] = _ls(project)
    assert run["status"] == "running"
    table = runbase_cmd("ls", cwd=project, check=True).stdout
    assert "running (supervisor lost)" in table
    shown = runbase_cmd("show", cwd=project, check=True).stdout
    assert "running (supervisor lost)" in shown
    # ingested by `ls` itself: the command flushes its points to the spool every 0.25 s,
    # so the last few before `started` may reach it after this first `ls` (a loaded
    # machine); each `ls` ingests what has arrived since
    wait_until(
        lambda: _ls(project)[0]["metrics"].get("x", {}).get("count", 0) >= 51,
        what="`runbase ls` to ingest the points logged before the kill",
        timeout=60,
    )

    (project / "go").write_text("")
    count_file = project / "count"
    count = int(
        wait_until(
            lambda: count_file.exists() and count_file.read_text(),
            what="the command to end",
            timeout=120,
        )
    )
    wait_until(lambda: not _alive(child), what="the command's exit", timeout=120)

    def finalized() -> dict[str, Any] | None:
        [r] = _ls(project)  # each command recovers the run once its processes are gone
        return r if r["status"] != "running" else None

    run = wait_until(finalized, what="the run to be finalized", timeout=120)
    assert run["status"] == "crashed"
    assert run["exit_code"] is None  # unknown: said so, not guessed
    assert run["metrics"]["x"]["count"] == count  # every point, before and after the kill
    assert run["metrics"]["x"]["last"] == float(count - 1)
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert "runbase run was killed" in rec["error"]
    assert "exit status is unknown" in rec["error"]
    # what it printed after the supervisor died is in the run's log, complete
    logs = runbase_cmd("logs", run["id"], cwd=project, check=True).stdout
    assert f"after {count - 1}" in logs and "the end" in logs and "tick 0" in logs
    assert not (project / ".runbase" / "spool" / run["id"]).exists()


def test_a_normal_run_leaves_no_keeper_behind(project: Path) -> None:
    """A run that ends normally is finalized by its supervisor, as before: the keeper
    and the pids file change nothing then."""
    write(project, "t.py", "import runbase\nrunbase.log(x=1.0)\nprint('ok')\n")
    out = runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    assert "ok" in out.stdout
    [run] = _ls(project)
    assert run["status"] == "finished" and run["metrics"]["x"]["count"] == 1
    assert not (project / ".runbase" / "spool" / run["id"]).exists()
