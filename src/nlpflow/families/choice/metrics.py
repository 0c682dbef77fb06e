"""Multiple-choice metrics: accuracy with a bootstrap interval, accuracy per gold position.

Scores are ``(n, N)``: the model's option probabilities, or a heuristic baseline's scores (the
option's length, its overlap with the context). The chosen option is the highest score. **Ties
share the credit**: a row whose right option is one of k options tied at the top counts 1/k
(the expected accuracy of breaking the tie at random), so a heuristic that cannot tell the
options apart scores chance, not the position bias of a tie-break rule. A model's
probabilities practically never tie, and then this is plain accuracy.

Accuracy per gold position (the rows whose right option is option j, from 0) shows a model or
a baseline that leans on where the answer stands; ``predicted_share`` is how often each
position is chosen (a tie of k options counts 1/k for each). Intervals come from the
project's seeded bootstrap (:mod:`nlpflow.evaluation.bootstrap`), and the margin of the model
over a baseline from the paired bootstrap (both scored on the same resamples).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nlpflow.evaluation.bootstrap import (
    BatchMetrics,
    bootstrap_intervals,
    paired_differences,
)
from nlpflow.evaluation.metrics import FloatArray, IntArray

# Probabilities are clipped here before the log (as scikit-learn clips to its dtype's eps).
LOG_EPS = 1e-15


def _check(scores: FloatArray, labels: IntArray) -> tuple[FloatArray, IntArray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.ndim != 2 or y.shape != (s.shape[0],):
        raise ValueError(f"scores {s.shape} and labels {y.shape}: expected (n, N) and (n,)")
    if y.size and (y.min() < 0 or y.max() >= s.shape[1]):
        raise ValueError(f"a label is outside [0, {s.shape[1]})")
    if np.isnan(s).any():
        raise ValueError("scores hold NaN")
    return s, y


def credit(scores: FloatArray, labels: IntArray) -> FloatArray:
    """Per row, ``1/k`` when the right option is among the ``k`` top-scored options, else 0:
    ``(n,)`` float."""
    s, y = _check(scores, labels)
    if s.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    top = s == s.max(axis=1, keepdims=True)  # (n, N)
    return top[np.arange(len(y)), y] / top.sum(axis=1)


def chosen(scores: FloatArray) -> IntArray:
    """The chosen option of each row: the highest score (the first of tied ones), ``(n,)``."""
    return np.asarray(scores, dtype=np.float64).argmax(axis=1).astype(np.int64)


def batch_metrics(scores: FloatArray, labels: IntArray, positions: bool = True) -> BatchMetrics:
    """Accuracy and (with ``positions``) accuracy per gold position (``position_<j>``) under
    bootstrap weights ``(B, n)``: one value per weight row, NaN where a resample has no row
    with its answer at j."""
    s, y = _check(scores, labels)
    got = credit(s, y)
    masks = [(y == j).astype(np.float64) for j in range(s.shape[1])] if positions else []

    def metrics(weights: FloatArray) -> dict[str, FloatArray]:
        total = weights.sum(axis=1)
        out = {"accuracy": _divide(weights @ got, total)}
        for j, mask in enumerate(masks):
            out[f"position_{j}"] = _divide(weights @ (got * mask), weights @ mask)
        return out

    return metrics


def _divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """``num / den`` with NaN where ``den`` is 0 (a resample without that position)."""
    out = np.full(np.shape(num), np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def choice_metrics(
    scores: FloatArray,
    labels: IntArray,
    probabilities: bool = True,
    resamples: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The metrics of one split.

    ``scores`` ``(n, N)``, ``labels`` ``(n,)`` (the right option's index). Returns ``n``,
    ``accuracy``, ``log_loss`` (only when ``probabilities``: rows of ``scores`` sum to 1; the
    mean of ``-ln p(right option)``, natural log, probabilities clipped at 1e-15),
    ``per_position`` (``{"j": {"support", "accuracy", "predicted_share"}}``, accuracy None where
    no row has its answer at j) and, when ``resamples`` > 0, ``ci`` (``{"accuracy": {"low",
    "high"}}``) with each position's interval under ``per_position[j]["ci"]``.

    Raises:
        ValueError: shapes that disagree, a label outside ``[0, N)``, NaN scores, or (with
            ``probabilities``) rows that do not sum to 1.
    """
    s, y = _check(scores, labels)
    n, width = s.shape
    got = credit(s, y)
    # Each row's choice, as a share over its tied top options (1 for a model's argmax).
    top = s == s.max(axis=1, keepdims=True) if n else np.zeros((0, width), dtype=bool)
    picked_share = top / np.maximum(top.sum(axis=1, keepdims=True), 1)
    out: dict[str, Any] = {"n": int(n), "accuracy": float(got.mean()) if n else 0.0}
    if probabilities:
        if n and not np.allclose(s.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("probabilities of a row do not sum to 1")
        p_right = np.clip(s[np.arange(n), y], LOG_EPS, 1.0)
        out["log_loss"] = float(-np.log(p_right).mean()) if n else 0.0
    per_position: dict[str, dict[str, Any]] = {}
    for j in range(width):
        mask = y == j
        per_position[str(j)] = {
            "support": int(mask.sum()),
            "accuracy": float(got[mask].mean()) if mask.any() else None,
            "predicted_share": float(picked_share[:, j].mean()) if n else 0.0,
        }
    out["per_position"] = per_position
    if resamples > 0 and n:
        ci = bootstrap_intervals(batch_metrics(s, y), n, resamples, seed, level)
        out["ci"] = {"accuracy": ci["accuracy"]} if "accuracy" in ci else {}
        for j in range(width):
            if f"position_{j}" in ci:
                per_position[str(j)]["ci"] = ci[f"position_{j}"]
    return out


def margin_over(
    model_scores: FloatArray,
    baseline_scores: FloatArray,
    labels: IntArray,
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """The model's accuracy minus a baseline's on the same rows: ``accuracy`` (the point
    difference) and, with ``resamples`` > 0, ``ci`` (``low``, ``high``, ``p_not_better``: the
    share of paired resamples where the model does not beat the baseline)."""
    diff = float(credit(model_scores, labels).mean() - credit(baseline_scores, labels).mean())
    out: dict[str, Any] = {"accuracy": diff}
    n = len(np.asarray(labels))
    if resamples > 0 and n:
        paired = paired_differences(
            batch_metrics(baseline_scores, labels, positions=False),
            batch_metrics(model_scores, labels, positions=False),
            n,
            resamples,
            seed,
            level,
        )
        if "accuracy" in paired:
            out["ci"] = paired["accuracy"]
    return out
