"""runbase.init()/finish() in a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from runbase.read import list_runs, series
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
