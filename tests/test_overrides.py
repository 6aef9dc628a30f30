"""Parameter overrides: `runbase run -p`, reaching argparse (on argv or not) and runbase.param."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import runbase_cmd, write
from runbase.capture.overrides import ENV_VAR, apply_to_argv, parse_assignments
from runbase.errors import UsageError

PY = sys.executable

TRAIN = """
    import argparse, runbase
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--model", default="resnet")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--layers", type=int, nargs="+", default=[64])
    a = p.parse_args()
    wd = runbase.param("wd", 0.0)
    cfg = runbase.params({"opt": {"momentum": 0.9, "name": "sgd"}})
    print("GOT", repr((a.lr, a.epochs, a.model, a.augment, a.layers, wd, cfg)))
"""


def got(stdout: str) -> tuple:
    import ast

    line = next(ln for ln in stdout.splitlines() if ln.startswith("GOT "))
    return ast.literal_eval(line[4:])


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)


def test_parse_assignments_types_values() -> None:
    assert parse_assignments(["lr=0.1", "n=3", "fast=true", "name=vgg", "l=[1,2]", 's="3"']) == {
        "lr": 0.1,
        "n": 3,
        "fast": True,
        "name": "vgg",
        "l": [1, 2],
        "s": "3",
    }
    assert parse_assignments(["a.b=x=y", "empty="]) == {"a.b": "x=y", "empty": ""}
    for bad in ("lr", "=1", "--lr=1", "a b=1"):
        with pytest.raises(UsageError, match="KEY=VALUE"):
            parse_assignments([bad])


def test_apply_to_argv_rewrites_what_the_command_line_shows() -> None:
    argv = ["python", "t.py", "--lr", "0.1", "--batch-size=8", "opt.name=sgd", "--fast", "data.csv"]
    new, rest = apply_to_argv(
        argv, {"lr": 0.5, "batch_size": 16, "opt.name": "adam", "fast": False, "seed": 1}
    )
    assert new == ["python", "t.py", "--lr", "0.5", "--batch-size=16", "opt.name=adam", "data.csv"]
    assert rest == {"seed": 1}
    assert argv[3] == "0.1"  # the input is not changed
    # a flag followed by a positional argument keeps the argument
    assert apply_to_argv(["x", "--fast", "data.csv"], {"fast": True}) == (
        ["x", "--fast", "data.csv"],
        {},
    )
    # an inline param of the recorded run is not taken from argv even when argv has it
    assert apply_to_argv(["x", "--lr", "0.1"], {"lr": 0.2}, {"lr": "inline"}) == (
        ["x", "--lr", "0.1"],
        {"lr": 0.2},
    )
    # the program itself is never rewritten; a negative number is a value
    assert apply_to_argv(["lr=1", "--lr", "-3"], {"lr": 2}) == (["lr=1", "--lr", "2"], {})


def test_run_p_reaches_argparse_on_and_off_argv_and_inline_params(project: Path) -> None:
    write(project, "train.py", TRAIN)
    proc = runbase_cmd(
        "run",
        *("-p", "lr=0.5", "-p", "epochs=7", "-p", "model=vgg", "-p", "augment=true"),
        *("-p", "layers=[32,16]", "-p", "wd=1", "-p", "opt.momentum=0.5", "-p", "unused_key=3"),
        "--",
        *(PY, "train.py", "--lr", "0.1"),
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    # argparse: typed by the argument's type; inline: like the coded value (1 -> 1.0)
    assert got(proc.stdout) == (
        0.5,
        7,
        "vgg",
        True,
        [32, 16],
        1.0,
        {"opt": {"momentum": 0.5, "name": "sgd"}},
    )
    assert "override unused_key=3 was not used" in proc.stderr
    rec = record(project)
    assert rec["command"] == [PY, "train.py", "--lr", "0.5"]  # on argv: rewritten
    assert rec["params"] == {
        "lr": 0.5,
        "epochs": 7,
        "model": "vgg",
        "augment": True,
        "layers": [32, 16],
        "wd": 1.0,
        "opt.momentum": 0.5,
        "opt.name": "sgd",
    }
    assert rec["param_sources"]["wd"] == "inline" and rec["param_sources"]["epochs"] == "argparse"
    assert json.loads(rec["tags"]["overrides"])["epochs"] == 7  # what reproduce re-applies


def test_bad_override_values_never_break_the_script(project: Path) -> None:
    write(project, "train.py", TRAIN)
    proc = runbase_cmd("run", "-p", "epochs=many", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert got(proc.stdout)[1] == 3  # int("many") failed: the parsed value stays
    assert "could not apply the override epochs=many" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("bad", ["lr", "=0.1", "--lr=0.1"])
def test_malformed_p_is_a_usage_error(project: Path, bad: str) -> None:
    proc = runbase_cmd("run", "-p", bad, "--", PY, "-c", "pass", cwd=project)
    assert proc.returncode == 2 and "use KEY=VALUE" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_api_mode_honours_the_environment(project: Path) -> None:
    write(project, "t.py", "import runbase\nrunbase.init()\nprint(runbase.param('lr', 0.1))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env[ENV_VAR] = json.dumps({"lr": 0.25})
    out = subprocess.run(
        [PY, "t.py"], cwd=project, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0.25"
    assert record(project)["params"] == {"lr": 0.25}
