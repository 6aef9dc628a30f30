"""The params of a run are the user's program's, not a launcher's (capture.origin).

A stand-in installed library (a ``site-packages`` folder on PYTHONPATH) brings three
launchers that parse their own options and then run the user's script: a click one run
with ``python -m`` (papermill's shape), an argparse one started from a console-script
wrapper outside the interpreter's scripts folder (torchrun's shape, as pipx installs
it) and a fire one. Their options are not params; the script's argparse params are. A
parse that a library makes on the user's behalf (HfArgumentParser's shape), a project
module run with ``python -m`` and a project click command behind a console-script
wrapper are the user's.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import runbase_cmd, write

PY = sys.executable

TRAIN = """
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=2)
    p.parse_args()
"""

LIBRARY = {
    # python -m launchpkg --kernel K train.py --lr 0.5
    "launchpkg/__main__.py": """
        import subprocess, sys
        import click

        @click.command(context_settings={"ignore_unknown_options": True})
        @click.option("--kernel", default="python3")
        @click.option("--log-output", is_flag=True)
        @click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
        def launch(kernel, log_output, cmd):
            subprocess.run([sys.executable, *cmd], check=True)

        launch()
    """,
    # the console script `launch-argparse --nproc_per_node 2 train.py --lr 0.5`
    "launchpkg/run.py": """
        import argparse, subprocess, sys

        def main():
            p = argparse.ArgumentParser()
            p.add_argument("--nproc_per_node", type=int, default=1)
            p.add_argument("--master_addr", default="127.0.0.1")
            p.add_argument("script")
            p.add_argument("args", nargs=argparse.REMAINDER)
            a = p.parse_args()
            subprocess.run([sys.executable, a.script, *a.args], check=True)
            return 0
    """,
    # python -m launchpkg.firerun train.py --workers 3 --script_args "--lr 0.5"
    "launchpkg/firerun.py": """
        import subprocess, sys

        def launch(script, workers=1, script_args=""):
            subprocess.run([sys.executable, script, *script_args.split()], check=True)

        if __name__ == "__main__":
            import fire
            fire.Fire(launch)
    """,
    # a library that parses the command line for the user's script
    "launchpkg/parsing.py": """
        import argparse

        def parse(**defaults):
            p = argparse.ArgumentParser()
            for name, value in defaults.items():
                p.add_argument("--" + name, type=type(value), default=value)
            return p.parse_args()
    """,
}

WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {func}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({func}())
"""


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "latest", "--json", cwd=project, check=True).stdout)


@pytest.fixture
def library(tmp_path: Path) -> dict[str, str]:
    """An installed library on PYTHONPATH; its console script in a bin folder that is
    not the interpreter's scripts folder."""
    site = tmp_path / "lib" / "site-packages"
    for rel, text in LIBRARY.items():
        write(site, rel, text)
    write(site, "launchpkg/__init__.py", "")
    wrapper(tmp_path / "bin" / "launch-argparse", "launchpkg.run", "main")
    return {"PYTHONPATH": str(site)}


def wrapper(path: Path, module: str, func: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(WRAPPER.format(python=PY, module=module, func=func))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run(project: Path, env: dict[str, str], *cmd: str) -> dict:
    proc = runbase_cmd("run", "--", *cmd, cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    return record(project)


@pytest.mark.parametrize(
    "launcher",
    [
        [PY, "-m", "launchpkg", "--kernel", "py3", "--log-output", "train.py", "--lr", "0.5"],
        ["{bin}/launch-argparse", "--nproc_per_node", "2", "--master_addr", "10.0.0.1",
         "train.py", "--lr", "0.5"],
        [PY, "-m", "launchpkg.firerun", "train.py", "--workers", "3", "--script_args=--lr 0.5"],
    ],
    ids=["click-python-m", "argparse-console-script", "fire-python-m"],
)  # fmt: skip
def test_a_launchers_options_are_not_params(
    project: Path, library: dict[str, str], launcher: list[str]
) -> None:
    write(project, "train.py", TRAIN)
    bin_dir = str(project.parent / "bin")
    cmd = [part.format(bin=bin_dir) for part in launcher]
    rec = run(project, library, *cmd)
    assert rec["params"] == {"lr": 0.5, "epochs": 2}
    assert rec["param_sources"] == {"lr": "argparse", "epochs": "argparse"}


def test_parses_made_for_user_code_are_the_users(project: Path, library: dict[str, str]) -> None:
    # a library parses the command line on the script's behalf (HfArgumentParser's shape)
    write(
        project,
        "train.py",
        """
        from launchpkg.parsing import parse
        parse(lr=0.1, layers=4)
    """,
    )
    rec = run(project, library, PY, "train.py", "--lr", "0.5")
    assert rec["params"] == {"lr": 0.5, "layers": 4}

    # a project module run with python -m (runpy is the stdlib's, the module the user's)
    write(project, "mypkg/__init__.py", "")
    write(project, "mypkg/train.py", TRAIN)
    rec = run(project, library, PY, "-m", "mypkg.train", "--epochs", "5")
    assert rec["params"] == {"lr": 0.1, "epochs": 5}

    # the project's click command behind a console-script wrapper (an editable install)
    write(
        project,
        "mypkg/cli.py",
        """
        import click

        @click.command()
        @click.option("--batch-size", type=int, default=8)
        def main(batch_size):
            pass
    """,
    )
    tool = wrapper(project.parent / "bin" / "mytool", "mypkg.cli", "main")
    env = {"PYTHONPATH": library["PYTHONPATH"] + os.pathsep + str(project)}
    rec = run(project, env, str(tool), "--batch-size", "16")
    assert rec["params"] == {"batch_size": 16}
    assert rec["param_sources"] == {"batch_size": "click"}
