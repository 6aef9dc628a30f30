"""`runbase explain A B`: which change moved the metric, found by running hybrids (P2).

Every test makes two real runs of a real script in a git project, changes things
between them, and asks `runbase explain` through the CLI, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from conftest import commit, fake_wheel, offline_installs, runbase_cmd, write

PY = sys.executable


def run(project: Path, *args: str, python: str = PY, env: dict[str, str] | None = None) -> str:
    runbase_cmd("run", "--", python, *args, cwd=project, env=env, check=True, timeout=300)
    return json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]


def explain(project: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = runbase_cmd("explain", *args, "--json", cwd=project, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(json.loads(r.stdout))


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["factors"]}


def hybrids(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs that tested a subset of the changes (not the re-runs of A and B)."""
    return [r for r in report["hybrids"]["runs"] if r["role"] == "hybrid"]


TRAIN = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
from helpers import scale  # a code file
rows = [float(x) for x in open("data/train.csv").read().split()]
acc = scale(sum(rows) / len(rows))
runbase.summary(acc=acc, lr_seen=args.lr)
"""


def _train_a(project: Path) -> str:
    """TRAIN with its helpers and data, committed, run as A (lr 0.1): its id."""
    write(project, "train.py", TRAIN)
    write(project, "helpers.py", "def scale(x):\n    return x / 10\n")
    write(project, "data/train.csv", "1 2 3 4\n")
    write(project, ".gitignore", "data/\n")
    commit(project, "train")
    return run(project, "train.py", "--lr", "0.1")


def test_only_the_data_change_matters(project: Path) -> None:
    a = _train_a(project)
    # three changes: the data (decisive), a param the metric ignores, a code comment
    write(project, "data/train.csv", "1 2 3 4 10 10\n")
    write(project, "helpers.py", "def scale(x):\n    # divide by ten\n    return x / 10\n")
    b = run(project, "train.py", "--lr", "0.2")

    report = explain(project, a, b, "--metric", "acc")
    assert (report["a"], report["b"], report["metric"]) == (a, b, "acc")
    assert report["a_value"] == 0.25 and abs(report["b_value"] - 0.5) < 1e-12
    kinds = {f["name"]: f["kind"] for f in report["factors"]}
    assert kinds == {"data/train.csv": "data", "params.lr": "param", "helpers.py": "code"}
    top = report["factors"][0]
    assert top["name"] == "data/train.csv" and top["significant"]
    assert top["share"] >= 80
    for name in ("params.lr", "helpers.py"):
        assert by_name(report)[name]["effect"] == 0 and not by_name(report)[name]["significant"]
    assert report["noise"]["a_reproduces"] and report["noise"]["b_reproduces"]
    assert not report["interactions"] and not report["untestable"]
    # every hybrid is a real run of the store, tagged, linked to A and B, hidden from ls
    shown = json.loads(runbase_cmd("ls", "--json", "--limit", "0", cwd=project).stdout)
    assert {r["id"] for r in shown} == {a, b}
    every = json.loads(runbase_cmd("ls", "--all", "--json", "--limit", "0", cwd=project).stdout)
    tagged = [r for r in every if r["id"] not in (a, b)]
    assert len(tagged) == report["hybrids"]["run"] > 0
    for r in tagged:
        assert r["tags"]["explain"] == report["id"]
        assert (r["tags"]["explain.a"], r["tags"]["explain.b"]) == (a, b)
    # a hybrid that took B's data read B's bytes, restored by hash
    data_run = next(h for h in hybrids(report) if h["factors"] == ["data/train.csv"])
    shown_run = json.loads(
        runbase_cmd("show", data_run["run"], "--json", "--no-patch", cwd=project).stdout
    )
    b_rec = json.loads(runbase_cmd("show", b, "--json", "--no-patch", cwd=project).stdout)
    assert shown_run["inputs"][0]["hash"] == b_rec["inputs"][0]["hash"]
    assert shown_run["params"]["lr"] == 0.1  # A's value: only the data came from B

    # the second time, every hybrid is found again: nothing runs
    again = explain(project, a, b, "--metric", "acc")
    assert again["hybrids"]["run"] == 0 and again["hybrids"]["cached"] > 0
    assert [f["name"] for f in again["factors"]] == [f["name"] for f in report["factors"]]
    text = runbase_cmd("explain", a, b, "--metric", "acc", cwd=project).stdout
    assert "data/train.csv" in text and "params.lr" in text


INTERACT = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--fp16", type=int, default=0)
p.add_argument("--big-batch", type=int, default=0)
args = p.parse_args()
# each one alone is harmless; together they overflow
acc = 0.9 - (0.4 if args.fp16 and args.big_batch else 0.0)
runbase.summary(acc=acc)
"""


def test_two_params_harmful_together_are_an_interaction(project: Path) -> None:
    write(project, "train.py", INTERACT)
    commit(project, "train")
    a = run(project, "train.py", "--fp16", "0", "--big-batch", "0")
    b = run(project, "train.py", "--fp16", "1", "--big-batch", "1")
    report = explain(project, a, b)
    assert report["metric"] == "acc" and abs(report["total"] + 0.4) < 1e-9
    factors = by_name(report)
    assert set(factors) == {"params.fp16", "params.big_batch"}
    for f in factors.values():
        assert f["effect_alone"] == 0  # harmless alone
        assert abs(f["effect_removed"] + 0.4) < 1e-9  # decisive once the other is there
    [pair] = report["interactions"]
    assert sorted(pair["factors"]) == ["params.big_batch", "params.fp16"]
    assert abs(pair["effect"] + 0.4) < 1e-9


def test_one_decisive_file_among_many_is_found_by_bisection(project: Path) -> None:
    n = 36
    for i in range(n):
        write(project, f"{'abc'[i % 3]}/mod{i:02d}.py", f"VALUE = {1.0 if i == 17 else 0.0}\n")
    imports = "\n".join(f"from {'abc'[i % 3]} import mod{i:02d}" for i in range(n))
    total = " + ".join(f"mod{i:02d}.VALUE" for i in range(n))
    write(project, "train.py", f"import runbase\n{imports}\nrunbase.summary(acc={total})\n")
    commit(project, "code")
    a = run(project, "train.py")
    for i in range(n):  # every file changes; only mod17's change moves the metric
        value = 3.0 if i == 17 else 0.0
        write(project, f"{'abc'[i % 3]}/mod{i:02d}.py", f"# edited\nVALUE = {value}\n")
    b = run(project, "train.py")
    report = explain(project, a, b, "--metric", "acc")
    decisive = f"{'abc'[17 % 3]}/mod17.py"
    assert report["factors"][0]["name"] == decisive
    assert report["factors"][0]["effect"] == 2.0 and report["factors"][0]["share"] == 100
    assert len(hybrids(report)) <= 16 < n  # about 2·log2(n), far fewer than one per file
    assert report["search"]["method"] == "bisect"
    # the files never tested alone are said to be, with the reason
    untried = {u["name"] for u in report["untried"]}
    assert decisive not in untried and len(untried) + len(report["factors"]) == n


NOISY = """
import argparse, fcntl, os
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
# run-to-run variation, as an unseeded shuffle gives; the test controls its sequence so
# that its assertions cannot flake: the first six runs (A, B and their re-runs, one at a
# time) spread over 0.1, every later one varies by 0.05
with open(os.environ["NOISE_FILE"], "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = len(f.read().splitlines())
    f.write("x\\n")
noise = [0, 0.05, 0.1, 0, 0.05, 0.1][n] if n < 6 else 0.025 + 0.05 * (n % 2)
rows = [float(x) for x in open("data/train.csv").read().split()]
runbase.summary(acc=sum(rows) + noise + 0.0 * args.lr)
"""


def test_noise_is_measured_and_small_factors_are_not_significant(
    project: Path, tmp_path: Path
) -> None:
    env = {"NOISE_FILE": str(tmp_path / "noise")}
    write(project, "train.py", NOISY)
    write(project, "data/train.csv", "1\n")
    write(project, ".gitignore", "data/\n")
    commit(project, "train")
    a = run(project, "train.py", "--lr", "0.1", env=env)
    write(project, "data/train.csv", "2\n")
    b = run(project, "train.py", "--lr", "0.2", env=env)
    report = explain(project, a, b, "--repeats", "2", "-j", "1", env=env)
    noise = report["noise"]
    assert noise["repeats"] == 2 and len(noise["a"]) == len(noise["b"]) == 2
    assert noise["spread"] > 0 and noise["threshold"] >= noise["spread"]
    assert not noise["a_reproduces"]  # A's re-runs did not give its recorded value
    factors = by_name(report)
    assert factors["data/train.csv"]["significant"]
    assert abs(factors["data/train.csv"]["effect"] - 1.0) <= noise["threshold"]
    assert not factors["params.lr"]["significant"]
    text = runbase_cmd("explain", a, b, "--repeats", "2", "-j", "1", cwd=project, env=env).stdout
    assert "does not reproduce" in text.split("params.lr")[0]  # said before the factors


def test_a_package_upgrade_is_an_env_factor(project: Path, tmp_path: Path) -> None:
    # two versions of one library, each on PYTHONPATH of a bare virtual environment
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    sites = {}
    for version in ("1.0", "2.0"):
        wheel = fake_wheel(wheels, "rbfake", version, f"VALUE = {float(version)}\n")
        site = tmp_path / f"site-{version}"
        zipfile.ZipFile(wheel).extractall(site)
        sites[version] = str(site)
    # B also had a library no index offers (no wheel of it here): untestable, not zero
    gone = tmp_path / "site-2.0" / "rbgone-1.0.dist-info"
    gone.mkdir()
    (gone / "METADATA").write_text("Metadata-Version: 2.1\nName: rbgone\nVersion: 1.0\n")
    write(project, "train.py", "import rbfake, runbase\nrunbase.summary(acc=1 / rbfake.VALUE)\n")
    commit(project, "train")
    python = str(venv / "bin" / "python")
    a = run(project, "train.py", python=python, env={"PYTHONPATH": sites["1.0"]})
    b = run(project, "train.py", python=python, env={"PYTHONPATH": sites["2.0"]})
    # without --env venv the package is listed as untestable, with the reason
    offline = offline_installs(wheels)
    r = runbase_cmd("explain", a, b, "--json", cwd=project, env=offline)
    assert r.returncode == 2 and "rbfake" in r.stderr and "--env venv" in r.stderr
    # the rebuilt environments hold the recorded versions alone: a PYTHONPATH of the
    # caller (here B's library) never shadows them
    report = explain(project, a, b, "--env", "venv", env={**offline, "PYTHONPATH": sites["2.0"]})
    [factor] = report["factors"]
    assert (factor["kind"], factor["name"]) == ("env", "rbfake")
    assert "1.0" in factor["description"] and "2.0" in factor["description"]
    assert abs(factor["effect"] + 0.5) < 1e-9 and factor["share"] == 100
    [gone_why] = [u for u in report["untestable"] if u["name"] == "rbgone"]
    assert "cannot be installed" in gone_why["reason"]
    # one environment per pin set: A's, B's tried with rbgone, B's without it
    assert len(list((project / ".runbase" / "envs").iterdir())) == 3


def test_a_change_that_crashes_without_its_partner_breaks_the_run(project: Path) -> None:
    a = _train_a(project)
    # B's helpers.py needs B's learning rate: alone, on A's lr, it raises
    write(
        project,
        "helpers.py",
        """
        import sys
        def scale(x):
            if "0.2" not in sys.argv:
                raise RuntimeError("scale needs --lr 0.2")
            return x / 5
        """,
    )
    b = run(project, "train.py", "--lr", "0.2")
    report = explain(project, a, b, "--metric", "acc")
    helpers = by_name(report)["helpers.py"]
    assert helpers["breaks_run"]  # its hybrid crashed: said, never dropped
    crashed = [h for h in hybrids(report) if h["factors"] == ["helpers.py"]]
    assert [h["status"] for h in crashed] == ["failed"] and crashed[0]["value"] is None
    assert report["hybrids"]["failed"] >= 1
    text = runbase_cmd("explain", a, b, "--metric", "acc", cwd=project).stdout
    assert "breaks the run" in text


HUNKS_A = """
import runbase
depth = 4
{filler}
width = 10
runbase.summary(acc=depth * 0 + width / 100)
"""


def test_hunks_of_one_file_are_factors_of_their_own(project: Path) -> None:
    filler = "\n".join(f"unused_{i} = {i}" for i in range(20))
    write(project, "train.py", HUNKS_A.format(filler=filler))
    commit(project, "train")
    a = run(project, "train.py")
    # two hunks far apart: the first is harmless, the second moves acc
    changed = HUNKS_A.format(filler=filler).replace("depth = 4", "depth = 8")
    write(project, "train.py", changed.replace("width = 10", "width = 30"))
    b = run(project, "train.py")
    whole = explain(project, a, b)
    assert [f["name"] for f in whole["factors"]] == ["train.py"]
    report = explain(project, a, b, "--hunks")
    names = [f["name"] for f in report["factors"]]
    assert len(names) == 2 and all(n.startswith("train.py:L") for n in names)
    top, other = report["factors"]
    assert abs(top["effect"] - 0.2) < 1e-9 and top["share"] == 100
    assert other["effect"] == 0 and not other["significant"]
    # the hybrid of the decisive hunk ran A's file with that hunk alone
    [h] = [h for h in hybrids(report) if h["factors"] == [top["name"]]]
    rec = json.loads(runbase_cmd("show", h["run"], "--json", "--no-patch", cwd=project).stdout)
    assert rec["metrics"]["acc"]["value"] == 0.3


CONFIGURED = """
import argparse, json
import runbase
p = argparse.ArgumentParser()
p.add_argument("--config")
args = p.parse_args()
cfg = json.load(open(args.config))
runbase.summary(acc=cfg["lr"] * 10)
"""


def test_a_param_read_from_a_config_file_is_untestable_by_override(project: Path) -> None:
    write(project, "train.py", CONFIGURED)
    write(project, "cfg.json", '{"lr": 0.1}\n')
    commit(project, "train")
    a = run(project, "train.py", "--config", "cfg.json")
    write(project, "cfg.json", '{"lr": 0.3}\n')
    b = run(project, "train.py", "--config", "cfg.json")
    shown = json.loads(runbase_cmd("show", b, "--json", "--no-patch", cwd=project).stdout)
    assert shown["param_sources"]["lr"] == "config"
    report = explain(project, a, b)
    # the file that sets it is the factor; an override of lr never reaches the script,
    # so a hybrid "with params.lr" would measure nothing: it is said, not given a zero
    assert [f["name"] for f in report["factors"]] == ["cfg.json"]
    assert abs(report["factors"][0]["effect"] - 2.0) < 1e-9
    [why] = [u for u in report["untestable"] if u["name"] == "params.lr"]
    assert "comes from a config file" in why["reason"]


def test_a_run_started_outside_the_snapshot_and_a_budget_too_small(project: Path) -> None:
    write(project, "train.py", TRAIN.replace('"data/train.csv"', '"../data/train.csv"'))
    write(project, "helpers.py", "def scale(x):\n    return x / 10\n")
    write(project, "data/train.csv", "1 2 3 4\n")
    write(project, ".gitignore", "data/\nout/\n")
    commit(project, "train")
    (project / "out").mkdir()  # ignored: no file of the snapshot is in it
    out = project / "out"
    runbase_cmd("run", "--", PY, "../train.py", "--lr", "0.1", cwd=out, check=True)
    a = json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]
    write(project, "data/train.csv", "2 2 2 2\n")
    write(project, "helpers.py", "def scale(x):\n    # the same\n    return x / 10\n")
    runbase_cmd("run", "--", PY, "../train.py", "--lr", "0.2", cwd=out, check=True)
    b = json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]
    # three changes need at least two hybrids: refused before A and B are re-run
    r = runbase_cmd("explain", a, b, "--budget", "1", cwd=project)
    assert r.returncode == 2 and "--budget 1 is too small" in r.stderr
    every = json.loads(runbase_cmd("ls", "--all", "--json", "--limit", "0", cwd=project).stdout)
    assert len(every) == 2
    report = explain(project, a, b, "--metric", "acc")
    assert report["factors"][0]["name"] == "data/train.csv"
    assert report["noise"]["a_reproduces"] and report["hybrids"]["failed"] == 0


def test_a_hybrid_that_dies_of_a_signal_is_a_result_kept_in_the_cache(project: Path) -> None:
    a = _train_a(project)
    write(
        project,
        "helpers.py",
        """
        import os, signal, sys
        def scale(x):
            if "0.2" not in sys.argv:  # B's code on A's lr: a native crash
                os.kill(os.getpid(), signal.SIGSEGV)
            return x / 5
        """,
    )
    b = run(project, "train.py", "--lr", "0.2")
    report = explain(project, a, b, "--metric", "acc")
    assert by_name(report)["helpers.py"]["breaks_run"]
    [crashed] = [h for h in hybrids(report) if h["factors"] == ["helpers.py"]]
    assert crashed["status"] == "killed" and crashed["value"] is None
    again = explain(project, a, b, "--metric", "acc")
    assert again["hybrids"]["run"] == 0  # the crash is the result: not run again
    assert [h["run"] for h in hybrids(again) if h["factors"] == ["helpers.py"]] == [crashed["run"]]
