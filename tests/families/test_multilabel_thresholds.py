"""Decision thresholds: exact search against brute force, fallbacks, and what is applied."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nlpflow.families.multilabel.thresholds import best_threshold, choose_thresholds, predict

PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = float((y & p).sum())
    den = float(y.sum() + p.sum())
    return 2 * tp / den if den else 0.0


def test_hand_worked_threshold() -> None:
    # scores 0.9 (pos), 0.7 (neg), 0.6 (pos), 0.2 (neg): cuts give F1 2/3, 1/2, 4/5, 2/3.
    t, f1 = best_threshold([1, 0, 1, 0], [0.9, 0.7, 0.6, 0.2])  # type: ignore[misc]
    assert f1 == pytest.approx(0.8)
    assert t == pytest.approx(0.4)  # halfway between 0.6 (kept) and 0.2
    assert predict([[0.9, 0.7, 0.6, 0.2]], t).tolist() == [[1, 1, 1, 0]]


def test_ties_go_to_the_highest_threshold_and_all_positive_cut_halves() -> None:
    # Every cut scores F1 1.0 only when all are predicted: the lowest score is kept.
    t, f1 = best_threshold([1, 1], [0.8, 0.6])  # type: ignore[misc]
    assert (t, f1) == (pytest.approx(0.3), 1.0)
    assert best_threshold([0, 0], [0.8, 0.6]) is None


@PROPS
@given(
    y=arrays(np.int64, 12, elements=st.integers(0, 1)),
    s=arrays(np.float64, 12, elements=st.sampled_from([0.05, 0.2, 0.4, 0.5, 0.7, 0.95])),
)
def test_best_threshold_matches_brute_force(y: np.ndarray, s: np.ndarray) -> None:
    found = best_threshold(y, s)
    if y.sum() == 0:
        assert found is None
        return
    assert found is not None
    t, f1 = found
    brute = max(_f1(y, (s >= c).astype(np.int64)) for c in np.unique(s))
    assert f1 == pytest.approx(brute)
    assert _f1(y, (s >= t).astype(np.int64)) == pytest.approx(f1)  # the threshold achieves it


def test_modes() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.3, 0.8], [0.6, 0.35, 0.1], [0.2, 0.4, 0.2], [0.1, 0.1, 0.3]])
    names = ["a", "b", "c"]
    fixed = choose_thresholds(y, s, names, "fixed", 0.5)
    assert fixed.thresholds == [0.5, 0.5, 0.5]
    assert fixed.validation_f1 is None
    glob = choose_thresholds(y, s, names, "global")
    assert len(set(glob.thresholds)) == 1
    flat = best_threshold(y, s)
    assert flat is not None
    assert glob.thresholds[0] == pytest.approx(flat[0])
    assert glob.validation_f1 == pytest.approx(flat[1])
    per = choose_thresholds(y, s, names, "per_label")
    # a: 0.9, 0.6 positive -> halfway to 0.2; b: 0.35, 0.4 positive -> halfway to 0.3;
    # c: no positive in validation -> the global threshold
    assert per.thresholds[:2] == pytest.approx([0.4, 0.325])
    assert per.thresholds[2] == pytest.approx(glob.thresholds[0])
    assert per.fallback_labels == ["c"]
    assert per.as_dict(names)["per_label"] == dict(zip(names, per.thresholds, strict=True))
    assert per.validation_f1 is not None
    assert per.validation_f1 >= glob.validation_f1  # type: ignore[operator]


def test_bad_mode_and_shapes() -> None:
    with pytest.raises(ValueError) as err:
        choose_thresholds([[1, 0]], [[0.5, 0.5]], ["a", "b"], "best")
    assert "not one of" in str(err.value)
    with pytest.raises(ValueError) as err:
        choose_thresholds([[1, 0]], [[0.5, 0.5, 0.1]], ["a", "b"], "global")
    assert "must both be (n, 2)" in str(err.value)
