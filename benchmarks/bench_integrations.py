"""Framework integrations: what runbase's automatic mirroring adds to a training loop.

Target: the integration adds at most 5% to the wall time of the framework's own
training loop on a small model (CPU). Per framework, the same worker script
(``_workers/integrations_worker.py``) times the training call in-process, after an
untimed warm-up loop, logging at every step/batch/round (the worst case for a tracker):

* ``none``: the framework alone (runbase's venv, no runbase);
* ``runbase``: the same script under ``runbase run`` — no runbase code, the automatic
  integration (Lightning logger, Keras callback, Trainer callback, xgboost/lightgbm
  callback, scikit-learn hooks) does the mirroring;
* ``runbase-off``: under ``runbase run --no-integrations``: what a tracked process costs
  without the mirroring (the audit hook that sees file access — about 180 ns for each
  audited event, and torch raises ``builtins.id`` ~200 times a training step — and the
  supervisor beside it), so that ``runbase`` vs ``runbase-off`` is the integration's
  own share;
* ``ab``: the mirroring alone, in one process: under ``runbase run --no-integrations``,
  loops without and with runbase's object (the ``RunbaseLogger``/``RunbaseCallback``
  the automatic mode adds) passed explicitly, alternating (and alternating which of the
  pair goes first); reported is the median of the per-pair ratios. Process-to-process variance on this shared 2-core machine is
  several percent, more than what is measured, so this is the number the 5% target is
  checked on (scikit-learn, whose hooks are global, has none: its target is checked on
  ``runbase`` vs ``none``);
* ``wandb``: W&B's own integration, offline (``WANDB_MODE=offline``): Lightning's
  ``WandbLogger``, ``WandbMetricsLogger(log_freq="batch")``, ``report_to="wandb"``,
  ``wandb.integration.xgboost.WandbCallback``, ``wandb_callback()`` for LightGBM (none
  for scikit-learn). It runs in ``benchmarks/.venvs/wandb-frameworks`` — wandb==0.31.0
  plus the framework versions of runbase's venv (and TensorFlow, which W&B's Keras
  callbacks import even on the torch backend) — whose own ``none`` loop is its
  baseline (``wandb-none``), so both overheads are against the same packages.

The frameworks' loops: Lightning, an MLP on 4,096x32 (5 epochs of 64 steps, CSVLogger
as the user's logger in every mode); Keras (torch backend), the same MLP (4 epochs of
52 batches, validation split 0.2); Transformers, a 2-layer BERT of width 32 (128 steps,
``logging_steps=1``); XGBoost and LightGBM, 200 rounds on 16,000x20 with train and
valid evaluation sets of 2 metrics; scikit-learn, a scaled logistic regression fit,
score and 5-fold ``cross_val_score`` (20,000x20). The short loops (XGBoost, LightGBM:
x3; scikit-learn: x5) are timed more times per process.

Every mode uses one compute thread (``OMP_NUM_THREADS=1``...): on a 2-core machine
shared with other work, BLAS/OpenMP threads spinning against that load made loop
times vary several-fold; runbase's supervisor and flush thread still run alongside.
The JSON also records what the last ``runbase run`` mirrored (metric points and keys,
params), as proof that the automatic integration was active.

Each (framework, mode) runs ``--procs`` processes round-robin (so drifts in machine
load hit all modes alike), each timing ``--reps`` loops; reported are the medians of
all loops, the overhead against the baseline, and the median wall time of the whole
process (start-up and finalisation included, for information).

    .venv/bin/python benchmarks/bench_integrations.py [--procs 4] [--reps 3]
        [--frameworks lightning,keras,transformers,xgboost,lightgbm,sklearn] [--no-wandb]
        [--quick] [--update]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

WORKER = str(C.WORKERS_DIR / "integrations_worker.py")
FRAMEWORKS = ["lightning", "keras", "transformers", "xgboost", "lightgbm", "sklearn"]
WANDB_PIN = "wandb==0.31.0"
# the distributions each framework needs, installed in the W&B venv at the versions
# runbase's venv has (torch first, from its exact pin, so nothing pulls another build)
DISTS = ["lightning", "keras", "transformers", "accelerate", "xgboost-cpu", "lightgbm"]
DISTS += ["scikit-learn", "numpy", "tensorflow-cpu"]  # W&B's Keras callbacks import TF
NO_WANDB = {"sklearn"}
NO_AB = {"sklearn"}  # its hooks are global: no object to pass or leave out
REPS_SCALE = {"xgboost": 3, "lightgbm": 3, "sklearn": 5}  # short loops: more of them
TARGET_PCT = 5.0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _pip(bin_dir: Path, *reqs: str) -> bool:
    """pip install, serialized with other pip runs on this machine when flock exists."""
    cmd = [str(bin_dir / "python"), "-m", "pip", "install", "-q", *reqs]
    if shutil.which("flock"):
        cmd = ["flock", "/tmp/pip.lock", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"  pip install {' '.join(reqs)} failed:\n{p.stderr[-2000:]}", flush=True)
    return p.returncode == 0


def wandb_python() -> str | None:
    """The W&B venv's python with the frameworks installed (created on first use)."""
    torch_v = (_version("torch") or "").split("+")[0]
    pins = [f"{d}=={v}" for d in DISTS if (v := _version(d))]
    probe = "import wandb, torch, lightning, keras, transformers, xgboost, lightgbm, sklearn"
    bin_dir = C.ensure_venv("wandb-frameworks", WANDB_PIN, ["python", "-c", "import wandb"])
    if bin_dir is None:
        return None
    env = {**os.environ, "KERAS_BACKEND": "torch"}  # keras defaults to TensorFlow
    if subprocess.run(
        [str(bin_dir / "python"), "-c", probe], env=env, capture_output=True
    ).returncode:
        print("installing the frameworks into the W&B venv (once; a few minutes)...", flush=True)
        if not (_pip(bin_dir, f"torch=={torch_v}") and _pip(bin_dir, f"torch=={torch_v}", *pins)):
            return None
    return str(bin_dir / "python")


def worker_env(scratch: Path) -> dict[str, str]:
    return C.clean_env(
        KERAS_BACKEND="torch",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(scratch / "wandb"),
        WANDB_DISABLE_GIT="true",
        # one compute thread in every mode: on a small shared machine, BLAS/OpenMP
        # threads spinning against other load make loop times vary several-fold
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


def commands(
    fw: str, modes: list[str], wandb_py: str | None, reps: int, scratch: Path
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    env = worker_env(scratch)
    project = scratch / "project"  # runbase's project: only the worker script
    for mode in modes:
        # not .json: runbase would read a .json named on the command line as a config file
        result = scratch / f"{fw}-{mode}.result"
        if mode in ("runbase", "runbase-off", "ab"):
            off = ["--no-integrations"] if mode != "runbase" else []
            argv = [
                C.RUNBASE_CLI,
                "--store",
                str(scratch / "store"),
                "run",
                "--name",
                f"bench-{mode}",
                *off,
                "--",
                C.PYTHON,
                "worker.py",
                fw,
                "ab" if mode == "ab" else "none",
                str(reps),
                str(result),
            ]
        elif mode in ("wandb", "wandb-none"):
            assert wandb_py is not None
            worker_mode = "wandb" if mode == "wandb" else "none"
            argv = [wandb_py, "worker.py", fw, worker_mode, str(reps), str(result)]
        else:
            argv = [C.PYTHON, "worker.py", fw, "none", str(reps), str(result)]
        out[mode] = {"argv": argv, "env": env, "cwd": project, "result": result}
    return out


def bench(fw: str, modes: list[str], wandb_py: str | None, args: Any, scratch: Path) -> dict:
    cmds = commands(fw, modes, wandb_py, args.reps * REPS_SCALE.get(fw, 1), scratch)
    loops: dict[str, list[float]] = {m: [] for m in modes}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    ab_on: list[float] = []
    for _ in range(args.procs):
        for mode, spec in cmds.items():
            dt, _p = C.timed_run(spec["argv"], env=spec["env"], cwd=spec["cwd"], timeout=900)
            walls[mode].append(dt)
            got = json.loads(Path(spec["result"]).read_text())
            loops[mode].extend(got["loop_s"])
            ab_on.extend(got["loop_with_runbase_s"])
    out: dict[str, Any] = {"modes": {}}
    for mode in modes:
        out["modes"][mode] = {
            "loop_s": C.summarize(loops[mode]),
            "loop_samples_s": loops[mode],
            "process_wall_s": C.summarize(walls[mode]),
        }
    if "ab" in modes:
        out["modes"]["ab"]["loop_with_runbase_s"] = C.summarize(ab_on)
        out["modes"]["ab"]["loop_with_runbase_samples_s"] = ab_on
        # each loop with runbase's object against the loop just before it, without
        ratios = [on / off for on, off in zip(ab_on, loops["ab"], strict=True)]
        out["integration_ab_pct"] = (statistics.median(ratios) - 1) * 100
    out["mirrored"] = mirrored(scratch)
    base = statistics.median(loops["none"])
    out["runbase_overhead_pct"] = (statistics.median(loops["runbase"]) / base - 1) * 100
    off = statistics.median(loops["runbase-off"])
    out["runbase_off_overhead_pct"] = (off / base - 1) * 100
    out["integration_overhead_pct"] = (statistics.median(loops["runbase"]) / off - 1) * 100
    if "wandb" in modes:
        wbase = statistics.median(loops["wandb-none"])
        out["wandb_overhead_pct"] = (statistics.median(loops["wandb"]) / wbase - 1) * 100
    # the target is on what the mirroring itself adds to the loop: the in-process A/B
    # where there is one (the process-level columns carry machine noise of several %)
    out["target"] = C.target(out.get("integration_ab_pct", out["runbase_overhead_pct"]), TARGET_PCT)
    return out


def mirrored(scratch: Path) -> dict[str, Any]:
    """What the last automatic ``runbase run`` recorded: proof that the integration was
    active."""

    def cli(*argv: str) -> Any:
        p = subprocess.run(
            [C.RUNBASE_CLI, "--store", str(scratch / "store"), *argv, "--json"],
            capture_output=True,
            text=True,
            env=C.clean_env(),
        )
        return json.loads(p.stdout)

    run_id = next(r["id"] for r in cli("ls", "--limit", "50") if r["name"] == "bench-runbase")
    rec = cli("show", run_id)
    series = {k: v["count"] for k, v in rec["metrics"].items() if not k.startswith("sys/")}
    return {
        "metric_points": sum(series.values()),
        "metric_keys": sorted(series),
        "params": len(rec["params"]),
        "param_sources": sorted(set(rec["param_sources"].values())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=4, help="processes per framework and mode")
    ap.add_argument("--reps", type=int, default=3, help="timed loops per process")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--no-wandb", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 x 1 loop, no W&B")
    ap.add_argument(
        "--update",
        action="store_true",
        help="re-measure --frameworks only, keeping the others' results in the JSON",
    )
    args = ap.parse_args()
    if args.quick:
        args.procs, args.reps, args.no_wandb = 1, 1, True
    C.header("bench_integrations: framework integrations, training-loop overhead")
    frameworks = [f for f in args.frameworks.split(",") if f]
    wandb_py = None if args.no_wandb else wandb_python()
    if not args.no_wandb and wandb_py is None:
        print("W&B venv unavailable: W&B columns skipped", flush=True)

    scratch = C.scratch_dir("integrations")
    results: dict[str, Any] = {}
    t_start = time.perf_counter()
    try:
        (scratch / "project").mkdir()
        shutil.copy(WORKER, scratch / "project" / "worker.py")
        for fw in frameworks:
            modes = ["none", "runbase-off", "runbase"]
            if fw not in NO_AB:
                modes.append("ab")
            if wandb_py and fw not in NO_WANDB:
                modes += ["wandb-none", "wandb"]
            print(f"-- {fw}: {', '.join(modes)}", flush=True)
            results[fw] = bench(fw, modes, wandb_py, args, scratch)
            results[fw]["measured"] = {
                "date_utc": C.machine_info()["date_utc"],
                "loadavg": list(os.getloadavg()),
                "procs": args.procs,
                "reps": args.reps,
            }
    finally:
        C.rmtree(scratch)

    if args.update:  # keep the other frameworks' results of the previous run
        previous = C.RESULTS_DIR / "integrations.json"
        if previous.exists():
            kept = json.loads(previous.read_text()).get("results", {})
            results = {k: results.get(k, v) for k, v in kept.items()} | results

    rows = []
    for fw, r in results.items():
        m = r["modes"]

        def med(mode: str, m: dict[str, Any] = m) -> str:
            return f"{m[mode]['loop_s']['median']:.3f} s" if mode in m else "-"

        wb = r.get("wandb_overhead_pct")
        ab = r.get("integration_ab_pct")
        rows.append(
            [
                fw,
                med("none"),
                med("runbase-off"),
                med("runbase"),
                f"{r['runbase_overhead_pct']:+.1f}%",
                f"{r['integration_overhead_pct']:+.1f}%",
                "-" if ab is None else f"{ab:+.1f}%",
                r["target"],
                med("wandb-none"),
                med("wandb"),
                "-" if wb is None else f"{wb:+.1f}%",
                f"{m['none']['process_wall_s']['median']:.1f} / "
                f"{m['runbase']['process_wall_s']['median']:.1f} s",
            ]
        )
    C.print_table(
        [
            "framework",
            "loop alone",
            "runbase run, integrations off",
            "runbase run",
            "runbase +",
            "vs integrations off",
            "mirroring, in-process A/B",
            f"<= {TARGET_PCT:.0f}%",
            "loop alone (W&B venv)",
            "W&B offline",
            "W&B +",
            "process alone / runbase",
        ],
        rows,
        title=f"training-loop wall time, median of {args.procs} x {args.reps} loops",
    )
    path = C.write_result(
        "integrations",
        {
            "benchmark": "integrations",
            "machine": C.machine_info(),
            "config": {
                "procs": args.procs,
                "reps": args.reps,
                "target_pct": TARGET_PCT,
                "wandb": WANDB_PIN if wandb_py else None,
                "versions": {d: _version(d) for d in ["torch", *DISTS]},
            },
            "results": results,
            "seconds": time.perf_counter() - t_start,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
