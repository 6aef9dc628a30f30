# runbase bootstrap: put on PYTHONPATH by `runbase run` so every Python process of a
# tracked command attaches to its run. It must never break the program it runs in.
import os as _os
import sys as _sys
import types


def _runbase_attach() -> None:
    if not _os.environ.get("RUNBASE_RUN_ID") or _sys.version_info < (3, 10):
        return
    try:
        try:
            # lazy: only a process of a tracked command; inside try: runbase may be absent
            import runbase.tracking._child as child
        except ImportError:
            child = _load_from_package_dir()
        child.attach_from_env()
    except Exception as e:  # noqa: BLE001
        try:
            _sys.stderr.write(
                f"runbase: warning: could not attach to the run ({e}); tracking is off here\n"
            )
        except Exception:
            pass


def _load_from_package_dir() -> "types.ModuleType":
    # A Python without runbase installed (another venv): load runbase from where the
    # supervisor's copy lives, without putting that whole site-packages on sys.path.
    import importlib.util  # lazy: only for a Python without runbase installed

    pkg = _os.environ["RUNBASE_PACKAGE_DIR"]
    spec = importlib.util.spec_from_file_location(
        "runbase", _os.path.join(pkg, "__init__.py"), submodule_search_locations=[pkg]
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    _sys.modules["runbase"] = mod
    spec.loader.exec_module(mod)
    import runbase.tracking._child as child  # lazy: after runbase is loaded from its directory

    return child


def _chain_next_sitecustomize() -> None:
    # Ours shadows any sitecustomize later on sys.path; run that one too.
    import importlib.machinery  # lazy: the bootstrap's imports run in every Python of the run

    here = _os.path.dirname(_os.path.abspath(__file__))
    path = [p for p in _sys.path if p and _os.path.abspath(p) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None and spec.origin != __file__:
        import importlib.util  # lazy: only when another sitecustomize exists

        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)


_runbase_attach()
try:
    _chain_next_sitecustomize()
except Exception:  # noqa: BLE001
    pass
