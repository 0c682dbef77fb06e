"""Classification metrics from label ids: accuracy, macro and per-class scores, calibration.

Computed with NumPy from the confusion matrix (the tests check every number against
scikit-learn), so the definitions are visible here: rows of the matrix are true labels, columns
predicted labels, and a ratio whose denominator is 0 counts as 0 (scikit-learn's
``zero_division=0``). Macro averages run over *all* labels, present in the split or not, so the
numbers of two splits or two experiments are averages over the same classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


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


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """Element-wise ``num / den`` with 0 where ``den`` is 0 (no warning, no NaN)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default).

    Chosen over the normal approximation because it stays inside [0, 1] and behaves at
    accuracies near 1, which small validation sets hit often.
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
    """Accuracy (with a 95% interval), macro precision/recall/F1 and per-class scores.

    Returns plain floats and ints, keyed so that ``dvc metrics show`` flattens them into short
    columns (``accuracy``, ``f1_macro``, ``per_class.yes.recall``).
    """
    k = len(label_names)
    matrix = confusion_matrix(y_true, y_pred, k).astype(np.float64)
    n = int(matrix.sum())
    tp = np.diag(matrix)
    predicted = matrix.sum(axis=0)  # tp + fp per class
    support = matrix.sum(axis=1)  # tp + fn per class
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    # 2tp / (2tp + fp + fn): equals 2PR/(P+R) where that is defined, and 0 for a class never
    # predicted and never present (scikit-learn's definition since 1.3).
    f1 = _ratio(2 * tp, predicted + support)
    correct = int(tp.sum())
    low, high = wilson_interval(correct, n)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": {"low": low, "high": high},
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
    }


def calibration_bins(
    confidence: Sequence[float] | FloatArray,
    correct: Sequence[bool] | npt.NDArray[np.bool_],
    n_bins: int = 10,
) -> list[dict[str, float | int]]:
    """Reliability-diagram data: equal-width confidence bins with mean confidence and accuracy.

    Empty bins are left out. Bin ``i`` holds confidences in ``(i/n_bins, (i+1)/n_bins]``, the
    first bin also 0.
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
