"""Metrics, each checked against scikit-learn on a predictions file written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from nlpflow.evaluation.error_analysis import load_predictions
from nlpflow.evaluation.metrics import (
    average_precision,
    best_f1_threshold,
    calibration_bins,
    classification_metrics,
    confusion_matrix,
    confusion_scores,
    expected_calibration_error,
    log_loss,
    ranking_scores,
    roc_auc,
    round_floats,
    threshold_predictions,
    weighted_confusion,
    wilson_interval,
)
from nlpflow.evaluation.predict import records_to_arrays
from nlpflow.evaluation.scoring import sequence_metrics
from nlpflow.io import write_jsonl


def _random_predictions(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities from a noisy 'model' that is right more often than not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # Some tied scores, so the ranking metrics' tie handling is exercised too.
    probs = np.round(probs, 2)
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs


def _write_predictions_file(
    path: Path, y: np.ndarray, probs: np.ndarray, names: list[str]
) -> list[dict]:
    rows = []
    for i, (t, p) in enumerate(zip(y, probs, strict=True)):
        pred = int(p.argmax())
        rows.append(
            {
                "id": str(i),
                "text": f"example {i}",
                "label": names[int(t)],
                "prediction": names[pred],
                "confidence": float(p[pred]),
                "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)},
            }
        )
    write_jsonl(path, rows)
    return load_predictions(path, ["text"], names)


@pytest.mark.parametrize(("k", "seed"), [(2, 0), (3, 1), (4, 2)])
def test_every_metric_matches_sklearn_on_a_predictions_file(
    tmp_path: Path, k: int, seed: int
) -> None:
    names = [f"class{i}" for i in range(k)]
    y, probs = _random_predictions(150, k, seed)
    rows = _write_predictions_file(tmp_path / "test.jsonl", y, probs, names)
    y_true, p = records_to_arrays(rows, names)
    y_pred = p.argmax(axis=1)
    np.testing.assert_array_equal(y_true, y)
    np.testing.assert_allclose(p, probs, rtol=0, atol=1e-15)  # JSON keeps float64 exactly

    positive = 1 if k == 2 else None
    got = sequence_metrics(y_true, p, y_pred, names, positive)
    labels = list(range(k))
    assert got["n"] == 150
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y_true, y_pred))
    for avg in ("micro", "macro", "weighted"):
        for name, fn in [
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ]:
            expected = fn(y_true, y_pred, labels=labels, average=avg, zero_division=0)
            assert got[f"{name}_{avg}"] == pytest.approx(expected), f"{name}_{avg}"
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    for i, name in enumerate(names):
        assert got["per_class"][name] == pytest.approx(
            {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": support[i]}
        )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, p, labels=labels))
    if k == 2:
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, p[:, 1]))
        assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y_true, p[:, 1]))
    else:
        assert got["roc_auc"] == pytest.approx(
            skm.roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=labels)
        )
        onehot = np.eye(k)[y_true]
        assert got["pr_auc"] == pytest.approx(
            skm.average_precision_score(onehot, p, average="macro")
        )
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, k), skm.confusion_matrix(y_true, y_pred, labels=labels)
    )


def test_binary_ranking_metrics_of_the_other_positive_class() -> None:
    y, p = _random_predictions(80, 2, 5)
    got = ranking_scores(y, p, positive=0)
    assert got["roc_auc"][0] == pytest.approx(skm.roc_auc_score(1 - y, p[:, 0]))
    assert got["pr_auc"][0] == pytest.approx(skm.average_precision_score(1 - y, p[:, 0]))


def test_weighted_metrics_equal_sklearn_with_sample_weights() -> None:
    # The bootstrap scores a resample as the original examples weighted by their counts.
    y, p = _random_predictions(60, 3, 7)
    pred = p.argmax(axis=1)
    w = np.random.default_rng(0).integers(0, 4, size=(2, 60)).astype(float)
    scores = confusion_scores(weighted_confusion(y, pred, 3, w))
    for b in range(2):
        kw = {"sample_weight": w[b]}
        assert scores["accuracy"][b] == pytest.approx(skm.accuracy_score(y, pred, **kw))
        assert scores["f1_macro"][b] == pytest.approx(
            skm.f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0, **kw)
        )
        assert scores["mcc"][b] == pytest.approx(skm.matthews_corrcoef(y, pred, **kw))
        target = (y == 1).astype(int)
        assert roc_auc(target, p[:, 1], w[b : b + 1])[0] == pytest.approx(
            skm.roc_auc_score(target, p[:, 1], **kw)
        )
        assert average_precision(target, p[:, 1], w[b : b + 1])[0] == pytest.approx(
            skm.average_precision_score(target, p[:, 1], **kw)
        )


def test_ranking_metrics_are_nan_when_one_class_is_absent() -> None:
    assert np.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9])[0])
    assert np.isnan(average_precision([0, 0], [0.2, 0.5])[0])
    # A multi-class split missing one class averages over the classes it has.
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    got = ranking_scores(np.array([0, 1, 0, 1]), p, None)
    assert got["roc_auc"][0] == pytest.approx(1.0)


def test_absent_and_never_predicted_classes_count_as_zero() -> None:
    # Class 2 never occurs and is never predicted; class 1 is never predicted.
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 0, 0]
    got = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    kw = {"labels": [0, 1, 2], "average": "macro", "zero_division": 0}
    assert got["precision_macro"] == pytest.approx(skm.precision_score(y_true, y_pred, **kw))
    assert got["recall_macro"] == pytest.approx(skm.recall_score(y_true, y_pred, **kw))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, **kw))
    assert got["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert got["mcc"] == 0.0  # undefined (one predicted class): 0, as scikit-learn says


def test_confusion_matrix_rejects_ids_outside_the_labels() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 2], [0, 1], 2)


def test_best_f1_threshold_is_the_brute_force_optimum() -> None:
    y, p = _random_predictions(120, 2, 11)
    score = p[:, 1]
    t = best_f1_threshold(y, score)
    best = max(skm.f1_score(y, (score >= c).astype(int)) for c in np.unique(score))
    assert skm.f1_score(y, (score >= t).astype(int)) == pytest.approx(best)
    assert best_f1_threshold([0, 0], [0.2, 0.3]) == 0.5  # no positive: the default
    np.testing.assert_array_equal(threshold_predictions(p, 1, t), (score >= t).astype(int))
    np.testing.assert_array_equal(threshold_predictions(p, 0, 0.5), (p[:, 0] < 0.5).astype(int))


def test_wilson_interval_known_values() -> None:
    # Textbook values for 8 of 10 and the degenerate ends.
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_calibration_bins_and_ece_by_hand() -> None:
    conf = [0.55, 0.6, 0.95, 1.0, 0.1]
    correct = [True, False, True, True, False]
    bins = calibration_bins(conf, correct, n_bins=10)
    # 0.1 -> bin 1 (edge goes down), 0.55 and 0.6 -> bin 6, 0.95 and 1.0 -> bin 10.
    assert [(b["bin_upper"], b["n"]) for b in bins] == [(0.1, 1), (0.6, 2), (1.0, 2)]
    assert bins[1]["confidence"] == pytest.approx(0.575)
    assert bins[1]["accuracy"] == pytest.approx(0.5)
    expected = (1 * abs(0.1 - 0) + 2 * abs(0.575 - 0.5) + 2 * abs(0.975 - 1)) / 5
    assert expected_calibration_error(bins) == pytest.approx(expected)
    assert expected_calibration_error([]) == 0.0


def test_log_loss_clips_zero_probabilities() -> None:
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert np.isfinite(log_loss([1, 0], probs))


def test_round_floats_keeps_ints_and_structure() -> None:
    assert round_floats({"a": [1 / 3, 2], "b": {"c": 0.1234567}}) == {
        "a": [0.333333, 2],
        "b": {"c": 0.123457},
    }
