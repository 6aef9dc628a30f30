"""Which metrics measure the result, and which the machine's speed; and which way a
result metric is better, as far as its name says.

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


# The last part of a metric's key (after "/" or "."), split at "_" and "-": a word that
# names an error or a cost means lower is better, one that names a score higher. A key
# with words of both kinds, or neither, has no known direction and is not judged.
_LOWER = frozenset(
    "loss error err rmse mse mae mape smape nll perplexity ppl wer cer fpr fnr "  # noqa: SIM905
    "regret cost distance brier logloss".split()
)
_HIGHER = frozenset(
    "acc accuracy auc auroc roc f1 f2 fbeta precision recall map ndcg mrr bleu rouge "  # noqa: SIM905
    "meteor r2 iou miou dice top1 top5 sensitivity specificity tpr tnr kappa mcc "
    "reward return".split()
)


def metric_direction(key: str) -> str | None:
    """``"higher"`` or ``"lower"`` (is better), guessed from the metric's name; None
    when the name does not say, or when it is a timing or system metric (how fast the
    machine ran is not the result)."""
    if is_timing_metric(key):
        return None
    words = set(re.split(r"[_\-]+", re.split(r"[/.]", key.lower())[-1]))
    lower, higher = bool(words & _LOWER), bool(words & _HIGHER)
    if lower == higher:
        return None
    return "lower" if lower else "higher"
