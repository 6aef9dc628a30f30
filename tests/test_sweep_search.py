"""`runbase sweep` searches (Optuna's TPE and CMA-ES), pruning, the sweep record, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import require, runbase_cmd, write
from test_publish import TeamServer, _login, team  # noqa: F401 - the team server fixture

PY = sys.executable

OBJ = """
    import runbase
    x = runbase.param("x", 0.0)
    y = runbase.param("y", 0.0)
    opt = runbase.param("opt", "sgd")
    runbase.summary(score=-(x - 0.3) ** 2 - (y + 0.2) ** 2 - (0.1 if opt == "sgd" else 0))
"""

# loss x * (1 + 1 / (step + 1)) at each step: the lower x, the better at every step;
# slow enough that the pruner reads a step before the run ends. Stopped, it exits 0 (as a
# script that saves a checkpoint on SIGTERM may): its run is pruned all the same
STEPS = """
    import signal, sys, time, runbase
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    x = runbase.param("x", 1.0)
    for step in range(STEPS):
        runbase.log(loss=x * (1 + 1 / (step + 1)), step=step)
        time.sleep(0.5)
    runbase.summary(loss=x)
"""
N_STEPS = 8


def sweep_id_of(text: str) -> str:
    line = next(ln for ln in text.splitlines() if ln.startswith("sweep "))
    return line.split()[1].rstrip(":")


def store_of(project: Path) -> Any:
    from runbase.store import Store

    return Store.open(project / ".runbase")


def trials_of(project: Path, sweep_id: str) -> list[dict[str, Any]]:
    from runbase.records.sweeps import trial_runs

    return trial_runs(store_of(project), sweep_id)


def study_of(project: Path, sweep_id: str) -> Any:
    optuna = require("optuna")
    url = f"sqlite:///{project / '.runbase' / 'sweeps' / sweep_id / 'study.db'}"
    return optuna.load_study(study_name=sweep_id, storage=url)


# -- the search layer: TPE against runbase's random sampling, same budget ------------------


def _quadratic(p: dict[str, Any]) -> float:
    """Lower is better: the optimum is lr 1e-3, wd 0.2, 3 layers, gelu."""
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + 10 * (p["wd"] - 0.2) ** 2
        + 0.1 * (p["layers"] - 3) ** 2
        + (0 if p["act"] == "gelu" else 0.5)
    )


def test_tpe_beats_random_search_with_the_same_budget() -> None:
    require("optuna")
    from runbase.tracking import search as se
    from runbase.tracking.sweep import combinations, parse_random

    dists = parse_random(
        [
            "lr=loguniform(1e-5,1)",
            "wd=uniform(0,1)",
            "layers=int(1,8)",
            "act=choice(relu,tanh,gelu)",
        ]
    )
    budget, seeds = 30, range(5)
    tpe_best, random_best = [], []
    for seed in seeds:
        # the sweep's own mapping and sampler: the space, TPE seeded, ask/tell
        study = se.Study.open(se.space({}, dists), search="tpe", direction="min", seed=seed)
        best = math.inf
        for _ in range(budget):
            number, params = study.ask()
            assert set(params) == {"lr", "wd", "layers", "act"}
            value = _quadratic(params)
            study.tell(number, value)
            best = min(best, value)
        tpe_best.append(best)
        # runbase's random search: the trials `--search random --seed S` runs
        random_best.append(min(map(_quadratic, combinations({}, dists, n=budget, seed=seed))))
    wins = sum(t < r for t, r in zip(tpe_best, random_best, strict=True))
    # better for almost every seed, and by far on average (not by a hair: TPE models)
    assert wins >= 4, (tpe_best, random_best)
    assert statistics.mean(tpe_best) < 0.5 * statistics.mean(random_best), (tpe_best, random_best)


def test_the_space_maps_every_distribution() -> None:
    optuna = require("optuna")
    from runbase.tracking import search as se
    from runbase.tracking.sweep import parse_grid, parse_random

    grid = parse_grid(["bs=16,32", "layers=[1],[3]"])
    dists = parse_random(
        ["lr=loguniform(1e-4,1e-1)", "wd=uniform(0,0.5)", "n=int(1,4)", "k=randint(2,3)"]
        + ["act=choice(relu,gelu)"]
    )
    space = se.space(grid, dists)
    d = optuna.distributions
    assert space["bs"] == d.CategoricalDistribution((16, 32))
    assert space["lr"] == d.FloatDistribution(1e-4, 1e-1, log=True)
    assert space["wd"] == d.FloatDistribution(0.0, 0.5)
    assert space["n"] == d.IntDistribution(1, 4) and space["k"] == d.IntDistribution(2, 3)
    assert space["act"] == d.CategoricalDistribution(("relu", "gelu"))
    study = se.Study.open(space, search="tpe", direction="max", seed=0)
    seen = set()
    for _ in range(12):  # a list value goes through Optuna as JSON text, and comes back
        number, params = study.ask()
        assert params["layers"] in ([1], [3]) and 1e-4 <= params["lr"] <= 1e-1
        seen.add(json.dumps(params["layers"]))
        study.tell(number, params["wd"])
    assert seen == {"[1]", "[3]"}
    # a grid point goes into the study as it is (grid and random keep their own trials)
    number, params = study.ask({"bs": 32, "layers": [3], "lr": 0.01, "wd": 0.1, "n": 2, "k": 3,
                                "act": "gelu"})  # fmt: skip
    assert params == {"bs": 32, "layers": [3], "lr": 0.01, "wd": 0.1, "n": 2, "k": 3, "act": "gelu"}


def test_study_storage_urls_are_kept_without_their_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.errors import UsageError
    from runbase.tracking import search as se

    url = "postgresql://alice:s3cret@db.example:5432/optuna?sslmode=require"
    assert se.redact(url) == "postgresql://alice:***@db.example:5432/optuna?sslmode=require"
    assert se.redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert se.rdb_url(url).startswith("postgresql+psycopg://alice:s3cret@")
    # a password in the query, one with a '/' (SQLAlchemy's reading: the userinfo's)
    assert se.redact("postgresql://h/db?user=u&password=s3cret") == "postgresql://h/db?user=u"
    assert se.redact("postgresql://u:p/ss@host/db") == "postgresql://u:***@host/db"
    assert se.redact("postgresql://u@h/db?PassWord=x&sslpassword=y") == "postgresql://u@h/db"
    for bad in ("postgresql://u:s3cret@host:abc/db", "not a url"):
        with pytest.raises(UsageError, match="bad --study-storage") as e:
            se.redact(bad)
        assert "s3cret" not in str(e.value)
    # a relative SQLite path is recorded, and opened, where it is now
    monkeypatch.chdir(tmp_path)
    assert se.redact("sqlite:///rel/s.db") == f"sqlite:///{tmp_path / 'rel' / 's.db'}"
    # the store's path is a path, '?' and '%' included: the study is written inside it
    (tmp_path / "w").mkdir()
    root = tmp_path / "w" / "a?b%c"
    url = se.local_storage(root, "sw1")
    study = se.Study.open({}, search="random", direction="max", name="sw1", url=url)
    study.tell(study.ask()[0], 1.0)
    assert (root / "sweeps" / "sw1" / "study.db").stat().st_size > 0
    assert [p.name for p in (tmp_path / "w").iterdir()] == ["a?b%c"]


def test_a_resumed_search_does_not_replay_its_first_points(tmp_path: Path) -> None:
    require("optuna")
    from runbase.tracking import search as se
    from runbase.tracking.sweep import parse_random

    space = se.space({}, parse_random(["x=uniform(0,1)", "y=uniform(0,1)"]))
    url = f"sqlite:///{tmp_path / 's.db'}"

    def asks(resume: bool, n: int) -> list[dict[str, Any]]:
        study = se.Study.open(
            space, search="tpe", direction="max", name="s", url=url, seed=7, resume=resume
        )
        out = []
        for _ in range(n):
            number, params = study.ask()
            study.tell(number, params["x"])
            out.append(params)
        return out

    first = asks(False, 3)
    later = asks(True, 3)  # the same seed, resumed: points of its own (still seeded)
    assert not any(p in first for p in later), (first, later)
    assert se.resumed_seed(7, 3) == se.resumed_seed(7, 3) != se.resumed_seed(7, 4)
    assert se.resumed_seed(7, 0) == 7 and se.resumed_seed(None, 3) is None


def test_the_budget_counts_every_drivers_trials_and_a_resume_spares_live_ones(
    tmp_path: Path,
) -> None:
    """A study several drivers share (runbase sweep --join): what counts against the
    budget, the best trial whoever ran it, and a resume telling failed only the trials
    of a driver that is gone."""
    require("optuna")
    from runbase.tracking import search as se
    from runbase.tracking.sweep import _driver_alive, _this_driver, parse_random

    space = se.space({}, parse_random(["x=uniform(0,1)"]))
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = se.Study.open(space, search="tpe", direction="min", name="s", url=url, seed=1)
    me = _this_driver()
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()  # a pid that ran here and is gone
    drivers = [{**me, "pid": os.getppid()}, {**me, "pid": dead.pid}, {"host": "x", "pid": 1}]
    numbers = []
    for i, driver in enumerate([*drivers, None, None, None]):
        attrs = {"run_id": f"r{i}", "runbase_driver": driver} if driver else {"run_id": f"r{i}"}
        numbers.append(study.ask(None, attrs)[0])
    assert study.taken() == 6 and study.taken(below=2) == 2  # running trials count
    study.tell(numbers[3], 0.5)
    study.tell(numbers[4], state="fail", status="failed")  # its run failed: counts
    study.tell(numbers[5], state="fail", status="killed")  # interrupted: does not
    assert study.taken() == 5 and study.running_count() == 3
    best = study.best()
    assert best is not None and (best["number"], best["value"], best["run_id"]) == (
        numbers[3],
        0.5,
        "r3",
    )
    # a resume: the live driver's trial (its parent here: a process that runs) is left
    # running; the dead one's, and another host's (whose process cannot be seen), failed
    resumed = se.Study.open(
        space, search="tpe", direction="min", name="s", url=url, seed=1, resume=True
    )
    assert resumed.fail_unfinished(_driver_alive) == 2
    states = {t.user_attrs["run_id"]: t.state.name for t in resumed.trials()}
    assert states["r0"] == "RUNNING" and states["r1"] == states["r2"] == "FAIL"
    assert resumed.taken() == 3  # r0 running, r3 complete, r4 failed by itself


# -- end to end: real `runbase sweep` processes, a real store --------------------------------


def test_tpe_sweep_tells_its_study_what_the_runs_reached(project: Path) -> None:
    write(project, "obj.py", OBJ)
    proc = runbase_cmd(
        *("sweep", "--search", "tpe", "--random", "x=uniform(-1,1)", "--random", "y=uniform(-1,1)"),
        *("--grid", "opt=sgd,adam", "--objective", "score", "--direction", "max"),
        *("--trials", "6", "-j", "2", "--seed", "3", "--name", "t", "--", PY, "obj.py"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    sweep_id = sweep_id_of(proc.stdout)
    assert "(tpe, seed 3)" in proc.stderr and "6 finished, 0 failed" in proc.stdout
    runs = trials_of(project, sweep_id)
    assert [r["tags"]["sweep_index"] for r in runs] == ["1", "2", "3", "4", "5", "6"]
    assert all(r["status"] == "finished" for r in runs)
    by_id = {r["id"]: r for r in runs}
    study = study_of(project, sweep_id)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 6 == len(study.trials)
    for t in done:  # each trial is a run: same parameters, its value the run's metric
        run = by_id[t.user_attrs["run_id"]]
        assert t.value == run["metrics"]["score"]["value"]
        assert {k: run["params"][k] for k in ("x", "y", "opt")} == t.params
        assert run["tags"]["sweep_index"] == str(t.user_attrs["sweep_index"])
    # the sweep record: its plan, its study (in the store), its best run
    from runbase.records.sweeps import get_sweep

    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["status"] == "finished"
    assert rec["spec"]["search"] == "tpe" and rec["spec"]["trials"] == 6
    assert rec["spec"]["command"] == [PY, "obj.py"] and rec["spec"]["on"] == "local"
    assert rec["study"] == {"name": sweep_id, "storage": "local"}
    best = max(runs, key=lambda r: r["metrics"]["score"]["value"])
    assert rec["best_run"] == best["id"] and best["id"] in proc.stdout.splitlines()[-1]
    # one code snapshot for every trial, the project's
    from runbase.records.record import build_record

    codes = {json.dumps(build_record(store_of(project), r["id"])["code"]) for r in runs}
    assert len(codes) == 1 and json.loads(codes.pop())["kind"] == "git"


def test_cmaes_sweep_runs_and_says_once_what_it_samples_at_random(project: Path) -> None:
    require("cmaes")  # Optuna's CMA-ES needs it; in the test extra
    write(project, "obj.py", OBJ)
    proc = runbase_cmd(
        *(
            "sweep",
            "--search",
            "cmaes",
            "--random",
            "x=uniform(-1,1)",
            "--random",
            "y=uniform(-1,1)",
        ),
        *("--random", "opt=choice(sgd,adam)", "--objective", "score", "--direction", "max"),
        *("--trials", "3", "--seed", "1", "--", PY, "obj.py"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("CMA-ES samples opt independently") == 1
    runs = trials_of(project, sweep_id_of(proc.stdout))
    assert len(runs) == 3 and all(r["status"] == "finished" for r in runs)


def _pruned_sweep(
    project: Path, grid: str, prune: str, *extra: str
) -> tuple[str, list[dict[str, Any]]]:
    write(project, "steps.py", STEPS.replace("STEPS", str(N_STEPS)))
    proc = runbase_cmd(
        *("sweep", "--grid", grid, "--objective", "loss", "--direction", "min"),
        *("--prune", prune, *extra, "--grace", "3", "--", PY, "steps.py"),
        cwd=project,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    sweep_id = sweep_id_of(proc.stdout)
    assert "pruning trial" in proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr  # pruning never stopped
    return sweep_id, trials_of(project, sweep_id)


def _assert_worst_pruned(project: Path, sweep_id: str, runs: list[dict[str, Any]], n: int) -> None:
    from runbase.records.series import series_count

    statuses = [r["status"] for r in runs]  # in trial order: x = 1, 2, ...
    assert statuses[0] == "finished" and statuses[-n:] == ["pruned"] * n, statuses
    for r in runs:
        count = series_count(store_of(project), r["id"], "loss")
        if r["status"] == "pruned":  # stopped before its last step, and ended
            assert count is not None and count < N_STEPS and r["ended_at"] is not None
        else:
            assert count == N_STEPS
    study = study_of(project, sweep_id)
    trials = sorted(study.trials, key=lambda t: t.number)
    states = [t.state.name for t in trials]
    assert states[0] == "COMPLETE" and states[-n:] == ["PRUNED"] * n
    # a completed trial's whole series reached the study (the pruner compares at every
    # step), its last points too, read when it ended
    for t in trials:
        if t.state.name == "COMPLETE":
            assert sorted(t.intermediate_values) == list(range(N_STEPS)), t.number


def test_median_pruning_stops_the_worst_trials(project: Path) -> None:
    # one trial at a time, one completed before the pruner compares: the later (worse)
    # trials are worse than the median at their first step
    sweep_id, runs = _pruned_sweep(project, "x=1,2,3", "median", "--prune-startup", "1")
    _assert_worst_pruned(project, sweep_id, runs, 2)


def test_asha_pruning_stops_the_worst_trials(project: Path) -> None:
    # Optuna's ASHA starts comparing once a trial completed (its rungs come from that
    # one's steps), so trial 2 is the first one compared: x = 3 and 4 are then the worst
    sweep_id, runs = _pruned_sweep(project, "x=1,2,3,4", "asha")
    _assert_worst_pruned(project, sweep_id, runs, 2)


def test_a_published_pruned_sweep_ends_finished_with_its_best_run_on_the_server(
    project: Path,
    team: tuple[TeamServer, str],  # noqa: F811
) -> None:
    from runbase.records.sweeps import get_sweep

    srv, token = team
    _login(srv, token, project)
    sweep_id, runs = _pruned_sweep(
        project, "x=1,2,3", "median", "--prune-startup", "1", "--publish", "team"
    )
    _assert_worst_pruned(project, sweep_id, runs, 2)
    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["status"] == "finished" and rec["best_run"] == runs[0]["id"]
    # the server's copy is the driver's last one, not the "running" each trial carried
    on_server = srv.get(f"/p/default/api/sweeps/{sweep_id}", token)
    assert on_server["status"] == "finished" and on_server["best_run"] == runs[0]["id"]
    assert on_server["counts"]["pruned"] == 2 and on_server["counts"]["finished"] == 1
    remote = srv.get(f"/p/default/api/runs?sweep={sweep_id}", token)["runs"]
    assert {r["id"]: r["status"] for r in remote} == {r["id"]: r["status"] for r in runs}


def test_an_interrupted_search_resumes_where_it_stopped(project: Path) -> None:
    write(project, "obj.py", OBJ.replace("import runbase", "import runbase, time; time.sleep(0.3)"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    args = ["--search", "tpe", "--random", "x=uniform(-1,1)", "--random", "y=uniform(-1,1)"]
    args += ["--objective", "score", "--direction", "max", "--trials", "4", "--seed", "2"]
    proc = subprocess.Popen(
        [PY, "-m", "runbase", "sweep", *args, "--", PY, "obj.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # Ctrl-C once two trials have ended
        lines.append(line)
        if line.startswith("[2/4]"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + err
    sweep_id = sweep_id_of(out)
    from runbase.records.sweeps import get_sweep

    assert get_sweep(store_of(project), sweep_id)["status"] == "interrupted"  # type: ignore[index]
    before = trials_of(project, sweep_id)
    done = [r for r in before if r["status"] == "finished"]
    assert len(done) >= 2 and all(r["status"] != "running" for r in before)
    last_index = max(int(r["tags"]["sweep_index"]) for r in before)

    again = runbase_cmd("sweep", "--resume", sweep_id, cwd=project, timeout=180)
    assert again.returncode == 0, again.stderr
    assert f"sweep {sweep_id}: resumed, {4 - len(done)} runs left" in again.stderr
    after = trials_of(project, sweep_id)
    new = [r for r in after if r["id"] not in {b["id"] for b in before}]
    assert len(new) == 4 - len(done) and all(r["status"] == "finished" for r in new)
    # indices go on after the interrupted call's, the study too: 4 trials complete in all
    assert sorted(int(r["tags"]["sweep_index"]) for r in new) == list(
        range(last_index + 1, last_index + 1 + len(new))
    )
    study = study_of(project, sweep_id)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    assert {t.user_attrs["run_id"] for t in complete} == {
        r["id"] for r in after if r["status"] == "finished"
    }
    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["status"] == "finished"
    finished = [r for r in after if r["status"] == "finished"]
    assert rec["best_run"] == max(finished, key=lambda r: r["metrics"]["score"]["value"])["id"]
    # nothing is left to do: a second resume runs nothing
    third = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert third.returncode == 0 and "resumed, 0 runs left" in third.stderr


def test_the_study_in_postgresql_keeps_no_password(project: Path, pg_server: str) -> None:
    write(project, "obj.py", OBJ)
    url = pg_server.replace("postgres@", "postgres:s3cret-pw@") + "/postgres"
    args = ["--search", "tpe", "--random", "x=uniform(-1,1)", "--objective", "score"]
    args += ["--direction", "max", "--trials", "2", "--study-storage", url]
    proc = runbase_cmd("sweep", *args, "--", PY, "obj.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    sweep_id = sweep_id_of(proc.stdout)
    from runbase.records.sweeps import get_sweep

    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["study"]["storage"] == url.replace("s3cret-pw", "***")
    assert not (project / ".runbase" / "sweeps").exists()  # not in the store: in PostgreSQL
    assert b"s3cret-pw" not in (project / ".runbase" / "runbase.db").read_bytes()
    optuna = require("optuna")
    study = optuna.load_study(study_name=sweep_id, storage=url.replace("://", "+psycopg://"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # a resume must be given the URL again (its password is not kept)
    proc = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert proc.returncode == 2 and "give --study-storage URL again" in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--search", "tpe", "--random", "x=uniform(0,1)"], "--search tpe needs --objective"),
        (["--search", "cmaes", "--random", "x=uniform(0,1)"], "--search cmaes needs --objective"),
        (["--grid", "x=1,2", "--prune", "median"], "--prune median needs --objective"),
        (["--grid", "x=1,2", "--objective", "acc"], "needs --direction max or min"),
        (["--grid", "x=1", "--objective", "acc", "--direction", "up"], "'up' is not one of"),
        (["--grid", "x=1", "--search", "bayes"], "'bayes' is not one of"),
        (
            [
                "--search",
                "tpe",
                "--random",
                "x=uniform(0,1)",
                "--objective",
                "a",
                "--direction",
                "max",
                "--trials",
                "0",
            ],
            "--trials must be at least 1",
        ),  # fmt: skip
        (
            [
                "--search",
                "tpe",
                "-n",
                "3",
                "--random",
                "x=uniform(0,1)",
                "--objective",
                "a",
                "--direction",
                "max",
            ],
            "-n is for grid and random sweeps",
        ),  # fmt: skip
        (["--resume", "0000000000000000"], "no sweep 0000000000000000"),
        (["--resume", "0000000000000000", "--grid", "x=1"], "--grid cannot change it"),
        (["--grid", "x=1", "--study-storage", "sqlite:///x.db"], "--study-storage is for"),
        (
            [
                "--grid",
                "x=1",
                "--objective",
                "a",
                "--direction",
                "max",
                "--prune",
                "median",
                "--study-storage",
                "postgresql://bob:hunter2@127.0.0.1:1/db",
            ],
            "cannot open the study storage postgresql://bob:***@127.0.0.1:1/db",
        ),  # fmt: skip
        (["--grid", "x=1", "--cpus", "2"], "--cpus needs --on ray"),
        (["--grid", "x=1", "--on", "moon"], "unknown --on 'moon'"),
        (["--grid", "x=1", "--publish", "nowhere"], "no remote 'nowhere'"),
    ],
)
def test_bad_search_options_are_usage_errors(project: Path, args: list[str], message: str) -> None:
    proc = runbase_cmd("sweep", *args, "--", PY, "-c", "pass", cwd=project)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    if (project / ".runbase").exists():  # no trial ran
        from runbase.records.read import count_runs

        assert count_runs(store_of(project)) == 0


def test_a_missing_objective_fails_the_trial_with_a_warning(project: Path) -> None:
    write(project, "obj.py", OBJ)
    proc = runbase_cmd(
        *("sweep", "--grid", "x=0.1,0.2", "--objective", "acc", "--direction", "max"),
        *("--prune", "median", "--", PY, "obj.py"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr  # the runs finished: the sweep did not fail
    assert "finished without a numeric metric 'acc' (its metrics: score)" in proc.stderr
    study = study_of(project, sweep_id_of(proc.stdout))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


KILLED_ONCE = """
    import os, signal, runbase
    x = runbase.param("x", 0)
    if x == 2 and not os.path.exists("attempt.log"):  # the first attempt of trial 2 dies
        open("attempt.log", "w").close()
        os.kill(os.getpid(), signal.SIGTERM)
    runbase.summary(y=x)
"""


def test_a_grid_sweep_resumes_the_points_not_done_under_their_own_index(project: Path) -> None:
    write(project, "k.py", KILLED_ONCE)
    first = runbase_cmd("sweep", "--grid", "x=1,2,3", "--name", "g", "--", PY, "k.py", cwd=project)
    assert first.returncode == 1 and "2 finished, 1 failed" in first.stdout, first.stderr
    sweep_id = sweep_id_of(first.stdout)
    assert [r["status"] for r in trials_of(project, sweep_id)] == ["finished", "killed", "finished"]
    again = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert again.returncode == 0, again.stderr
    assert "resumed, 1 runs left" in again.stderr and "[1/1] trial 2 finished: x=2" in again.stderr
    runs = trials_of(project, sweep_id)  # the killed attempt stays, beside its re-run
    assert [(r["tags"]["sweep_index"], r["status"], r["params"]["x"]) for r in runs] == [
        ("1", "finished", 1),
        ("2", "killed", 2),
        ("2", "finished", 2),
        ("3", "finished", 3),
    ]
    from runbase.records.sweeps import get_sweep

    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["status"] == "finished" and rec["study"] is None


# the raw argv of each call of the trial; trial 2's first attempt dies (killed)
ARGV_KILLED_ONCE = """
    import os, signal, sys, runbase
    x = runbase.param("x", 0)
    with open(f"argv-{x}.txt", "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")
    if x == 2 and not os.path.exists("attempt.log"):
        open("attempt.log", "w").close()
        os.kill(os.getpid(), signal.SIGTERM)
"""


def test_a_secret_in_the_command_stays_out_of_the_sweep_record(project: Path) -> None:
    from runbase.records.bundle import sweep_row
    from runbase.records.sweeps import get_sweep

    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0kLmNoPqR"
    write(project, "k.py", ARGV_KILLED_ONCE)
    first = runbase_cmd("sweep", "--grid", "x=1,2", "--", PY, "k.py", "--api-key", key, cwd=project)
    assert first.returncode == 1 and "1 finished, 1 failed" in first.stdout, first.stderr
    sweep_id = sweep_id_of(first.stdout)
    rec = get_sweep(store_of(project), sweep_id)
    assert rec is not None and rec["spec"]["command"] == [PY, "k.py", "--api-key", "***"]
    assert key not in json.dumps(sweep_row(store_of(project), sweep_id))  # what a push sends
    # the raw command, for a resume here: this user's alone
    saved = project / ".runbase" / "sweeps" / sweep_id / "command.json"
    assert json.loads(saved.read_text()) == [PY, "k.py", "--api-key", key]
    assert saved.stat().st_mode & 0o777 == 0o600
    again = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert again.returncode == 0 and "resumed, 1 runs left" in again.stderr, again.stderr
    # what it runs is said first, secrets hidden; the trial got the key
    assert f"resuming sweep {sweep_id} of " in again.stderr and key not in again.stderr
    assert f"{PY} k.py --api-key ***" in again.stderr
    assert (project / "argv-2.txt").read_text().splitlines() == [f"--api-key {key}"] * 2
    # without the raw copy (a sweep pulled from a server): the command is asked for
    saved.unlink()
    proc = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert proc.returncode == 2 and f"--resume {sweep_id} -- COMMAND" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = runbase_cmd("sweep", "--resume", sweep_id, "--", PY, "other.py", cwd=project)
    assert proc.returncode == 2 and "not the command of sweep" in proc.stderr
    proc = runbase_cmd(
        "sweep", "--resume", sweep_id, "--", PY, "k.py", "--api-key", key, cwd=project
    )
    assert proc.returncode == 0 and "resumed, 0 runs left" in proc.stderr, proc.stderr


SLOW_WHILE_FLAGGED = """
    import os, time, runbase
    x = runbase.param("x", 0)
    while os.path.exists("slow"):
        time.sleep(0.2)
"""


def test_a_sweep_is_resumed_only_when_its_driver_is_gone_and_it_is_ours(project: Path) -> None:
    from runbase.capture.env import user_and_host
    from runbase.records.sweeps import get_sweep

    write(project, "s.py", SLOW_WHILE_FLAGGED)
    (project / "slow").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.Popen(
        [PY, "-m", "runbase", "sweep", "--grid", "x=1,2", "--", PY, "s.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "sweep ID: 2 runs, 1 at a time": recorded, claimed
        sweep_id = line.split()[1].rstrip(":")
        # its driver is alive: a second one is refused before it touches anything
        other = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
        assert other.returncode == 2, other.stderr
        assert f"sweep {sweep_id} is being driven by pid {proc.pid}" in other.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (project / "slow").unlink()
    store = store_of(project)
    assert get_sweep(store, sweep_id)["status"] == "interrupted"  # type: ignore[index]
    # a sweep another user recorded (pulled from a team server): its command runs here
    store.db.execute("UPDATE sweeps SET user_name = 'someone-else' WHERE id = ?", (sweep_id,))
    store.close()
    proc2 = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert proc2.returncode == 2 and "is someone-else's" in proc2.stderr
    assert "add --yes" in proc2.stderr and f"{PY} s.py" in proc2.stderr
    proc2 = runbase_cmd("sweep", "--resume", sweep_id, "--yes", cwd=project)
    assert proc2.returncode == 0, proc2.stderr
    host = user_and_host()[1]
    assert f"resuming sweep {sweep_id} of someone-else on {host}: {PY} s.py" in proc2.stderr
    assert "resumed, 2 runs left" in proc2.stderr


def test_bad_sweep_index_tags_break_neither_resume_nor_the_listing(project: Path) -> None:
    first = runbase_cmd("sweep", "--grid", "x=1,2", "--", PY, "-c", "pass", cwd=project)
    assert first.returncode == 0, first.stderr
    sweep_id = sweep_id_of(first.stdout)
    # runs anyone could push into the sweep, with indexes that are none
    for bad in ("\u00b2", "--5", "1" * 30, "x"):
        runbase_cmd(
            *("run", "--sweep-id", sweep_id, "--tag", f"sweep_index={bad}"),
            *("--", PY, "-c", "pass"),
            cwd=project,
            check=True,
        )
    again = runbase_cmd("sweep", "--resume", sweep_id, cwd=project)
    assert again.returncode == 0 and "resumed, 0 runs left" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    runs = trials_of(project, sweep_id)  # the trials in order, the others after them
    assert [r["tags"]["sweep_index"] for r in runs[:2]] == ["1", "2"] and len(runs) == 6


def test_the_study_storage_comes_from_the_environment(project: Path) -> None:
    from runbase.records.sweeps import get_sweep

    write(project, "obj.py", OBJ)
    env = {"RUNBASE_STUDY_STORAGE": "sqlite:///studies/s.db"}  # relative: recorded absolute
    (project / "studies").mkdir()
    args = ["--search", "tpe", "--random", "x=uniform(-1,1)", "--objective", "score"]
    proc = runbase_cmd(
        "sweep",
        *args,
        "--direction",
        "max",
        "--trials",
        "2",
        "--",
        PY,
        "obj.py",
        cwd=project,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    sweep_id = sweep_id_of(proc.stdout)
    rec = get_sweep(store_of(project), sweep_id)
    url = f"sqlite:///{project / 'studies' / 's.db'}"
    assert rec is not None and rec["study"] == {"name": sweep_id, "storage": url}
    study = require("optuna").load_study(study_name=sweep_id, storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # a sweep without a study leaves the variable alone
    grid = runbase_cmd("sweep", "--grid", "x=1", "--", PY, "-c", "pass", cwd=project, env=env)
    assert grid.returncode == 0, grid.stderr
