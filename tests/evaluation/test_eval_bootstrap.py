"""Bootstrap intervals: seeded, sensible, and paired for differences."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.evaluation.bootstrap import (
    bootstrap_distribution,
    bootstrap_intervals,
    paired_differences,
    resample_weights,
)
from nlpflow.evaluation.metrics import FloatArray


def accuracy_of(correct: np.ndarray):  # type: ignore[no-untyped-def]
    def compute(w: FloatArray) -> dict[str, FloatArray]:
        return {"accuracy": (w @ correct) / w.sum(axis=1)}

    return compute


def test_resample_counts_sum_to_n_and_repeat_with_the_seed() -> None:
    a = np.concatenate(list(resample_weights(50, 300, seed=3)))
    b = np.concatenate(list(resample_weights(50, 300, seed=3)))
    assert a.shape == (300, 50)
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=1) == 50).all()
    assert not np.array_equal(a, np.concatenate(list(resample_weights(50, 300, seed=4))))


def test_interval_brackets_the_estimate_and_matches_the_normal_approximation() -> None:
    correct = (np.arange(400) % 5 != 0).astype(float)  # accuracy 0.8
    ci = bootstrap_intervals(accuracy_of(correct), 400, 2000, seed=0, level=0.95)["accuracy"]
    assert ci["low"] < 0.8 < ci["high"]
    half = 1.96 * np.sqrt(0.8 * 0.2 / 400)  # 0.039
    assert ci["high"] - ci["low"] == pytest.approx(2 * half, rel=0.15)


def test_no_resamples_means_no_intervals_and_nan_metrics_are_left_out() -> None:
    assert bootstrap_intervals(accuracy_of(np.ones(5)), 5, 0, 0, 0.95) == {}

    def undefined(w: FloatArray) -> dict[str, FloatArray]:
        return {"x": np.full(w.shape[0], np.nan)}

    assert bootstrap_intervals(undefined, 5, 10, 0, 0.95) == {}


def test_paired_difference_of_a_model_with_itself_is_zero() -> None:
    correct = (np.arange(100) % 3 != 0).astype(float)
    same = paired_differences(accuracy_of(correct), accuracy_of(correct), 100, 200, 0, 0.95)
    assert same["accuracy"] == {"low": 0.0, "high": 0.0, "p_not_better": 1.0}


def test_paired_difference_is_narrower_than_unpaired() -> None:
    # B = A plus 10 fixed examples: the paired interval sees only those 10 changes.
    a = (np.arange(300) % 2 == 0).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:10]] = 1.0
    diff = paired_differences(accuracy_of(a), accuracy_of(b), 300, 1000, 1, 0.95)["accuracy"]
    assert diff["low"] > 0 and diff["p_not_better"] == 0.0
    dist_a = bootstrap_distribution(accuracy_of(a), 300, 1000, 2)["accuracy"]
    assert diff["high"] - diff["low"] < np.quantile(dist_a, 0.975) - np.quantile(dist_a, 0.025)
