"""A Hydra app with config groups run as a multirun (`-m`) under `runbase run`: each job
is a run of its own with exactly its composed config, its metrics, the files of its
output directory, its logs and its status, linked to the run of the whole multirun and
grouped like a sweep (issue 15, item 3). The program is hydra_app/ (Hydra tutorial
style: `@hydra.main`, a defaults list over `model/` and `optimizer/` groups, an
interpolation, `hydra.job.chdir: true`, logging, a job that diverges and fails)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import blake3
import pytest

from conftest import GIT, commit, runbase_cmd

APP = Path(__file__).resolve().parent / "hydra_app"
PY = sys.executable
BASE = {"seed": 7, "epochs": 4, "data.path": "data/train.csv", "data.batch_size": 8}
MODELS = {
    "mlp": {"model.name": "mlp", "model.hidden": 16, "model.scale": 1.0},
    "linear": {"model.name": "linear", "model.bias": True, "model.scale": 0.5},
}
SGD = {"optimizer.name": "sgd", "optimizer.momentum": 0.0}
# Hydra's basic sweeper: the last override varies fastest; lr 1.6 diverges with the mlp's
# scale 1.0 (the job fails), not with the linear model's 0.5
JOBS = [("mlp", 0.05), ("mlp", 1.6), ("linear", 0.05), ("linear", 1.6)]
FAILED = {1}


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def rb(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return runbase_cmd(*args, cwd=root, check=ok, timeout=300)


def show(root: Path, ref: str) -> dict[str, Any]:
    return dict(json.loads(rb(root, "show", ref, "--json").stdout))


def files_under(root: Path, directory: Path) -> dict[str, str]:
    """Every file under ``directory``: path relative to ``root`` -> its hash."""
    return {str(p.relative_to(root)): b3(p) for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("rw") / "hydra_app"
    shutil.copytree(APP, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text(".runbase/\n__pycache__/\nmultirun/\noutputs/\n")
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    commit(root, "hydra app")
    proc = rb(
        root,
        *("run", "--name", "mr", "--", PY, "train.py", "-m"),
        *("model=mlp,linear", "optimizer.lr=0.05,1.6"),
        ok=False,
    )
    # a failed job fails the multirun (Hydra raises its error once every job has run)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "loss diverged" in proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr[-3000:]
    listed = json.loads(rb(root, "ls", "--json", "--limit", "0").stdout)
    parent = next(r for r in listed if r["name"] == "mr")
    jobs = {int(r["tags"]["sweep_index"]): r for r in listed if r["id"] != parent["id"]}
    (sweep_dir,) = (root / "multirun").glob("*/*")
    return {
        "root": root,
        "parent": show(root, parent["id"]),
        "jobs": {i: show(root, r["id"]) for i, r in jobs.items()},
        "sweep_dir": sweep_dir,
    }


def test_each_job_is_a_run_with_exactly_its_config(multirun: dict[str, Any]) -> None:
    jobs, parent = multirun["jobs"], multirun["parent"]
    assert sorted(jobs) == [0, 1, 2, 3]
    for i, (model, lr) in enumerate(JOBS):
        rec = jobs[i]
        expected = {
            **BASE,
            **MODELS[model],
            **SGD,
            "optimizer.lr": lr,
            "experiment": f"{model}-sgd",  # the interpolation, resolved for this job
        }
        assert rec["params"] == expected, i
        assert set(rec["param_sources"].values()) == {"hydra"}
        # the command that runs this job alone (what `reproduce` re-runs)
        assert rec["command"] == [PY, "train.py", f"model={model}", f"optimizer.lr={lr}"]
        assert rec["mode"] == "job" and rec["name"] == f"mr-{i}"
        assert rec["cwd"] == parent["cwd"] == str(multirun["root"])
        assert rec["code"] == parent["code"] and rec["env"]["packages_count"] > 0


def test_jobs_are_linked_to_the_multirun_and_grouped_like_a_sweep(
    multirun: dict[str, Any],
) -> None:
    root, parent, jobs = multirun["root"], multirun["parent"], multirun["jobs"]
    group = parent["tags"]["multirun"]
    for i, rec in jobs.items():
        assert rec["parent_id"] == parent["id"]
        assert rec["sweep_id"] == group
        assert rec["tags"] == {"sweep_index": str(i)}
    by_sweep = json.loads(rb(root, "ls", "--json", "--sweep", group).stdout)
    assert {r["id"] for r in by_sweep} == {rec["id"] for rec in jobs.values()}
    by_parent = json.loads(
        rb(root, "ls", "--json", "--where", f"parent == '{parent['id']}'").stdout
    )
    assert {r["id"] for r in by_parent} == {rec["id"] for rec in jobs.values()}
    # the multirun's own run holds no configuration (no job ran a merged one), and
    # none of Hydra's command line guessed as params
    assert parent["params"] == {} and parent["sweep_id"] is None
    assert parent["status"] == "failed" and parent["exit_code"] == 1
    # `runbase show` says where each sits
    text = rb(root, "show", jobs[2]["id"]).stdout
    assert f"#2 of run {parent['id']}, in group {group}" in text
    assert f"group {group} (runbase ls --sweep {group})" in rb(root, "show", parent["id"]).stdout


def test_each_job_has_its_own_status_metrics_and_logs(multirun: dict[str, Any]) -> None:
    root, jobs, sweep_dir = multirun["root"], multirun["jobs"], multirun["sweep_dir"]
    for i, rec in jobs.items():
        logs = rb(root, "logs", rec["id"]).stdout
        model = JOBS[i][0]
        assert f"experiment: {model}-sgd" in logs
        assert f"name: {'linear' if model == 'mlp' else 'mlp'}" not in logs  # not another job's
        if i in FAILED:
            assert rec["status"] == "failed" and rec["exit_code"] == 1
            assert "FloatingPointError: loss diverged" in rec["error"]
            assert "final_loss" not in rec["metrics"]
            continue
        assert rec["status"] == "finished" and rec["exit_code"] == 0 and rec["error"] is None
        history = json.loads((sweep_dir / str(i) / "history.json").read_text())
        series = json.loads(rb(root, "metrics", rec["id"], "loss", "--json").stdout)
        assert series["values"] == history and series["steps"] == [0, 1, 2, 3]
        assert rec["metrics"]["final_loss"]["value"] == history[-1]
    # the two models learn differently: no job's metrics are another's
    assert jobs[0]["metrics"]["loss"]["last"] != jobs[2]["metrics"]["loss"]["last"]


def test_each_job_has_its_own_inputs_and_outputs(multirun: dict[str, Any]) -> None:
    root, parent, jobs, sweep_dir = (
        multirun["root"],
        multirun["parent"],
        multirun["jobs"],
        multirun["sweep_dir"],
    )
    data = root / "data" / "train.csv"
    for i, rec in jobs.items():
        # every job read the data (not only the first to open it)
        assert [(f["path"], f["hash"]) for f in rec["inputs"]] == [("data/train.csv", b3(data))]
        outputs = {f["path"]: f["hash"] for f in rec["outputs"]}
        assert outputs == files_under(root, sweep_dir / str(i)), i
        names = {Path(p).name for p in outputs}
        expected = {"config.yaml", "hydra.yaml", "overrides.yaml", "train.log"}
        assert names == (expected if i in FAILED else expected | {"model.json", "history.json"})
    # the multirun's run keeps what the process did outside the jobs: Hydra's record of
    # the sweep, and the config files it composed; no job's file
    assert [f["path"] for f in parent["outputs"]] == [
        str((sweep_dir / "multirun.yaml").relative_to(root))
    ]
    assert {f["path"] for f in parent["inputs"]} <= {
        str(p.relative_to(root)) for p in (root / "conf").rglob("*.yaml")
    }
    assert "conf/config.yaml" in {f["path"] for f in parent["inputs"]}


def test_a_job_reproduces_alone(multirun: dict[str, Any]) -> None:
    root, job = multirun["root"], multirun["jobs"][2]
    proc = rb(root, "reproduce", job["id"], ok=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    again = show(root, "latest")
    assert again["reproduces"] == job["id"]
    assert again["params"] == job["params"]  # a single Hydra run of the job's overrides
    assert again["metrics"]["loss"]["last"] == job["metrics"]["loss"]["last"]
