"""Worker of bench_ray.py: N trials of ``runbase run -- python -c pass`` one after the
other through an executor (``runbase.tracking.executor.make_executor``), timed in
process. Prints one JSON line: the executor's ``check()`` time, each trial's time from
the previous trial's end (the first: from the start of ``run``), return codes and where
each ran.

    python ray_overhead.py STORE PROJECT N local|ray
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from runbase.tracking.executor import Job, make_executor, runbase_run_argv

    store, project, n, on = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    jobs = [
        Job(
            argv=runbase_run_argv(store, "--no-code", "--", sys.executable, "-c", "pass"),
            cwd=project,
            label=f"pass-{i}",
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    executor = make_executor(on, jobs=1)
    executor.check()
    check_s = time.perf_counter() - t0
    ends: list[float] = []
    codes: list[int | None] = []
    where: list[str | None] = []

    def done(job: Job, _i: int, _n: int) -> None:
        ends.append(time.perf_counter())
        codes.append(job.returncode)
        where.append((job.executor or {}).get("node_id") or (job.executor or {}).get("kind"))

    t1 = time.perf_counter()
    interrupted = executor.run(iter(jobs), done, total=n)
    starts = [t1, *ends[:-1]]
    print(
        json.dumps(
            {
                "check_s": check_s,
                "trial_s": [e - s for s, e in zip(starts, ends, strict=True)],
                "total_s": time.perf_counter() - t1,
                "returncodes": codes,
                "where": where,
                "interrupted": interrupted,
                "slots": executor.slots,
            }
        ),  # fmt: skip
        flush=True,
    )


if __name__ == "__main__":
    main()
