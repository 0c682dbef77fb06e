"""Classification metrics from label ids and probabilities, computed with NumPy.

Every score is a function of confusion matrices or of (weighted) ranked scores, so the same code
gives the point estimate (one matrix, unit weights) and every bootstrap resample (a batch of
matrices, resample counts as weights) without a Python loop per resample. The tests check each
number against scikit-learn.

Conventions: rows of a confusion matrix are true labels, columns predicted labels; a ratio whose
denominator is 0 counts as 0 (scikit-learn's ``zero_division=0``); macro averages run over *all*
labels, present in the split or not, so two splits or two experiments average over the same
classes. Balanced accuracy is the exception, as in scikit-learn: the mean recall over the classes
present in ``y_true``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Keys of the scalar metrics that classification_metrics returns beside per_class.
AVERAGES = ("micro", "macro", "weighted")


def confusion_matrix(
    y_true: Sequence[int] | IntArray, y_pred: Sequence[int] | IntArray, num_labels: int
) -> IntArray:
    """Counts ``[actual, predicted]`` in label-id order, shape ``(num_labels, num_labels)``."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.shape[0]} labels but y_pred {pred.shape[0]}")
    for name, ids in (("y_true", true), ("y_pred", pred)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(f"{name} holds a label id outside [0, {num_labels})")
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def weighted_confusion(
    y_true: IntArray, y_pred: IntArray, num_labels: int, weights: FloatArray
) -> FloatArray:
    """Confusion matrices under each row of ``weights`` (shape ``(B, n)``): ``(B, k, k)``.

    Row ``b`` counts example ``i`` ``weights[b, i]`` times; bootstrap counts give the confusion
    matrix of each resample.
    """
    k = num_labels
    code = y_true * k + y_pred
    out = np.zeros((weights.shape[0], k * k), dtype=np.float64)
    for c in np.unique(code):
        out[:, c] = weights[:, code == c].sum(axis=1)
    return out.reshape(-1, k, k)


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """Element-wise ``num / den`` with 0 where ``den`` is 0 (no warning, no NaN)."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion_scores(matrices: FloatArray) -> dict[str, FloatArray]:
    """Scalar scores of a batch of confusion matrices ``(B, k, k)``, each an array ``(B,)``.

    Also ``per_class_precision``/``recall``/``f1`` and ``support``, each ``(B, k)``.
    """
    m = np.asarray(matrices, dtype=np.float64)
    n = m.sum(axis=(1, 2))
    tp = np.diagonal(m, axis1=1, axis2=2)
    predicted = m.sum(axis=1)  # tp + fp per class, (B, k)
    support = m.sum(axis=2)  # tp + fn per class
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    # 2tp / (2tp + fp + fn): equals 2PR/(P+R) where defined, and 0 for a class never predicted
    # and never present (scikit-learn's definition since 1.3).
    f1 = _ratio(2 * tp, predicted + support)
    correct = tp.sum(axis=1)
    weight = _ratio(support, n[:, None])
    present = support > 0
    scores = {
        "accuracy": _ratio(correct, n),
        "balanced_accuracy": _ratio((recall * present).sum(axis=1), present.sum(axis=1)),
        # Single-label classification: every error is one fp and one fn, so the micro
        # averages all equal accuracy; kept for the reader who looks for them by name.
        "precision_micro": _ratio(correct, n),
        "recall_micro": _ratio(correct, n),
        "f1_micro": _ratio(correct, n),
        "precision_macro": precision.mean(axis=1),
        "recall_macro": recall.mean(axis=1),
        "f1_macro": f1.mean(axis=1),
        "precision_weighted": (precision * weight).sum(axis=1),
        "recall_weighted": (recall * weight).sum(axis=1),
        "f1_weighted": (f1 * weight).sum(axis=1),
        "mcc": _mcc(m, n, correct, predicted, support),
        "per_class_precision": precision,
        "per_class_recall": recall,
        "per_class_f1": f1,
        "support": support,
    }
    return scores


def _mcc(
    m: FloatArray, n: FloatArray, correct: FloatArray, predicted: FloatArray, support: FloatArray
) -> FloatArray:
    """Matthews correlation (Gorodkin's multi-class R_K), 0 where it is undefined."""
    del m
    cov_tp = correct * n - (support * predicted).sum(axis=1)
    cov_pp = n * n - (predicted * predicted).sum(axis=1)
    cov_tt = n * n - (support * support).sum(axis=1)
    den = np.sqrt(cov_tt * cov_pp)
    return _ratio(cov_tp, den)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default).

    Used for slices: it stays inside [0, 1] and behaves near 0 and 1, where small slices are.
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def classification_metrics(
    y_true: Sequence[int] | IntArray, y_pred: Sequence[int] | IntArray, label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, MCC, micro/macro/weighted P/R/F1 and per-class scores.

    Plain floats and ints, keyed so that ``dvc metrics show`` flattens them into short columns
    (``accuracy``, ``f1_macro``, ``per_class.yes.recall``).
    """
    k = len(label_names)
    matrix = confusion_matrix(y_true, y_pred, k).astype(np.float64)[None]
    s = confusion_scores(matrix)
    out: dict[str, Any] = {"n": int(matrix.sum())}
    for key in ("accuracy", "balanced_accuracy", "mcc"):
        out[key] = float(s[key][0])
    for avg in AVERAGES:
        for score in ("precision", "recall", "f1"):
            out[f"{score}_{avg}"] = float(s[f"{score}_{avg}"][0])
    out["per_class"] = {
        name: {
            "precision": float(s["per_class_precision"][0, i]),
            "recall": float(s["per_class_recall"][0, i]),
            "f1": float(s["per_class_f1"][0, i]),
            "support": int(s["support"][0, i]),
        }
        for i, name in enumerate(label_names)
    }
    return out


# --------------------------------------------------------------------------- ranking


def _grouped(
    target: IntArray, score: FloatArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Positive and negative weight per distinct score, highest score first: two ``(B, G)``."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    w = weights[:, order]
    t = target[order].astype(bool)
    pos = np.add.reduceat(np.where(t, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(t, 0.0, w), starts, axis=1)
    return pos, neg


def _unit(n: int) -> FloatArray:
    return np.ones((1, n), dtype=np.float64)


def roc_auc(
    target: Sequence[int] | IntArray,
    score: Sequence[float] | FloatArray,
    weights: FloatArray | None = None,
) -> FloatArray:
    """Area under the ROC curve per weight row, ``(B,)``; NaN where one class is absent.

    The Mann-Whitney form: the chance that a random positive scores above a random negative,
    ties counting one half (scikit-learn's trapezoidal area).
    """
    t = np.asarray(target, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    w = _unit(len(t)) if weights is None else weights
    pos, neg = _grouped(t, s, w)
    p, n = pos.sum(axis=1), neg.sum(axis=1)
    below = n[:, None] - np.cumsum(neg, axis=1)  # negatives scoring lower than the group
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((p > 0) & (n > 0), wins / (p * n), np.nan)


def average_precision(
    target: Sequence[int] | IntArray,
    score: Sequence[float] | FloatArray,
    weights: FloatArray | None = None,
) -> FloatArray:
    """Average precision (area under the precision-recall curve) per weight row, ``(B,)``.

    scikit-learn's step definition, ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds,
    not the trapezoid (which is optimistic); NaN where there is no positive.
    """
    t = np.asarray(target, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    w = _unit(len(t)) if weights is None else weights
    pos, neg = _grouped(t, s, w)
    p = pos.sum(axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = _ratio(tp, tp + fp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p > 0, (pos * precision).sum(axis=1) / p, np.nan)


def ranking_scores(
    y_true: IntArray,
    probabilities: FloatArray,
    positive: int | None,
    weights: FloatArray | None = None,
) -> dict[str, FloatArray]:
    """``roc_auc`` and ``pr_auc``: of ``positive`` for binary tasks, else one-vs-rest macro.

    The macro average runs over the classes for which the score is defined in that sample
    (a class absent from a split has no ROC curve); NaN when none is.
    """
    k = probabilities.shape[1]
    if positive is not None:
        target = (y_true == positive).astype(np.int64)
        score = probabilities[:, positive]
        return {
            "roc_auc": roc_auc(target, score, weights),
            "pr_auc": average_precision(target, score, weights),
        }
    rocs = np.stack(
        [roc_auc((y_true == c).astype(np.int64), probabilities[:, c], weights) for c in range(k)]
    )
    aps = np.stack(
        [
            average_precision((y_true == c).astype(np.int64), probabilities[:, c], weights)
            for c in range(k)
        ]
    )
    return {"roc_auc": _nanmean(rocs), "pr_auc": _nanmean(aps)}


def _nanmean(values: FloatArray) -> FloatArray:
    """Mean over axis 0 ignoring NaN; NaN (without a warning) where all are NaN."""
    ok = ~np.isnan(values)
    total = np.where(ok, values, 0.0).sum(axis=0)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def log_loss(y_true: Sequence[int] | IntArray, probabilities: FloatArray) -> float:
    """Mean negative log-likelihood of the true labels (probabilities clipped at 1e-15)."""
    true = np.asarray(y_true, dtype=np.int64)
    if true.size == 0:
        return 0.0
    p = probabilities[np.arange(true.size), true]
    return float(-np.log(np.clip(p, 1e-15, 1.0)).mean())


# --------------------------------------------------------------------------- thresholds


def threshold_predictions(probabilities: FloatArray, positive: int, threshold: float) -> IntArray:
    """Binary decisions: ``positive`` where its probability is >= ``threshold``, else the other."""
    other = 1 - positive
    return np.where(probabilities[:, positive] >= threshold, positive, other).astype(np.int64)


def best_f1_threshold(
    target: Sequence[int] | IntArray, score: Sequence[float] | FloatArray
) -> float:
    """The threshold (``score >= t`` is positive) that maximises the positive class's F1.

    Candidates are the distinct scores; ties go to the threshold nearest 0.5, so a flat optimum
    does not drift to an extreme. 0.5 when there is no positive example.
    """
    t = np.asarray(target, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    if t.sum() == 0 or s.size == 0:
        return 0.5
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # last index of each group
    tp = np.cumsum(t_sorted)[last]
    fp = (last + 1) - tp
    fn = t.sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    candidates = s_sorted[last]
    best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0, atol=1e-12))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


# --------------------------------------------------------------------------- calibration


def calibration_bins(
    confidence: Sequence[float] | FloatArray,
    correct: Sequence[bool] | npt.NDArray[np.bool_],
    n_bins: int = 10,
) -> list[dict[str, float | int]]:
    """Reliability-diagram data: equal-width confidence bins with mean confidence and accuracy.

    Empty bins are left out. Bin ``i`` holds confidences in ``(i/n_bins, (i+1)/n_bins]``, the
    first bin also 0; each record gives both edges (``bin_lower``, ``bin_upper``).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=bool)
    # ceil(c * n) - 1 puts a confidence exactly on an edge into the lower bin, 1.0 into the last.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins: list[dict[str, float | int]] = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        if count == 0:
            continue
        bins.append(
            {
                "bin_lower": b / n_bins,
                "bin_upper": (b + 1) / n_bins,
                "confidence": float(conf[mask].mean()),
                "accuracy": float(hit[mask].mean()),
                "n": count,
            }
        )
    return bins


def expected_calibration_error(bins: Sequence[dict[str, float | int]]) -> float:
    """ECE: the bin-size-weighted mean gap between confidence and accuracy."""
    total = sum(int(b["n"]) for b in bins)
    if total == 0:
        return 0.0
    return float(
        sum(int(b["n"]) * abs(float(b["confidence"]) - float(b["accuracy"])) for b in bins) / total
    )


def round_floats(value: Any, digits: int = 6) -> Any:
    """Round every float in a nested structure, so metric files diff cleanly in git."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value
