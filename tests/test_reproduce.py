"""`runbase reproduce`: re-run from the record, judge the result (P3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import commit, runbase_cmd, write

PY = sys.executable

TRAIN = """
import argparse, random
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=3)
args = p.parse_args()
width = runbase.param("width", 2)
rows = [float(x) for x in open("data/points.csv").read().split()]
noise = random.random() if "{noise}" == "yes" else 0.0
score = sum(rows) * args.lr * width + noise
for e in range(args.epochs):
    runbase.log(loss=score / (e + 1))
runbase.summary(score=score)
open("model.txt", "w").write(str(score))
"""


def _show(project: Path, ref: str) -> dict:
    out = runbase_cmd("show", ref, "--json", "--no-patch", cwd=project, check=True).stdout
    return json.loads(out)


def _setup(project: Path, noise: str = "no") -> str:
    write(project, "train.py", TRAIN.replace("{noise}", noise))
    (project / "data").mkdir()
    (project / "data" / "points.csv").write_text("1 2 3 4\n")
    (project / ".gitignore").write_text("data/\nmodel.txt\n")
    commit(project, "train")
    runbase_cmd("run", "--", PY, "train.py", "--lr", "0.5", cwd=project, check=True)
    return _show(project, "latest")["id"]


def test_deterministic_run_reproduces_after_code_and_data_changed(project: Path) -> None:
    orig = _setup(project)
    # the working copy and the data move on; the record still has what ran
    write(project, "train.py", "raise SystemExit('the new code is broken')\n")
    (project / "data" / "points.csv").unlink()
    r = runbase_cmd("reproduce", orig, cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reproduced" in r.stdout
    new = _show(project, "latest")
    assert new["reproduces"] == orig and new["id"] != orig
    assert new["params"]["lr"] == 0.5 and new["params"]["width"] == 2
    assert new["metrics"]["score"]["value"] == 10.0 * 0.5 * 2
    # the inputs were read from the materialized copy, at the same relative path
    assert [i["path"] for i in new["inputs"]] == ["data/points.csv"]
    assert new["inputs"][0]["hash"] == _show(project, orig)["inputs"][0]["hash"]
    assert (project / ".runbase" / "reproduce").is_dir()
    assert "broken" in (project / "train.py").read_text()  # the working copy is left alone


def test_unseeded_run_diverges_with_exit_1(project: Path) -> None:
    orig = _setup(project, noise="yes")
    r = runbase_cmd("reproduce", orig, cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "diverged" in r.stdout and "score" in r.stdout
    # a tolerance wide enough for the noise accepts it
    r = runbase_cmd("reproduce", orig, "--atol", "1.5", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr


def test_overrides_reach_argparse_and_inline_params(project: Path) -> None:
    orig = _setup(project)
    r = runbase_cmd(
        "reproduce", orig, "-p", "lr=0.25", "-p", "epochs=5", "-p", "width=4", cwd=project
    )
    # asked for a change: never "reproduced" nor "diverged", whatever the numbers (exit 4)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "changed by request: run " in r.stdout
    assert "overridden: epochs, lr, width" in r.stdout
    new = _show(project, "latest")
    assert new["params"]["lr"] == 0.25  # rewritten on argv
    assert new["params"]["epochs"] == 5  # an argparse default: passed by environment
    assert new["params"]["width"] == 4  # inline runbase.param
    assert new["metrics"]["score"]["value"] == 10.0 * 0.25 * 4
    assert new["metrics"]["loss"]["count"] == 5


def test_json_output_and_bad_input(project: Path) -> None:
    orig = _setup(project)
    r = runbase_cmd("reproduce", orig, "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["verdict"] == "reproduced" and report["original"] == orig
    assert {m["key"] for m in report["metrics"]} == {"loss", "score"}
    assert all(m["ok"] for m in report["metrics"])
    bad = runbase_cmd("reproduce", "nosuchrun", cwd=project)
    assert bad.returncode == 2 and "nosuchrun" in bad.stderr and "Traceback" not in bad.stderr
    bad = runbase_cmd("reproduce", orig, "-p", "lr", cwd=project)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    bad = runbase_cmd("reproduce", orig, "--rtol", "-1", cwd=project)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_env_venv_rebuilds_the_recorded_packages(project: Path, tmp_path: Path) -> None:
    # a bare virtual environment (pip only) plus one package no index has
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    fake = site / "runbase_no_such_pkg-1.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: runbase-no-such-pkg\nVersion: 1.0\n"
    )
    write(project, "job.py", "import runbase\nrunbase.summary(answer=42)\n")
    commit(project, "job")
    runbase_cmd("run", "--", str(venv / "bin" / "python"), "job.py", cwd=project, check=True)
    orig = _show(project, "latest")
    assert any(p["name"] == "runbase-no-such-pkg" for p in orig["env"]["packages"])
    # never reaches out: pip (its index a closed port) nor uv (offline)
    env = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "UV_OFFLINE": "1"}
    r = runbase_cmd("reproduce", orig["id"], "--env", "venv", cwd=project, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unresolvable" in r.stderr and "runbase-no-such-pkg==1.0" in r.stderr
    new = _show(project, "latest")
    prefix = new["env"]["python"]["prefix"]  # the Python that ran is the rebuilt venv's
    assert os.path.realpath(prefix).startswith(os.path.realpath(project / ".runbase" / "envs"))
    # built once per environment: the second time reuses it
    r = runbase_cmd("reproduce", orig["id"], "--env", "venv", cwd=project, env=env, timeout=300)
    assert r.returncode == 0 and len(list((project / ".runbase" / "envs").iterdir())) == 1


def test_reproduced_runs_are_named_after_the_original(project: Path) -> None:
    orig = _setup(project)
    name = _show(project, orig)["name"]
    for n in (1, 2):
        runbase_cmd("reproduce", orig, cwd=project, check=True)
        new = _show(project, "latest")
        assert new["name"] == f"{name}-repro-{n}" and new["reproduces"] == orig
    text = runbase_cmd("show", cwd=project, check=True).stdout
    line = next(x for x in text.splitlines() if x.startswith("reproduces"))
    assert f"run {orig}" in line and f"runbase diff {orig[:10]}" in line


def test_du_counts_and_gc_removes_reproduce_work_directories(project: Path) -> None:
    orig = _setup(project)
    runbase_cmd("reproduce", orig, cwd=project, check=True)
    work = project / ".runbase" / "reproduce" / f"{orig}-1"
    assert (work / "train.py").is_file()
    du = json.loads(runbase_cmd("du", "--json", cwd=project, check=True).stdout)
    assert du["reproduce_dirs"] == 1 and du["reproduce_bytes"] >= len(TRAIN)
    assert "reproduce work directories: 1" in runbase_cmd("du", cwd=project, check=True).stdout
    # a fresh one is kept (a reproduce may be materializing it right now)
    out = runbase_cmd("gc", "--yes", cwd=project, check=True).stdout
    assert "0 reproduce work directories" in out and "1 recent or in use kept" in out
    assert work.is_dir()
    old = work.stat().st_mtime - 2 * 3600
    os.utime(work, (old, old))
    dry = runbase_cmd("gc", cwd=project, check=True).stdout
    assert "would delete: 1 reproduce work directories" in dry and work.is_dir()
    out = runbase_cmd("gc", "--yes", cwd=project, check=True).stdout
    assert "deleted: 1 reproduce work directories" in out and not work.exists()
    du = json.loads(runbase_cmd("du", "--json", cwd=project, check=True).stdout)
    assert du["reproduce_dirs"] == 0 and du["reproduce_bytes"] == 0
    # the re-run's record and outputs stay
    assert _show(project, "latest")["reproduces"] == orig
