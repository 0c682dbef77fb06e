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
    y_true: Sequence[int] | IntArray, probabilities: FloatArray, positive: int | None = None
) -> tuple[IntArray, FloatArray] | None:
    """Binary targets and scores: the positive class vs the rest for two labels (class 1
    unless ``positive`` says otherwise), else micro one-vs-rest.

    None when the targets hold one class only: a ROC or PR curve is undefined then.
    """
    true = np.asarray(y_true, dtype=np.int64)
    k = probabilities.shape[1]
    if k == 2:
        pos = 1 if positive is None else positive
        target, score = (true == pos).astype(np.int64), probabilities[:, pos]
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
    positive: int | None = None,
) -> list[dict[str, float]]:
    """``{"fpr", "tpr", "threshold"}`` records of the ROC curve, downsampled; [] if undefined."""
    from sklearn.metrics import roc_curve

    inputs = _curve_inputs(y_true, probabilities, positive)
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
    positive: int | None = None,
) -> list[dict[str, float]]:
    """``{"precision", "recall", "threshold"}`` records of the PR curve; [] if undefined.

    scikit-learn's last point (precision 1, recall 0) has no threshold; it gets 1.0.
    """
    from sklearn.metrics import precision_recall_curve

    inputs = _curve_inputs(y_true, probabilities, positive)
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


def _figure(width: float, height: float) -> Any:
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        # No "Software" metadata: the same data give the same bytes on any matplotlib.
        fig.savefig(fh, format="png", metadata={"Software": None})


def save_confusion_png(
    path: str | Path,
    matrix: IntArray,
    label_names: Sequence[str],
    title: str,
    normalize: bool = False,
) -> None:
    """A confusion-matrix heat map with counts (or row shares: recall per true label), as PNG."""
    k = len(label_names)
    counts = np.asarray(matrix, dtype=np.float64)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    else:
        values = counts
    size = min(2.0 + 0.6 * k, 12.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=list(label_names), rotation=45 if k > 4 else 0, ha="right")
    ax.set_yticks(range(k), labels=list(label_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    peak = float(values.max()) if values.size else 0.0
    if k <= 20:  # beyond that the numbers are unreadable anyway
        for (i, j), value in np.ndenumerate(values):
            colour = "white" if peak and value > peak / 2 else "black"
            text = f"{value:.2f}" if normalize else str(int(value))
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
    _save_png(fig, path)


def save_curve_png(
    path: str | Path,
    points: Sequence[dict[str, float]],
    x: str,
    y: str,
    title: str,
    reference: tuple[tuple[float, float], tuple[float, float], str] | None = None,
    marker: bool = False,
) -> None:
    """A line plot of ``points[x]`` against ``points[y]`` on the unit square, as PNG.

    ``reference`` is a dashed line ``((x0, x1), (y0, y1), label)``: the diagonal of a random
    ROC, the positive rate of a random precision-recall curve, perfect calibration.
    """
    fig = _figure(5.0, 4.5)
    ax = fig.add_subplot()
    if points:
        ax.plot(
            [p[x] for p in points],
            [p[y] for p in points],
            marker="o" if marker else None,
            label="model",
        )
    else:
        ax.text(0.5, 0.5, "undefined: one class only", ha="center", va="center")
    if reference is not None:
        xs, ys, label = reference
        ax.plot(xs, ys, linestyle="--", color="grey", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _save_png(fig, path)


def save_calibration_png(
    path: str | Path, bins: Sequence[dict[str, Any]], title: str = "Calibration"
) -> None:
    """``calibration_figure`` as PNG."""
    _save_png(calibration_figure(bins, title), path)


def calibration_figure(bins: Sequence[dict[str, Any]], title: str = "Calibration") -> Any:
    """A reliability diagram over a confidence histogram (a matplotlib Figure); both on [0, 1].

    ``bins`` are ``calibration_bins`` records (``bin_lower``, ``bin_upper``, mean
    ``confidence``, ``accuracy``, ``n``; empty bins left out). The top panel draws each bin's
    accuracy as a bar over its confidence range, its mean confidence against its accuracy as a
    point labelled with its count, and the diagonal of perfect calibration; the bottom panel
    the number of examples per bin. A model whose every prediction has about the same
    confidence still shows its one bin against the diagonal.
    """
    fig = _figure(5.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot((0, 1), (0, 1), linestyle="--", color="grey", label="perfectly calibrated")
    lower = [float(b["bin_lower"]) for b in bins]
    width = [float(b["bin_upper"]) - float(b["bin_lower"]) for b in bins]
    counts = [int(b["n"]) for b in bins]
    if bins:
        top.bar(
            lower, [float(b["accuracy"]) for b in bins], width=width, align="edge",
            color="#4a90d9", alpha=0.3, edgecolor="#4a90d9", label="accuracy per bin",
        )  # fmt: skip
        top.scatter(
            [float(b["confidence"]) for b in bins],
            [float(b["accuracy"]) for b in bins],
            s=[20 + 200 * c / max(counts) for c in counts],
            color="#1f4e8c",
            zorder=3,
            label="mean confidence",
        )
        for b in bins:
            top.annotate(
                f"n={int(b['n'])}",
                (float(b["confidence"]), float(b["accuracy"])),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        bottom.bar(lower, counts, width=width, align="edge", color="grey", edgecolor="white")
    else:
        top.text(0.5, 0.5, "no predictions", ha="center", va="center")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.05)
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (predicted class probability)")
    bottom.set_ylabel("examples")
    bottom.grid(alpha=0.3)
    return fig


def save_split_pngs(
    directory: Path,
    split: str,
    matrix: IntArray,
    label_names: Sequence[str],
    files: dict[str, Any],
    positive_rate: float | None,
) -> None:
    """The PNG images of one split: confusion (counts and normalised), ROC, PR, calibration."""
    save_confusion_png(
        directory / f"confusion_{split}.png", matrix, label_names, f"Confusion matrix ({split})"
    )
    save_confusion_png(
        directory / f"confusion_normalized_{split}.png",
        matrix,
        label_names,
        f"Confusion matrix, share of each true label ({split})",
        normalize=True,
    )
    save_curve_png(
        directory / f"roc_{split}.png",
        files["roc"],
        "fpr",
        "tpr",
        f"ROC ({split})",
        ((0, 1), (0, 1), "random"),
    )
    rate = 0.0 if positive_rate is None else positive_rate
    save_curve_png(
        directory / f"precision_recall_{split}.png",
        files["precision_recall"],
        "recall",
        "precision",
        f"Precision-recall ({split})",
        ((0, 1), (rate, rate), "random (positive rate)"),
    )
    save_calibration_png(
        directory / f"calibration_{split}.png", files["calibration"], f"Calibration ({split})"
    )


def split_plot_files(
    y_true: Sequence[int] | IntArray,
    probabilities: FloatArray,
    label_names: Sequence[str],
    calibration: list[dict[str, Any]],
    predicted: Sequence[int] | IntArray | None = None,
    positive: int | None = None,
) -> dict[str, Any]:
    """The JSON plot files of one split, keyed by file stem (``confusion``, ``roc``, ...)."""
    y_pred = probabilities.argmax(axis=1) if predicted is None else predicted
    return {
        "confusion": confusion_records(y_true, y_pred, label_names),
        "roc": roc_points(y_true, probabilities, positive=positive),
        "precision_recall": precision_recall_points(y_true, probabilities, positive=positive),
        "calibration": calibration,
    }


def save_slices_png(
    path: str | Path,
    slices: dict[str, dict[str, Any]],
    title: str = "Accuracy by slice",
    level: float = 0.95,
) -> None:
    """Horizontal bars of accuracy per slice with Wilson intervals at confidence ``level``,
    one panel per family.

    ``slices`` maps family -> value -> an object with ``n``, ``accuracy`` and
    ``interval(level)`` (the error analysis's SliceStats).
    """
    families = [f for f, values in slices.items() if values]
    heights = [max(1, len(slices[f])) for f in families]
    fig = _figure(7.0, 1.0 + 0.35 * sum(heights) + 0.6 * len(families))
    if not families:
        _save_png(fig, path)
        return
    axes = fig.subplots(len(families), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, family in zip(axes[:, 0], families, strict=True):
        values = slices[family]
        names = list(values)
        acc = [values[k].accuracy for k in names]
        bounds = [values[k].interval(level) for k in names]
        lows = [max(0.0, a - low) for a, (low, _) in zip(acc, bounds, strict=True)]
        highs = [max(0.0, high - a) for a, (_, high) in zip(acc, bounds, strict=True)]
        worst = min(acc)
        colours = ["#d9534f" if a == worst and len(set(acc)) > 1 else "#4a90d9" for a in acc]
        ax.barh(range(len(names)), acc, xerr=[lows, highs], color=colours, capsize=3)
        ax.set_yticks(
            range(len(names)), labels=[f"{k} (n={values[k].n})" for k in names], fontsize=8
        )
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(family, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"accuracy ({100 * level:.10g}% Wilson interval)")
    fig.suptitle(title)
    _save_png(fig, path)
