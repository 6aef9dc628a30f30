"""runbase.integrations.ray: a Ray Tune experiment with RunbaseLoggerCallback, run in
this process on a real local Ray instance (one per module, 2 CPUs, the object store at
Ray's minimum), recorded in a real store: one run per trial with its config, its
reported metrics and how it ended, the experiment one sweep, a store that goes away
costs a warning and never the search, and published runs land on a real team server."""

from __future__ import annotations

import math
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import require, stop_process, wait_until
from runbase.errors import RunbaseError
from runbase.records.record import build_record
from runbase.records.sweeps import create_sweep, get_sweep, trial_runs
from runbase.store import Store
from test_publish import TeamServer, _login, team  # noqa: F401 - the team server fixture

LRS = [0.1, 0.2, 0.3, 0.4]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """Ray in this process: a small local instance, shut down after the module."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = require("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=78643200,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def _search(
    tmp_path: Path,
    callback: Any,
    lrs: list[float],
    fail_at: float | None = None,
    on_scheduler: bool = False,
) -> Any:
    """An ASHA search over ``lrs``, one trial at a time (so ASHA's decisions do not
    depend on timing): the smallest lr leads at every epoch. Its metric and mode (loss,
    min) are TuneConfig's, or with ``on_scheduler`` the scheduler's own."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    def train_fn(config: dict[str, Any]) -> None:
        if config["lr"] == fail_at:
            raise ValueError(f"boom: lr {config['lr']} diverged")
        for epoch in range(4):
            loss = config["lr"] * 10 * math.exp(-0.1 * epoch)
            tune.report({"loss": loss, "epoch": epoch, "grad": {"norm": 1.0}, "note": "x"})

    space = {"lr": tune.grid_search(lrs), "opt": {"name": "adam", "wd": 0.0}}
    objective = {"metric": "loss", "mode": "min"}
    asha = ASHAScheduler(
        max_t=4, grace_period=1, reduction_factor=2, **(objective if on_scheduler else {})
    )
    tuner = tune.Tuner(
        train_fn,
        param_space=space,
        tune_config=tune.TuneConfig(
            **({} if on_scheduler else objective), scheduler=asha, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray_results"), callbacks=[callback], verbose=0
        ),
    )
    return tuner.fit()


def _records(store_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The trial runs of the store's one sweep, in trial order, and the sweep."""
    store = Store.open(store_dir)
    try:
        ids = {str(r[0]) for r in store.db.query("SELECT DISTINCT sweep_id FROM runs")}
        assert len(ids) == 1, ids
        sweep_id = ids.pop()
        recs = [build_record(store, r["id"]) for r in trial_runs(store, sweep_id)]
        return recs, get_sweep(store, sweep_id)
    finally:
        store.close()


def test_each_trial_is_a_run_with_its_config_metrics_and_end(
    ray_local: Any, project: Path, tmp_path: Path
) -> None:
    from runbase.integrations.ray import RunbaseLoggerCallback

    store_dir = tmp_path / "store"
    results = _search(tmp_path, RunbaseLoggerCallback(store=store_dir), [*LRS, 0.5], fail_at=0.5)
    assert len(results) == 5 and len(results.errors) == 1

    recs, sweep = _records(store_dir)
    assert [r["name"][-5:] for r in recs] == ["00000", "00001", "00002", "00003", "00004"]
    assert [r["status"] for r in recs] == ["finished", "pruned", "pruned", "pruned", "failed"]
    assert sweep is not None and sweep["status"] == "finished"
    assert sweep["spec"]["search"] == "tune" and sweep["spec"]["trials"] == 5
    assert sweep["spec"]["command"][0] == sys.executable
    for i, (rec, lr) in enumerate(zip(recs, [*LRS, 0.5], strict=True)):
        assert rec["mode"] == "api" and rec["parent_id"] is None
        assert rec["tags"]["sweep_index"] == str(i)
        assert rec["params"] == {"lr": lr, "opt.name": "adam", "opt.wd": 0.0}
        assert set(rec["param_sources"].values()) == {"tune"}
        assert rec["executor"]["kind"] == "ray" and rec["executor"]["attempt"] == 0
        assert rec["executor"]["node_id"] == ray_local.get_runtime_context().get_node_id()
        assert rec["code"] == recs[0]["code"] and rec["code"]["tree"]  # captured once
        assert rec["env"] == recs[0]["env"] and rec["env"]["python"]
    # reported: loss, epoch and the nested grad/norm; "note" is no number, Tune's own
    # keys (training_iteration is the step, the timings, ids and host) are not metrics
    counts = [{k: m["count"] for k, m in r["metrics"].items()} for r in recs]
    assert counts[0] == {"loss": 4, "epoch": 4, "grad/norm": 4}
    assert counts[1:4] == [{"loss": 1, "epoch": 1, "grad/norm": 1}] * 3
    assert counts[4] == {}
    assert recs[0]["metrics"]["epoch"]["step"] == 4 and recs[0]["metrics"]["epoch"]["last"] == 3
    assert recs[0]["error"] is None and recs[0]["exit_code"] == 0
    assert "boom: lr 0.5 diverged" in recs[4]["error"]
    assert "stopped early" in recs[1]["error"]
    # TuneConfig's metric and mode are the sweep's objective; its best run the trial
    # Tune finds best too (the pruned ones are never the best run: they stopped early)
    assert (sweep["spec"]["objective"], sweep["spec"]["direction"]) == ("loss", "min")
    assert sweep["best_run"] == recs[0]["id"]
    assert results.get_best_result().config["lr"] == recs[0]["params"]["lr"]
    # and the sweep page ranks the trials by it
    stats = _stats(store_dir, sweep["id"])
    assert stats["objective"] == {
        "metric": "loss", "direction": "min", "source": "spec", "direction_source": "spec"
    }  # fmt: skip
    assert stats["best"]["id"] == recs[0]["id"] and stats["best"]["params"] == {"lr": 0.1}
    assert [p["best_id"] for p in stats["best_curve"]] == [recs[0]["id"]]
    assert stats["counts"]["finished"] == 1 and stats["counts"]["pruned"] == 3


def _stats(store_dir: Path, sweep_id: str) -> dict[str, Any]:
    """What the sweep page shows of the sweep (analysis.sweepstats, as GET /api/sweeps/ID)."""
    from runbase.analysis.sweepstats import sweep_stats

    store = Store.open(store_dir)
    try:
        return sweep_stats(store, sweep_id)
    finally:
        store.close()


def _best_after_each_trial(store_dir: Path) -> Any:
    """A Tune callback placed after runbase's: its ``seen``, the sweep's best run as
    each trial completed (Tune calls the callbacks in order)."""
    from ray import tune

    class Watcher(tune.Callback):
        seen: list[str | None]

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            store = Store.open(store_dir)
            try:
                (sweep_id,) = [str(r[0]) for r in store.db.query("SELECT id FROM sweeps")]
                sweep = get_sweep(store, sweep_id)
                self.seen.append(sweep["best_run"] if sweep else None)
            finally:
                store.close()

    watcher = Watcher()
    watcher.seen = []
    return watcher


def test_the_callbacks_objective_wins_and_the_best_run_follows_the_trials(
    ray_local: Any, project: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """objective=/direction= given to the callback win over TuneConfig's; the best run
    is the best LAST value of the finished trials, updated as each one ends; a trial
    that never reports the objective is one warning and never the best."""
    from ray import tune

    from runbase.integrations.ray import RunbaseLoggerCallback

    final_acc = {0.1: 0.5, 0.2: 0.9, 0.3: 0.7, 0.4: None, 0.5: 0.6}  # lr -> its last acc

    def train_fn(config: dict[str, Any]) -> None:
        acc = final_acc[config["lr"]]
        for value in (0.95, acc):  # the first report a tie, then each trial's own
            tune.report({"loss": config["lr"], **({} if acc is None else {"acc": value})})

    store_dir = tmp_path / "store"
    callback = RunbaseLoggerCallback(store=store_dir, objective="acc", direction="max")
    watcher = _best_after_each_trial(store_dir)
    tuner = tune.Tuner(
        train_fn,
        param_space={"lr": tune.grid_search(list(final_acc))},
        tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=1),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray_results"), callbacks=[callback, watcher], verbose=0
        ),
    )
    results = tuner.fit()
    assert len(results) == 5 and not results.errors
    recs, sweep = _records(store_dir)
    assert [r["status"] for r in recs] == ["finished"] * 5
    assert sweep is not None
    assert (sweep["spec"]["objective"], sweep["spec"]["direction"]) == ("acc", "max")
    ids = [r["id"] for r in recs]
    assert sweep["best_run"] == ids[1]  # acc 0.9 at its end (by loss, it would be ids[0])
    assert watcher.seen == [ids[0], *[ids[1]] * 4]
    err = capfd.readouterr().err
    assert err.count(f"run {ids[3]}) finished without a numeric 'acc'") == 1, err[-3000:]

    stats = _stats(store_dir, sweep["id"])
    assert (stats["objective"]["metric"], stats["objective"]["direction"]) == ("acc", "max")
    assert stats["best"]["id"] == ids[1] and stats["best"]["value"] == 0.9
    assert [t["value"] for t in stats["trials"]] == [0.5, 0.9, 0.7, None, 0.6]
    assert [p["best"] for p in stats["best_curve"]] == [0.5, 0.9, 0.9, 0.9]
    importance = stats["importance"]
    assert importance["metric"] == "acc" and importance["error"] is None
    assert importance["n_runs"] == 4 and [r["param"] for r in importance["rows"]] == ["lr"]


def test_under_tune_a_store_that_went_away_is_one_warning(
    ray_local: Any, project: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from runbase.integrations.ray import RunbaseLoggerCallback

    store_dir = tmp_path / "store"
    callback = RunbaseLoggerCallback(store=store_dir)
    shutil.rmtree(store_dir)  # after the callback checked it: the experiment must go on
    results = _search(tmp_path, callback, LRS[:2])
    assert len(results) == 2 and not results.errors
    assert [r.metrics["training_iteration"] for r in results] == [4, 1]
    err = capfd.readouterr().err
    assert err.count("runbase: warning: runbase could not record the Tune start") == 1


def test_trials_are_published_with_their_sweep(
    ray_local: Any,
    project: Path,
    tmp_path: Path,
    team: tuple[TeamServer, str],  # noqa: F811
) -> None:
    from runbase.integrations.ray import RunbaseLoggerCallback

    srv, token = team
    _login(srv, token, project)
    store_dir = tmp_path / "store"
    callback = RunbaseLoggerCallback(store=store_dir, publish="team")
    _search(tmp_path, callback, LRS[:2], on_scheduler=True)
    local, sweep = _records(store_dir)
    assert sweep is not None
    # the scheduler's own metric and mode (none in TuneConfig) are the objective
    assert (sweep["spec"]["objective"], sweep["spec"]["direction"]) == ("loss", "min")
    assert sweep["best_run"] == local[0]["id"]
    remote = srv.get(f"/p/default/api/runs?sweep={sweep['id']}", token)["runs"]
    assert sorted(r["id"] for r in remote) == sorted(r["id"] for r in local)
    assert {r["id"]: r["status"] for r in remote} == {r["id"]: r["status"] for r in local}
    assert sweep["status"] == "finished"
    # the sweep's record reached the server after its trials: its final status, not the
    # "running" each trial's bundle carried
    on_server = srv.get(f"/p/default/api/sweeps/{sweep['id']}", token)
    assert on_server["recorded"] is True and on_server["spec"]["search"] == "tune"
    assert on_server["status"] == "finished"
    assert on_server["total"] == 2 and on_server["counts"]["finished"] == 1
    assert on_server["best_run"] == local[0]["id"] and on_server["best"]["id"] == local[0]["id"]
    assert on_server["objective"]["metric"] == "loss"
    assert on_server["counts"]["pruned"] == 1  # ASHA stopped the second lr at its rung
    assert [(t["id"], t["index"], t["status"]) for t in on_server["trials"]] == [
        (r["id"], i, r["status"]) for i, r in enumerate(local)
    ]
    listed = srv.get("/p/default/api/sweeps", token)["sweeps"]
    assert [(s["id"], s["status"]) for s in listed] == [(sweep["id"], "finished")]


def test_a_restarted_trial_keeps_its_run_and_records_its_new_attempt(
    ray_local: Any, project: Path, tmp_path: Path
) -> None:
    """Tune restarts a failed trial (FailureConfig max_failures): the same run goes on,
    and its executor names the attempt (and node) that ran it last."""
    from ray import tune

    from runbase.integrations.ray import RunbaseLoggerCallback

    marker = tmp_path / "failed-once"

    def train_fn(config: dict[str, Any]) -> None:
        if not marker.exists():  # the first attempt dies, as on a lost node
            marker.write_text("x")
            raise RuntimeError("the first attempt dies")
        for epoch in range(2):
            tune.report({"loss": config["lr"] / (epoch + 1)})

    store_dir = tmp_path / "store"
    tuner = tune.Tuner(
        train_fn,
        param_space={"lr": 0.5},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray_results"),
            callbacks=[RunbaseLoggerCallback(store=store_dir)],
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    )
    results = tuner.fit()
    assert marker.exists() and not results.errors
    recs, sweep = _records(store_dir)
    assert sweep is not None and sweep["status"] == "finished"
    assert [(r["status"], r["error"]) for r in recs] == [("finished", None)]  # one run
    # no metric or mode anywhere: no objective, no best run (nothing ranks the trials)
    assert "objective" not in sweep["spec"] and sweep["best_run"] is None
    executor = recs[0]["executor"]
    assert executor["kind"] == "ray" and executor["attempt"] == 1
    assert executor["node_id"] == ray_local.get_runtime_context().get_node_id()


def test_a_sweep_record_that_cannot_be_published_is_one_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The sweep's pusher (a thread of the callback's): every push fails (a remote
    that is gone), one warning for the experiment, and its last push ends it."""
    require("ray")
    from runbase.integrations.ray import _SweepPusher

    store = Store.open(tmp_path / "s", create=True)
    create_sweep(store, "0tunesweep000001", {"command": ["python3"], "search": "tune"})
    store.close()
    pusher = _SweepPusher(str(tmp_path / "s"), "nowhere", "0tunesweep000001")
    for _ in range(3):
        pusher.poke()
    pusher.close(60.0)
    assert not pusher._thread.is_alive()
    err = capfd.readouterr().err
    assert err.count("could not publish the Tune sweep 0tunesweep000001") == 1, err


def test_a_store_that_cannot_be_used_fails_before_the_experiment(tmp_path: Path) -> None:
    require("ray")
    from runbase.integrations.ray import RunbaseLoggerCallback

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(RunbaseError):
        RunbaseLoggerCallback(store=not_a_dir)
    with pytest.raises(RunbaseError, match="runbase remote add nowhere"):
        RunbaseLoggerCallback(store=tmp_path / "s", publish="nowhere")


@pytest.mark.parametrize(
    ("objective", "direction", "message"),
    [
        ("acc", None, "objective='acc' needs direction='max' or 'min' (what is better), not None"),
        ("acc", "maximize", "needs direction='max' or 'min' (what is better), not 'maximize'"),
        (None, "max", "direction='max' needs objective=METRIC"),
        ("", "max", "objective must not be empty"),
        (3, "max", "objective must be a string, not int"),
        ("a\x00b", "min", "objective contains a NUL character"),
    ],
)
def test_a_bad_objective_fails_when_the_callback_is_made(
    tmp_path: Path, objective: Any, direction: Any, message: str
) -> None:
    require("ray")
    from runbase.errors import UsageError
    from runbase.integrations.ray import RunbaseLoggerCallback

    with pytest.raises(UsageError) as err:
        RunbaseLoggerCallback(store=tmp_path / "s", objective=objective, direction=direction)
    assert message in str(err.value)
    assert not (tmp_path / "s").exists()  # refused before anything was made


def test_tunes_objective_is_read_from_its_searcher_or_scheduler() -> None:
    """Outside tune.run (no TuneConfig metric): the searcher's metric and mode, else the
    scheduler's; Tune's anonymous metric and a missing mode are none."""
    require("ray")
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator, SearchGenerator
    from ray.tune.search.optuna import OptunaSearch

    from runbase.integrations.ray import _tune_objective

    def controller(search: Any, scheduler: Any) -> Any:
        return SimpleNamespace(search_alg=search, scheduler_alg=scheduler)

    optuna = SearchGenerator(OptunaSearch(metric="acc", mode="max"))
    asha = ASHAScheduler(metric="loss", mode="min")
    assert _tune_objective(controller(optuna, asha)) == ("acc", "max")
    assert _tune_objective(controller(BasicVariantGenerator(), asha)) == ("loss", "min")
    fifo = FIFOScheduler()
    fifo.set_search_properties(None, None)  # Tune's anonymous "_metric"
    assert _tune_objective(controller(BasicVariantGenerator(), fifo)) is None
    no_mode = SearchGenerator(OptunaSearch(metric="acc"))
    assert _tune_objective(controller(no_mode, FIFOScheduler())) is None
    assert _tune_objective(None) is None


def test_the_callback_pickles_its_settings_only(tmp_path: Path) -> None:
    require("ray")
    from runbase.integrations.ray import RunbaseLoggerCallback

    cb = RunbaseLoggerCallback(
        store=tmp_path / "s", tags={"team": "vision"}, objective="acc", direction="max"
    )
    back = pickle.loads(pickle.dumps(cb))  # Tune pickles its run config
    assert (back.store_root, back.tags, back._exp) == (cb.store_root, {"team": "vision"}, None)
    assert back.objective == ("acc", "max")


class _FakeTrial:
    """The attributes of a Tune trial that the callback reads."""

    trial_id = "train_fn_00000"
    config = {"lr": 0.1}
    num_failures = 0
    temporary_state = SimpleNamespace(ray_actor=None)
    error_file = None

    def __str__(self) -> str:
        return self.trial_id


def test_a_callback_pickled_before_the_objective_setting_still_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restored experiment (Tuner.restore) whose callback was pickled before the
    callback had an objective: its hooks record the trial as before, with no objective
    of its own (outside Tune, none of Tune's either), and never warn."""
    require("ray")
    from runbase.integrations.ray import RunbaseLoggerCallback

    made = RunbaseLoggerCallback(store=tmp_path / "s", tags={"team": "vision"})
    old = {k: v for k, v in made.__getstate__().items() if k != "objective"}
    with monkeypatch.context() as m:  # the settings an older runbase pickled
        m.setattr(RunbaseLoggerCallback, "__getstate__", lambda self: old)
        saved = pickle.dumps(made)
    cb = pickle.loads(saved)
    assert isinstance(cb, RunbaseLoggerCallback)
    assert (cb.store_root, cb.objective, cb._exp) == (made.store_root, None, None)
    trial = _FakeTrial()
    cb.setup(stop=None, num_samples=1, total_num_samples=1)
    cb.log_trial_start(trial)
    cb.log_trial_result(1, trial, {"loss": 0.5, "training_iteration": 1, "done": False})
    cb.log_trial_end(trial)
    cb.on_experiment_end([trial])
    assert "runbase: warning" not in capsys.readouterr().err
    recs, sweep = _records(tmp_path / "s")
    assert sweep is not None and sweep["status"] == "finished"
    assert sweep["spec"].get("objective") is None
    assert [(r["status"], r["metrics"]["loss"]["last"]) for r in recs] == [("finished", 0.5)]
    assert recs[0]["tags"]["team"] == "vision"


def test_metrics_of_a_result() -> None:
    require("ray")
    import numpy as np

    from runbase.integrations.ray import _metrics

    result = {
        "loss": 0.5,
        "acc": np.float32(0.25),
        "n": 3,
        "ok": True,
        "name": "x",
        "vec": [1, 2],
        "val": {"loss": 0.75, "deep": {"x": 1}},
        "training_iteration": 7,
        "time_this_iter_s": 0.1,
        "timestamp": 1,
        "done": False,
        "config": {"lr": 0.1},
        "node_ip": "10.0.0.1",
    }
    assert _metrics(result) == {
        "loss": 0.5,
        "acc": 0.25,
        "n": 3.0,
        "val/loss": 0.75,
        "val/deep/x": 1.0,
    }


def test_without_ray_the_import_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "try:\n    import runbase.integrations.ray\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "pip install 'runbase[ray]'" in out
    # and `import runbase` never loads Ray
    code = "import runbase, sys; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "False"


def test_tunes_own_trial_spec_parser_is_not_the_programs() -> None:
    require("ray")
    from ray.tune.search import basic_variant, search_generator

    import runbase.integrations.ray as integration
    from runbase.capture.params import SKIP_PARSER

    integration.install()  # again: nothing is wrapped twice
    for module in (basic_variant, search_generator):
        assert getattr(module._make_parser(), SKIP_PARSER) is True


INTERRUPTED = """\
import os, sys, time
from ray import tune
import ray
from runbase.integrations.ray import RunbaseLoggerCallback

def train_fn(config):
    for epoch in range(100_000):
        tune.report({"loss": 1.0 / (epoch + 1)})
        time.sleep(0.2)

ray.init(num_cpus=1, include_dashboard=False, object_store_memory=78643200)
tune.Tuner(train_fn, param_space={"lr": tune.grid_search([0.1, 0.2])},
           run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0,
                                     callbacks=[RunbaseLoggerCallback(store=sys.argv[2])])).fit()
"""


def _running_trial(store_dir: Path) -> bool:
    """Has a trial's run, still running, a metric point yet? (False while the driver is
    still creating the store: its tables may not be there yet.)"""
    try:
        store = Store.open(store_dir)
    except (RunbaseError, sqlite3.OperationalError):  # not created, or half created
        return False
    try:
        rows = store.db.query(
            "SELECT count(*) FROM runs r JOIN metrics m ON m.run_id = r.id "
            "WHERE r.status = 'running' AND m.count > 0"
        )
        return bool(rows[0][0])
    except sqlite3.OperationalError:  # no such table yet
        return False
    finally:
        store.close()


def _start_interrupted_search(
    project: Path, tmp_path: Path, store_dir: Path, stderr: int
) -> subprocess.Popen[str]:
    """The INTERRUPTED search as a driver process of its own (its own session, so a
    test signals its whole group)."""
    require("ray")
    (project / "search.py").write_text(INTERRUPTED)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    argv = [sys.executable, "search.py", str(tmp_path / "ray_results"), str(store_dir)]
    return subprocess.Popen(
        argv, cwd=project, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=stderr, text=True,
    )  # fmt: skip


def test_an_interrupted_experiment_ends_its_open_trials_killed(
    project: Path, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    proc = _start_interrupted_search(project, tmp_path, store_dir, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _running_trial(store_dir), what="a trial's first result", timeout=300)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: Tune stops the experiment
        _, err = proc.communicate(timeout=300)
    finally:
        stop_process(proc, grace=10, group=True)
    recs, sweep = _records(store_dir)
    assert sweep is not None and sweep["status"] == "interrupted", err[-3000:]
    assert [r["status"] for r in recs] == ["killed"], err[-3000:]  # the second never started
    assert recs[0]["error"] == "the Tune experiment ended"
    assert recs[0]["metrics"]["loss"]["count"] >= 1


def test_a_killed_driver_leaves_its_sweep_interrupted_not_running(
    project: Path, tmp_path: Path
) -> None:
    """SIGKILL to Tune's driver: nothing records the sweep's end, yet it reads
    ``interrupted`` (its recorded driver process is gone), never running forever."""
    store_dir = tmp_path / "store"
    proc = _start_interrupted_search(project, tmp_path, store_dir, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _running_trial(store_dir), what="a trial's first result", timeout=300)
        _, sweep = _records(store_dir)
        assert sweep is not None and sweep["status"] == "running"
        assert sweep["owner"]["pid"] == proc.pid
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        stop_process(proc, grace=10, group=True)
    _, sweep = _records(store_dir)
    assert sweep is not None and sweep["status"] == "interrupted"


TRAIN_V1_CONFIG = """\
import sys
import ray
from ray import train, tune
from runbase.integrations.ray import RunbaseLoggerCallback

def train_fn(config):
    for epoch in range(2):
        tune.report({"loss": config["lr"] * (2 - epoch)})

ray.init(num_cpus=1, include_dashboard=False, object_store_memory=78643200)
run_config = train.RunConfig(storage_path=sys.argv[1], verbose=0,
                             callbacks=[RunbaseLoggerCallback(store=sys.argv[2])])
# Tune's own key as the objective: recorded as a metric for it (not otherwise)
tune_config = tune.TuneConfig(metric="time_total_s", mode="min")
tune.Tuner(train_fn, param_space={"lr": 0.5}, tune_config=tune_config, run_config=run_config).fit()
"""


def test_ray_train_run_config_of_train_v1_takes_the_callback_too(
    project: Path, tmp_path: Path
) -> None:
    """Ray Train v2 (Ray's default) refuses Tune callbacks in ray.train.RunConfig; with
    Train v1 (RAY_TRAIN_V2_ENABLED=0) it is Tune's run config and the callback works."""
    require("ray")
    (project / "search.py").write_text(TRAIN_V1_CONFIG)
    store_dir = tmp_path / "store"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_TRAIN_V2_ENABLED": "0"}  # fmt: skip
    argv = [sys.executable, "search.py", str(tmp_path / "ray_results"), str(store_dir)]
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs, sweep = _records(store_dir)
    assert [(r["status"], r["params"], r["metrics"]["loss"]["count"]) for r in recs] == [
        ("finished", {"lr": 0.5}, 2)
    ]
    assert sweep is not None and sweep["best_run"] == recs[0]["id"]
    assert (sweep["spec"]["objective"], sweep["spec"]["direction"]) == ("time_total_s", "min")
    assert set(recs[0]["metrics"]) == {"loss", "time_total_s"}
    assert recs[0]["metrics"]["time_total_s"]["count"] == 2
