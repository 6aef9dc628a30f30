"""Target 1: ``runbase.log(loss=x, step=i)`` throughput, memory, and ingestion time.

For each size (5 M and 20 M points by default) and each way of starting a run:

* ``init``: the script calls ``runbase.init()`` and ``runbase.finish()``;
* ``run``:  the script runs under ``runbase run -- python script.py`` (no init call);
* ``noop``: the same loop calling an empty function (the interpreter's ceiling);

a fresh process logs the points in one loop, sampling its RSS (/proc/self/statm)
every 250 k points. Reported: points/s over the whole loop and the slowest 250 k
window, RSS before/peak/after the loop, VmHWM, the CPU the process used while
looping (the flush thread included), and the ingestion time: from the end of the
loop until ``finish()`` returns (init) or until ``runbase run`` exits with the run
finalized (run). The store is then read back to check that every point arrived.
Last, ingestion alone: a spool of 5 M points written by a Tracker, then
``lifecycle.ingest_and_handle`` timed in a process where nothing else runs.

    .venv/bin/python benchmarks/bench_log.py            # 5M x3, 20M x1 per mode
    .venv/bin/python benchmarks/bench_log.py --quick    # 1M x2
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

WORKER = str(C.WORKERS_DIR / "log_worker.py")


class _Sampler(threading.Thread):
    """Polls the peak RSS (VmHWM) of the ingesting process: the supervisor of
    ``runbase run`` or the watcher that ``runbase.init()`` starts."""

    def __init__(self, pid: int | None, needles: tuple[str, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.pid, self.needles = pid, needles
        self.peak_kib: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        pids: list[int] = [self.pid] if self.pid else []
        while not self.stop.wait(0.05):
            if not self.pid:
                pids = C.find_pids(*self.needles) or pids
            for p in pids:
                v = C.proc_status_kib(p, "VmHWM")
                if v is not None:
                    self.peak_kib = max(self.peak_kib or 0, v)


def one(mode: str, points: int) -> dict[str, Any]:
    tmp = C.scratch_dir(f"log-{mode}")
    try:
        store = tmp / "store"
        proj = tmp / "proj"
        proj.mkdir()
        out = tmp / "out.json"
        env = C.clean_env(RUNBASE_DIR=str(store))
        argv = [C.PYTHON, WORKER, "--mode", mode, "--points", str(points), "--out", str(out)]
        if mode == "run":
            argv = [C.RUNBASE_CLI, "run", "--", *argv]
        import subprocess

        p = subprocess.Popen(
            argv,
            env=env,
            cwd=proj,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        sampler = None
        if mode == "run":
            sampler = _Sampler(p.pid)
        elif mode == "init":
            sampler = _Sampler(None, ("runbase.tracking._watcher", str(store)))
        if sampler:
            sampler.start()
        stdout, stderr = p.communicate(timeout=900)
        t_exit = time.time()
        if sampler:
            if mode == "init":
                time.sleep(1.5)  # the watcher notices the finalized run within ~1 s
            sampler.stop.set()
            sampler.join()
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{mode} worker failed ({p.returncode}): {stderr.decode(errors='replace')[-3000:]}"
            )
        r = json.loads(out.read_text())
        r["proc_exit_after_loop_s"] = t_exit - r["t_loop_end"]
        if mode == "run":
            r["ingest_s"] = r[
                "proc_exit_after_loop_s"
            ]  # until `runbase run` returned, run finalized
        elif mode == "init":
            r["ingest_s"] = r["finish_s"]
        r["ingester_peak_rss_kib"] = sampler.peak_kib if sampler else None
        samples = r.pop("samples")
        rates = []
        for (n0, t0, *_), (n1, t1, *_) in zip(samples, samples[1:], strict=False):
            if t1 > t0:
                rates.append((n1 - n0) / (t1 - t0))
        rss_vals = [s[2] for s in samples]
        r["window_rate_min"] = min(rates) if rates else None
        r["window_rate_median"] = statistics.median(rates) if rates else None
        r["rss_peak_sampled"] = max(rss_vals)
        r["rss_end_loop"] = rss_vals[-1]
        r["rss_growth"] = max(rss_vals) - rss_vals[0]
        # flat memory: compare the second half of the loop with the first
        half = len(rss_vals) // 2
        r["rss_max_first_half"] = max(rss_vals[: half + 1])
        r["rss_max_second_half"] = max(rss_vals[half:])
        r["buffered_max"] = max(s[3] for s in samples)
        r["buffered_median"] = statistics.median(s[3] for s in samples)
        r["rss_samples_mib"] = [
            round(v / 2**20, 1) for v in rss_vals[:: max(1, len(rss_vals) // 20)]
        ]
        if mode != "noop":
            r.update(_verify(store, r["run_id"], points))
        return r
    finally:
        C.rmtree(tmp)


def ingest_only(points: int) -> dict[str, Any]:
    tmp = C.scratch_dir("ingest")
    try:
        out = tmp / "out.json"
        C.timed_run(
            [C.PYTHON, WORKER, "--mode", "ingest", "--points", str(points), "--out", str(out)],
            env=C.clean_env(RUNBASE_DIR=str(tmp / "store")),
            cwd=tmp,
            timeout=900,
        )
        r = json.loads(out.read_text())
        r.update(_verify(tmp / "store", r["run_id"], points))
        return r
    finally:
        C.rmtree(tmp)


def _verify(store: Path, run_id: str, points: int) -> dict[str, Any]:
    sys.path.insert(0, str(C.REPO_DIR / "src"))
    import runbase

    view = runbase.get_run(run_id, store=str(store))
    m = view.metrics.get("loss") or {}
    ok = view.status == "finished" and m.get("count") == points and m.get("step") == points - 1
    return {"stored_status": view.status, "stored_points": m.get("count"), "stored_ok": ok}


def _median_of(rs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1 M points x 2 per mode (a smoke test)")
    ap.add_argument(
        "--sizes", default=None, help="comma-separated point counts (default 5000000,20000000)"
    )
    ap.add_argument("--reps", default=None, help="comma-separated repeats per size (default 3,1)")
    ap.add_argument("--modes", default="noop,init,run")
    ap.add_argument(
        "--ingest-points",
        type=int,
        default=None,
        help="ingestion-alone case (default 5M; 0 = skip)",
    )
    ap.add_argument("--ingest-reps", type=int, default=None)
    args = ap.parse_args()
    sizes = [1_000_000] if args.quick else [5_000_000, 20_000_000]
    reps = [2] if args.quick else [3, 1]
    if args.sizes:
        sizes = [int(float(x)) for x in args.sizes.split(",")]
        reps = [int(x) for x in args.reps.split(",")] if args.reps else [1] * len(sizes)
    modes = args.modes.split(",")
    if args.ingest_points is None:
        args.ingest_points = 1_000_000 if args.quick else 5_000_000
    if args.ingest_reps is None:
        args.ingest_reps = 1 if args.quick else 3

    C.header("bench_log: runbase.log() throughput, memory, ingestion")
    runs: list[dict[str, Any]] = []
    for size, rep in zip(sizes, reps, strict=False):
        for k in range(rep):
            for mode in modes:
                r = one(mode, size)
                runs.append(r)
                print(
                    f"  {mode:5s} {size / 1e6:5.1f}M rep {k + 1}: {C.rate(r['rate'])} "
                    f"(slowest window {C.rate(r['window_rate_min'])}), ingest {C.ms(r.get('ingest_s'))}, "
                    f"RSS {C.mib(r['rss_before_loop'])} -> peak {C.mib(r['rss_peak_sampled'])}, "
                    f"stored_ok={r.get('stored_ok', '-')}",
                    flush=True,
                )

    summary = []
    for size in sizes:
        for mode in modes:
            rs = [r for r in runs if r["points"] == size and r["mode"] == mode]
            if not rs:
                continue
            med = functools.partial(_median_of, rs)
            summary.append(
                {
                    "mode": mode,
                    "points": size,
                    "reps": len(rs),
                    "rate_median": med("rate"),
                    "window_rate_min": min(r["window_rate_min"] for r in rs),
                    "loop_cpu_per_wall": med("loop_cpu_s") / med("loop_s"),
                    "ingest_s_median": med("ingest_s"),
                    "proc_exit_after_loop_s_median": med("proc_exit_after_loop_s"),
                    "rss_before_loop_max": max(r["rss_before_loop"] for r in rs),
                    "rss_peak_max": max(r["rss_peak_sampled"] for r in rs),
                    "rss_growth_max": max(r["rss_growth"] for r in rs),
                    "rss_max_first_half": max(r["rss_max_first_half"] for r in rs),
                    "rss_max_second_half": max(r["rss_max_second_half"] for r in rs),
                    "buffered_max": max(r["buffered_max"] for r in rs),
                    "vmhwm_before_finish_kib_max": max(
                        r["vmhwm_kib_before_finish"] or 0 for r in rs
                    ),
                    "vmhwm_kib_max": max(r["vmhwm_kib_end"] or 0 for r in rs),
                    "ingester_peak_rss_kib_max": max(
                        (r["ingester_peak_rss_kib"] or 0 for r in rs), default=None
                    )
                    or None,
                    "stored_ok": all(r.get("stored_ok", True) for r in rs),
                }
            )
    rows = []
    for s in summary:
        rows.append(
            [
                s["mode"],
                f"{s['points'] / 1e6:g}M",
                s["reps"],
                C.rate(s["rate_median"]),
                C.rate(s["window_rate_min"]),
                f"{s['loop_cpu_per_wall']:.2f}",
                C.mib(s["rss_before_loop_max"]),
                C.mib(s["rss_max_first_half"]),
                C.mib(s["rss_max_second_half"]),
                f"{C.mib(s['vmhwm_before_finish_kib_max'] * 1024)} / {C.mib(s['vmhwm_kib_max'] * 1024)}",
                f"{s['buffered_max'] / 1e3:.0f}k",
                "-" if s["mode"] == "noop" else f"{s['ingest_s_median']:.2f} s",
                C.mib(s["ingester_peak_rss_kib_max"] * 1024)
                if s["ingester_peak_rss_kib_max"]
                else "-",
                "-" if s["mode"] == "noop" else ("yes" if s["stored_ok"] else "NO"),
                "-"
                if s["mode"] == "noop"
                else C.target(s["rate_median"], 1e6, higher_is_better=True),
            ]
        )
    C.print_table(
        [
            "mode",
            "points",
            "n",
            "rate (median)",
            "slowest 250k",
            "cpu/wall",
            "RSS start",
            "RSS max 1st half",
            "RSS max 2nd half",
            "VmHWM loop / exit",
            "max unflushed",
            "ingest after loop",
            "ingester VmHWM",
            "all stored",
            ">=1M/s",
        ],
        rows,
        title="runbase.log(loss=x, step=i) in one loop (medians; RSS/VmHWM: max over repeats)",
    )
    print(
        "ingest after loop: init = runbase.finish() duration; run = loop end -> `runbase run` exited (run finalized)"
    )
    print(
        "VmHWM loop / exit: the training process's peak RSS up to the end of the loop / at exit (init: finish() "
        "ingests the backlog in the training process)"
    )
    ing = []
    if args.ingest_points:
        for _ in range(args.ingest_reps):
            ing.append(ingest_only(args.ingest_points))
        C.print_table(
            [
                "points",
                "n",
                "spool size",
                "ingest (median)",
                "rate",
                "finalize",
                "VmHWM during ingest",
                "all stored",
            ],
            [
                [
                    f"{args.ingest_points / 1e6:g}M",
                    len(ing),
                    C.mib(ing[0]["spool_bytes"]),
                    f"{statistics.median(r['ingest_s'] for r in ing):.2f} s",
                    C.rate(statistics.median(r["ingest_rate"] for r in ing)),
                    C.ms(statistics.median(r["finalize_s"] for r in ing)),
                    C.mib(max(r["vmhwm_kib_during_ingest"] or 0 for r in ing) * 1024),
                    "yes" if all(r["stored_ok"] for r in ing) else "NO",
                ]
            ],
            title="ingestion alone: lifecycle.ingest_and_handle() of a finished spool, nothing else running",
        )
    path = C.write_result(
        "log",
        {
            "benchmark": "log",
            "machine": C.machine_info(),
            "summary": summary,
            "runs": runs,
            "ingest_only": ing,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
