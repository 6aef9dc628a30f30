"""Parameter importance (``runbase.analysis.importance.analyze``, what ``runbase importance`` and
the UI's importance tab call): how long a ranking takes, by forest size.

Stores of N runs (8: the UI test's sweep; 50; 500) with P numeric params (2, 10) where
the metric depends on the first param only, filled through the library. For each, the
in-process time of ``analyze`` (median of 3, after one warm-up that loads numpy, scipy
and scikit-learn) with the forest at 300 trees (before) and at ``importance.TREES``
(after), and whether both rank the same parameter first. Separately: a fresh process's
import of numpy + scipy.stats + sklearn.ensemble (what the first request of a
``runbase ui`` server pays).

    .venv/bin/python benchmarks/bench_importance.py
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, header, rmtree, scratch_dir, write_result  # noqa: E402


def _fill(root: Path, n: int, p: int) -> object:
    from runbase.capture.params import encode_value
    from runbase.records import lifecycle
    from runbase.store import Store
    from runbase.tracking.tracker import Tracker

    store = Store.open(root / ".runbase", create=True)
    rng = random.Random(0)
    for _ in range(n):
        run_id = lifecycle.create_run(store, command=["x"], mode="api")
        t = Tracker(run_id, str(store.root))
        values = {f"p{j}": rng.random() for j in range(p)}
        for k, v in values.items():
            t.event("param", key=k, value=encode_value(k, v), source="inline")
        t.event("summary", values={"acc": values["p0"] * 2 + rng.random() * 0.01})
        t.close()
        lifecycle.finalize(store, run_id, "finished", exit_code=0)
    return store


def _time(store: object, trees: int) -> tuple[float, str]:
    from runbase.analysis import importance

    importance.TREES = trees
    times, first = [], ""
    for _ in range(3):
        t0 = time.perf_counter()
        rep = importance.analyze(store, "acc")  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
        first = rep.rows[0]["param"]
    return statistics.median(times), first


def main() -> None:
    from runbase.analysis import importance

    header("parameter importance")
    after = importance.TREES
    rows = []
    base = scratch_dir("rb-importance-")
    try:
        for n, p in ((8, 2), (50, 10), (500, 10)):
            store = _fill(base / f"{n}x{p}", n, p)
            importance.analyze(store, "acc")  # type: ignore[arg-type]  # warm-up: imports
            t300, f300 = _time(store, 300)
            tnew, fnew = _time(store, after)
            rows.append({"runs": n, "params": p, "trees_300_s": t300, f"trees_{after}_s": tnew,
                         "same_first": f300 == fnew == "p0"})  # fmt: skip
            print(f"{n:4d} runs x {p:2d} params: 300 trees {t300 * 1000:7.1f} ms, "
                  f"{after} trees {tnew * 1000:7.1f} ms, first p0 both: {f300 == fnew == 'p0'}")  # fmt: skip
    finally:
        rmtree(base)
    code = "import time; t=time.perf_counter(); import numpy, scipy.stats, sklearn.ensemble; print(time.perf_counter()-t)"
    imports = sorted(
        float(
            subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(3)
    )
    print(
        f"fresh-process import of numpy + scipy.stats + sklearn.ensemble: {imports[1]:.2f} s (median of 3)"
    )
    write_result("importance", {"cases": rows, "import_s": imports})


if __name__ == "__main__":
    main()
