"""Re-snapshotting unchanged data: is it one ``lstat`` per file?

2,000 files of 100 KiB (200 MB) in 20 directories, snapshotted with
``runbase.capture.files.snapshot_path(store, "data")`` (what ``--input data`` and the
end-of-run output scan call), in-process, store and data on the same file system:

* ``old files``: every mtime 10 minutes in the past (data that sat on disk);
* ``just written``: the snapshot right after the files were written, as a run's outputs
  are hashed when it ends (the next run reads them: ``prep`` then ``train``).

For each: the first snapshot (a fresh store: every byte hashed and stored), then the
same directory again, unchanged (median of 5): its time, its ratio to the first
(target <= 10 %), and how many files it had to hash again (stat-cache misses: 0 means
one ``lstat`` per file). ``--grain 2`` runs the same code with the stat cache's
pre-fix rule (no file modified within 2 s of a snapshot is cached) for the "before".

    .venv/bin/python benchmarks/bench_resnapshot.py [--files 2000] [--size 100000] [--grain 2] [--batch 500]

``read one by one``: the same files reported read one at a time by the audit hook, as
a program reading them does, noted by two runs as the supervisor ingests them
(``--batch`` events per ingest; ``--batch 1``: each on its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, rmtree, scratch_dir, write_result  # noqa: E402


def _write(root: Path, n: int, size: int, backdate: bool) -> list[Path]:
    paths = []
    old = time.time() - 600
    for i in range(n):
        p = root / f"d{i % 20:02d}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
        if backdate:
            os.utime(p, (old, old))
        paths.append(p)
    return paths


def _misses(store: object, paths: list[Path]) -> int:
    from runbase.store.statcache import StatCache

    cache = StatCache(store)
    return sum(cache.lookup(str(p), os.lstat(p)) is None for p in paths)


def _case(base: Path, name: str, n: int, size: int, backdate: bool) -> dict[str, object]:
    from runbase.capture.files import snapshot_path
    from runbase.store import Store

    work = base / name
    store = Store.open(work / "store", create=True)
    paths = _write(work / "data", n, size, backdate)
    t0 = time.perf_counter()
    first_oid = snapshot_path(store, str(work / "data"))
    first = time.perf_counter() - t0
    misses = _misses(store, paths)
    again = []
    for _ in range(5):
        t0 = time.perf_counter()
        oid = snapshot_path(store, str(work / "data"))
        again.append(time.perf_counter() - t0)
        assert oid == first_oid
    store.close()
    rmtree(work)
    unchanged = statistics.median(again)
    return {
        "case": name,
        "first_s": first,
        "unchanged_s": unchanged,
        "unchanged_first_s": again[0],
        "ratio": unchanged / first,
        "rehashed_files": misses,
    }


def _per_file(base: Path, n: int, size: int, dirs: int, batch: int) -> dict[str, object]:
    """The files read one by one by two runs (the audit hook's reports, noted as the
    supervisor ingests them: ``lifecycle.handle_events`` on ``batch`` events at a time,
    what a program reading that many files a second sends in one ingest): the first run
    hashes and stores each, the second finds them cached."""
    from runbase.records import lifecycle
    from runbase.records.ingest import IngestResult
    from runbase.store import Store

    work = base / f"per-file-{dirs}"
    store = Store.open(work / "store", create=True)
    root = str(work)
    old = time.time() - 600
    rels = []
    for i in range(n):
        p = work / "data" / f"d{i % dirs:02d}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
        os.utime(p, (old, old))
        rels.append((str(p.relative_to(work)), os.stat(p).st_mtime_ns))
    times = []
    for _ in range(3):
        run_id = lifecycle.create_run(store, command=["x"], mode="api", cwd=root)
        t0 = time.perf_counter()
        events = [  # as the audit hook reports a read: with its mtime
            {"\x00k": "file", "path": rel, "op": "r", "mtime_ns": mtime_ns}
            for rel, mtime_ns in rels
        ]
        for i in range(0, len(events), batch):
            lifecycle.handle_events(store, run_id, IngestResult(events=events[i : i + batch]))
        times.append(time.perf_counter() - t0)
        lifecycle.finalize(store, run_id, "finished", exit_code=0)
    store.close()
    rmtree(work)
    unchanged = statistics.median(times[1:])
    return {
        "case": f"read one by one, {dirs} dirs",
        "batch": batch,
        "first_s": times[0],
        "unchanged_s": unchanged,
        "unchanged_first_s": times[1],
        "ratio": unchanged / times[0],
        "rehashed_files": None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--grain", type=float, help="seconds: the stat cache's rule for every file")
    ap.add_argument(
        "--batch", type=int, default=500, help="file events per ingest (read one by one)"
    )
    args = ap.parse_args()
    from runbase.store import statcache

    if args.grain is not None:
        statcache._FINE_GRAIN_NS = statcache._COARSE_GRAIN_NS = int(args.grain * 1e9)
    header(f"re-snapshot of {args.files} unchanged files of {args.size} bytes")
    base = scratch_dir("resnapshot")
    rows = []
    try:
        for name, backdate in (("old files", True), ("just written", False)):
            r = _case(base, name.replace(" ", "-"), args.files, args.size, backdate)
            r["case"] = name
            rows.append(r)
            print(
                f"{name:13s} first {r['first_s']:.3f} s   unchanged {r['unchanged_s'] * 1000:6.1f} ms"
                f" (first of them {r['unchanged_first_s'] * 1000:6.1f} ms)   ratio {r['ratio']:.1%}"
                f"   files hashed again: {r['rehashed_files']}"
            )
        for dirs in (20, 1):
            r = _per_file(base, args.files, args.size, dirs, max(1, args.batch))
            rows.append(r)
            print(
                f"{r['case']:22s} first {r['first_s']:.3f} s   unchanged {r['unchanged_s']:.3f} s"
                f"   ratio {r['ratio']:.1%}"
            )
    finally:
        rmtree(base)
    suffix = "" if args.grain is None else f"-grain{args.grain:g}"
    write_result("resnapshot" + suffix, {"files": args.files, "size": args.size, "cases": rows})


if __name__ == "__main__":
    main()
