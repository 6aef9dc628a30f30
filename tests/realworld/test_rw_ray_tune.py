"""A Ray Tune search (ASHA, four trials, a function trainable reporting each epoch) run
under ``runbase run`` with runbase's callback: one job run of the driver's run per
trial, its params exactly the trial's config, one metric point per reported epoch, the
trial ASHA let run to max_t finished and the three it stopped at the first rung pruned,
the driver's code and environment shared by all, the experiment one sweep record whose
objective is TuneConfig's metric and mode and whose best run is the trial Tune itself
finds best."""

from __future__ import annotations

import json
from pathlib import Path

from rwkit import PY, make_project, rb, record, runs

from conftest import require
from runbase.records.sweeps import get_sweep, trial_runs
from runbase.store import Store

EPOCHS = 4


def test_ray_tune_asha_search_under_runbase_run(tmp_path: Path) -> None:
    require("ray")
    root = make_project(tmp_path, "tune_search")
    # Tune's files in the project, as `storage_path="./ray_results"` puts them: written
    # while the trials ran, yet no trial's outputs (the trials run at once elsewhere)
    storage = root / "ray_results"
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    argv = ("run", "--", PY, "tune_search.py", "--storage", str(storage))
    proc = rb(root, *argv, env=env, timeout=600)
    printed = [line for line in proc.stdout.splitlines() if line.startswith('{"best_lr"')]
    assert len(printed) == 1, proc.stdout[-3000:]
    tunes_best = json.loads(printed[0])  # results.get_best_result(), as the script prints it

    every = runs(root)
    drivers = [r for r in every if r["mode"] != "job"]
    assert len(drivers) == 1, drivers
    driver = record(root, drivers[0]["id"])
    assert driver["status"] == "finished"
    # the script's own options; not those of the parser Tune makes for each trial's spec
    assert driver["params"] == {"max_epochs": EPOCHS, "storage": str(storage)}
    trials = [record(root, r["id"]) for r in every if r["mode"] == "job"]
    assert len(trials) == 4, [t["name"] for t in trials]
    sweep_id = trials[0]["sweep_id"]
    assert driver["tags"]["multirun"] == sweep_id  # as a process's job runs are named

    store = Store.open(root / ".runbase")
    try:
        sweep = get_sweep(store, sweep_id)
        ordered = [r["id"] for r in trial_runs(store, sweep_id)]
    finally:
        store.close()
    assert sweep is not None and sweep["status"] == "finished"
    assert sweep["spec"]["search"] == "tune" and sweep["spec"]["trials"] == 4
    assert sweep["spec"]["command"][1:] == ["tune_search.py", "--storage", str(storage)]
    assert (sweep["spec"]["objective"], sweep["spec"]["direction"]) == ("val_loss", "min")

    by_index = {int(t["tags"]["sweep_index"]): t for t in trials}
    assert [by_index[i]["id"] for i in range(4)] == ordered
    for i, lr in enumerate([0.1, 0.2, 0.3, 0.4]):
        t = by_index[i]
        assert t["parent_id"] == driver["id"] and t["sweep_id"] == sweep_id
        assert t["name"].startswith("train_fn_") and t["name"].endswith(f"_0000{i}")
        assert t["params"] == {"lr": lr, "epochs": EPOCHS, "model.width": 16, "model.act": "relu"}
        assert set(t["param_sources"].values()) == {"tune"}
        assert t["executor"]["kind"] == "ray" and len(t["executor"]["node_id"]) == 56
        # the driver's code and environment, not captured again per trial
        assert t["code"] == driver["code"] and t["code"]["tree"]
        assert t["env"]["python"] == driver["env"]["python"]
        reported = EPOCHS if i == 0 else 1  # ASHA stops the others at its first rung
        assert set(t["metrics"]) == {"val_loss", "epoch", "train/acc"}
        for key in ("val_loss", "epoch", "train/acc"):
            assert t["metrics"][key]["count"] == reported, (i, key, t["metrics"][key])
            assert t["metrics"][key]["step"] == reported  # training_iteration, from 1
        assert t["metrics"]["epoch"]["last"] == reported - 1
        assert t["status"] == ("finished" if i == 0 else "pruned"), (i, t["status"])
        assert t["outputs"] == [] and t["inputs"] == [], (i, t["outputs"], t["inputs"])
    assert sweep["best_run"] == by_index[0]["id"]
    assert by_index[0]["params"]["lr"] == tunes_best["best_lr"] == 0.1
