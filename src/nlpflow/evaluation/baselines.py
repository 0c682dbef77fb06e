"""Baselines reported beside the model, so a metric always has something to be compared with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import IntArray, classification_metrics


def majority_label(train_labels: Sequence[int] | IntArray, num_labels: int) -> int:
    """The most frequent label id of the *train* split; a tie goes to the smallest id.

    The train split, not the split being scored: a baseline that peeks at the test labels
    would be a little better than anything a model could learn to do.
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise UserError("the train split is empty: no majority baseline can be computed")
    return int(np.bincount(labels, minlength=num_labels).argmax())


def majority_baseline(
    y_true: Sequence[int] | IntArray, majority: int, label_names: Sequence[str]
) -> dict[str, float]:
    """Accuracy and macro F1 of always predicting ``majority`` on ``y_true``."""
    true = np.asarray(y_true, dtype=np.int64)
    scores = classification_metrics(true, np.full_like(true, majority), label_names)
    return {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}
