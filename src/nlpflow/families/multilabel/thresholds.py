"""Decision thresholds for sigmoid scores: fixed, one tuned for all labels, or one per label.

A label is predicted when its score is ``>=`` its threshold. Tuning maximises F1 on the
validation split and is exact, not a grid: sorted scores give the F1 of every distinct cut in
one pass. The tuned threshold lies halfway between the lowest score kept positive and the next
lower score, so it makes the same validation predictions as any threshold between the two and
leaves room on both sides for the test split's scores.

- ``global``: one threshold for every label, maximising micro-F1 (which is the F1 of the
  flattened ``(n * k)`` decisions, so the same one-pass search applies);
- ``per_label``: each label's threshold maximises that label's F1; a label with no positive
  validation example has no F1 to maximise and gets the global threshold (listed in
  ``fallback_labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from nlpflow.evaluation.metrics import FloatArray

ThresholdMode = Literal["fixed", "global", "per_label"]
MODES = ("fixed", "global", "per_label")


@dataclass(frozen=True)
class ThresholdChoice:
    """The thresholds applied, one per label, and how they were chosen."""

    mode: str
    thresholds: list[float]  # (k,)
    validation_f1: float | None = None  # micro-F1 on validation at these thresholds
    fallback_labels: list[str] = field(default_factory=list)

    def as_dict(self, label_names: Sequence[str]) -> dict[str, object]:
        out: dict[str, object] = {"mode": self.mode}
        if self.mode == "per_label":
            out["per_label"] = dict(zip(label_names, self.thresholds, strict=True))
            out["fallback_labels"] = self.fallback_labels
        else:
            out["threshold"] = self.thresholds[0] if self.thresholds else None
        if self.validation_f1 is not None:
            out["validation_f1_micro"] = self.validation_f1
        return out


def predict(scores: npt.ArrayLike, thresholds: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """0/1 predictions ``(n, k)``: ``scores >= thresholds`` (a scalar or one per label)."""
    return (np.asarray(scores, dtype=np.float64) >= np.asarray(thresholds)).astype(np.int8)


def best_threshold(truth: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float] | None:
    """The threshold maximising F1 of ``scores >= t`` against 0/1 ``truth``, and that F1.

    Both are flattened. Ties go to the highest threshold (fewest positives). None when
    ``truth`` has no positive (every threshold scores F1 = 0).
    """
    y = np.asarray(truth).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    positives = int(y.sum())
    if positives == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: cutting there keeps the whole run positive.
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y_sorted)[ends]
    predicted = ends + 1
    f1 = 2.0 * tp / (predicted + positives)
    best = int(np.argmax(f1))  # first maximum: the highest threshold
    kept = s_sorted[ends[best]]
    below = s_sorted[ends[best] + 1] if ends[best] + 1 < s_sorted.size else min(0.0, kept)
    return float((kept + below) / 2.0) if below < kept else float(kept), float(f1[best])


def _micro_f1(truth: npt.NDArray[np.int8], predicted: npt.NDArray[np.int8]) -> float:
    tp = float((truth & predicted).sum())
    den = float(truth.sum() + predicted.sum())
    return 2.0 * tp / den if den > 0 else 0.0


def choose_thresholds(
    truth: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
    mode: str,
    default: float = 0.5,
) -> ThresholdChoice:
    """Thresholds for ``mode`` from validation ``truth`` (0/1, ``(n, k)``) and ``scores``.

    ``fixed`` applies ``default`` to every label. ``global`` and ``per_label`` tune on the
    arrays given (which must be the validation split's, never the test split's); with no
    positive validation label at all they fall back to ``default``.

    Raises ValueError for an unknown mode or arrays of other shapes.
    """
    y = np.asarray(truth).astype(np.int8)
    s: FloatArray = np.asarray(scores, dtype=np.float64)
    k = len(label_names)
    if y.shape != s.shape or (y.ndim == 2 and y.shape[1] != k) or y.ndim != 2:
        raise ValueError(f"truth {y.shape} and scores {s.shape} must both be (n, {k})")
    if mode not in MODES:
        raise ValueError(f"threshold mode '{mode}' is not one of {MODES}")
    if mode == "fixed" or y.shape[0] == 0:
        thresholds = [float(default)] * k
        return ThresholdChoice("fixed" if mode == "fixed" else mode, thresholds)
    tuned = best_threshold(y, s)
    overall = default if tuned is None else tuned[0]
    if mode == "global":
        thresholds = [overall] * k
        return ThresholdChoice(mode, thresholds, _micro_f1(y, predict(s, overall)))
    thresholds, fallback = [], []
    for j, name in enumerate(label_names):
        one = best_threshold(y[:, j], s[:, j])
        if one is None:
            fallback.append(name)
            thresholds.append(overall)
        else:
            thresholds.append(one[0])
    return ThresholdChoice(mode, thresholds, _micro_f1(y, predict(s, thresholds)), fallback)
