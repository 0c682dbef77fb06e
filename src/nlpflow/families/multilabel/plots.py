"""Multi-label plots: per-label scores, precision-recall curves, label co-occurrence.

Per split: ``per_label_<split>.json`` (``label``, ``precision``, ``recall``, ``f1``,
``support``, ``threshold``: for ``dvc plots``' bar templates), ``precision_recall_<split>.json``
(the micro-averaged curve over every label decision, downsampled) and PNGs of each, plus
``cooccurrence_<split>.png``: how often each pair of labels is true together, gold beside
predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.evaluation.metrics import round_floats
from nlpflow.evaluation.plots import _figure, _save_png, precision_recall_points, save_curve_png
from nlpflow.io import write_json


def per_label_records(
    metrics: dict[str, Any], thresholds: Sequence[float], label_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One record per label from a metrics dict's ``per_class`` and the thresholds applied."""
    return [
        {"label": name, **metrics["per_class"][name], "threshold": float(t)}
        for name, t in zip(label_names, thresholds, strict=True)
    ]


def micro_pr_points(truth: npt.ArrayLike, scores: npt.ArrayLike) -> list[dict[str, float]]:
    """The precision-recall curve of every ``(example, label)`` decision; [] when undefined."""
    y = np.asarray(truth).reshape(-1).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size == 0 or y.min() == y.max():
        return []
    return precision_recall_points(y, np.stack([1 - s, s], axis=1))


def save_per_label_png(path: Path, records: Sequence[dict[str, Any]], title: str) -> None:
    """Grouped bars of precision, recall and F1 per label, as PNG."""
    k = len(records)
    fig = _figure(min(3.0 + 0.9 * k, 14.0), 4.5)
    ax = fig.add_subplot()
    x = np.arange(k)
    for offset, key in ((-0.27, "precision"), (0.0, "recall"), (0.27, "f1")):
        ax.bar(x + offset, [r[key] for r in records], width=0.27, label=key)
    ax.set_xticks(x, labels=[r["label"] for r in records], rotation=45 if k > 4 else 0, ha="right")
    ax.set_ylim(0, 1.18)  # room for the legend above the bars
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=3)
    ax.grid(alpha=0.3, axis="y")
    _save_png(fig, path)


def save_cooccurrence_png(
    path: Path,
    truth: npt.ArrayLike,
    predicted: npt.ArrayLike,
    label_names: Sequence[str],
    title: str,
) -> None:
    """Heat maps of the pair counts ``Y^T Y`` (diagonal: each label's count), gold and predicted."""
    k = len(label_names)
    size = min(2.5 + 0.6 * k, 10.0)
    fig = _figure(2 * size + 1.0, size)
    for i, (name, matrix) in enumerate((("gold", truth), ("predicted", predicted))):
        m = np.asarray(matrix).astype(np.int64)
        counts = m.T @ m
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(k), labels=list(label_names), rotation=45, ha="right")
        ax.set_yticks(range(k), labels=list(label_names))
        ax.set_title(f"{title}: {name}")
        if k <= 15:
            peak = counts.max() if counts.size else 0
            for (a, b), value in np.ndenumerate(counts):
                colour = "white" if peak and value > peak / 2 else "black"
                ax.text(b, a, str(int(value)), ha="center", va="center", color=colour, fontsize=8)
    _save_png(fig, path)


def save_label_errors_png(path: Path, per_label: dict[str, dict[str, int]], title: str) -> None:
    """Bars of missed (false negative) and spurious (false positive) counts per label, as PNG."""
    names = list(per_label)
    k = len(names)
    fig = _figure(min(3.0 + 0.9 * k, 14.0), 4.5)
    ax = fig.add_subplot()
    x = np.arange(k)
    ax.bar(x - 0.2, [per_label[n]["missed"] for n in names], width=0.4, label="missed")
    ax.bar(x + 0.2, [per_label[n]["spurious"] for n in names], width=0.4, label="spurious")
    ax.set_xticks(x, labels=names, rotation=45 if k > 4 else 0, ha="right")
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    _save_png(fig, path)


def write_split_plots(
    directory: Path,
    split: str,
    truth: npt.ArrayLike,
    predicted: npt.ArrayLike,
    scores: npt.ArrayLike,
    metrics: dict[str, Any],
    thresholds: Sequence[float],
    label_names: Sequence[str],
) -> None:
    """Every plot file of one split into ``directory`` (the caller publishes it atomically)."""
    records = per_label_records(metrics, thresholds, label_names)
    write_json(directory / f"per_label_{split}.json", round_floats(records))
    points = micro_pr_points(truth, scores)
    write_json(directory / f"precision_recall_{split}.json", round_floats(points))
    save_per_label_png(directory / f"per_label_{split}.png", records, f"Per label ({split})")
    positive_rate = float(np.asarray(truth).mean()) if np.asarray(truth).size else 0.0
    save_curve_png(
        directory / f"precision_recall_{split}.png",
        points,
        "recall",
        "precision",
        f"Precision-recall, every label decision ({split})",
        reference=((0.0, 1.0), (positive_rate, positive_rate), "label rate"),
    )
    save_cooccurrence_png(
        directory / f"cooccurrence_{split}.png",
        truth,
        predicted,
        label_names,
        f"Labels together ({split})",
    )
