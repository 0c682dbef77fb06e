"""Seeded bootstrap: percentile intervals of metrics, and paired intervals of a difference.

A resample is drawn as multinomial counts (how often each example is picked), so a metric of a
resample is the metric under those counts as weights. Every metric function here takes a batch
of weight rows ``(B, n)`` and returns one value per row, which makes 1,000 resamples of a few
thousand examples take well under a second. The same counts applied to two models' predictions
give the *paired* bootstrap of their difference: both are scored on the same resampled test set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from nlpflow.evaluation.metrics import FloatArray

# Resample rows per chunk are capped so a chunk's weight matrix stays near 16 MB.
CHUNK_CELLS = 2_000_000

# Metrics over a batch of weight rows ``(B, n)``: name -> one value per row (NaN: undefined).
BatchMetrics = Callable[[FloatArray], dict[str, FloatArray]]


def resample_weights(n: int, resamples: int, seed: int) -> Iterator[FloatArray]:
    """Chunks of bootstrap counts, ``(b, n)`` each, ``resamples`` rows in all, from ``seed``."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, CHUNK_CELLS // max(n, 1)))
    uniform = np.full(n, 1.0 / n)
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        yield rng.multinomial(n, uniform, size=b).astype(np.float64)
        done += b


def bootstrap_distribution(
    metrics: BatchMetrics, n: int, resamples: int, seed: int
) -> dict[str, FloatArray]:
    """The value of each metric on each of ``resamples`` resamples."""
    parts: dict[str, list[FloatArray]] = {}
    for weights in resample_weights(n, resamples, seed):
        for name, values in metrics(weights).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(values) for name, values in parts.items()}


def percentile_interval(values: FloatArray, level: float) -> dict[str, float] | None:
    """The central ``level`` percentile interval of ``values`` (NaN ignored); None if all NaN."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return {"low": float(low), "high": float(high)}


def bootstrap_intervals(
    metrics: BatchMetrics, n: int, resamples: int, seed: int, level: float
) -> dict[str, dict[str, float]]:
    """Percentile intervals of each metric; a metric undefined on every resample is left out."""
    if resamples <= 0 or n == 0:
        return {}
    out = {}
    for name, values in bootstrap_distribution(metrics, n, resamples, seed).items():
        interval = percentile_interval(values, level)
        if interval is not None:
            out[name] = interval
    return out


def paired_differences(
    metrics_a: BatchMetrics,
    metrics_b: BatchMetrics,
    n: int,
    resamples: int,
    seed: int,
    level: float,
    lower_is_better: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Per metric, the interval of ``B - A`` over shared resamples and ``p_not_better``.

    ``p_not_better`` is the share of resamples in which B does not beat A (difference <= 0,
    or >= 0 for the metrics named in ``lower_is_better``, errors such as RMSE): a one-sided
    bootstrap p-value for "B is better than A" on that metric.
    """
    if resamples <= 0 or n == 0:
        return {}
    diffs: dict[str, list[FloatArray]] = {}
    for weights in resample_weights(n, resamples, seed):
        a, b = metrics_a(weights), metrics_b(weights)
        for name in a.keys() & b.keys():
            diffs.setdefault(name, []).append(np.asarray(b[name] - a[name], dtype=np.float64))
    out = {}
    for name in sorted(diffs):
        values = np.concatenate(diffs[name])
        interval = percentile_interval(values, level)
        if interval is None:
            continue
        finite = values[~np.isnan(values)]
        not_better = finite >= 0 if name in lower_is_better else finite <= 0
        out[name] = {**interval, "p_not_better": float(not_better.mean())}
    return out
