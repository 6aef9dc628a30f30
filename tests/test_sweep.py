"""`runbase sweep` (parallel tracked runs of one sweep) and `runbase importance`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import require, runbase_cmd, write

PY = sys.executable

SCRIPT = """
    import argparse, time, runbase
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    wd = runbase.param("wd", 0.0)
    t0 = time.time()
    time.sleep(SLEEP)
    runbase.summary(acc=1 - a.lr, t0=t0, t1=time.time())
"""


def script(project: Path, sleep: float = 0.0) -> None:
    write(project, "train.py", SCRIPT.replace("SLEEP", str(sleep)))


def ls_json(project: Path, *args: str) -> list[dict]:
    return json.loads(runbase_cmd("ls", "--json", "-l", "0", *args, cwd=project, check=True).stdout)


def sweep_id_of(proc) -> str:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("sweep "))
    return line.split()[1].rstrip(":")


def test_grid_sweep_runs_in_parallel_as_one_sweep(project: Path) -> None:
    script(project, sleep=1.5)
    runbase_cmd("run", "--", PY, "train.py", cwd=project, check=True)  # not in the sweep
    proc = runbase_cmd(
        *("sweep", "--grid", "lr=0.1,0.2", "--grid", "batch=16,32", "-j", "2", "--name", "g"),
        *("--", PY, "train.py", "--lr", "0.5"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    sweep_id = sweep_id_of(proc)
    assert "4 finished, 0 failed" in proc.stdout and proc.stdout.count(" finished ") >= 4
    rows = ls_json(project, "--sweep", sweep_id)
    assert len(rows) == 4 and len(ls_json(project)) == 5
    assert {r["name"] for r in rows} == {"g-1", "g-2", "g-3", "g-4"}
    assert sorted((r["params"]["lr"], r["params"]["batch"]) for r in rows) == [
        (0.1, 16),
        (0.1, 32),
        (0.2, 16),
        (0.2, 32),
    ]
    records = [
        json.loads(runbase_cmd("show", r["id"], "--json", cwd=project, check=True).stdout)
        for r in rows
    ]
    assert {rec["sweep_id"] for rec in records} == {sweep_id}
    for rec in records:  # --lr on the command line is rewritten, --batch goes by environment
        assert rec["command"][2:] == ["--lr", str(rec["params"]["lr"])]
    assert all(rec["status"] == "finished" for rec in records)
    # really concurrent: with -j 2, some two runs were sleeping at the same time
    spans = sorted((m["t0"]["value"], m["t1"]["value"]) for m in (r["metrics"] for r in rows))
    assert any(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False))
    # the DataFrame API filters by sweep too
    import runbase

    df = runbase.runs(sweep=sweep_id, store=str(project / ".runbase"))
    assert sorted(df["name"]) == ["g-1", "g-2", "g-3", "g-4"]
    assert set(df["sweep_id"]) == {sweep_id}


def test_random_sweep_is_reproducible_with_a_seed(project: Path) -> None:
    script(project)
    args = ["--random", "lr=loguniform(1e-4,1e-1)", "--random", "batch=choice(16,32,64)"]
    args += ["--random", "wd=uniform(0,0.1)", "-n", "3", "--seed", "7"]
    dry = runbase_cmd("sweep", *args, "--dry-run", "--", PY, "train.py", cwd=project, check=True)
    assert dry.stdout == runbase_cmd("sweep", *args, "--dry-run", "--", PY, "train.py").stdout
    other = runbase_cmd("sweep", *args[:-1], "8", "--dry-run", "--", PY, "train.py").stdout
    assert other != dry.stdout and len(dry.stdout.splitlines()) == 3
    proc = runbase_cmd("sweep", *args, "-j", "2", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rows = ls_json(project, "--sweep", sweep_id_of(proc))
    sampled = sorted(
        line.split("] ", 1)[1] for line in dry.stdout.splitlines()
    )  # "[1] lr=0.00123 batch=32 wd=0.05"
    recorded = sorted(
        f"lr={r['params']['lr']!r} batch={r['params']['batch']} wd={r['params']['wd']!r}"
        for r in rows
    )
    assert recorded == sampled
    for r in rows:  # the inline param got the override, argparse ones too
        assert 1e-4 <= r["params"]["lr"] <= 1e-1 and r["params"]["batch"] in (16, 32, 64)
        assert 0 <= r["params"]["wd"] <= 0.1


def test_a_failed_run_fails_the_sweep(project: Path) -> None:
    write(
        project,
        "f.py",
        "import runbase\nx = runbase.param('x', 0)\nif x > 1: raise SystemExit('x too big')\n",
    )
    proc = runbase_cmd("sweep", "--grid", "x=1,2", "--", PY, "f.py", cwd=project)
    assert proc.returncode == 1
    assert "1 finished, 1 failed" in proc.stdout and "x too big" in proc.stderr
    statuses = sorted(r["status"] for r in ls_json(project, "--sweep", sweep_id_of(proc)))
    assert statuses == ["failed", "finished"]


# trial I ends only once trial I+1 has ended (read from the store), so with -j 3 the
# three trials end in the reverse of their index order, whatever the machine's speed
REVERSE = """
    import argparse, json, os, subprocess, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--i", type=int)
    a = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") and k != "PYTHONPATH"}
    ls = [sys.executable, "-m", "runbase", "--store", os.environ["RUNBASE_DIR"], "ls", "--json"]
    where = f"tags.sweep_index == '{a.i + 1}' and status != 'running'"
    deadline = time.time() + 120  # a safety net: the test then fails on the order, not hangs
    while a.i < 3 and time.time() < deadline:
        out = subprocess.run([*ls, "--where", where], env=env, capture_output=True, text=True)
        if json.loads(out.stdout or "[]"):
            break
        time.sleep(0.2)
"""


def test_progress_counts_ended_runs_and_the_table_is_in_trial_order(project: Path) -> None:
    write(project, "rev.py", REVERSE)
    proc = runbase_cmd(
        *("sweep", "--grid", "i=1,2,3", "-j", "3", "--name", "t", "--", PY, "rev.py"),
        cwd=project,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    progress = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert progress == [  # [runs ended/runs], then the trial that ended
        "[1/3] trial 3 finished: i=3",
        "[2/3] trial 2 finished: i=2",
        "[3/3] trial 1 finished: i=1",
    ]
    table = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.split()[1:2] != ["name"]]
    assert table[:3] == ["t-1", "t-2", "t-3"]  # by trial index, not by start or end
    rows = ls_json(project, "--sweep", sweep_id_of(proc))
    assert {r["name"]: r["tags"]["sweep_index"] for r in rows} == {
        "t-1": "1",
        "t-2": "2",
        "t-3": "3",
    }


def test_dry_run_needs_no_command(project: Path) -> None:
    dry = runbase_cmd("sweep", "--grid", "lr=0.1,0.2", "--grid", "b=1,2", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "[1] lr=0.1 b=1",
        "[2] lr=0.1 b=2",
        "[3] lr=0.2 b=1",
        "[4] lr=0.2 b=2",
    ]
    assert not (project / ".runbase").exists()  # nothing ran, no store was made
    proc = runbase_cmd("sweep", "--grid", "lr=0.1", cwd=project)  # running needs one
    assert proc.returncode == 2 and "no command given" in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--grid", "lr"], "use KEY=VALUE"),
        (["--grid", "lr="], "no empty value"),
        (["--random", "lr=normal(0,1)"], "unknown distribution 'normal'"),
        (["--random", "lr=uniform(1)"], "takes two numbers"),
        (["--random", "lr=loguniform(0,1)"], "must be positive"),
        (["--grid", "lr=1", "--random", "lr=uniform(0,1)"], "both in --grid and in --random"),
        ([], "nothing to sweep"),
        (["--grid", "x=1", "-j", "0"], "-j/--jobs must be at least 1"),
    ],
)
def test_bad_sweeps_are_usage_errors(project: Path, args: list[str], message: str) -> None:
    proc = runbase_cmd("sweep", *args, "--", PY, "-c", "pass", cwd=project)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def lr_sweep(project: Path) -> tuple[Path, str]:
    """6 runs where acc depends on lr only (batch is irrelevant)."""
    script(project)
    proc = runbase_cmd(
        *("sweep", "--grid", "lr=0.1,0.3,0.5", "--grid", "batch=16,32", "-j", "2"),
        *("--", PY, "train.py"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    return project, sweep_id_of(proc)


def test_importance_ranks_the_parameter_that_matters_first(lr_sweep: tuple[Path, str]) -> None:
    require("sklearn")  # importance needs it; in the test extra: missing, this fails
    project, sweep_id = lr_sweep
    out = runbase_cmd("importance", "--metric", "acc", "--sweep", sweep_id, cwd=project, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["param", "rf_importance", "spearman"]
    assert lines[1].split()[0] == "lr" and lines[2].split()[0] == "batch"
    summary = next(line for line in lines if line.startswith("metric acc over"))
    assert "over 6 runs" in summary and "wd (constant)" in summary
    # every column explained; 6 runs for 2 parameters are too few to trust the ranking
    for column in ("rf_importance:", "spearman:", "eta:", "n:"):
        assert any(line.startswith(column) for line in lines), column
    assert "only 6 runs for 2 parameters: with fewer than 10 runs" in out.stderr
    rows = json.loads(
        runbase_cmd(
            "importance", "-m", "acc", "--sweep", sweep_id, "--json", cwd=project, check=True
        ).stdout
    )
    assert [r["param"] for r in rows] == ["lr", "batch"]
    assert rows[0]["spearman"] == pytest.approx(-1.0) and rows[0]["rf_importance"] > 0.9
    assert rows[0]["n"] == 6 and rows[0]["kind"] == "numeric"
    from runbase.analysis.importance import importance
    from runbase.store import Store

    lib = importance(Store.open(project / ".runbase"), "acc", where=f'sweep == "{sweep_id}"')
    assert lib == rows


def test_importance_of_a_categorical_parameter(project: Path) -> None:
    require("sklearn")  # importance needs it; in the test extra: missing, this fails
    from runbase.analysis.importance import importance
    from runbase.store import Store

    write(
        project,
        "c.py",
        "import runbase\nm = runbase.param('model', 'a')\nn = runbase.param('seed', 0)\n"
        "runbase.summary(acc={'a': 0.5, 'b': 0.9}[m] + n * 1e-3)\n",
    )
    for model, seed in [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("b", 5)]:
        runbase_cmd("run", "-p", f"model={model}", "-p", f"seed={seed}", "--", PY, "c.py",
                    cwd=project, check=True)  # fmt: skip
    rows = importance(Store.open(project / ".runbase"), "acc")
    assert rows[0]["param"] == "model" and rows[0]["kind"] == "categorical"
    assert rows[0]["spearman"] is None and rows[0]["eta"] > 0.8


def test_importance_errors(lr_sweep: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    project, sweep_id = lr_sweep
    for args, message in [
        (["-m", "nope"], "no run has a numeric metric 'nope' (metrics: acc, t0, t1)"),
        (["-m", "acc", "--where", "params.lr < 0.2"], "needs at least 4 runs"),
        (["-m", "acc", "--where", "params.lr <"], "unexpected end"),
        (["-m", "acc", "--where", "params.lr > 9"], "no runs match"),
    ]:
        proc = runbase_cmd("importance", *args, cwd=project)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    from runbase.analysis.importance import importance
    from runbase.errors import RunbaseError
    from runbase.store import Store

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    with pytest.raises(RunbaseError, match=r"pip install 'runbase\[analysis\]'"):
        importance(Store.open(project / ".runbase"), "acc")


def test_a_python_api_sweep_records_where_its_executor_runs(project: Path) -> None:
    """run_sweep without ``execution``: the record says what the executor is, so that a
    resume runs where the sweep ran (a Ray executor's sweep resumes on Ray)."""
    from runbase.records.sweeps import get_sweep
    from runbase.store import Store
    from runbase.tracking.executor import make_executor
    from runbase.tracking.sweep import SweepPlan, parse_grid, run_sweep

    script(project)
    plan = SweepPlan([PY, "train.py"], grid=parse_grid(["lr=0.1,0.2"]), capture_code=False)
    result = run_sweep(plan, executor=make_executor("local", 2))
    assert [t.status for t in result.trials] == ["finished", "finished"]
    rec = get_sweep(Store.open(project / ".runbase"), result.sweep_id)
    assert rec is not None and rec["spec"]["on"] == "local" and rec["spec"]["jobs"] == 2
    assert rec["status"] == "finished"
