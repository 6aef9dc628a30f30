"""`runbase sweep --join`: several drivers (two machines: two checkouts, two stores) drive
one Optuna search through a study both reach, publishing to one team server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, require, runbase_cmd, wait_until, write
from test_publish import TeamServer, _login, team  # noqa: F401 - the team server fixture

PY = sys.executable

# each trial waits for GATE (the test opens it once both drivers run a trial), then
# reports its score: the best is near x 0.3, y -0.2
OBJ = """
import os, time, runbase
x = runbase.param("x", 0.0)
y = runbase.param("y", 0.0)
while not os.path.exists(GATE):
    time.sleep(0.05)
runbase.summary(score=-(x - 0.3) ** 2 - (y + 0.2) ** 2)
"""
SEARCH = ["--search", "tpe", "--random", "x=uniform(-1,1)", "--random", "y=uniform(-1,1)"]
SEARCH += ["--objective", "score", "--direction", "max"]


def _env() -> dict[str, str]:
    # the test's config (its logins) only: no RUNBASE_STUDY_STORAGE of the caller's
    return {
        k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") or k == "RUNBASE_CONFIG"
    }


def _sweep(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # a session of its own: SIGKILLed with its trials, as a machine that goes down
    return subprocess.Popen(
        [PY, "-m", "runbase", "sweep", *args],
        cwd=cwd,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _sweep_id(proc: subprocess.Popen[str]) -> str:
    """The id a starting sweep prints (its stderr read up to that line)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("sweep "):
            return line.split()[1].rstrip(":")
    raise AssertionError(f"the sweep printed no id: {proc.wait()}")


def _study(url: str, sweep_id: str) -> Any:
    optuna = require("optuna")
    # PostgreSQL through psycopg 3, as runbase opens it
    return optuna.load_study(study_name=sweep_id, storage=url.replace("ql://", "ql+psycopg://"))


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a study storage every driver reaches: an SQLite file on a path both
    see, or a PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_server")) + "/postgres"
    (tmp_path / "shared").mkdir()
    return f"sqlite:///{tmp_path / 'shared' / 'study.db'}"


def _runs(root: Path, sweep_id: str) -> list[dict[str, Any]]:
    from runbase.records.sweeps import trial_runs
    from runbase.store import Store

    return trial_runs(Store.open(root / ".runbase"), sweep_id)


def _checkouts(project: Path, tmp_path: Path) -> Path:
    """A second checkout of the project (another machine's): its own store."""
    write(project, "obj.py", OBJ.replace("GATE", repr(str(tmp_path / "gate"))))
    subprocess.run([*GIT, "-C", str(project), "add", "obj.py"], check=True)
    subprocess.run([*GIT, "-C", str(project), "commit", "-q", "-m", "obj"], check=True)
    other = tmp_path / "other"
    subprocess.run([*GIT, "clone", "-q", str(project), str(other)], check=True)
    return other


def test_two_drivers_share_one_study_and_one_budget(
    project: Path,
    tmp_path: Path,
    storage: str,
    team: tuple[TeamServer, str],  # noqa: F811
) -> None:
    srv, token = team
    other = _checkouts(project, tmp_path)
    _login(srv, token, project)
    url = storage
    first = _sweep(project, *SEARCH, "--trials", "8", "-j", "1", "--seed", "5",
                   "--study-storage", url, "--publish", "team", "--", PY, "obj.py")  # fmt: skip
    assert first.stderr is not None
    head = []
    for line in first.stderr:  # its id, printed as it starts
        head.append(line)
        if line.startswith("sweep "):
            break
    sweep_id = head[-1].split()[1].rstrip(":")
    second = _sweep(other, "--join", sweep_id, "--study-storage", url, "-j", "1")
    # both drivers run a trial before any ends: the second does take part
    running = require("optuna").trial.TrialState.RUNNING
    wait_until(
        lambda: sum(t.state == running for t in _study(url, sweep_id).trials) == 2,
        what="a trial of each driver running",
        timeout=120,
    )
    (tmp_path / "gate").write_text("")
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, "".join(head) + err1
    assert second.returncode == 0, err2
    assert f"joining sweep {sweep_id}" in err2

    # the study: 8 trials completed in all; one asked past the budget (both drivers
    # asking the last at once) is failed, never left running
    study = _study(url, sweep_id)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 8
    for t in study.trials:
        if t.state.name != "COMPLETE":
            assert t.state.name == "FAIL" and t.user_attrs["runbase_status"] == "over budget"
    # the runs: indices 1..8 once across both stores (trial number + 1)
    mine, theirs = _runs(project, sweep_id), _runs(other, sweep_id)
    assert mine and theirs
    runs = mine + theirs
    assert sorted(int(r["tags"]["sweep_index"]) for r in runs) == list(range(1, 9))
    assert all(r["status"] == "finished" for r in runs)
    by_run = {t.user_attrs["run_id"]: t for t in complete}
    assert {r["id"] for r in runs} == set(by_run)
    for r in runs:
        assert int(r["tags"]["sweep_index"]) == by_run[r["id"]].number + 1
    best = max(runs, key=lambda r: r["metrics"]["score"]["value"])

    # one sweep on the server: its 8 runs, finished, its best run the best of all 8
    remote = srv.get(f"/p/default/api/runs?sweep={sweep_id}", token)["runs"]
    assert sorted(r["id"] for r in remote) == sorted(r["id"] for r in runs)
    on_server = srv.get(f"/p/default/api/sweeps/{sweep_id}", token)
    assert on_server["status"] == "finished" and on_server["best_run"] == best["id"]
    # each store's record: the first driver's spec; the driver that ended last says
    # finished with the best of all; one that ended first, what it saw then: running
    # (not interrupted: it released the sweep), its best so far
    from runbase.records.sweeps import get_sweep
    from runbase.store import Store

    recs = [get_sweep(Store.open(root / ".runbase"), sweep_id) for root in (project, other)]
    for rec in recs:
        assert rec is not None and rec["status"] in ("finished", "running")
        assert rec["spec"]["trials"] == 8 and rec["spec"]["command"] == [PY, "obj.py"]
        assert rec["best_run"] in {r["id"] for r in runs}
    assert any(r["status"] == "finished" and r["best_run"] == best["id"] for r in recs if r)
    assert best["id"] in out1.splitlines()[-1] + out2.splitlines()[-1]

    # a driver joining the finished sweep runs nothing, says so, and brings its store's
    # record up to date
    for root in (other, project):
        again = runbase_cmd("sweep", "--join", sweep_id, "--study-storage", url, cwd=root)
        assert again.returncode == 0, again.stderr
        assert "has all its 8 trials: nothing to run" in again.stderr
        rec = get_sweep(Store.open(root / ".runbase"), sweep_id)
        assert rec is not None and rec["status"] == "finished" and rec["best_run"] == best["id"]
    assert len(_runs(other, sweep_id)) == len(theirs)
    assert len(_runs(project, sweep_id)) == len(mine)
    assert len(_study(url, sweep_id).trials) == len(study.trials)


def test_join_refuses_what_it_cannot_drive(project: Path, tmp_path: Path) -> None:
    write(project, "obj.py", OBJ.replace("GATE", repr(str(project / "obj.py"))))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # a grid sweep (its study only serves the pruner): join refused
    grid = runbase_cmd(
        *("sweep", "--grid", "x=1,2", "--objective", "score", "--direction", "max"),
        *("--prune", "median", "--study-storage", url, "--", PY, "obj.py"),
        cwd=project,
    )
    assert grid.returncode == 0, grid.stderr
    grid_id = next(ln for ln in grid.stdout.splitlines() if ln.startswith("sweep ")).split()[1]
    grid_id = grid_id.rstrip(":")
    cases = [
        (["--join", grid_id, "--study-storage", url], "is a grid sweep: --join is for tpe"),
        (["--join", "nosuchsweep", "--study-storage", url], "no sweep nosuchsweep in the study"),
        (["--join", grid_id], "needs the sweep's study storage"),
        (
            ["--join", grid_id, "--study-storage", f"sqlite:///{tmp_path}/no/such/dir/x.db"],
            "cannot open the study storage",
        ),
        (["--join", grid_id, "--study-storage", url, "--trials", "3"], "--trials cannot change"),
        (["--join", grid_id, "--resume", grid_id], "--resume or --join, not both"),
    ]
    for args, message in cases:
        proc = runbase_cmd("sweep", *args, cwd=project)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_command_with_a_secret_is_given_again_to_join(project: Path, tmp_path: Path) -> None:
    other = _checkouts(project, tmp_path)
    (tmp_path / "gate").write_text("")  # the trials run straight through
    url = f"sqlite:///{tmp_path / 'study.db'}"
    command = [PY, "obj.py", "--api-key", "sk-a1B2c3D4e5F6g7H8i9J0kLmNoPqR"]
    first = runbase_cmd(
        "sweep", *SEARCH, "--trials", "1", "--study-storage", url, "--", *command, cwd=project
    )
    assert first.returncode == 0, first.stderr
    sweep_id = next(ln for ln in first.stdout.splitlines() if ln.startswith("sweep "))
    sweep_id = sweep_id.split()[1].rstrip(":")
    # the study holds the command as the record does: its secret hidden
    spec = _study(url, sweep_id).user_attrs["runbase_sweep"]["spec"]
    assert spec["command"] == [PY, "obj.py", "--api-key", "***"]
    join = ["sweep", "--join", sweep_id, "--study-storage", url]
    hidden = runbase_cmd(*join, cwd=other)  # another store: no copy of the raw command
    assert hidden.returncode == 2 and "hides a secret" in hidden.stderr, hidden.stderr
    assert f"runbase sweep --join {sweep_id} -- COMMAND" in hidden.stderr
    wrong = runbase_cmd(*join, "--", PY, "other.py", "--api-key", "sk-x", cwd=other)
    assert wrong.returncode == 2 and "not the command of sweep" in wrong.stderr, wrong.stderr
    given = runbase_cmd(*join, "--", *command, cwd=other)
    assert given.returncode == 0 and "nothing to run" in given.stderr, given.stderr
    assert "sk-a1B2" not in given.stderr


def _running(url: str, sweep_id: str) -> dict[int, Any]:
    """The study's running trials that name their driver, by the driver's pid."""
    trials = _study(url, sweep_id).trials
    return {
        t.user_attrs["runbase_driver"]["pid"]: t
        for t in trials
        if t.state.name == "RUNNING" and "runbase_driver" in t.user_attrs
    }


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its trials, no goodbye
    proc.communicate(timeout=60)


def test_a_driver_elsewhere_is_alive_while_it_beats_and_gone_once_its_beat_is_stale(
    project: Path, tmp_path: Path
) -> None:
    """Drivers on other hosts, told apart by their heartbeat in the study (a pid says
    nothing there): a resume spares a live one's running trial; once it is SIGKILLed
    and its beat goes stale, a running driver tells its trial failed, and the
    study-wide budget is met by completed trials."""
    optuna = require("optuna")
    other = _checkouts(project, tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**_env(), "RUNBASE_SWEEP_BEAT": "0.3"}  # stale after 12 beats: 3.6 s
    first = _sweep(project, *SEARCH, "--trials", "4", "-j", "1",
                   "--study-storage", url, "--", PY, "obj.py", env=env)  # fmt: skip
    sweep_id = _sweep_id(first)
    second = _sweep(other, "--join", sweep_id, "--study-storage", url, "-j", "1", env=env)
    trials = wait_until(
        lambda: (r := _running(url, sweep_id)) and {first.pid, second.pid} <= set(r) and r,
        what="a trial of each driver running",
        timeout=120,
    )
    # the joined driver as if on another host: its trial names a host that is not this
    # one, so only its heartbeat says whether it runs
    joined = trials[second.pid]
    moved = {**joined.user_attrs["runbase_driver"], "host": "elsewhere.example"}
    storage = optuna.storages.RDBStorage(url)
    storage.set_trial_user_attr(joined._trial_id, "runbase_driver", moved)

    # the first driver dies; a resume where it ran fails its trial, not the live one's
    _kill(first)
    resume = _sweep(project, "--resume", sweep_id, "--study-storage", url, env=env)
    wait_until(
        lambda: resume.pid in _running(url, sweep_id),
        what="the resumed driver running a trial",
        timeout=120,
    )
    states = {t.number: t.state.name for t in _study(url, sweep_id).trials}
    assert states[trials[first.pid].number] == "FAIL"
    assert states[joined.number] == "RUNNING"  # its heartbeat is fresh

    # the joined driver's machine goes down: once its beat is stale, the resumed driver
    # tells its trial failed (it no longer holds the budget)
    _kill(second)
    wait_until(
        lambda: _study(url, sweep_id).trials[joined.number].state.name == "FAIL",
        what="the dead driver's trial told failed",
        timeout=120,
    )
    (tmp_path / "gate").write_text("")
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert "running trial(s) of a driver that is gone were told failed" in err
    study = _study(url, sweep_id)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 4
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    assert "runbase_status" not in study.trials[joined.number].user_attrs  # not counted


def test_a_driver_with_the_budget_met_waits_for_a_silent_drivers_trial(
    project: Path, tmp_path: Path
) -> None:
    """The last trial of the budget held by a driver on another host that went silent:
    the driver whose trials ended waits until that driver's beat is stale, tells its
    trial failed and runs the missing trial, instead of ending one trial short."""
    optuna = require("optuna")
    other = _checkouts(project, tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**_env(), "RUNBASE_SWEEP_BEAT": "0.3"}
    first = _sweep(project, *SEARCH, "--trials", "2", "-j", "1",
                   "--study-storage", url, "--", PY, "obj.py", env=env)  # fmt: skip
    sweep_id = _sweep_id(first)
    second = _sweep(other, "--join", sweep_id, "--study-storage", url, "-j", "1", env=env)
    trials = wait_until(
        lambda: (r := _running(url, sweep_id)) and {first.pid, second.pid} <= set(r) and r,
        what="a trial of each driver running",
        timeout=120,
    )
    joined = trials[second.pid]  # on another host, as above
    moved = {**joined.user_attrs["runbase_driver"], "host": "elsewhere.example"}
    optuna.storages.RDBStorage(url).set_trial_user_attr(joined._trial_id, "runbase_driver", moved)
    _kill(second)
    (tmp_path / "gate").write_text("")  # the first driver's trial ends: the budget looks met
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    study = _study(url, sweep_id)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 2
    assert study.trials[joined.number].state.name == "FAIL"
    assert len(_runs(project, sweep_id)) == 2


def test_a_driver_joins_on_a_ray_cluster(project: Path, tmp_path: Path) -> None:
    """``--join --on ray``: the joining driver's trials run as tasks of a real (one-node)
    Ray cluster, recorded in its store, counted in the one study-wide budget."""
    require("ray")
    import raycluster

    other = _checkouts(project, tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with raycluster.running(raycluster.RayCluster(nodes=1)) as cluster:
        env = {**_env(), **raycluster.ENV, "RAY_ADDRESS": cluster.address}
        first = _sweep(project, *SEARCH, "--trials", "3", "-j", "1",
                       "--study-storage", url, "--", PY, "obj.py", env=env)  # fmt: skip
        sweep_id = _sweep_id(first)
        join = ("--join", sweep_id, "--study-storage", url, "--on", "ray", "-j", "1")
        second = _sweep(other, *join, env=env)
        wait_until(
            lambda: {first.pid, second.pid} <= set(_running(url, sweep_id)),
            what="a trial of each driver running, one on Ray",
            timeout=240,
        )
        (tmp_path / "gate").write_text("")
        _, err1 = first.communicate(timeout=300)
        _, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    study = _study(url, sweep_id)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 3
    theirs = _runs(other, sweep_id)
    assert theirs and all(r["status"] == "finished" for r in theirs)
    for r in theirs:  # Ray ran them
        shown = runbase_cmd("show", r["id"], "--json", cwd=other, check=True)
        assert json.loads(shown.stdout)["executor"]["kind"] == "ray"


def test_a_drivers_beat_in_the_study_says_whether_it_runs(tmp_path: Path) -> None:
    """Liveness from the study's heartbeats: another host's driver is alive while its
    beat is younger than 12 of its intervals, gone once stale, ended, or never beating;
    this host's by its process, unless its beat says it ended."""
    require("optuna")
    from runbase.tracking import search as se
    from runbase.tracking.sweep import _driver_alive, _this_driver, parse_random

    space = se.space({}, parse_random(["x=uniform(0,1)"]))
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = se.Study.open(space, search="tpe", direction="max", name="s", url=url, seed=1)
    study.beat("live", 10.0)
    study.beat("done", 10.0, ended=True)
    beats = study.beats()
    now = beats["live"]["at"]
    far = {"host": "elsewhere.example", "pid": 1}
    assert _driver_alive({**far, "id": "live"}, beats, now + 119)
    assert not _driver_alive({**far, "id": "live"}, beats, now + 121)  # stale
    assert not _driver_alive({**far, "id": "done"}, beats, now)
    assert not _driver_alive({**far, "id": "never"}, beats, now)
    assert not _driver_alive(far, beats, now)  # a driver from before heartbeats
    assert _driver_alive({**far, "id": "me"}, beats, now, me="me")  # the asking driver's
    here = {**_this_driver(), "pid": os.getppid()}  # a process that runs
    assert _driver_alive({**here, "id": "live"}, beats, now + 1000)  # its process says
    assert not _driver_alive({**here, "id": "done"}, beats, now)  # it said it ended
    # a trial whose driver is not yet written on it (just asked) is left by a running
    # driver's check, told failed by a resume's
    study.ask(None, {"run_id": "a", "runbase_driver": {**far, "id": "done"}})
    study.ask(None, {"run_id": "b"})
    assert study.fail_unfinished(lambda _d: False, keep_unmarked=True) == 1
    assert study.fail_unfinished(lambda _d: False) == 1
    assert study.running_count() == 0


def test_the_beat_interval_is_a_positive_number_of_seconds(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.tracking.sweep import beat_every

    monkeypatch.setenv("RUNBASE_SWEEP_BEAT", "2.5")
    assert beat_every() == 2.5
    for bad in ("abc", "0", "-1", "nan", "inf"):
        proc = runbase_cmd(
            "sweep", "--grid", "x=1", "--", PY, "-c", "pass",
            cwd=project, env={"RUNBASE_SWEEP_BEAT": bad},
        )  # fmt: skip
        assert proc.returncode == 2 and "RUNBASE_SWEEP_BEAT must be a number" in proc.stderr
        assert "Traceback" not in proc.stderr
