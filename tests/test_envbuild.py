"""tracking.envbuild: environments from pins, with uv and with pip, offline.

The packages are two versions of a tiny wheel built here; pip and uv find them through
their find-links and no-index environment variables, never an index on the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import fake_wheel, offline_installs
from runbase.store import Store
from runbase.tracking.envbuild import DONE, build_env, env_key

# uv is in the test extra: without it the uv half fails, never skips
INSTALLERS = ["pip", "uv"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        fake_wheel(wheels, "rbtiny", version)
    for var, value in {
        **offline_installs(wheels),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }.items():
        monkeypatch.setenv(var, value)
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def _version(venv: Path) -> str:
    code = "import rbtiny; print(rbtiny.VERSION)"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("installer", INSTALLERS)
def test_environments_differ_by_one_package_version(store: Store, installer: str) -> None:
    one, failed = build_env(store, ["rbtiny==1.0"], None, installer=installer)
    assert failed == [] and _version(one) == "1.0"
    two, failed = build_env(store, ["rbtiny==2.0"], None, installer=installer)
    assert failed == [] and _version(two) == "2.0"
    assert one != two and one.parent == two.parent == store.root / "envs"
    assert one.name == env_key(["rbtiny==1.0"], None)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unresolvable_pin_is_named_and_the_rest_installed(store: Store, installer: str) -> None:
    said: list[str] = []
    venv, failed = build_env(
        store, ["rb-nowhere==3.1", "rbtiny==2.0"], None, said.append, installer=installer
    )
    assert len(failed) == 1 and failed[0].startswith("rb-nowhere==3.1: "), failed
    assert _version(venv) == "2.0"
    # found from the installer's message: the second try installs the rest at once
    assert [line for line in said if "install" in line][-1].endswith("install 1 package(s)")


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_recorded_python_it_cannot_have_is_reported(store: Store, installer: str) -> None:
    venv, failed = build_env(store, ["rbtiny==1.0"], "2.7.1", installer=installer)
    assert failed and failed[0].startswith("python==2.7.1: the environment uses Python 3.")
    assert _version(venv) == "1.0"


def test_a_built_environment_is_reused(store: Store) -> None:
    venv, _ = build_env(store, ["rbtiny==1.0"], None, installer="pip")
    marker = (venv / DONE).stat().st_mtime_ns
    said: list[str] = []
    again, failed = build_env(store, ["rbtiny==1.0"], None, said.append, installer="pip")
    assert again == venv and failed == [] and said == []
    assert (venv / DONE).stat().st_mtime_ns == marker


def test_a_half_built_environment_is_built_again(store: Store) -> None:
    venv = store.root / "envs" / env_key(["rbtiny==1.0"], None)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("not a python: the build crashed here\n")
    built, failed = build_env(store, ["rbtiny==1.0"], None, installer="pip")
    assert built == venv and failed == [] and _version(venv) == "1.0"
    # a marker that is not the builder's is not taken as done either
    (venv / DONE).write_text('{"unresolvable": "no"}')
    said: list[str] = []
    build_env(store, ["rbtiny==1.0"], None, said.append, installer="pip")
    assert any("building" in line for line in said)
    assert json.loads((venv / DONE).read_text())["unresolvable"] == []


def test_parallel_builders_build_once(store: Store) -> None:
    code = (
        "import sys\n"
        "from runbase.store import Store\n"
        "from runbase.tracking.envbuild import build_env\n"
        "s = Store.open(sys.argv[1])\n"
        "venv, failed = build_env(s, ['rbtiny==2.0'], None, print, installer='pip')\n"
        "print('RESULT', venv, failed)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store.root)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(out.count("building") for out in outs) == 1, outs
    results = {line for out in outs for line in out.splitlines() if line.startswith("RESULT")}
    assert len(results) == 1 and results.pop().endswith("[]")
