"""Start-up before and after a change of the package layout (issue 16, the layers).

Runs, interleaved, against two source trees of runbase (the current one and ``--before``,
e.g. a ``git worktree`` of the commit before the refactor), each put first on
``PYTHONPATH``: ``import runbase``; ``import runbase; runbase.init; runbase.log`` (what a
training script pays); ``python -m runbase --help`` and ``--version`` (the CLI's start-up
floor); ``runbase ls`` on a store of one run; ``runbase run --no-code`` of ``python -c
pass``. Reports the medians minus that of ``python -c pass``. (The architecture figures
themselves: ``scripts/archstats.py``.)

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/bench_layers.py --before /tmp/before [--n 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

COMMANDS = {
    "import runbase": ["-c", "import runbase"],
    "import runbase; runbase.init; runbase.log": [
        "-c",
        "import runbase; runbase.init; runbase.log",
    ],
    "runbase --help": ["-m", "runbase", "--help"],
    "runbase --version": ["-m", "runbase", "--version"],
    "runbase ls": ["-m", "runbase", "ls"],
    "runbase run --no-code -- python -c pass": [
        "-m",
        "runbase",
        "run",
        "-q",
        "--no-code",
        "--",
        sys.executable,
        "-c",
        "pass",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--before", type=Path, required=True, help="source tree of the baseline")
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": C.REPO_DIR}
    work = C.scratch_dir("layers")  # a store with one run, for ls and run
    env0 = C.clean_env(PYTHONPATH=str(C.REPO_DIR / "src"))
    for argv in (["init"], ["run", "-q", "--no-code", "--", C.PYTHON, "-c", "pass"]):
        subprocess.run([C.PYTHON, "-m", "runbase", *argv], cwd=work, env=env0, check=True)
    cmds: dict[str, dict[str, Any]] = {
        "python -c pass": {"argv": [C.PYTHON, "-c", "pass"], "env": C.clean_env()}
    }
    for label, tree in trees.items():
        env = C.clean_env(PYTHONPATH=str(tree / "src"))
        for name, argv in COMMANDS.items():
            cmds[f"{label}: {name}"] = {"argv": [C.PYTHON, *argv], "env": env, "cwd": work}
    C.header("bench_layers: start-up before/after the package layout")
    times = C.interleaved_times(cmds, args.n, warmup=3)
    base = statistics.median(times["python -c pass"])
    rows, result = [], {"n": args.n, "machine": C.machine_info(), "commands": {}}
    for name in COMMANDS:
        b = statistics.median(times[f"before: {name}"]) - base
        a = statistics.median(times[f"after: {name}"]) - base
        rows.append([name, C.ms(b), C.ms(a), C.ms(a - b)])
        result["commands"][name] = {"before_extra_s": b, "after_extra_s": a}
    C.print_table(
        ["command (extra over python -c pass)", "before", "after", "change"],
        rows,
        title=f"median of {args.n} interleaved fresh interpreters",
    )
    C.write_result("layers", result)
    C.rmtree(work)


if __name__ == "__main__":
    main()
