"""The local executor (lazy pull, cancel, interrupt), resources and make_executor's
errors, with real subprocesses. The Ray executor: tests/test_ray_executor.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import runbase_cmd, wait_until, write
from runbase.errors import UsageError
from runbase.tracking.executor import (
    SPEC_TOKEN,
    Job,
    LocalExecutor,
    Resources,
    make_executor,
    parse_memory,
    runbase_run_argv,
)

PY = sys.executable


def _py(code: str, **kw: Any) -> Job:
    return Job([PY, "-c", code], **kw)


def test_jobs_are_pulled_only_when_a_slot_is_free_after_the_ended_are_told() -> None:
    ex = make_executor(None, jobs=2)
    events: list[str] = []

    def items() -> Any:
        for i in range(5):
            events.append(f"pull {i}")
            yield _py(f"import time; time.sleep({0.2 * (i % 2)})", label=str(i))

    def done(job: Job, n: int, total: int) -> None:
        events.append(f"done {job.label} {n}/{total}")

    assert ex.run(items(), done, total=5) is False
    assert events[:2] == ["pull 0", "pull 1"]  # two slots: two taken at once
    # every later pull comes after as many reports as pulls beyond the two slots
    for i, e in enumerate(events):
        if e.startswith("pull ") and int(e.split()[1]) >= 2:
            told = sum(1 for x in events[:i] if x.startswith("done"))
            assert told >= int(e.split()[1]) - 1
    assert [e.split()[-1] for e in events if e.startswith("done")] == [
        f"{n}/5" for n in range(1, 6)
    ]


def test_a_job_records_the_local_executor_and_its_failure_tail() -> None:
    ok = _py("import os, json; print(os.environ['RUNBASE_EXECUTOR'])")
    bad = _py("import sys; sys.stderr.write('boom at the end'); sys.exit(3)")
    LocalExecutor(2).run([ok, bad])
    assert ok.returncode == 0 and ok.executor is not None and ok.executor["kind"] == "local"
    assert bad.returncode == 3 and bad.stderr_tail.endswith("boom at the end")


def test_cancel_sends_sigterm_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    """A command that ignores SIGTERM is killed ``grace`` s later; cancelled is set."""
    started = tmp_path / "started"
    term = str(tmp_path / "term")
    stubborn = _py(
        "import signal, time, pathlib\n"
        f"signal.signal(signal.SIGTERM, lambda *a: pathlib.Path({term!r}).write_text('term'))\n"
        f"pathlib.Path({str(started)!r}).write_text('up')\n"
        "time.sleep(600)\n"
    )
    polite = _py("import time; time.sleep(600)")
    ex = LocalExecutor(2)

    def prune() -> None:
        wait_until(lambda: len(ex.running()) == 2 and started.exists(), what="both running")
        for job in ex.running():
            ex.cancel(job, grace=1.0)

    t = threading.Thread(target=prune)
    t.start()
    assert ex.run([stubborn, polite]) is False
    t.join()
    assert stubborn.cancelled and polite.cancelled
    assert (tmp_path / "term").read_text() == "term"  # it got SIGTERM first
    assert stubborn.returncode == -signal.SIGKILL
    assert polite.returncode == -signal.SIGTERM
    assert ex.running() == []


def test_spec_written_where_the_job_runs_and_its_token_replaced(project: Path) -> None:
    """A job with a spec: runbase run --spec {spec} gets a file (removed after) and the
    run takes the pre-assigned id and name."""
    from runbase.core.ids import new_run_id

    write(project, "t.py", "print('hi')\n")
    store = str(project / ".runbase")
    rid = new_run_id()
    job = Job(
        [*runbase_run_argv(store, "--spec", SPEC_TOKEN), "--", PY, "t.py"],
        cwd=str(project),
        spec={"name": "given", "run_id": rid, "tags": {"k": "v"}},
    )
    LocalExecutor(1).run([job])
    assert job.returncode == 0, job.stderr_tail
    assert job.run_id == rid
    rec = json.loads(runbase_cmd("show", rid, "--json", cwd=project, check=True).stdout)
    assert rec["name"] == "given" and rec["tags"]["k"] == "v"
    assert rec["executor"]["kind"] == "local"


def test_a_tree_is_materialized_by_hash_and_the_run_records_it(project: Path) -> None:
    write(project, "t.py", "import pathlib; print(pathlib.Path('data.txt').read_text())\n")
    write(project, "data.txt", "from the tree\n")
    runbase_cmd("run", "--", PY, "t.py", cwd=project, check=True)
    first = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    code = json.loads(runbase_cmd("show", first, "--json", cwd=project).stdout)["code"]
    (project / "data.txt").write_text("changed since\n")  # the job runs the recorded tree
    store = str(project / ".runbase")
    job = Job(
        [*runbase_run_argv(store, "--spec", SPEC_TOKEN), "--", PY, "t.py"],
        spec={"name": "from-tree"},
        tree={"store": store, "code": code, "cwd": "."},
    )
    LocalExecutor(1).run([job])
    assert job.returncode == 0, job.stderr_tail
    rid = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    rec = json.loads(runbase_cmd("show", rid, "--json", cwd=project).stdout)
    assert rec["code"]["tree"] == code["tree"] and rec["name"] == "from-tree"
    log = runbase_cmd("logs", rid, cwd=project).stdout
    assert "from the tree" in log
    assert not Path(rec["project_root"]).exists()  # the temp tree is removed after


def test_sigterm_interrupts_the_executor_and_the_runs_end_killed(tmp_path: Path) -> None:
    script = tmp_path / "drive.py"
    script.write_text(
        "import sys\n"
        "from runbase.tracking.executor import Job, LocalExecutor\n"
        "jobs = [Job([sys.executable, '-c', 'import time; time.sleep(600)']) for _ in range(3)]\n"
        "print('interrupted' if LocalExecutor(2).run(jobs) else 'done', flush=True)\n"
        "print([j.returncode for j in jobs])\n"
    )
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, text=True)
    wait_until(lambda: _children(proc.pid) >= 2, what="two jobs running")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert out.splitlines() == ["interrupted", f"[{-signal.SIGTERM}, {-signal.SIGTERM}, None]"]


def _children(pid: int) -> int:
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            n += int(stat.rpartition(")")[2].split()[1]) == pid
    return n


def test_resources_and_memory_sizes() -> None:
    assert parse_memory("4G") == 4 * 10**9
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("1.5GB") == 15 * 10**8
    assert parse_memory("2000") == 2000
    assert parse_memory("2Ki") == 2048
    for bad in ("", "lots", "4X", "-1G", "0", "1iB"):
        with pytest.raises(UsageError, match="bad memory size"):
            parse_memory(bad)
    assert Resources() == Resources(cpus=1.0, gpus=0.0, memory=None)
    with pytest.raises(UsageError):
        Resources(cpus=0, gpus=0)
    with pytest.raises(UsageError):
        Resources(cpus=-1)


def test_make_executor_errors() -> None:
    assert make_executor().kind == "local" and make_executor("local", 3).slots == 3
    with pytest.raises(UsageError, match="unknown --on 'slurm'"):
        make_executor("slurm")
    with pytest.raises(UsageError, match="-j/--jobs"):
        make_executor(None, jobs=0)
    with pytest.raises(UsageError, match="--retries"):
        make_executor("ray", retries=-1)


def test_cli_options_refuse_ray_options_without_ray(project: Path) -> None:
    """Through a command that has them: a clear usage error, exit 2, nothing run."""
    r = runbase_cmd("reproduce", "nosuchrun", "--gpus", "1", cwd=project)
    assert r.returncode == 2 and "--gpus needs --on ray" in r.stderr
    r = runbase_cmd("reproduce", "nosuchrun", "--on", "ray", "--memory", "4X", cwd=project)
    assert r.returncode == 2 and "bad memory size" in r.stderr


def test_reproduce_on_an_executor_runs_the_rerun_as_a_job(project: Path) -> None:
    """--on local: the re-run is a job of the executor; the verdict is the same."""
    write(project, "t.py", "import runbase\nrunbase.summary(acc=0.75)\n")
    runbase_cmd("run", "--", PY, "t.py", cwd=project, check=True)
    orig = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    r = runbase_cmd("reproduce", orig, "--on", "local", "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "reproduced", out
    rec = json.loads(runbase_cmd("show", out["run"], "--json", cwd=project).stdout)
    assert rec["reproduces"] == orig and rec["executor"]["kind"] == "local"
