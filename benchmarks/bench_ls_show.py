"""Target 5: ``runbase ls`` and ``runbase show`` on a store of 10,000 runs (<= 300 ms each).

The store (``.runbase/`` of a scratch git repository) is filled through the library,
as the supervisor and ``runbase.init()`` fill it: per run ``lifecycle.create_run``, a
``tracker.Tracker`` spool receiving 5 params (``event("param")``) and 3 metrics x 100
points (``tracker.log``), then ``lifecycle.finalize`` (ingest + env + final status;
~90 % finished, 7 % failed, 3 % killed; 30 % carry a tag). Then 3 real
``runbase run -- python train.py --lr ...`` runs are added (code snapshot, environment
with packages, argparse params), so ``runbase show`` of the latest run shows a full record.

Each command is timed as the wall time of the CLI subprocess, cwd = the repository,
output to a pipe (not a terminal), median of N interleaved runs.

    .venv/bin/python benchmarks/bench_ls_show.py [--runs 10000] [--n 10]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TRAIN = """\
import argparse
import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--optimizer", default="adam")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--epochs", type=int, default=10)
args = p.parse_args()
for step in range(100):
    runbase.log(loss=1.0 / (step + 1), acc=step / 100, val_loss=1.2 / (step + 1), step=step)
"""


def populate(store_path: Path, project: Path, n: int, seed: int = 0) -> dict[str, Any]:
    from runbase.capture.params import encode_value
    from runbase.records import lifecycle
    from runbase.store import Store
    from runbase.tracking import tracker

    rnd = random.Random(seed)
    store = Store.open(store_path, create=True)
    t0 = time.perf_counter()
    ids = []
    for i in range(n):
        lr = rnd.choice([0.1, 0.03, 0.01, 0.003, 0.001])
        params = {
            "lr": lr,
            "batch_size": rnd.choice([32, 64, 128, 256]),
            "optimizer": rnd.choice(["adam", "sgd", "adamw"]),
            "seed": i,
            "epochs": rnd.choice([5, 10, 20]),
        }
        tags = {"team": rnd.choice(["vision", "nlp"])} if rnd.random() < 0.3 else None
        run_id = lifecycle.create_run(
            store,
            command=["python", "train.py", "--lr", str(lr)],
            mode="run",
            project_root=str(project),
            cwd=str(project),
            tags=tags,
        )
        t = tracker.Tracker(run_id, str(store.root))
        tracker.activate(t)
        for k, v in params.items():
            t.event("param", key=k, value=encode_value(k, v), source="argparse")
        base = rnd.random()
        for step in range(100):
            tracker.log(
                loss=base / (step + 1),
                acc=min(1.0, step / 100 + rnd.random() * 0.05),
                val_loss=base * 1.1 / (step + 1),
                step=step,
            )
        t.close()
        tracker.deactivate()
        r = rnd.random()
        if r < 0.90:
            lifecycle.finalize(store, run_id, "finished", exit_code=0)
        elif r < 0.97:
            lifecycle.finalize(
                store, run_id, "failed", exit_code=1, error="Traceback ...\nValueError: boom"
            )
        else:
            lifecycle.finalize(store, run_id, "killed", exit_signal=2)
        ids.append(run_id)
        if (i + 1) % 2000 == 0:
            print(f"  populated {i + 1}/{n} runs ({time.perf_counter() - t0:.0f} s)", flush=True)
    store.close()
    return {"seconds": time.perf_counter() - t0, "ids": ids}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=10, help="repeats per command")
    ap.add_argument("--quick", action="store_true", help="1,000 runs, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.n = 1000, 3

    C.header(f"bench_ls_show: runbase ls / show on a store of {args.runs} runs")
    tmp = C.scratch_dir("ls")
    try:
        repo = tmp / "proj"
        C.make_git_repo(repo, n_files=30)
        (repo / "train.py").write_text(TRAIN)
        C.git(repo, "add", "-A")
        C.git(repo, "commit", "-q", "-m", "train")
        store_path = repo / ".runbase"
        pop = populate(store_path, repo, args.runs)
        print(
            f"populated {args.runs} runs through the library in {pop['seconds']:.1f} s "
            f"({pop['seconds'] / args.runs * 1000:.2f} ms/run)"
        )
        env = C.clean_env()
        for lr in ("0.1", "0.01", "0.001"):
            C.timed_run(
                [C.RUNBASE_CLI, "run", "--", C.PYTHON, "train.py", "--lr", lr], env=env, cwd=repo
            )
        mid = pop["ids"][len(pop["ids"]) // 2]
        db_mib = sum(p.stat().st_size for p in store_path.glob("runbase.db*")) / 2**20

        cmds = {
            "runbase ls": ["ls"],
            "runbase ls --where 'params.lr < 0.01 and metrics.acc > 0.9'": [
                "ls",
                "--where",
                "params.lr < 0.01 and metrics.acc > 0.9",
            ],
            "runbase ls --sort -metrics.acc": ["ls", "--sort", "-metrics.acc"],
            "runbase ls --json": ["ls", "--json"],
            "runbase show (latest: real run)": ["show"],
            "runbase show PREFIX (populated run)": ["show", mid[:10]],
            "runbase show --json PREFIX": ["show", "--json", mid[:10]],
            "runbase --help (CLI floor)": ["--help"],
        }
        specs = {k: {"argv": [C.RUNBASE_CLI, *v], "env": env, "cwd": repo} for k, v in cmds.items()}
        times = C.interleaved_times(specs, args.n, warmup=1)
        # listing all 10k runs is not a target; time it fewer times
        all_times = C.interleaved_times(
            {
                "runbase ls --limit 0 (all runs)": {
                    "argv": [C.RUNBASE_CLI, "ls", "--limit", "0"],
                    "env": env,
                    "cwd": repo,
                }
            },
            max(2, args.n // 3),
            warmup=0,
        )
        times.update(all_times)
        _, p = C.timed_run([C.RUNBASE_CLI, "ls"], env=env, cwd=repo)
        ls_sample = p.stdout.decode().splitlines()[:4]
        _, p = C.timed_run(
            [C.RUNBASE_CLI, "ls", "--where", "params.lr < 0.01 and metrics.acc > 0.9"],
            env=env,
            cwd=repo,
        )
        where_tail = p.stdout.decode().splitlines()[-1:]
    finally:
        C.rmtree(tmp)

    results = {k: C.summarize(v) for k, v in times.items()}
    rows = []
    for k, s in results.items():
        is_target = k.startswith(("runbase ls", "runbase show")) and "--limit 0" not in k
        rows.append(
            [
                k,
                s["n"],
                C.ms(s["median"]),
                C.ms(s["min"]),
                C.ms(s["max"]),
                C.target(s["median"], 0.3) if is_target else "-",
            ]
        )
    C.print_table(
        ["command", "n", "median", "min", "max", "<= 300 ms"],
        rows,
        title=f"CLI wall time, store of {args.runs + 3} runs ({db_mib:.0f} MiB database)",
    )
    print("ls output starts:", *ls_sample, sep="\n  ")
    print("--where output ends:", *where_tail)
    path = C.write_result(
        "ls_show",
        {
            "benchmark": "ls_show",
            "machine": C.machine_info(),
            "runs": args.runs + 3,
            "db_mib": db_mib,
            "populate_seconds": pop["seconds"],
            "commands": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
