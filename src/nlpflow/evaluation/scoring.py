"""The metric sets of the evaluate stage, for a model or a baseline, with bootstrap intervals.

Sequence classification and token classification each have one function for the point values
(what ``metrics/evaluate.json`` holds) and one for a batch of resample weights (what the
bootstrap and the experiment comparison use), built on the same definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nlpflow.evaluation.bootstrap import BatchMetrics
from nlpflow.evaluation.entities import metrics_from_counts, sentence_counts
from nlpflow.evaluation.metrics import (
    FloatArray,
    IntArray,
    calibration_bins,
    classification_metrics,
    confusion_scores,
    expected_calibration_error,
    log_loss,
    ranking_scores,
    weighted_confusion,
)

# The metrics that get a bootstrap interval and a baseline margin.
SEQUENCE_MAIN = ("accuracy", "balanced_accuracy", "f1_macro", "mcc", "roc_auc", "pr_auc")
TOKEN_MAIN = ("f1", "precision", "recall", "token_accuracy")
# What a baseline reports (a subset of the model's metrics, same definitions).
SEQUENCE_BASELINE_KEYS = (
    "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "mcc", "roc_auc", "pr_auc",
    "log_loss",
)  # fmt: skip
TOKEN_BASELINE_KEYS = ("f1", "precision", "recall", "f1_macro", "token_accuracy")


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """Drop NaN values: JSON cannot hold them, and an undefined metric is better absent."""
    return {k: v for k, v in values.items() if not (isinstance(v, float) and np.isnan(v))}


# --------------------------------------------------------------------------- sequence


def sequence_metrics(
    y_true: IntArray,
    probabilities: FloatArray,
    predicted: IntArray,
    label_names: Sequence[str],
    positive: int | None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Every sequence-classification metric of one split (plain numbers, NaN left out).

    ``positive`` is the positive class of a binary task (ROC-AUC and PR-AUC of that class);
    None for multi-class (one-vs-rest macro averages).
    """
    metrics = classification_metrics(y_true, predicted, label_names)
    ranking = ranking_scores(y_true, probabilities, positive)
    metrics["roc_auc"] = float(ranking["roc_auc"][0])
    metrics["pr_auc"] = float(ranking["pr_auc"][0])
    metrics["log_loss"] = log_loss(y_true, probabilities)
    bins = confidence_bins(y_true, probabilities, predicted, n_bins)
    metrics["ece"] = expected_calibration_error(bins)
    return _finite(metrics)


def confidence_bins(
    y_true: IntArray, probabilities: FloatArray, predicted: IntArray, n_bins: int = 10
) -> list[dict[str, float | int]]:
    """Calibration bins: the probability given to the predicted class against being right."""
    confidence = probabilities[np.arange(len(predicted)), predicted]
    return calibration_bins(confidence, predicted == y_true, n_bins)


def sequence_batch_metrics(
    y_true: IntArray,
    probabilities: FloatArray,
    predicted: IntArray,
    num_labels: int,
    positive: int | None,
    keys: Sequence[str] = SEQUENCE_MAIN,
) -> BatchMetrics:
    """The metrics in ``keys`` for a batch of resample weights."""
    need_ranking = any(k in ("roc_auc", "pr_auc") for k in keys)

    def compute(weights: FloatArray) -> dict[str, FloatArray]:
        scores = confusion_scores(weighted_confusion(y_true, predicted, num_labels, weights))
        if need_ranking:
            scores.update(ranking_scores(y_true, probabilities, positive, weights))
        return {k: scores[k] for k in keys}

    return compute


def summary(metrics: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: metrics[k] for k in keys if k in metrics}


def margins(
    model: dict[str, Any], baseline: dict[str, Any], keys: Sequence[str]
) -> dict[str, float]:
    """``model - baseline`` for each key both have."""
    return {k: model[k] - baseline[k] for k in keys if k in model and k in baseline}


# --------------------------------------------------------------------------- token


def token_counts(
    true: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    mode: str,
    scheme: str,
) -> list[dict[str, Any]]:
    return [sentence_counts(t, p, mode, scheme) for t, p in zip(true, pred, strict=True)]


def token_metrics(counts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return metrics_from_counts(counts)


def token_batch_metrics(counts: Sequence[dict[str, Any]]) -> BatchMetrics:
    """Micro entity precision/recall/F1 and token accuracy for a batch of sentence weights."""
    table = np.asarray(
        [
            [
                sum(v[0] for v in c["types"].values()),
                sum(v[1] for v in c["types"].values()),
                sum(v[2] for v in c["types"].values()),
                c["words_correct"],
                c["words"],
            ]
            for c in counts
        ],
        dtype=np.float64,
    ).reshape(len(counts), 5)

    def compute(weights: FloatArray) -> dict[str, FloatArray]:
        correct, predicted, true, words_correct, words = (weights @ table).T
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(predicted > 0, correct / np.maximum(predicted, 1), 0.0)
            r = np.where(true > 0, correct / np.maximum(true, 1), 0.0)
            f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
            acc = np.where(words > 0, words_correct / np.maximum(words, 1), np.nan)
        return {"f1": f, "precision": p, "recall": r, "token_accuracy": acc}

    return compute
