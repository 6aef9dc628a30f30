"""The Python API, in real subprocesses (atexit, watcher and excepthook are process-wide)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import runbase
from conftest import require, runbase_cmd, write
from runbase.records.view import get_run


def py(project: Path, code: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    path = write(project, "script.py", code)
    proc = subprocess.run(
        [sys.executable, str(path)], cwd=project, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_init_param_log_summary_finish(project: Path) -> None:
    py(
        project,
        """
        import runbase
        run = runbase.init(name="api", tags={"team": "nlp"}, params={"opt": {"name": "adam", "betas": [0.9, 0.99]}})
        assert runbase.init() is run  # idempotent
        assert runbase.param("lr", 0.1) == 0.1
        runbase.params({"model": {"depth": 3}})
        for i in range(500):
            runbase.log(loss=1.0 / (i + 1), acc=i / 500, step=i)
        runbase.log({"dict_style": 1.5})
        runbase.summary(acc=0.99, test_acc=0.5)
        runbase.tag("baseline")
        print("visible output")
        runbase.finish()
        print("RUN", run.id)
    """,
    )
    r = get_run(None)
    assert r.status == "finished" and r.exit_code == 0 and r.name == "api"
    assert r.params == {"opt.name": "adam", "opt.betas": [0.9, 0.99], "lr": 0.1, "model.depth": 3}
    assert set(r.param_sources.values()) == {"inline"}
    assert r.metrics["loss"]["count"] == 500 and r.metrics["loss"]["min"] == 1 / 500
    assert (
        r.metrics["acc"]["value"] == 0.99 and r.metrics["acc"]["last"] == 499 / 500
    )  # summary beats last
    assert r.metrics["test_acc"] == {
        "value": 0.5,
        "last": 0.5,
        "min": 0.5,
        "max": 0.5,
        "count": 0,
        "step": None,
    }
    assert r.metrics["dict_style"]["last"] == 1.5
    assert r.tags == {"team": "nlp", "baseline": ""}
    s = r.series("loss")
    assert s.steps == list(range(500)) and s.values[0] == 1.0 and len(s.times) == 500
    rec = r.record()
    assert rec["mode"] == "api" and rec["code"]["kind"] == "git" and rec["env"]["python"]["version"]
    assert "visible output" in runbase_cmd("logs", cwd=project, check=True).stdout


def test_exception_marks_the_run_failed_with_traceback(project: Path) -> None:
    proc = py(
        project,
        """
        import runbase
        runbase.init()
        runbase.log(loss=1.0)
        raise RuntimeError("diverged")
    """,
        check=False,
    )
    assert proc.returncode == 1 and "diverged" in proc.stderr
    r = get_run(None)
    assert r.status == "failed" and r.exit_code == 1
    assert "RuntimeError: diverged" in r.record()["error"]
    assert r.metrics["loss"]["count"] == 1


def test_start_run_context_manager_and_several_runs_per_process(project: Path) -> None:
    py(
        project,
        """
        import runbase
        with runbase.start_run("one") as a:
            runbase.log(x=1.0)
        try:
            with runbase.start_run("two") as b:
                runbase.log(x=2.0)
                raise ValueError("inside")
        except ValueError:
            pass
        c = runbase.init(name="three")   # a notebook: init/finish pairs are separate runs
        runbase.log(x=3.0)
        runbase.finish()
        assert len({a.id, b.id, c.id}) == 3
    """,
    )
    rows = runbase.runs(store=str(project / ".runbase"), sort="started_at")
    assert list(rows["name"]) == ["one", "two", "three"]
    assert list(rows["status"]) == ["finished", "failed", "finished"]
    assert list(rows["metrics.x"]) == [1.0, 2.0, 3.0]


def test_values_are_coerced_not_lost(project: Path) -> None:
    require("numpy")
    py(
        project,
        """
        import pathlib, numpy as np, runbase
        class Thing:
            def __repr__(self):
                return "<Thing 42>"
        runbase.init()
        runbase.param("path", pathlib.Path("/data/x.csv"))
        runbase.param("thing", Thing())
        runbase.param("np_float", np.float32(0.5))
        runbase.param("tuple", (1, 2))
        runbase.param("nan", float("nan"))
        for i in range(10):
            runbase.log(np_loss=np.float64(i) / 10, step=np.int64(i))
        runbase.log(bad="not a number")
        runbase.log(n=float("nan"))
        runbase.log(n=float("inf"))
        runbase.log(n=float("-inf"))
    """,
    )
    r = get_run(None)
    assert r.params["path"] == "/data/x.csv" and r.params["thing"] == "<Thing 42>"
    assert r.params["np_float"] == 0.5 and r.params["tuple"] == [1, 2] and r.params["nan"] == "NaN"
    assert r.series("np_loss").values == [i / 10 for i in range(10)]
    assert "bad" not in r.metrics
    n = r.series("n").values
    assert math.isnan(n[0]) and n[1] == math.inf and n[2] == -math.inf
    assert math.isinf(r.metrics["n"]["last"])
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert rec["metrics"]["n"]["last"] == "-Infinity"


def test_bad_api_input_before_start_raises_clearly(project: Path) -> None:
    with pytest.raises(runbase.UsageError):
        runbase.param("", 1)
    with pytest.raises(runbase.StoreError):
        runbase.get_run(None, store=str(project / "missing"))


def test_dataframe_api(project: Path) -> None:
    pd = require("pandas")
    py(
        project,
        """
        import runbase
        for lr in (0.1, 0.01):
            with runbase.start_run():
                runbase.param("lr", lr)
                runbase.summary(acc=1 - lr)
    """,
    )
    df = runbase.runs(where="params.lr < 0.05", store=str(project / ".runbase"))
    assert isinstance(df, pd.DataFrame) and list(df["params.lr"]) == [0.01]
    assert list(df["metrics.acc"]) == [0.99]


def test_long_run_series_is_compacted_and_ordered(tmp_path: Path) -> None:
    """One chunk per key per ingest while live; compacted when the run is finalized."""
    from runbase.records import lifecycle
    from runbase.records.ingest import ingest
    from runbase.records.read import series
    from runbase.store import Store
    from runbase.tracking.tracker import Tracker

    store = Store.open(tmp_path / ".runbase", create=True)
    run_id = lifecycle.create_run(store, command=["x"], mode="api")
    t = Tracker(run_id, str(store.root))
    for i in range(20):
        t.buf.append({"x": float(i), "\x00t": float(i)})
        t.flush()
        ingest(store, run_id)
    live = store.db.query_one("SELECT count(*) FROM metric_chunks WHERE run_id = ?", (run_id,))[0]
    assert live == 20
    t.close()
    lifecycle.finalize(store, run_id, "finished", exit_code=0)
    n = store.db.query_one("SELECT count(*) FROM metric_chunks WHERE run_id = ?", (run_id,))[0]
    assert n == 1
    s = series(store, run_id, "x")
    assert s.values == [float(i) for i in range(20)] and s.steps == list(range(20))
