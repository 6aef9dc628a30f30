"""Which metrics measure the result, and which the machine's speed.

One rule for every part that compares runs by their metrics: ``reproduce`` leaves
timing metrics out of its verdict, ``explain`` never picks one as the metric to
explain. It lives here, below both (analysis/ is imported by tracking/).
"""

from __future__ import annotations

import re

from runbase.capture.sysmetrics import is_system_metric

# Wall-clock figures, by the last part of the key (after "/" or "."): how fast the
# machine ran, not what the model learned (train_runtime, eval_samples_per_second,
# epoch_time, fit_time, step_time_ms, timestamp, throughput, it/s). System metrics
# (sys/*: CPU, memory, GPU load) are the machine's too.
TIMING_NAME = re.compile(
    r"(?:^|_)(?:time|times|timestamp|runtime|duration|elapsed|seconds|secs?|ms|walltime"
    r"|throughput|fps)$|_per_(?:second|sec|s)$"
)


def is_timing_metric(key: str) -> bool:
    """Whether a metric measures time or speed rather than the result: the one rule
    ``reproduce`` uses to leave a metric out of its verdict (docs/reproduce.md) and
    ``explain`` uses to leave it out of its choice of metric."""
    name = key.lower()
    if is_system_metric(key) or name.endswith("/s"):  # it/s, samples/s
        return True
    return bool(TIMING_NAME.search(re.split(r"[/.]", name)[-1]))
