"""Worker of bench_scale.py: many simulated trials publishing live from one process.

Each trial is what ``runbase run --publish`` does for a run while it goes on, with the
same code: a run in a local store (``lifecycle.create_run``), a spool the "training"
appends to (a ``tracker.Tracker`` without its own flush thread: this process writes
every trial's points once a second itself), ingested each second as the supervisor
does (``lifecycle.ingest_live``), and a real ``remote.publish.Publisher`` thread per
trial sending delta bundles every ``PUBLISH_EVERY`` s. When the time is up every trial
is finalized and ``Publisher.finish()`` pushes the whole run, as at the end of a run.

Protocol: prints ``ready`` once every run exists, waits for a line on stdin, runs for
``--duration`` s, writes its measurements as JSON to ``--out``.

    python scale_trials.py --store DIR --url URL --token T --trials 50 --duration 20
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from typing import Any

from runbase.core.spool import STEP_KEY, TIME_KEY
from runbase.records import lifecycle
from runbase.remote.client import Remote
from runbase.remote.publish import Publisher
from runbase.store import Store
from runbase.tracking.tracker import Tracker


class SpoolOnly(Tracker):
    """A trial's spool writer: this process flushes all trials once a second, so the
    per-tracker flush thread (a wake-up every 20 ms) would only burn the shared CPU."""

    def _start(self) -> None:
        self._open_spool()


class TimedPublisher(Publisher):
    """The real publisher; each POST of a delta is timed (what the server costs a trial)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.samples: list[tuple[float, float, int, bool]] = []  # (t, latency, points, ok)
        request = self.client.request

        def timed(method: str, path: str, body: Any = None, *ra: Any, **rk: Any) -> Any:
            points = _points(body) if path.endswith("/live") else -1
            t0 = time.time()
            try:
                out = request(method, path, body, *ra, **rk)
            except Exception:
                if points >= 0:
                    self.samples.append((t0, time.time() - t0, points, False))
                raise
            if points >= 0:
                self.samples.append((t0, time.time() - t0, points, True))
            return out

        self.client.request = timed  # type: ignore[method-assign]


def _points(body: Any) -> int:
    """Metric points in a delta bundle's body (its chunks' ``n``)."""
    try:
        return sum(int(c["n"]) for c in json.loads(body)["metric_chunks"])
    except (ValueError, KeyError, TypeError):
        return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1.0, help="points per second per key")
    ap.add_argument("--label", default="t")
    ap.add_argument("--project", default="default")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    store = Store.open(args.store, create=True)
    remote = Remote("bench", args.url, args.project, args.token)
    keys = [f"metric_{k}" for k in range(args.keys)]
    runs = [
        lifecycle.create_run(
            store,
            command=["python", "train.py", "--trial", str(i)],
            mode="run",
            name=f"{args.label}-{i}",
            tags={"sweep_index": str(i)},
        )
        for i in range(args.trials)
    ]
    spools = [SpoolOnly(r, str(store.root)) for r in runs]
    print("ready", flush=True)
    sys.stdin.readline()

    t_start = time.time()
    pubs = [TimedPublisher(store.root, remote, r) for r in runs]
    # trials start at random moments, so their ticks do not all fall at once (and a
    # window of the run is not cut at the same phase of every trial's ticks)
    rnd = random.Random(args.label)
    timers = [threading.Timer(rnd.uniform(0, p.every), p.start) for p in pubs]
    for t in timers:
        t.start()
    beats = [time.monotonic()] * len(runs)
    step = 0
    ingest_s = 0.0
    late = 0
    period = 1.0 / args.rate
    while time.time() < t_start + args.duration:
        t0 = time.time()
        for i, sp in enumerate(spools):
            entry: dict[str, Any] = {TIME_KEY: t0, STEP_KEY: step}
            for k, key in enumerate(keys):
                entry[key] = 1.0 / (step + 1 + i) + k
            sp.buf.append(entry)
            sp.flush()
            beats[i] = lifecycle.ingest_live(store, runs[i], beats[i])
        step += 1
        ingest_s += time.time() - t0
        wait = t0 + period - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1  # this process could not keep its trials' pace: said in the result
    t_end = time.time()
    for t in timers:
        t.join()
    stopper = [threading.Thread(target=p.stop) for p in pubs]
    for t in stopper:
        t.start()
    for t in stopper:
        t.join()
    for sp in spools:
        sp.close()
    finish = _finish_all(store, runs, pubs)
    samples = [p.samples for p in pubs]  # per trial
    out = {
        "trials": args.trials,
        "t_start": t_start,
        "t_end": t_end,
        "steps": step,
        "late_seconds": late,
        "ingest_busy_s": ingest_s,
        "points_logged": step * args.keys * args.trials,
        "samples": samples,
        "publisher_failures": sum(p.failures for p in pubs),
        **finish,
        "run_ids": runs,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    store.close()


def _finish_all(store: Store, runs: list[str], pubs: list[TimedPublisher]) -> dict[str, Any]:
    """Finalize every trial and push it whole (Publisher.finish), 8 at a time: the end of
    a run. Returns the push times and how many pushes failed."""
    for r in runs:
        lifecycle.finalize(store, r, "finished", exit_code=0)
    times: list[float] = []
    failed = [0]
    lock = threading.Lock()
    todo = list(pubs)

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                p = todo.pop()
            t0 = time.time()
            ok = p.finish(deadline=60.0)
            with lock:
                times.append(time.time() - t0)
                failed[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"finish_push_s": times, "finish_failed": failed[0]}


if __name__ == "__main__":
    main()
