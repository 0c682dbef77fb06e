"""Plot data for DVC templates and the confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from nlpflow.evaluation.metrics import confusion_matrix
from nlpflow.evaluation.plots import (
    confusion_records,
    downsample_indices,
    precision_recall_points,
    roc_points,
    save_confusion_png,
    split_plot_files,
)


def _scores(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_downsample_keeps_ends_and_caps_the_count() -> None:
    np.testing.assert_array_equal(downsample_indices(5, 200), np.arange(5))
    idx = downsample_indices(10_000, 200)
    assert len(idx) <= 200 and idx[0] == 0 and idx[-1] == 9_999
    assert np.all(np.diff(idx) > 0)


def test_binary_roc_uses_class_1_and_matches_sklearn_auc() -> None:
    y, p = _scores(80, 2)
    points = roc_points(y, p)
    assert set(points[0]) == {"fpr", "tpr", "threshold"}
    fpr = np.array([q["fpr"] for q in points])
    tpr = np.array([q["tpr"] for q in points])
    # Not downsampled at this size: the area under our points is sklearn's AUC.
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert all(0.0 <= q["threshold"] <= 1.0 for q in points)  # +inf replaced, JSON-safe
    json.dumps(points, allow_nan=False)


def test_multiclass_roc_is_micro_averaged() -> None:
    y, p = _scores(60, 3, seed=1)
    points = roc_points(y, p)
    onehot = np.eye(3)[y]
    expected = skm.roc_auc_score(onehot, p, average="micro")
    got = np.trapezoid([q["tpr"] for q in points], [q["fpr"] for q in points])
    assert got == pytest.approx(expected)


def test_precision_recall_points_match_sklearn() -> None:
    y, p = _scores(80, 2, seed=2)
    points = precision_recall_points(y, p)
    precision, recall, _ = skm.precision_recall_curve(y, p[:, 1])
    assert [q["precision"] for q in points] == pytest.approx(list(precision))
    assert [q["recall"] for q in points] == pytest.approx(list(recall))
    assert points[-1]["threshold"] == 1.0  # sklearn's threshold-less end point


def test_curves_are_downsampled_for_large_splits() -> None:
    y, p = _scores(5_000, 2, seed=3)
    roc, pr = roc_points(y, p), precision_recall_points(y, p)
    assert 2 < len(roc) <= 200 and 2 < len(pr) <= 200
    assert (roc[0]["fpr"], roc[-1]["fpr"]) == (0.0, 1.0)  # curve ends kept


def test_curves_are_empty_when_only_one_class_is_present() -> None:
    p = np.array([[0.3, 0.7], [0.4, 0.6]])
    # sklearn would warn (an error under this suite's warning filter); we return nothing.
    assert roc_points([1, 1], p) == []
    assert precision_recall_points([1, 1], p) == []


def test_confusion_records_use_label_names() -> None:
    assert confusion_records([0, 1], [1, 1], ["no", "yes"]) == [
        {"actual": "no", "predicted": "yes"},
        {"actual": "yes", "predicted": "yes"},
    ]


def test_split_plot_files_have_one_confusion_record_per_example() -> None:
    y, p = _scores(30, 2)
    files = split_plot_files(y, p, ["no", "yes"], calibration=[])
    assert set(files) == {"confusion", "roc", "precision_recall", "calibration"}
    assert len(files["confusion"]) == 30


def test_confusion_png_is_written_atomically(tmp_path: Path) -> None:
    matrix = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
    out = tmp_path / "plots" / "confusion_test.png"
    save_confusion_png(out, matrix, ["a", "b", "c"], "Confusion matrix (test)")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["confusion_test.png"]  # no temp left
    # Same matrix, same bytes: the image is reproducible and diffs only when it changes.
    again = tmp_path / "again.png"
    save_confusion_png(again, matrix, ["a", "b", "c"], "Confusion matrix (test)")
    assert again.read_bytes() == out.read_bytes()


def test_split_pngs_and_slice_chart_are_written(tmp_path: Path) -> None:
    from nlpflow.evaluation.error_analysis import SliceStats
    from nlpflow.evaluation.plots import save_slices_png, save_split_pngs

    y, p = _scores(40, 2)
    files = split_plot_files(y, p, ["no", "yes"], calibration=[], positive=1)
    matrix = confusion_matrix(y, p.argmax(axis=1), 2)
    save_split_pngs(tmp_path, "test", matrix, ["no", "yes"], files, positive_rate=0.5)
    stems = ["confusion", "confusion_normalized", "roc", "precision_recall", "calibration"]
    for stem in stems:
        assert (tmp_path / f"{stem}_test.png").read_bytes()[:4] == b"\x89PNG", stem
    slices = {
        "kind": {"a": SliceStats(10, 9), "b": SliceStats(5, 1)},
        "label": {"x": SliceStats(1, 1)},
    }
    save_slices_png(tmp_path / "slices.png", slices)
    assert (tmp_path / "slices.png").read_bytes()[:4] == b"\x89PNG"


def test_calibration_figure_shows_one_bin_against_the_diagonal_on_the_unit_square() -> None:
    # Every prediction with about the same confidence: one bin. The figure still shows it
    # against perfect calibration, on fixed [0, 1] axes, with its count.
    from nlpflow.evaluation.metrics import calibration_bins
    from nlpflow.evaluation.plots import calibration_figure

    conf = np.full(399, 0.886)
    correct = np.arange(399) < 340
    bins = calibration_bins(conf, correct, n_bins=10)
    assert [(b["bin_lower"], b["bin_upper"], b["n"]) for b in bins] == [(0.8, 0.9, 399)]
    top, bottom = calibration_figure(bins).axes
    assert top.get_xlim() == (0.0, 1.0) and bottom.get_xlim() == (0.0, 1.0)
    assert top.get_ylim()[0] == 0.0 and top.get_ylim()[1] >= 1.0
    diagonal = next(line for line in top.get_lines() if line.get_label() == "perfectly calibrated")
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert [t.get_text() for t in top.texts] == ["n=399"]
    (bar,) = top.patches
    assert (bar.get_x(), bar.get_width()) == pytest.approx((0.8, 0.1))
    assert bar.get_height() == pytest.approx(340 / 399)
    assert [p.get_height() for p in bottom.patches] == [399]


def test_calibration_png_without_predictions_is_still_written(tmp_path: Path) -> None:
    from nlpflow.evaluation.plots import save_calibration_png

    save_calibration_png(tmp_path / "c.png", [])
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_binary_curves_follow_the_positive_class() -> None:
    y, p = _scores(60, 2, seed=4)
    flipped = roc_points(1 - y, p[:, ::-1], positive=0)
    assert flipped == roc_points(y, p)
