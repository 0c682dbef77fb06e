"""The evaluate stage's work: predict on validation and test, score, write every output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import majority_baseline, majority_label
from nlpflow.evaluation.data import (
    LABEL_COLUMN,
    DataMeta,
    class_label_names,
    load_dataset_dict,
    read_meta,
)
from nlpflow.evaluation.metrics import (
    FloatArray,
    IntArray,
    calibration_bins,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    round_floats,
)
from nlpflow.evaluation.plots import save_confusion_png, split_plot_files
from nlpflow.evaluation.predict import load_classifier, predict_split, prediction_rows
from nlpflow.io import atomic_dir, write_json, write_jsonl

EVAL_SPLITS = ("validation", "test")


@dataclass
class SplitEvaluation:
    """Everything computed for one split: labels, probabilities, records and metrics."""

    name: str
    y_true: IntArray
    probabilities: FloatArray
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]

    def calibration(self) -> list[dict[str, float | int]]:
        """Reliability-diagram bins of this split (confidence vs accuracy)."""
        return calibration_of(self.y_true, self.probabilities)


def calibration_of(
    y_true: Sequence[int] | IntArray, probabilities: FloatArray
) -> list[dict[str, float | int]]:
    """Calibration bins of the predicted class's probability against being right."""
    pred = probabilities.argmax(axis=1)
    return calibration_bins(probabilities.max(axis=1), pred == np.asarray(y_true))


def log_loss(y_true: Sequence[int] | IntArray, probabilities: FloatArray) -> float:
    """Mean negative log-likelihood of the true labels (probabilities clipped at 1e-15)."""
    true = np.asarray(y_true, dtype=np.int64)
    if true.size == 0:
        return 0.0
    p = probabilities[np.arange(true.size), true]
    return float(-np.log(np.clip(p, 1e-15, 1.0)).mean())


def split_metrics(
    y_true: Sequence[int] | IntArray,
    probabilities: FloatArray,
    label_names: Sequence[str],
    majority: int,
) -> dict[str, Any]:
    """Model metrics of one split with the majority baseline beside them (numbers only)."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(true, pred, label_names)
    metrics["log_loss"] = log_loss(true, probabilities)
    metrics["ece"] = expected_calibration_error(calibration_of(true, probabilities))
    metrics["baselines"] = {"majority": majority_baseline(true, majority, label_names)}
    return metrics


def evaluate_model(
    model_dir: str | Path,
    processed_dir: str | Path,
    tokenized_dir: str | Path,
    batch_size: int,
    splits: Sequence[str] = EVAL_SPLITS,
) -> tuple[DataMeta, list[SplitEvaluation]]:
    """Run the saved model on ``splits`` and score it; nothing is written here."""
    meta = read_meta(processed_dir)
    processed = load_dataset_dict(
        processed_dir,
        ["train", *splits],
        ["id", *meta.text_fields, LABEL_COLUMN, *meta.metadata_fields],
    )
    tokenized = load_dataset_dict(tokenized_dir, list(splits), ["input_ids", "labels"])
    names = class_label_names(processed, "train", processed_dir)
    if names is not None and names != meta.label_names:
        raise UserError(
            f"{processed_dir}: meta.json label_names {meta.label_names} differ from the "
            f"'{LABEL_COLUMN}' column's names {names}; rerun the preprocess stage"
        )
    k = len(meta.label_names)
    model, pad_id = load_classifier(model_dir, meta.label_names)
    majority = majority_label(list(processed["train"][LABEL_COLUMN]), k)

    results = []
    for split in splits:
        y_true = np.asarray(list(processed[split][LABEL_COLUMN]), dtype=np.int64)
        token_labels = np.asarray(list(tokenized[split]["labels"]), dtype=np.int64)
        # Predictions are joined to the processed rows by position: the two must line up.
        if len(token_labels) != len(y_true) or not np.array_equal(token_labels, y_true):
            raise UserError(
                f"{tokenized_dir}/{split} does not line up with {processed_dir}/{split} "
                f"({len(token_labels)} vs {len(y_true)} rows, or labels differ); "
                "rerun the tokenize stage"
            )
        if len(y_true) == 0:
            raise UserError(f"{processed_dir}/{split} is empty: nothing to evaluate")
        if y_true.min() < 0 or y_true.max() >= k:
            raise UserError(
                f"{processed_dir}/{split}: a '{LABEL_COLUMN}' id is outside 0..{k - 1} "
                f"(labels {meta.label_names}); rerun the preprocess stage"
            )
        probs = predict_split(model, tokenized[split], batch_size, pad_id)
        rows = prediction_rows(
            processed[split], probs, meta.text_fields, meta.metadata_fields, meta.label_names
        )
        metrics = split_metrics(y_true, probs, meta.label_names, majority)
        results.append(SplitEvaluation(split, y_true, probs, rows, metrics))
    return meta, results


def write_evaluation(
    results: Sequence[SplitEvaluation],
    label_names: Sequence[str],
    predictions_dir: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
) -> None:
    """Write predictions, plot data and images, then metrics; each directory as a whole."""
    with atomic_dir(predictions_dir) as tmp:
        for result in results:
            write_jsonl(tmp / f"{result.name}.jsonl", result.rows)

    with atomic_dir(plots_dir) as tmp:
        for r in results:
            files = split_plot_files(r.y_true, r.probabilities, label_names, r.calibration())
            for stem, records in files.items():
                write_json(tmp / f"{stem}_{r.name}.json", round_floats(records))
            matrix = confusion_matrix(r.y_true, r.probabilities.argmax(axis=1), len(label_names))
            save_confusion_png(
                tmp / f"confusion_{r.name}.png", matrix, label_names, f"Confusion matrix ({r.name})"
            )

    write_json(metrics_path, round_floats({r.name: r.metrics for r in results}))
