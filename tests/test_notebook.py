"""runbase.init()/finish() and %load_ext runbase in a real Jupyter kernel (nbclient +
ipykernel; papermill when installed): the notebook file, the cells that ran, params."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import require, runbase_cmd
from runbase.capture.manifest import load_manifest
from runbase.records.maintenance import references
from runbase.records.read import list_runs, series
from runbase.records.record import build_record
from runbase.records.view import get_run
from runbase.store import Store


def test_one_run_per_init_finish_pair_in_a_kernel(project: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import runbase\nrun = runbase.init(name='nb-1')\nrunbase.param('lr', 0.1)"
        ),
        nbformat.v4.new_code_cell(
            "for i in range(5):\n    runbase.log(loss=1.0 / (i + 1), step=i)\nprint('cell output')"
        ),
        nbformat.v4.new_code_cell("runbase.finish()"),
        nbformat.v4.new_code_cell(
            "run2 = runbase.init(name='nb-2')\nrunbase.log(loss=0.5)\nrunbase.finish()"
        ),
        nbformat.v4.new_code_cell("assert run.id != run2.id"),
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    ).execute()
    store = Store.open(project / ".runbase")
    runs = {r["name"]: r for r in list_runs(store)}
    assert set(runs) == {"nb-1", "nb-2"}
    assert all(r["status"] == "finished" for r in runs.values())
    assert runs["nb-1"]["params"] == {"lr": 0.1}  # no params from the kernel's own argv
    assert series(store, runs["nb-1"]["id"], "loss").values == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert runs["nb-2"]["metrics"]["loss"]["count"] == 1


# -- the notebook file and the cells that ran ------------------------------------------


def _code(source: str, **metadata: Any) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(metadata)
    return cell


def _write_nb(path: Path, cells: list[Any], pad: int = 0, kernelspec: bool = False) -> Any:
    """A notebook file; ``pad`` bytes of markdown make it large (outputs, images...)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    if kernelspec:  # what papermill's command line needs to pick a kernel
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "language": "python",
            "display_name": "Python 3",
        }
    if pad:
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * pad))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return nb


def _client(nb: Any, project: Path) -> NotebookClient:
    return NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(project)}},
    )


def _run_cells(client: NotebookClient, order: Iterable[int], **kernel_kwargs: Any) -> list[Any]:
    """Execute the notebook's cells in ``order`` (repeats allowed) in one kernel; the
    kernel's env/cwd come from ``kernel_kwargs`` (passed to KernelManager.start_kernel)."""
    outputs = []
    with client.setup_kernel(**kernel_kwargs):
        for i in order:
            cell = client.execute_cell(client.nb.cells[i], i)
            outputs.append(list(cell.outputs))
    return outputs


def _kernel_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env.update(extra)
    return env


def _text(outputs: list[Any]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def test_notebook_file_and_executed_cells_are_recorded(project: Path) -> None:
    from test_docs import _documented

    sources = [
        "import runbase\nrun = runbase.init(name='nb-cells')",
        "x = 1\nprint('x is', x)",
        "y = 2",
        "1 / 0",
        "runbase.finish()",
    ]
    path = project / "analysis.ipynb"
    # over 1 MiB (a notebook with outputs): still kept in the code snapshot
    nb = _write_nb(path, [_code(s) for s in sources], pad=(1 << 20) + 1000)
    at_init = path.read_bytes()
    client = _client(nb, project)
    env = _kernel_env(JPY_SESSION_NAME=str(path))  # as Jupyter Server starts a kernel
    with client.setup_kernel(env=env):
        client.execute_cell(nb.cells[0], 0)
        path.write_text(path.read_text().replace('"y = 2"', '"y = 3"'))  # an autosave
        for i in (1, 2, 3, 1, 4):  # cell 1 again, after the failing cell
            client.execute_cell(nb.cells[i], i)

    store = Store.open(project / ".runbase")
    (run,) = list_runs(store)
    rec = build_record(store, run["id"])
    note = rec["notebook"]
    assert set(note) == _documented("notebook")
    assert note["path"] == "analysis.ipynb" and note["source"] == "jupyter"
    assert note["size"] == len(at_init) and store.objects.get_bytes(note["oid"]) == at_init
    tree = {e["path"]: e for e in load_manifest(store, rec["code"]["tree"])}
    assert tree["analysis.ipynb"]["oid"] == note["oid"]
    assert not [s for s in rec["code"]["skipped"] if s["path"] == "analysis.ipynb"]
    referenced = {oid for oid, _kind, _run in references(store)}  # kept by `runbase gc`
    assert {note["oid"], note["cells_oid"]} <= referenced

    cells = get_run(run["id"], store=str(store.root)).cells()
    assert note["cells_count"] == len(cells) == 6
    assert all(set(c) == _documented("cells") for c in cells)
    order = [0, 1, 2, 3, 1, 4]
    assert [c["source"] for c in cells] == [sources[i] for i in order]
    assert [c["index"] for c in cells] == list(range(6))
    assert [c["execution_count"] for c in cells] == [1, 2, 3, 4, 5, 6]
    assert [c["success"] for c in cells] == [True, True, True, False, True, None]
    assert cells[3]["error"].startswith("ZeroDivisionError")
    assert all(c["cell_id"] is None for c in cells)  # nbclient sends no cell ids
    assert all(c["duration_s"] is not None and c["duration_s"] >= 0 for c in cells)
    assert [c["started_at"] for c in cells] == sorted(c["started_at"] for c in cells)
    # the CLI shows the same
    out = runbase_cmd("show", run["id"], "--cells", "--json", cwd=project, check=True).stdout
    assert json.loads(out) == cells
    text = runbase_cmd("show", run["id"], "--cells", cwd=project, check=True).stdout
    assert "In [5]  ok" in text and "    x = 1" in text and "-> ZeroDivisionError" in text
    shown = runbase_cmd("show", run["id"], cwd=project, check=True).stdout
    assert "analysis.ipynb" in shown and "6 executed" in shown
    # and the web UI's API (the run page's Notebook tab)
    from runbase.render import views

    answer = views.notebook(store, run["id"])
    assert answer["cells"] == cells and answer["notebook"] == note and not answer["truncated"]


def test_load_ext_and_runbase_magic_make_runs(project: Path) -> None:
    sources = [
        "%load_ext runbase",  # starts a run, like runbase.init()
        "a = 1",
        "get_ipython().run_cell('inner = 1')",  # a cell inside a cell
        "%runbase status",
        "%runbase stop",
        "b = 2",  # between runs: in none
        "%runbase start second",
        "c = 3",
        "%runbase stop",
    ]
    nb = _write_nb(project / "magic.ipynb", [_code(s) for s in sources])
    outputs = _run_cells(_client(nb, project), list(range(len(sources))), env=_kernel_env())
    assert "started" in _text(outputs[0]) and "`%runbase stop`" in _text(outputs[0])
    assert "running, 5 cells recorded" in _text(outputs[3])  # this one included
    assert "finished" in _text(outputs[4]) and "started" in _text(outputs[6])
    store = Store.open(project / ".runbase")
    runs = sorted(list_runs(store), key=lambda r: r["started_at"])
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert runs[1]["name"] == "second"
    first, second = (get_run(r["id"], store=str(store.root)) for r in runs)
    cells = first.cells()
    assert [c["source"] for c in cells] == [*sources[:3], "inner = 1", *sources[3:5]]
    assert [c["success"] for c in cells] == [True, True, True, True, True, None]
    assert [c["source"] for c in second.cells()] == sources[6:]
    # the second run's code snapshot read the project: not the run's inputs
    assert second.record()["inputs"] == []
    # no notebook path reaches a kernel that nbclient started: the cells are still there
    assert first.record()["notebook"] == {
        "path": None,
        "source": None,
        "oid": None,
        "size": None,
        "cells_oid": first.record()["notebook"]["cells_oid"],
        "cells_count": 6,
    }


def test_explicit_notebook_is_kept_even_if_ignored(project: Path) -> None:
    # conftest's project ignores `ignored/`; the notebook is also over 1 MiB
    path = project / "ignored" / "explicit.ipynb"
    sources = [
        "import runbase\nrunbase.init(name='explicit', notebook='ignored/explicit.ipynb')",
        "runbase.finish()",
        "runbase.init(name='off', notebook=False)",  # neither the file nor the cells
        "runbase.finish()",
    ]
    nb = _write_nb(path, [_code(s) for s in sources], pad=(1 << 20) + 10)
    env = _kernel_env(JPY_SESSION_NAME="elsewhere.ipynb")
    _run_cells(_client(nb, project), [0, 1, 2, 3], env=env)
    store = Store.open(project / ".runbase")
    assert get_run("off", store=str(store.root)).record()["notebook"] is None
    rec = build_record(store, get_run("explicit", store=str(store.root)).id)
    note = rec["notebook"]
    assert note["path"] == "ignored/explicit.ipynb" and note["source"] == "explicit"
    assert store.objects.get_bytes(note["oid"]) == path.read_bytes()
    tree = {e["path"]: e["oid"] for e in load_manifest(store, rec["code"]["tree"])}
    assert tree["ignored/explicit.ipynb"] == note["oid"]
    assert [c["source"] for c in get_run(rec["id"], store=str(store.root)).cells()] == sources[:2]


def test_explicit_notebook_that_is_not_a_file_is_refused(project: Path) -> None:
    import runbase

    with pytest.raises(runbase.UsageError, match="not a file"):
        runbase.init(notebook=project / "missing.ipynb")
    assert not (project / ".runbase").exists() or not list_runs(Store.open(project / ".runbase"))


def test_parameters_cells_become_params(project: Path) -> None:
    # with the notebook file known (JupyterLab), a cell tagged `parameters` is recognised
    # by its source; a cell mirroring papermill's injected one by its `# Parameters` line
    path = project / "params.ipynb"
    cells = [
        _code("import runbase\nrunbase.init(name='tagged')"),
        _code("lr = 0.1\nbatch: int = 32\nlayers = [64, 64]\nscale = 2 * lr", tags=["parameters"]),
        _code("# Parameters\nlr = 0.5\nmissing = float('nan')\n", tags=["injected-parameters"]),
        _code("# not parameters\nother = 1"),
        _code("runbase.finish()"),
    ]
    nb = _write_nb(path, cells)
    _run_cells(_client(nb, project), range(5), env=_kernel_env(JPY_SESSION_NAME=str(path)))
    run = get_run("tagged", store=str(project / ".runbase"))
    assert run.params == {
        "lr": 0.5,  # the injected value, run after the defaults
        "batch": 32,
        "layers": [64, 64],
        "scale": 0.2,  # not a literal: its value after the cell ran
        "missing": "NaN",
    }
    assert set(run.param_sources.values()) == {"papermill"}


def test_papermill_parameters_become_params(project: Path) -> None:
    papermill = require("papermill")
    src = project / "train.ipynb"
    _write_nb(
        src,
        [
            _code("lr = 0.1\nepochs = 10", tags=["parameters"]),
            _code("import runbase\nrunbase.init(name='pm')"),
            _code("for i in range(epochs):\n    runbase.log(loss=lr / (i + 1))"),
            _code("runbase.finish()"),
        ],
    )
    papermill.execute_notebook(
        str(src),
        str(project / "out.ipynb"),
        parameters={"lr": 0.01, "epochs": 3},
        kernel_name="python3",
        language="python",
        cwd=str(project),
        progress_bar=False,
    )
    out = nbformat.read(str(project / "out.ipynb"), as_version=4)
    injected = out.cells[1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source.startswith("# Parameters\n")  # what the kernel recognises
    run = get_run("pm", store=str(project / ".runbase"))
    # the parameters cells ran before init(): found in the kernel's history
    assert run.params == {"lr": 0.01, "epochs": 3}
    assert run.param_sources == {"lr": "papermill", "epochs": "papermill"}
    assert run.metrics["loss"]["count"] == 3
    assert [c["source"].splitlines()[0] for c in run.cells()] == [
        "import runbase",
        "for i in range(epochs):",
        "runbase.finish()",
    ]


def test_a_kernel_that_dies_keeps_its_cells(project: Path) -> None:
    from nbclient.exceptions import DeadKernelError

    sources = [
        "import runbase\nrunbase.init(name='doomed')",
        "x = 1",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # an OOM kill, say",
    ]
    nb = _write_nb(project / "doomed.ipynb", [_code(s) for s in sources])
    with pytest.raises(DeadKernelError):
        _run_cells(_client(nb, project), [0, 1, 2], env=_kernel_env())
    store = Store.open(project / ".runbase")
    deadline = time.time() + 30
    while list_runs(store)[0]["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)  # the run's watcher notices within a second
    run = get_run("doomed", store=str(store.root))
    assert run.status == "crashed"
    cells = run.cells()
    assert [c["source"] for c in cells] == sources
    assert [c["success"] for c in cells] == [True, True, None]
    assert cells[2]["execution_count"] == 3 and cells[2]["duration_s"] is None


def test_papermill_under_runbase_run_attaches_the_kernel(project: Path) -> None:
    require("papermill")
    _write_nb(
        project / "train.ipynb",
        [
            _code("lr = 0.1\nepochs = 10", tags=["parameters"]),
            _code("import runbase\nrunbase.init(notebook='out.ipynb')"),
            _code("for i in range(epochs):\n    runbase.log(loss=lr / (i + 1))"),
        ],
        kernelspec=True,
    )
    cmd = [sys.executable, "-m", "papermill", "train.ipynb", "out.ipynb", "-p", "lr", "0.01"]
    runbase_cmd("run", "--", *cmd, cwd=project, check=True)
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert rec["status"] == "finished" and rec["mode"] == "run"
    assert (rec["params"]["lr"], rec["param_sources"]["lr"]) == (0.01, "papermill")
    assert (rec["params"]["epochs"], rec["param_sources"]["epochs"]) == (10, "papermill")
    assert not [k for k in rec["params"] if "IPKernelApp" in k]  # the kernel's own argv
    assert rec["metrics"]["loss"]["count"] == 10
    note = rec["notebook"]
    assert (note["path"], note["source"], note["cells_count"]) == ("out.ipynb", "explicit", 2)
    store = Store.open(project / ".runbase")
    assert b"injected-parameters" in store.objects.get_bytes(note["oid"])


def test_run_page_shows_the_cells_a_notebook_ran(project: Path, page: Any) -> None:  # noqa: F811
    """The web UI's Notebook tab, in a real browser, for a run made in a real kernel."""
    from conftest import _free_port, stop_process, wait_http

    sources = ["import runbase\nrun = runbase.init(name='nb-ui')", "z = 40 + 2\nz", "1 / 0"]
    sources.append("runbase.finish()")
    path = project / "explore.ipynb"
    nb = _write_nb(path, [_code(s) for s in sources])
    client = _client(nb, project)
    with client.setup_kernel(env=_kernel_env(JPY_SESSION_NAME=str(path))):
        for i in range(len(sources)):
            client.execute_cell(nb.cells[i], i)
    (run,) = list_runs(Store.open(project / ".runbase"))

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "ui", "--no-browser", "--port", str(port)],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_http(url + "/api/runs?limit=1", proc, timeout=30) is None
        page.goto(f"{url}/runs/{run['id']}")
        page.click(".tab[data-tab=notebook]")
        page.wait_for_selector("#pane-notebook .nb-cell")
        cells = page.locator("#pane-notebook .nb-cell")
        assert cells.count() == 4
        assert "z = 40 + 2" in cells.nth(1).inner_text() and "In [2]" in cells.nth(1).inner_text()
        failed = page.locator("#pane-notebook .nb-cell.failed")
        assert failed.count() == 1 and "ZeroDivisionError" in failed.inner_text()
        assert "explore.ipynb" in page.inner_text("#pane-notebook")
    finally:
        stop_process(proc)
