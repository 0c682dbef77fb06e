"""Plot data for DVC templates (confusion, ROC, precision-recall, calibration) and PNG images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.evaluation.metrics import FloatArray, IntArray
from nlpflow.io import atomic_file

MAX_CURVE_POINTS = 200


def confusion_records(
    y_true: Sequence[int] | IntArray, y_pred: Sequence[int] | IntArray, label_names: Sequence[str]
) -> list[dict[str, str]]:
    """One ``{"actual", "predicted"}`` record per example: the input of DVC's confusion template."""
    return [
        {"actual": label_names[int(t)], "predicted": label_names[int(p)]}
        for t, p in zip(y_true, y_pred, strict=True)
    ]


def downsample_indices(n: int, max_points: int = MAX_CURVE_POINTS) -> IntArray:
    """At most ``max_points`` evenly spaced indices of ``range(n)``, first and last kept."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _curve_inputs(
    y_true: Sequence[int] | IntArray, probabilities: FloatArray
) -> tuple[IntArray, FloatArray] | None:
    """Binary targets and scores: class 1 vs the rest for two labels, else micro one-vs-rest.

    None when the targets hold one class only: a ROC or PR curve is undefined then.
    """
    true = np.asarray(y_true, dtype=np.int64)
    k = probabilities.shape[1]
    if k == 2:
        target, score = (true == 1).astype(np.int64), probabilities[:, 1]
    else:
        # Micro average: every (example, class) pair is one binary decision.
        target = (true[:, None] == np.arange(k)[None, :]).astype(np.int64).ravel()
        score = probabilities.ravel()
    if target.size == 0 or target.min() == target.max():
        return None
    return target, score


def _finite_threshold(t: float) -> float:
    # scikit-learn starts ROC thresholds at +inf, which JSON cannot hold; no probability
    # exceeds 1, so 1.0 draws the same point.
    return float(t) if np.isfinite(t) else 1.0


def roc_points(
    y_true: Sequence[int] | IntArray,
    probabilities: FloatArray,
    max_points: int = MAX_CURVE_POINTS,
) -> list[dict[str, float]]:
    """``{"fpr", "tpr", "threshold"}`` records of the ROC curve, downsampled; [] if undefined."""
    from sklearn.metrics import roc_curve

    inputs = _curve_inputs(y_true, probabilities)
    if inputs is None:
        return []
    fpr, tpr, thresholds = roc_curve(*inputs)
    return [
        {"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": _finite_threshold(thresholds[i])}
        for i in downsample_indices(len(fpr), max_points)
    ]


def precision_recall_points(
    y_true: Sequence[int] | IntArray,
    probabilities: FloatArray,
    max_points: int = MAX_CURVE_POINTS,
) -> list[dict[str, float]]:
    """``{"precision", "recall", "threshold"}`` records of the PR curve; [] if undefined.

    scikit-learn's last point (precision 1, recall 0) has no threshold; it gets 1.0.
    """
    from sklearn.metrics import precision_recall_curve

    inputs = _curve_inputs(y_true, probabilities)
    if inputs is None:
        return []
    precision, recall, thresholds = precision_recall_curve(*inputs)
    thresholds = np.append(thresholds, 1.0)
    return [
        {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "threshold": float(thresholds[i]),
        }
        for i in downsample_indices(len(precision), max_points)
    ]


def save_confusion_png(
    path: str | Path, matrix: IntArray, label_names: Sequence[str], title: str
) -> None:
    """A confusion-matrix heat map with counts, written atomically as PNG."""
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(label_names)
    size = min(2.0 + 0.6 * k, 12.0)
    fig = Figure(figsize=(size + 1.0, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=list(label_names), rotation=45 if k > 4 else 0, ha="right")
    ax.set_yticks(range(k), labels=list(label_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    peak = int(matrix.max()) if matrix.size else 0
    if k <= 20:  # beyond that the numbers are unreadable anyway
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if peak and count > peak / 2 else "black"
            ax.text(j, i, str(int(count)), ha="center", va="center", color=colour, fontsize=9)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        # No "Software" metadata: the same matrix gives the same bytes on any matplotlib.
        fig.savefig(fh, format="png", metadata={"Software": None})


def split_plot_files(
    y_true: Sequence[int] | IntArray,
    probabilities: FloatArray,
    label_names: Sequence[str],
    calibration: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON plot files of one split, keyed by file stem (``confusion``, ``roc``, ...)."""
    y_pred = probabilities.argmax(axis=1)
    return {
        "confusion": confusion_records(y_true, y_pred, label_names),
        "roc": roc_points(y_true, probabilities),
        "precision_recall": precision_recall_points(y_true, probabilities),
        "calibration": calibration,
    }
