"""Regression metrics against hand-worked values, scikit-learn and scipy; under bootstrap
weights against the expanded resample; undefined cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from nlpflow.families.regression.metrics import (
    batch_regression_metrics,
    regression_metrics,
    weighted_ranks,
)


def test_hand_worked_values() -> None:
    # errors 0, 1, -1, 1; true mean 2.5, SST 5; predictions' deviations -1.75 .25 -.75 2.25
    m = regression_metrics(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 5]))
    assert m["mse"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt(0.75))
    assert m["mae"] == pytest.approx(0.75)
    assert m["r2"] == pytest.approx(1 - 3 / 5)
    assert m["pearson"] == pytest.approx(5.5 / np.sqrt(5 * 8.75))
    assert m["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # ranks 1 3 2 4: d² = 2


def test_undefined_values_are_nan() -> None:
    constant = regression_metrics(np.array([2.0, 2, 2]), np.array([1.0, 2, 3]))
    assert np.isnan(constant["r2"]) and np.isnan(constant["pearson"])
    flat = regression_metrics(np.array([1.0, 2, 3]), np.full(3, 0.5))
    assert np.isnan(flat["pearson"]) and np.isnan(flat["spearman"])
    assert flat["r2"] < 0  # a constant prediction is defined, and worse than the mean here
    assert all(np.isnan(v) for v in regression_metrics(np.zeros(0), np.zeros(0)).values())


floats = hs.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.tuples(floats, floats), min_size=3, max_size=40))
def test_equal_to_scikit_learn_and_scipy(pairs: list[tuple[float, float]]) -> None:
    y = np.array([a for a, _ in pairs], dtype=np.float64)
    p = np.array([b for _, b in pairs], dtype=np.float64)
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-9, abs=1e-9)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9, abs=1e-9)
    if np.ptp(y) > 1e-3 and np.ptp(p) > 1e-3:
        assert m["r2"] == pytest.approx(r2_score(y, p), rel=1e-7, abs=1e-7)
        assert m["pearson"] == pytest.approx(st.pearsonr(y, p)[0], abs=1e-7)
        assert m["spearman"] == pytest.approx(st.spearmanr(y, p)[0], abs=1e-7)


def test_bootstrap_weights_score_the_expanded_resample() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 60).astype(np.float64)  # ties, as ratings have
    p = y + rng.normal(0, 1.5, 60)
    weights = rng.multinomial(60, np.full(60, 1 / 60), size=5).astype(np.float64)
    batch = batch_regression_metrics(y, p)(weights)
    for row, w in enumerate(weights):
        idx = np.repeat(np.arange(60), w.astype(int))
        expected = regression_metrics(y[idx], p[idx])
        for key, value in expected.items():
            assert batch[key][row] == pytest.approx(value, abs=1e-9), key
        assert batch["spearman"][row] == pytest.approx(st.spearmanr(y[idx], p[idx])[0])


def test_weighted_ranks_are_scipys_average_ranks() -> None:
    values = np.array([3.0, 1, 3, 2, 3])
    np.testing.assert_allclose(weighted_ranks(values, np.ones((1, 5)))[0], st.rankdata(values))
    # weights 2, 0, 1, 1, 1: the sample 3 3 3 3 2 (1 drawn never): 2 ranks 1, the 3s 2..5
    ranks = weighted_ranks(values, np.array([[2.0, 0, 1, 1, 1]]))[0]
    assert ranks[3] == 1.0 and ranks[0] == ranks[2] == ranks[4] == 3.5
