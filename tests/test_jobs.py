"""runbase.tracking.jobs: one process runs several configurations, each a job run of its own
(params, metrics, files, logs, status), linked to the process's run and grouped like a
sweep. Real scripts, under `runbase run` and with `runbase.init()`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import runbase_cmd, write

PY = sys.executable

SEARCH = """
    import sys
    import runbase
    from runbase import jobs

    {init}
    open("data.csv").read()               # the process's own input
    group = jobs.Group()
    for i, lr in enumerate([0.1, 0.01, 0.5]):
        try:
            with group.job(params={{"opt": {{"lr": lr, "name": "sgd"}}}}) as job:
                assert runbase.active_run() is job
                open("data.csv").read()   # read by every job, not only the first
                runbase.log(loss=lr * 10, step=0)
                runbase.log(loss=lr, step=1)
                with open(f"model_{{i}}.txt", "w") as f:
                    f.write(f"lr={{lr}}")
                print("job", i, "lr", lr)
                if lr > 0.2:
                    raise ValueError("diverged")
        except ValueError:
            pass
    assert runbase.active_run().id != job.id
    with group.job(index=9, name="extra") as job:
        try:
            group.job()
        except runbase.UsageError as e:
            print("NESTED", e)
        runbase.param("kind", "extra")
        runbase.finish()                  # inside a job: ends the job, not the run
    runbase.log(total=3)                  # the process's run again
    with open("summary.txt", "w") as f:
        f.write("3 jobs")
    {exit}
"""


def records(project: Path) -> tuple[dict, list[dict]]:
    listed = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    recs = [
        json.loads(runbase_cmd("show", r["id"], "--json", cwd=project, check=True).stdout)
        for r in listed
    ]
    parent = next(r for r in recs if r["mode"] != "job")
    jobs = sorted((r for r in recs if r["mode"] == "job"), key=lambda r: r["started_at"])
    return parent, jobs


def check_search(project: Path, parent: dict, jobs: list[dict]) -> None:
    assert len(jobs) == 4
    group = parent["tags"]["multirun"]
    for i, (rec, lr) in enumerate(zip(jobs[:3], [0.1, 0.01, 0.5], strict=True)):
        assert rec["params"] == {"opt.lr": lr, "opt.name": "sgd"}
        assert rec["parent_id"] == parent["id"] and rec["sweep_id"] == group
        assert rec["tags"] == {"sweep_index": str(i)} and rec["name"] == f"{parent['name']}-{i}"
        assert {k: (m["last"], m["count"]) for k, m in rec["metrics"].items()} == {"loss": (lr, 2)}
        assert [f["path"] for f in rec["inputs"]] == ["data.csv"]
        assert [f["path"] for f in rec["outputs"]] == [f"model_{i}.txt"]
        logs = runbase_cmd("logs", rec["id"], cwd=project, check=True).stdout
        assert logs.strip() == f"job {i} lr {lr}"
        if lr > 0.2:
            assert rec["status"] == "failed" and rec["exit_code"] == 1
            assert "ValueError: diverged" in rec["error"]
        else:
            assert rec["status"] == "finished" and rec["exit_code"] == 0
    extra = jobs[3]
    assert extra["name"] == "extra" and extra["tags"] == {"sweep_index": "9"}
    assert extra["params"] == {"kind": "extra"} and extra["status"] == "finished"
    assert extra["sweep_id"] == group
    # the process's run: what it did outside its jobs
    assert parent["status"] == "finished" and parent["params"] == {}
    assert [k for k in parent["metrics"] if not k.startswith("sys/")] == ["total"]
    assert [f["path"] for f in parent["inputs"]] == ["data.csv"]
    assert [f["path"] for f in parent["outputs"]] == ["summary.txt"]


def test_jobs_under_runbase_run(project: Path) -> None:
    write(project, "data.csv", "x,y\n1,2\n")
    write(project, "search.py", SEARCH.format(init="", exit=""))
    proc = runbase_cmd("run", "--", PY, "search.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    assert "NESTED job" in proc.stdout and "still running" in proc.stdout
    parent, jobs = records(project)
    check_search(project, parent, jobs)
    assert all(j["command"] == [PY, "search.py"] for j in jobs)


def test_jobs_with_init(project: Path) -> None:
    write(project, "data.csv", "x,y\n1,2\n")
    write(project, "search.py", SEARCH.format(init="runbase.init(name='s')", exit=""))
    proc = subprocess.run(
        [PY, "search.py"], cwd=project, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    parent, jobs = records(project)
    assert parent["mode"] == "api" and parent["name"] == "s"
    check_search(project, parent, jobs)


def test_a_process_that_exits_during_a_job_ends_the_job_with_its_status(project: Path) -> None:
    write(
        project,
        "quit.py",
        """
        import sys
        import runbase
        from runbase import jobs

        job = jobs.Group().job(params={"lr": 0.1})   # never ended by the program
        runbase.log(loss=0.5)
        sys.exit(3)
        """,
    )
    proc = runbase_cmd("run", "--", PY, "quit.py", cwd=project, timeout=180)
    assert proc.returncode == 3, proc.stderr
    parent, (job,) = records(project)
    assert parent["status"] == "failed" and parent["exit_code"] == 3
    # only the supervisor knew how the process ended: the job ends with that status
    assert job["status"] == "failed" and job["exit_code"] == 3
    assert job["error"] == "the process ended during the job"
    assert job["metrics"]["loss"]["last"] == 0.5 and job["params"] == {"lr": 0.1}


def test_a_running_job_is_live(project: Path) -> None:
    """While a job runs, its metrics reach the store (the supervisor ingests it)."""
    write(
        project,
        "live.py",
        """
        import json, os, subprocess, sys, time
        import runbase
        from runbase import jobs

        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
        env.pop("PYTHONPATH", None)
        ls = [sys.executable, "-m", "runbase", "--store", os.environ["RUNBASE_DIR"], "ls",
              "--json", "--where", "metrics.seen == 1 and status == 'running'"]
        with jobs.Group().job():
            runbase.log(seen=1)
            deadline = time.time() + 120
            while time.time() < deadline:
                if json.loads(subprocess.run(ls, env=env, capture_output=True, text=True).stdout):
                    print("LIVE")
                    break
                time.sleep(0.2)
        """,
    )
    proc = runbase_cmd("run", "--", PY, "live.py", cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "LIVE" in proc.stdout
    parent, (job,) = records(project)
    assert job["metrics"]["seen"]["last"] == 1 and "seen" not in parent["metrics"]
