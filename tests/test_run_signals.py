"""A signal that reaches `runbase run` after its command exited: the run's end is still
recorded (the command's own exit status, its last metrics and logs), then `runbase run`
dies of it (a shell sees 128 + N)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import runbase_cmd, write

PY = sys.executable
POINTS = 20000  # written just before the exit: the last ingest (in the window) takes them


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _as_from_a_shell() -> None:
    """The child starts as from an interactive shell: no core dump (SIGQUIT's default
    action dumps one) and the stopping signals at their default action (a test run under
    `nohup`, or in a background job of a script, inherits SIGHUP, SIGINT and SIGQUIT
    ignored, and an ignored signal stays ignored: its own test below)."""
    _no_core()
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _ignoring_sighup() -> None:
    _no_core()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what `nohup` does


def _start_run(
    project: Path, sig: int, code: int, preexec: Callable[[], None] = _as_from_a_shell
) -> subprocess.Popen[bytes]:
    write(
        project,
        "train.py",
        f"""
        import os, signal, sys
        import runbase
        # what the supervisor forwards while we run does nothing to us
        signal.signal({int(sig)}, signal.SIG_IGN)
        for i in range({POINTS}):
            runbase.log(loss=float(i), step=i)
        print("the last line", flush=True)
        open("exited", "w").close()
        sys.exit({code})
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    out = (project / "out.log").open("wb")
    return subprocess.Popen(
        [PY, "-m", "runbase", "run", "--", PY, "train.py"],
        cwd=project,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the signals go to the supervisor alone
        preexec_fn=preexec,
    )


def _signal_until_it_exits(proc: subprocess.Popen[bytes], project: Path, sig: int) -> int:
    """From just before the command's exit, signal the supervisor again and again until
    it exits: some land while the command still runs (forwarded, ignored by it), the
    rest after it exited, while the run is being recorded."""
    deadline = time.monotonic() + 120  # a hang bound, not a timing assertion
    while not (project / "exited").exists():
        assert proc.poll() is None, (project / "out.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    while proc.poll() is None:
        os.kill(proc.pid, sig)
        time.sleep(0.001)
        assert time.monotonic() < deadline
    return proc.wait()


@pytest.mark.parametrize(
    ("sig", "code", "status"),
    [
        (signal.SIGTERM, 0, "finished"),
        (signal.SIGHUP, 3, "failed"),
        (signal.SIGQUIT, 0, "finished"),
        (signal.SIGINT, 3, "failed"),
    ],
)
def test_a_signal_after_the_command_exited_keeps_the_runs_end(
    project: Path, sig: signal.Signals, code: int, status: str
) -> None:
    proc = _start_run(project, sig, code)
    rc = _signal_until_it_exits(proc, project, sig)
    out = (project / "out.log").read_text()
    rec = json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)
    if sig == signal.SIGINT:  # a Ctrl-C is then the CLI's: "Aborted!" (1), or uncaught
        assert rc in (1, -sig), out
    else:  # not before the run was recorded: it died of it then, as it asked
        assert rc == -sig, out
    assert "the last line" in out
    # the command ended by itself: its own exit status, not the signal
    assert rec["status"] == status and rec["exit_code"] == code, rec
    assert rec["exit_signal"] is None
    assert rec["metrics"]["loss"]["count"] == POINTS
    assert rec["metrics"]["loss"]["last"] == POINTS - 1
    logs = runbase_cmd("logs", cwd=project, check=True).stdout
    assert "the last line" in logs


def test_a_late_signal_that_runbase_run_was_started_ignoring_stays_ignored(
    project: Path,
) -> None:
    """Under `nohup` (SIGHUP ignored when `runbase run` starts) a SIGHUP after the
    command exited is held while the run is recorded and then goes where it went
    before: nowhere. `runbase run` exits with the command's own code."""
    proc = _start_run(project, signal.SIGHUP, 3, preexec=_ignoring_sighup)
    rc = _signal_until_it_exits(proc, project, signal.SIGHUP)
    out = (project / "out.log").read_text()
    assert rc == 3, out
    rec = json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)
    assert rec["status"] == "failed" and rec["exit_code"] == 3, rec
    assert rec["metrics"]["loss"]["count"] == POINTS


def test_a_signal_while_the_command_runs_is_still_forwarded(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import time
        open("started", "w").close()
        time.sleep(600)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.Popen(
        [PY, "-m", "runbase", "run", "--", PY, "train.py"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_as_from_a_shell,
    )
    while not (project / "started").exists():
        assert proc.poll() is None
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    # the command died of it (forwarded): its own 128 + 15, the run killed
    assert proc.wait(timeout=120) == 128 + 15
    rec = json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)
    assert rec["status"] == "killed" and rec["exit_signal"] == 15


def test_a_signal_while_runbase_init_finishes_the_run_at_exit_comes_after_it(
    project: Path,
) -> None:
    """runbase.init()'s run ends at exit: a signal then (the script's own handler would
    end the process at once) is delivered once the run's end is recorded."""
    write(
        project,
        "train.py",
        f"""
        import os, signal, threading, time
        import runbase
        run = runbase.init(name="own")
        signal.signal(signal.SIGTERM, lambda *_: os._exit(99))
        for i in range({POINTS}):
            runbase.log(loss=float(i), step=i)

        def signal_while_it_finishes():
            while not run.finished:  # set by finish(), at exit
                time.sleep(0.001)
            while True:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.001)

        threading.Thread(target=signal_while_it_finishes, daemon=True).start()
        print("the last line", flush=True)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run([PY, "train.py"], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 99, proc.stderr  # its handler ran: after the run's end
    rec = json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)
    assert rec["status"] == "finished", rec
    assert rec["metrics"]["loss"]["count"] == POINTS
    assert rec["metrics"]["loss"]["last"] == POINTS - 1
    assert "the last line" in runbase_cmd("logs", cwd=project, check=True).stdout


def test_a_signal_while_a_job_run_ends_comes_after_its_end(project: Path) -> None:
    """A job run (runbase.tracking.jobs: a Hydra multirun's) ending: a signal then is
    delivered once its end is recorded."""
    write(
        project,
        "train.py",
        f"""
        import os, signal, threading, time
        import runbase
        from runbase.tracking.jobs import Group

        runbase.init(name="launcher")
        signal.signal(signal.SIGTERM, lambda *_: os._exit(99))
        job = Group().job(0, params={{"lr": 0.1}})
        for i in range({POINTS}):
            runbase.log(loss=float(i), step=i)

        def signal_while_it_ends():
            while not job.finished:  # set as it starts ending
                time.sleep(0.001)
            while True:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.001)

        threading.Thread(target=signal_while_it_ends, daemon=True).start()
        job.end()
        time.sleep(600)  # the held signal ends us here (a hang bound, never reached)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run(
        [PY, "train.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 99, proc.stderr
    runs = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    job = next(r for r in runs if r["name"] != "launcher")
    rec = json.loads(runbase_cmd("show", job["id"], "--json", cwd=project, check=True).stdout)
    assert rec["status"] == "finished" and rec["metrics"]["loss"]["last"] == POINTS - 1, rec


def test_a_signal_while_the_executor_tells_a_job_end_comes_after_it(project: Path) -> None:
    """The local executor (sweeps, job runs): a SIGTERM while on_done records an ended
    job (a sweep reading its trial's end) interrupts the executor only once it is told."""
    from runbase.tracking.executor import LocalExecutor
    from runbase.tracking.launch import Job

    told: list[str] = []

    def on_done(job: Job, _done: int, _total: int) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the bookkeeping
        told.append(job.label)

    jobs = [Job([PY, "-c", "pass"], label="first"), Job([PY, "-c", "pass"], label="second")]
    # this process's own handler (an in-process Ray of an earlier test may have set one)
    before = signal.getsignal(signal.SIGTERM)
    interrupted = LocalExecutor(1).run(jobs, on_done, total=2)
    assert told == ["first"]  # told in full, then interrupted: the second never started
    assert interrupted is True
    assert signal.getsignal(signal.SIGTERM) is before  # given back
