"""The public surface is deliberate, and importing runbase stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import runbase

PUBLIC = {
    "AmbiguousRunRef",
    "FormatVersionError",
    "NotFound",
    "QueryError",
    "Run",
    "RunNotFound",
    "RunbaseError",
    "StoreError",
    "UsageError",
    "active_run",
    "explain",
    "finish",
    "get_run",
    "init",
    "input",
    "log",
    "log_image",
    "log_table",
    "model",
    "model_path",
    "output",
    "param",
    "params",
    "runs",
    "start_run",
    "summary",
    "tag",
}
# IPython's extension protocol (`%load_ext runbase`): reachable on the package, lazily,
# but not part of the API (`from runbase import *` leaves them out)
IPYTHON_HOOKS = {"load_ipython_extension", "unload_ipython_extension"}


def test_all_is_exactly_the_public_api() -> None:
    assert set(runbase.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(runbase, name) is not None
    public_now = {n for n, v in vars(runbase).items() if not n.startswith("_")}
    # submodules become attributes of the package once imported (by this test session):
    # those are fine, anything else is an accident
    submodules = {
        n
        for n, v in vars(runbase).items()
        if isinstance(v, types.ModuleType) and v.__name__ == f"runbase.{n}"
    }
    accidental = public_now - PUBLIC - IPYTHON_HOOKS - submodules - {"annotations", "TYPE_CHECKING"}
    assert not accidental, f"accidentally public: {accidental}"


def test_ipython_extension_hooks_are_reachable_but_not_public() -> None:
    from runbase.tracking import notebook

    assert not IPYTHON_HOOKS & set(runbase.__all__)
    assert runbase.load_ipython_extension is notebook.load_ipython_extension
    assert runbase.unload_ipython_extension is notebook.unload_ipython_extension
    assert set(dir(runbase)) >= IPYTHON_HOOKS


def test_import_is_light() -> None:
    code = (
        "import sys, runbase\n"
        "heavy = {'sqlite3', 'click', 'pandas', 'numpy', 'blake3', 'json', 'subprocess', 'typing', 'pynvml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", f"import runbase pulled in {out}"
