"""What the move into layer packages must not have changed: the base install's paths
load no optional package, read commands load no capture code, and the hooks the API
registers below it (tracker and params call up through them) start a run on first use
as ``runbase.log`` did before the split."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import runbase_cmd

# the optional extras (ui, analysis, pandas, postgres, s3): never imported at module top
# of what `import runbase`, `runbase.init/log`, `runbase --help` and `runbase ls` load
OPTIONAL = (
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "plotly",
    "jinja2",
    "pygments",
    "psycopg",
    "boto3",
    "botocore",
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
)

_REPORT = (
    "import sys\n"
    "optional = {names!r}\n"
    "print('LOADED', sorted(m for m in optional if m in sys.modules))\n"
    "print('MODULES', sorted(m for m in sys.modules if m.startswith('runbase')))\n"
)


def _env() -> dict[str, str]:
    # as conftest.runbase_cmd: no RUNBASE_ variable of the test process but its config
    return {
        k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") or k == "RUNBASE_CONFIG"
    }


def _python(code: str, cwd: Path) -> str:
    """What a fresh interpreter running ``code`` in ``cwd`` prints (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _run_python(code: str, cwd: Path) -> tuple[list[str], list[str]]:
    stdout = _python(code + _REPORT.format(names=OPTIONAL), cwd)
    found = {}
    for line in stdout.splitlines():  # after what the command itself printed
        key, _, value = line.partition(" ")
        if key in ("LOADED", "MODULES"):
            found[key] = ast.literal_eval(value)
    return found["LOADED"], found["MODULES"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    runbase_cmd("init", cwd=tmp_path, check=True)
    return tmp_path


CLI = "from runbase.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"


@pytest.mark.parametrize(
    "code",
    [
        "import runbase\n",
        "import runbase\nrunbase.init()\nrunbase.log(loss=1.0)\nrunbase.finish()\n",
        CLI.format(args=["--help"]),
        CLI.format(args=["ls"]),
        CLI.format(args=["show"]),
    ],
    ids=["import", "init-log", "help", "ls", "show"],
)
def test_base_paths_load_no_optional_package(project: Path, code: str) -> None:
    if "runbase.init" not in code and "--help" not in code:
        _run_python("import runbase\nrunbase.init()\nrunbase.finish()\n", project)
    loaded, _ = _run_python(code, project)
    assert loaded == [], f"loaded optional packages: {loaded}"


def test_read_commands_load_no_code_snapshot(project: Path) -> None:
    # lifecycle (recover_orphans) loads with every store command; git and subprocess of
    # the code snapshot are for starting runs
    _run_python("import runbase\nrunbase.init()\nrunbase.finish()\n", project)
    for args in (["ls"], ["show"]):
        _, modules = _run_python(CLI.format(args=args), project)
        assert "runbase.records.lifecycle" in modules  # the check below means something
        assert "runbase.capture.code" not in modules, args


@pytest.mark.parametrize(
    "first",
    ['runbase.param("lr", 0.1)', 'runbase.params({"lr": 0.1})', "runbase.summary(acc=0.5)"],
)
def test_first_value_without_init_starts_a_run(tmp_path: Path, first: str) -> None:
    # tracker and params sit below the API and start a run through the starter the API
    # registers when it loads: the facade's names load it, so this works as before
    code = (
        f"import runbase\n{first}\nrunbase.log(loss=0.5, step=1)\n"
        "print('RUN', runbase.active_run().id)\n"
    )
    run_id = _python(code, tmp_path).split("RUN ", 1)[1].split()[0]
    shown = runbase_cmd("show", run_id, "--json", cwd=tmp_path, check=True)
    record = json.loads(shown.stdout)
    assert record["status"] == "finished"
    assert record["metrics"]["loss"]["last"] == 0.5
    if "summary" in first:
        assert record["metrics"]["acc"]["value"] == 0.5
    else:
        assert record["params"] == {"lr": 0.1}


def test_server_admin_commands_need_no_ui_extra(tmp_path: Path) -> None:
    # users/projects/token administer the database: the web stack (fastapi, the [ui]
    # extra) is for serving; its store pool lives in store/ so admin never loads it
    db = str(tmp_path / "server.db")
    objects = str(tmp_path / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, cwd=tmp_path, check=True)
    runbase_cmd("server", "users", "add", "ada", "--db", db, cwd=tmp_path, check=True)
    for args in (["users", "list"], ["projects", "list"], ["token", "ada", "--list"]):
        loaded, _ = _run_python(CLI.format(args=["server", *args, "--db", db]), tmp_path)
        assert loaded == [], f"{args}: loaded optional packages: {loaded}"


def test_tracking_api_loads_no_typing(tmp_path: Path) -> None:
    # typing (~8 ms, and re with it) stays out of what a training script pays for the
    # tracking API: the modules it loads import typing only under TYPE_CHECKING
    code = "import runbase\nrunbase.init\nrunbase.log\nimport sys\nprint(sorted({'typing', 're'} & set(sys.modules)))\n"
    assert _python(code, tmp_path).strip() == "[]"
