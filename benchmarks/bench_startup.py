"""Targets 2 and 3: ``import runbase`` time and the overhead of a tracked no-op script.

Import (target <= 30 ms): median wall time of N fresh ``python -c "import runbase"``
minus the median of N ``python -c pass`` (run interleaved). runbase loads its public
API lazily, so ``import runbase; runbase.init; runbase.log`` (what a training script
pays by its first call) is timed too, and ``python -X importtime`` of that lists the
top offenders.

Tracked no-op (target <= 150 ms extra): in a small committed git repository, the
median wall time of ``runbase run -- python noop.py`` minus that of ``python noop.py``;
also ``runbase run --no-code`` (no code snapshot), a script that calls
``runbase.init()``/``runbase.finish()`` itself, and ``runbase --version`` (the CLI's
own start-up floor).

    .venv/bin/python benchmarks/bench_startup.py [--n 30] [--quick]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NOOP = "x = 1\n"
NOOP_INIT = "import runbase\nrunbase.init()\nrunbase.finish()\n"


# runbase's public names may load lazily (PEP 562): a training script pays for the
# tracking API on first use, so that is timed too.
IMPORT_API = "import runbase; runbase.init; runbase.log"
BARE, IMP, IMP_API = "python -c pass", "python -c 'import runbase'", f"python -c '{IMPORT_API}'"


def import_time(n: int) -> dict[str, Any]:
    env = C.clean_env()
    cmds = {
        BARE: {"argv": [C.PYTHON, "-c", "pass"], "env": env},
        IMP: {"argv": [C.PYTHON, "-c", "import runbase"], "env": env},
        IMP_API: {"argv": [C.PYTHON, "-c", IMPORT_API], "env": env},
    }
    times = C.interleaved_times(cmds, n, warmup=2)
    base = statistics.median(times[BARE])
    out: dict[str, Any] = {"n": n, "commands": {}}
    for name, ts in times.items():
        # paired differences (same round) are less sensitive to load drift than a difference of medians
        paired = [b - a for a, b in zip(times[BARE], ts, strict=True)]
        out["commands"][name] = {
            **C.summarize(ts),
            "overhead_s": statistics.median(ts) - base,
            "overhead_paired_median_s": statistics.median(paired),
        }
    out["import_overhead_s"] = out["commands"][IMP]["overhead_s"]
    out["import_api_overhead_s"] = out["commands"][IMP_API]["overhead_s"]
    out["importtime_top"] = importtime_offenders(env)
    return out


def importtime_offenders(env: dict[str, str], runs: int = 5) -> dict[str, Any]:
    """Median self/cumulative microseconds per module over a few ``-X importtime`` runs."""
    per_mod: dict[str, list[tuple[int, int]]] = {}
    order: list[str] = []
    pat = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    base_mods: set[str] = set()
    _, p0 = C.timed_run([C.PYTHON, "-X", "importtime", "-c", "pass"], env=env)
    for line in p0.stderr.decode().splitlines():
        m = pat.match(line)
        if m:
            base_mods.add(m.group(4))
    for _ in range(runs):
        _, p = C.timed_run([C.PYTHON, "-X", "importtime", "-c", IMPORT_API], env=env)
        for line in p.stderr.decode().splitlines():
            m = pat.match(line)
            if not m or m.group(4) in base_mods:
                continue
            name = m.group(4)
            if name not in per_mod:
                order.append(name)
            per_mod.setdefault(name, []).append((int(m.group(1)), int(m.group(2))))
    rows = []
    for name in order:
        vals = per_mod[name]
        rows.append(
            {
                "module": name,
                "self_us": int(statistics.median(v[0] for v in vals)),
                "cumulative_us": int(statistics.median(v[1] for v in vals)),
            }
        )
    total = sum(r["self_us"] for r in rows)
    return {
        "runs": runs,
        "total_self_us_beyond_bare_python": total,
        "modules_beyond_bare_python": len(rows),
        "top_self": sorted(rows, key=lambda r: -r["self_us"])[:15],
        "runbase_modules": [r for r in rows if r["module"].startswith("runbase")],
    }


def tracked_noop(n: int) -> dict[str, Any]:
    tmp = C.scratch_dir("startup")
    try:
        repo = tmp / "proj"
        C.make_git_repo(repo, n_files=50)
        (repo / "noop.py").write_text(NOOP)
        (repo / "noop_init.py").write_text(NOOP_INIT)
        C.git(repo, "add", "-A")
        C.git(repo, "commit", "-q", "-m", "scripts")
        C.backdate(repo)
        env = C.clean_env()
        # what every Python process of a tracked command pays to attach (no supervisor)
        from runbase.tracking import supervisor

        attach_env = C.clean_env(
            PYTHONPATH=str(supervisor.BOOTSTRAP_DIR),
            RUNBASE_RUN_ID="0000000000bench0",
            RUNBASE_DIR=str(tmp / "attach-store"),
            RUNBASE_PACKAGE_DIR=str(Path(supervisor.__file__).parent),
        )
        cmds = {
            "python noop.py": {"argv": [C.PYTHON, "noop.py"]},
            "runbase run -- python noop.py": {
                "argv": [C.RUNBASE_CLI, "run", "--", C.PYTHON, "noop.py"]
            },
            "runbase run --no-code -- python noop.py": {
                "argv": [C.RUNBASE_CLI, "run", "--no-code", "--", C.PYTHON, "noop.py"]
            },
            "python noop_init.py (runbase.init/finish)": {"argv": [C.PYTHON, "noop_init.py"]},
            "python noop.py, attached by the bootstrap": {
                "argv": [C.PYTHON, "noop.py"],
                "env": attach_env,
            },
            "runbase --help (CLI start-up floor)": {"argv": [C.RUNBASE_CLI, "--help"]},
        }
        for spec in cmds.values():
            spec.setdefault("env", env)
            spec["cwd"] = repo
        times = C.interleaved_times(cmds, n, warmup=2)
        base = statistics.median(times["python noop.py"])
        out: dict[str, Any] = {"n": n, "repo_files": 52, "commands": {}}
        for name, ts in times.items():
            paired = [b - a for a, b in zip(times["python noop.py"], ts, strict=True)]
            out["commands"][name] = {
                **C.summarize(ts),
                "overhead_s": statistics.median(ts) - base,
                "overhead_paired_median_s": statistics.median(paired),
            }
        # the runs really were recorded and finished
        sys.path.insert(0, str(C.REPO_DIR / "src"))
        import runbase

        df = runbase.runs(store=str(repo / ".runbase"))
        rows = df.to_dict("records") if hasattr(df, "to_dict") else df
        out["runs_recorded"] = len(rows)
        out["runs_finished"] = sum(1 for r in rows if r["status"] == "finished")
        return out
    finally:
        C.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, default=None, help="repeats per command (default 30 import, 15 no-op)"
    )
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_imp = args.n or (8 if args.quick else 30)
    n_noop = args.n or (4 if args.quick else 15)

    C.header("bench_startup: import time and tracked no-op overhead")
    imp = import_time(n_imp)
    C.print_table(
        ["command", "n", "median", "min", "p75", "extra vs bare", "extra (paired)", "<= 30 ms"],
        [
            [
                k,
                s["n"],
                C.ms(s["median"]),
                C.ms(s["min"]),
                C.ms(s["p75"]),
                "-" if k == BARE else C.ms(s["overhead_s"]),
                "-" if k == BARE else C.ms(s["overhead_paired_median_s"]),
                "-" if k == BARE else C.target(s["overhead_s"], 0.030),
            ]
            for k, s in imp["commands"].items()
        ],
        title="import runbase (fresh interpreters, interleaved)",
    )
    top = imp["importtime_top"]
    C.print_table(
        ["module", "self", "cumulative"],
        [
            [r["module"], f"{r['self_us'] / 1000:.2f} ms", f"{r['cumulative_us'] / 1000:.2f} ms"]
            for r in top["top_self"]
        ],
        title=f"python -X importtime -c '{IMPORT_API}': top self times (median of {top['runs']}; "
        f"{top['modules_beyond_bare_python']} modules beyond bare python; "
        f"their self times add up to {top['total_self_us_beyond_bare_python'] / 1000:.1f} ms under -X importtime)",
    )

    noop = tracked_noop(n_noop)
    rows = []
    for name, s in noop["commands"].items():
        rows.append(
            [
                name,
                s["n"],
                C.ms(s["median"]),
                C.ms(s["min"]),
                C.ms(s["p75"]),
                "-" if name == "python noop.py" else C.ms(s["overhead_s"]),
                "-" if name == "python noop.py" else C.ms(s["overhead_paired_median_s"]),
            ]
        )
    C.print_table(
        ["command", "n", "median", "min", "p75", "extra vs bare", "extra (paired)"],
        rows,
        title="tracked no-op script in a 52-file git repo",
    )
    main_extra = noop["commands"]["runbase run -- python noop.py"]["overhead_s"]
    print(
        f"runbase run overhead: {C.ms(main_extra)}  target <= 150 ms: {C.target(main_extra, 0.150)}; "
        f"runs recorded {noop['runs_recorded']}, finished {noop['runs_finished']}"
    )
    path = C.write_result(
        "startup",
        {"benchmark": "startup", "machine": C.machine_info(), "import": imp, "tracked_noop": noop},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
