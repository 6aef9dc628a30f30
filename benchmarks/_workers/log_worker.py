"""Worker of bench_log.py: log N points the way a training loop does, sampling RSS.

    python log_worker.py --mode init --points 5000000 --out result.json
    runbase run -- python log_worker.py --mode run --points 5000000 --out result.json
    python log_worker.py --mode noop ...   (same loop, a no-op function: the ceiling)

``init``: the run is started here by ``runbase.init()`` and finished by
``runbase.finish()`` (timed: that is when the store finishes ingesting).
``run``: the process is the child of ``runbase run`` (attached by the bootstrap);
the parent times how long ``runbase run`` takes to return after the loop ends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def status_kib(field: str) -> int | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("init", "run", "noop", "ingest"), required=True)
    ap.add_argument("--points", type=int, required=True)
    ap.add_argument("--window", type=int, default=250_000, help="points between RSS/time samples")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    if args.mode == "ingest":
        return ingest_only(args)
    t_import = time.perf_counter()
    if args.mode == "noop":

        class _NoRunbase:
            @staticmethod
            def log(step=None, **metrics):  # same call shape as runbase.log
                pass

        runbase = _NoRunbase
        run_id = None
    else:
        import runbase
    t_import = time.perf_counter() - t_import

    t_init = time.perf_counter()
    if args.mode == "init":
        run = runbase.init(name="bench-log")
        run_id = run.id
    elif args.mode == "run":
        run_id = os.environ.get("RUNBASE_RUN_ID")
    t_init = time.perf_counter() - t_init
    if args.mode == "run":
        from runbase.tracking import tracker

        if tracker.active() is None:
            sys.exit("log_worker: not attached to a runbase run (bootstrap missing?)")

    tr = None
    if args.mode != "noop":
        from runbase.tracking import tracker as _tracker_mod

        tr = _tracker_mod.active()

    def buffered() -> int:  # entries logged but not yet written to the spool
        return (len(tr.buf) + tr._pending_entries) if tr is not None else 0

    n, w = args.points, args.window
    samples = []  # (points done, seconds since loop start, rss bytes, buffered entries)
    rss0 = rss()
    cpu0 = cpu()
    t0 = time.perf_counter()
    samples.append((0, 0.0, rss0, buffered()))
    i = 0
    while i < n:
        end = min(i + w, n)
        for i in range(i, end):  # noqa: B020 - the loop under test
            runbase.log(loss=i * 1e-6, step=i)
        i = end
        samples.append((i, time.perf_counter() - t0, rss(), buffered()))
    loop_s = time.perf_counter() - t0
    loop_cpu = cpu() - cpu0
    t_loop_end = time.time()
    hwm_before_finish = status_kib("VmHWM")

    finish_s = None
    if args.mode == "init":
        t1 = time.perf_counter()
        runbase.finish()
        finish_s = time.perf_counter() - t1

    out = {
        "mode": args.mode,
        "points": n,
        "run_id": run_id,
        "import_s": t_import,
        "init_s": t_init,
        "loop_s": loop_s,
        "loop_cpu_s": loop_cpu,
        "rate": n / loop_s,
        "t_loop_end": t_loop_end,
        "finish_s": finish_s,
        "rss_before_loop": rss0,
        "samples": samples,
        "vmhwm_kib_before_finish": hwm_before_finish,
        "vmhwm_kib_end": status_kib("VmHWM"),
    }
    with open(args.out, "w") as f:
        json.dump(out, f)


def ingest_only(args) -> None:
    """Ingestion alone: spool N points with a Tracker (no watcher, no supervisor), then
    time ``lifecycle.ingest_and_handle`` moving them into the store, in this process."""
    import runbase
    from runbase.records import lifecycle
    from runbase.store import Store
    from runbase.tracking import tracker

    store = Store.open(os.environ["RUNBASE_DIR"], create=True)
    run_id = lifecycle.create_run(store, command=["bench"], mode="api")
    t = tracker.Tracker(run_id, str(store.root))
    tracker.activate(t)
    for i in range(args.points):
        runbase.log(loss=i * 1e-6, step=i)
    t.close()
    tracker.deactivate()
    spool_bytes = sum(
        os.path.getsize(os.path.join(t.spool_dir, f)) for f in os.listdir(t.spool_dir)
    )
    rss0 = rss()
    try:
        with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
            f.write("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    t0 = time.perf_counter()
    res = lifecycle.ingest_and_handle(store, run_id)
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lifecycle.finalize(store, run_id, "finished", exit_code=0)
    finalize_s = time.perf_counter() - t0
    out = {
        "mode": "ingest",
        "points": args.points,
        "run_id": run_id,
        "ingested_points": res.points,
        "spool_bytes": spool_bytes,
        "ingest_s": ingest_s,
        "finalize_s": finalize_s,
        "ingest_rate": args.points / ingest_s,
        "rss_before_ingest": rss0,
        "vmhwm_kib_during_ingest": status_kib("VmHWM") if hwm_reset else None,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
