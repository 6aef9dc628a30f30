"""Target 6: runbase side by side with MLflow and W&B (offline), measured the same way.

Each library runs in its own virtual environment under ``benchmarks/.venvs/`` (created
here with pip on first use: mlflow==3.17.2, wandb==0.31.0; runbase uses the project's
own .venv). All start-up scripts run from the same scratch git repository.

(a) Logging throughput: a fresh process starts a run, logs one scalar per call in a
    loop (``runbase.log``, ``mlflow.log_metric``, ``wandb.log``; plus MLflow's
    ``log_metric(synchronous=False)`` and ``MlflowClient.log_batch`` with 1,000
    metrics per call) up to a point count or a time budget, then finishes the run.
    Reported: calls/s in the loop, the time ``finish``/``end_run`` then takes, the time
    from the end of the loop until the process has exited (finish + interpreter exit:
    background writers drain), and the effective rate points / (loop + that time).
(b) Start-up overhead: wall time of a script that imports the library, starts a run,
    logs 1 point and finishes, minus bare ``python noop.py`` with the same venv's
    interpreter (medians of N interleaved runs). Import-only times too.

Backends: runbase's store (.runbase/ in the repository); MLflow ``sqlite:///`` (its
default since 3.x) and the file store (``file://``; MLflow 3.17 needs
MLFLOW_ALLOW_FILE_STORE=true for it); W&B with WANDB_MODE=offline. MLflow telemetry
is disabled (MLFLOW_DISABLE_TELEMETRY=true) so nothing leaves the machine.

    .venv/bin/python benchmarks/bench_compare.py [--budget 15] [--reps 2] [--n 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PINS = {"mlflow": "mlflow==3.17.2", "wandb": "wandb==0.31.0"}
WORKER = str(C.WORKERS_DIR / "compare_worker.py")

# runbase loads its public API lazily: time the import plus the first use of init/log
IMPORT = {
    "runbase": "import runbase; runbase.init; runbase.log",
    "mlflow": "import mlflow",
    "wandb": "import wandb",
}

SCRIPTS = {
    "noop.py": "x = 1\n",
    "start_runbase.py": "import runbase\nrunbase.init()\nrunbase.log(loss=0.5, step=0)\nrunbase.finish()\n",
    "start_attached.py": "import runbase\nrunbase.log(loss=0.5, step=0)\n",
    "start_mlflow.py": (
        "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('loss', 0.5, step=0)\n"
    ),
    "start_wandb.py": (
        "import wandb\nrun = wandb.init(project='bench', mode='offline')\n"
        "run.log({'loss': 0.5}, step=0)\nrun.finish()\n"
    ),
}


def venv_python(lib: str) -> str | None:
    """The venv's python, creating the venv with pip if needed (None if that fails)."""
    if lib == "runbase":
        return C.PYTHON
    bin_dir = C.ensure_venv(
        lib, PINS[lib], ["python", "-c", f"import {lib}; print({lib}.__version__)"]
    )
    return str(bin_dir / "python") if bin_dir else None


def lib_env(scratch: Path, **extra: str) -> dict[str, str]:
    return C.clean_env(
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_ALLOW_FILE_STORE="true",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(scratch / "wandb"),
        **extra,
    )


def worker(
    py: str, lib: str, case: str, env: dict[str, str], cwd: Path, scratch: Path, **kw: Any
) -> dict[str, Any]:
    out = scratch / "worker-out.json"
    out.unlink(missing_ok=True)
    argv = [
        py,
        WORKER,
        "--lib",
        lib,
        "--case",
        case,
        "--out",
        str(out),
        "--dir",
        str(scratch / "wandb"),
    ]
    for k, v in kw.items():
        argv += [f"--{k}", str(v)]
    wall, _p = C.timed_run(argv, env=env, cwd=cwd, timeout=900)
    t_exit = time.time()
    r = json.loads(out.read_text())
    r["process_wall_s"] = wall
    if "t_loop_end" in r:  # finish + interpreter exit (W&B's service, MLflow's async queue...)
        r["loop_end_to_exit_s"] = t_exit - r["t_loop_end"]
    return r


def throughput(
    pys: dict[str, str], repo: Path, scratch: Path, budget: float, reps: int, quick: bool
) -> list[dict[str, Any]]:
    env = lib_env(scratch)
    cases: list[tuple[str, str, str, dict[str, Any]]] = []  # (label, lib, case, kwargs)
    if "runbase" in pys:
        cases.append(
            ("runbase.log", "runbase", "log", {"points": 1_000_000 if quick else 5_000_000})
        )
    if "mlflow" in pys:
        for backend, uri in (
            ("sqlite", f"sqlite:///{scratch / 'mlflow.db'}"),
            ("file", f"file://{scratch / 'mlruns'}"),
        ):
            cases.append(
                (
                    f"mlflow.log_metric [{backend}]",
                    "mlflow",
                    "log",
                    {"points": 10_000_000, "uri": uri},
                )
            )
            cases.append(
                (
                    f"mlflow.log_metric(synchronous=False) [{backend}]",
                    "mlflow",
                    "log_async",
                    {"points": 1000 if quick else 3000, "uri": uri},
                )
            )
            cases.append(
                (
                    f"MlflowClient.log_batch x1000 [{backend}]",
                    "mlflow",
                    "log_batch",
                    {"points": 100_000_000, "uri": uri},
                )
            )
    if "wandb" in pys:
        cases.append(("wandb.log [offline]", "wandb", "log", {"points": 10_000_000}))
    rows = []
    for label, lib, case, kw in cases:
        runs = []
        for _ in range(reps):
            r = worker(pys[lib], lib, case, env, repo, scratch, budget=budget, **kw)
            r["effective_rate"] = r["points"] / (r["loop_s"] + r["loop_end_to_exit_s"])
            runs.append(r)
            print(
                f"  {label}: {r['points']} points, {C.rate(r['rate'])} in the loop, finish {r['finish_s']:.2f} s, "
                f"loop end -> exit {r['loop_end_to_exit_s']:.2f} s, effective {C.rate(r['effective_rate'])}",
                flush=True,
            )
        rows.append(
            {
                "label": label,
                "lib": lib,
                "case": case,
                "version": runs[0].get("version"),
                "reps": reps,
                "points_median": statistics.median(r["points"] for r in runs),
                "rate_median": statistics.median(r["rate"] for r in runs),
                "finish_s_median": statistics.median(r["finish_s"] for r in runs),
                "loop_end_to_exit_s_median": statistics.median(
                    r["loop_end_to_exit_s"] for r in runs
                ),
                "effective_rate_median": statistics.median(r["effective_rate"] for r in runs),
                "runs": runs,
            }
        )
    return rows


def startup(pys: dict[str, str], repo: Path, scratch: Path, n: int) -> dict[str, Any]:
    cmds: dict[str, dict[str, Any]] = {}
    env = lib_env(scratch)
    sqlite_uri = f"sqlite:///{scratch / 'mlflow.db'}"
    file_uri = f"file://{scratch / 'mlruns'}"
    base_of: dict[str, str] = {}
    for lib, py in pys.items():
        cmds[f"[{lib} venv] python noop.py"] = {"argv": [py, "noop.py"], "env": env}
        cmds[f"[{lib} venv] python -c '{IMPORT[lib]}'"] = {
            "argv": [py, "-c", IMPORT[lib]],
            "env": env,
        }
    if "runbase" in pys:
        cmds["runbase: init/log/finish script"] = {
            "argv": [pys["runbase"], "start_runbase.py"],
            "env": env,
        }
        cmds["runbase: runbase run -- python script (log 1)"] = {
            "argv": [C.RUNBASE_CLI, "run", "--", pys["runbase"], "start_attached.py"],
            "env": env,
        }
        base_of["runbase: init/log/finish script"] = base_of[
            "runbase: runbase run -- python script (log 1)"
        ] = "runbase"
    if "mlflow" in pys:
        cmds["mlflow: start_run/log_metric/end [sqlite]"] = {
            "argv": [pys["mlflow"], "start_mlflow.py"],
            "env": {**env, "MLFLOW_TRACKING_URI": sqlite_uri},
        }
        cmds["mlflow: start_run/log_metric/end [file]"] = {
            "argv": [pys["mlflow"], "start_mlflow.py"],
            "env": {**env, "MLFLOW_TRACKING_URI": file_uri},
        }
        base_of["mlflow: start_run/log_metric/end [sqlite]"] = base_of[
            "mlflow: start_run/log_metric/end [file]"
        ] = "mlflow"
    if "wandb" in pys:
        cmds["wandb: init/log/finish [offline]"] = {
            "argv": [pys["wandb"], "start_wandb.py"],
            "env": env,
        }
        base_of["wandb: init/log/finish [offline]"] = "wandb"
    for spec in cmds.values():
        spec["cwd"] = repo
    times = C.interleaved_times(cmds, n, warmup=1)
    out: dict[str, Any] = {"n": n, "commands": {}}
    for name, ts in times.items():
        out["commands"][name] = C.summarize(ts)
    for name, lib in base_of.items():
        base = times[f"[{lib} venv] python noop.py"]
        out["commands"][name]["overhead_s"] = statistics.median(times[name]) - statistics.median(
            base
        )
    for lib in pys:
        imp, base = (
            times[f"[{lib} venv] python -c '{IMPORT[lib]}'"],
            times[f"[{lib} venv] python noop.py"],
        )  # noqa: E501
        out["commands"][f"[{lib} venv] python -c '{IMPORT[lib]}'"]["overhead_s"] = (
            statistics.median(imp) - statistics.median(base)
        )
    # where the time goes (one in-process breakdown each, median of 3)
    phases: dict[str, Any] = {}
    for lib, py in pys.items():
        uris = [("sqlite", sqlite_uri), ("file", file_uri)] if lib == "mlflow" else [("", None)]
        for backend, uri in uris:
            rs = [
                worker(py, lib, "startup", env, repo, scratch, **({"uri": uri} if uri else {}))
                for _ in range(3)
            ]
            key = f"{lib} [{backend}]" if backend else lib
            phases[key] = {
                k: statistics.median(r[k] for r in rs)
                for k in (
                    "import_s",
                    "start_s",
                    "log_s",
                    "finish_s",
                    "in_process_s",
                    "process_wall_s",
                )
            }
    out["phases"] = phases
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--budget", type=float, default=15.0, help="seconds of logging per throughput case"
    )
    ap.add_argument("--reps", type=int, default=2, help="repeats per throughput case")
    ap.add_argument("--n", type=int, default=7, help="repeats per start-up command")
    ap.add_argument("--libs", default="runbase,mlflow,wandb")
    ap.add_argument("--skip", default="", help="comma list: throughput,startup")
    ap.add_argument("--quick", action="store_true", help="3 s budgets, 1 repeat, n=3")
    args = ap.parse_args()
    if args.quick:
        args.budget, args.reps, args.n = 3.0, 1, 3
    skip = set(filter(None, args.skip.split(",")))

    C.header("bench_compare: runbase vs MLflow vs W&B (offline)")
    pys: dict[str, str] = {}
    for lib in args.libs.split(","):
        py = venv_python(lib)
        if py is None:
            print(f"  {lib}: not available, skipped")
        else:
            pys[lib] = py
    versions = {}
    for lib, py in pys.items():
        p = subprocess.run(
            [py, "-c", f"import {lib}; print({lib}.__version__)"],
            capture_output=True,
            text=True,
            env=lib_env(Path("/tmp")),
        )
        versions[lib] = p.stdout.strip()
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))

    scratch = C.scratch_dir("compare")
    try:
        repo = scratch / "proj"
        C.make_git_repo(repo, n_files=30)
        for name, text in SCRIPTS.items():
            (repo / name).write_text(text)
        C.git(repo, "add", "-A")
        C.git(repo, "commit", "-q", "-m", "scripts")
        C.backdate(repo)
        if "mlflow" in pys:  # create the sqlite schema once (MLflow migrates a new DB: seconds)
            env = lib_env(scratch, MLFLOW_TRACKING_URI=f"sqlite:///{scratch / 'mlflow.db'}")
            C.timed_run([pys["mlflow"], "start_mlflow.py"], env=env, cwd=repo)
        thr = (
            []
            if "throughput" in skip
            else throughput(pys, repo, scratch, args.budget, args.reps, args.quick)
        )
        st = None if "startup" in skip else startup(pys, repo, scratch, args.n)
    finally:
        C.rmtree(scratch)

    if thr:
        C.print_table(
            [
                "library / call",
                "points",
                "calls/s in loop",
                "finish()",
                "loop end -> exit",
                "effective rate",
                "vs runbase",
            ],
            [
                [
                    r["label"],
                    int(r["points_median"]),
                    C.rate(r["rate_median"]),
                    f"{r['finish_s_median']:.2f} s",
                    f"{r['loop_end_to_exit_s_median']:.2f} s",
                    C.rate(r["effective_rate_median"]),
                    f"{thr[0]['effective_rate_median'] / r['effective_rate_median']:.0f}x slower"
                    if r["lib"] != "runbase" and thr[0]["lib"] == "runbase"
                    else "-",
                ]
                for r in thr
            ],
            title=f"(a) logging throughput, one scalar per call (budget {args.budget:g} s, median of {args.reps}; "
            "effective = points / (loop + loop end -> process exit))",
        )
    if st:
        rows = []
        for name, s in st["commands"].items():
            rows.append(
                [name, s["n"], C.ms(s["median"]), C.ms(s["min"]), C.ms(s.get("overhead_s"))]
            )
        C.print_table(
            ["command", "n", "median", "min", "extra vs bare python"],
            rows,
            title="(b) start-up: import, start a run, log 1 point, finish (wall time of the process)",
        )
        C.print_table(
            ["library", "import", "start run", "log 1", "finish", "in process", "process wall"],
            [
                [
                    k,
                    C.ms(v["import_s"]),
                    C.ms(v["start_s"]),
                    C.ms(v["log_s"]),
                    C.ms(v["finish_s"]),
                    C.ms(v["in_process_s"]),
                    C.ms(v["process_wall_s"]),
                ]
                for k, v in st["phases"].items()
            ],
            title="(b) where the start-up time goes (in-process phases, median of 3)",
        )
    path = C.write_result(
        "compare",
        {
            "benchmark": "compare",
            "machine": C.machine_info(),
            "versions": versions,
            "budget_s": args.budget,
            "throughput": thr,
            "startup": st,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
