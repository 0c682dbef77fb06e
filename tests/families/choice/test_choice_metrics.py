"""Multiple-choice metrics against hand-worked values, scikit-learn, and their own bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import accuracy_score, log_loss

from nlpflow.families.choice.metrics import (
    batch_metrics,
    choice_metrics,
    chosen,
    credit,
    margin_over,
)


def test_hand_worked_accuracy_per_position_and_log_loss() -> None:
    probs = np.array(
        [
            [0.7, 0.2, 0.1],  # gold 0, chose 0
            [0.1, 0.8, 0.1],  # gold 0, chose 1
            [0.2, 0.5, 0.3],  # gold 1, chose 1
            [0.6, 0.1, 0.3],  # gold 1, chose 0
        ]
    )
    labels = np.array([0, 0, 1, 1])
    m = choice_metrics(probs, labels)
    assert m["n"] == 4
    assert m["accuracy"] == 0.5
    assert m["log_loss"] == pytest.approx(
        -(np.log(0.7) + np.log(0.1) + np.log(0.5) + np.log(0.1)) / 4
    )
    assert m["per_position"] == {
        "0": {"support": 2, "accuracy": 0.5, "predicted_share": 0.5},
        "1": {"support": 2, "accuracy": 0.5, "predicted_share": 0.5},
        "2": {"support": 0, "accuracy": None, "predicted_share": 0.0},
    }
    assert "ci" not in m


def test_ties_share_the_credit() -> None:
    scores = np.array([[5.0, 5.0, 1.0], [3.0, 3.0, 3.0], [2.0, 2.0, 1.0], [0.0, 1.0, 0.0]])
    labels = np.array([1, 2, 2, 1])
    assert credit(scores, labels).tolist() == [0.5, pytest.approx(1 / 3), 0.0, 1.0]
    assert chosen(scores).tolist() == [0, 0, 0, 1]
    m = choice_metrics(scores, labels, probabilities=False)
    assert m["accuracy"] == pytest.approx((0.5 + 1 / 3 + 0 + 1) / 4)
    # a tie is no choice of its first option: each tied option gets its share
    shares = [m["per_position"][str(j)]["predicted_share"] for j in range(3)]
    assert shares == pytest.approx([(0.5 + 1 / 3 + 0.5) / 4, (0.5 + 1 / 3 + 0.5 + 1) / 4, 1 / 12])
    assert "log_loss" not in m


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 30), st.integers(2, 5)), elements=st.floats(0.01, 1)
    ),
    st.data(),
)
def test_accuracy_and_log_loss_match_scikit_learn(raw: np.ndarray, data: st.DataObject) -> None:
    probs = raw / raw.sum(axis=1, keepdims=True)
    n, width = probs.shape
    labels = np.array(data.draw(st.lists(st.integers(0, width - 1), min_size=n, max_size=n)))
    m = choice_metrics(probs, labels)
    unique_top = (probs == probs.max(axis=1, keepdims=True)).sum(axis=1) == 1
    if unique_top.all():
        assert m["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(axis=1)))
    assert m["log_loss"] == pytest.approx(log_loss(labels, probs, labels=list(range(width))))
    for j, pos in m["per_position"].items():
        mask = labels == int(j)
        assert pos["support"] == mask.sum()
        if mask.any():
            assert pos["accuracy"] == pytest.approx(credit(probs, labels)[mask].mean())


def test_unit_weights_give_the_point_values() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 4, size=50)
    m = choice_metrics(probs, labels)
    got = batch_metrics(probs, labels)(np.ones((1, 50)))
    assert got["accuracy"][0] == pytest.approx(m["accuracy"])
    for j in range(4):
        assert got[f"position_{j}"][0] == pytest.approx(m["per_position"][str(j)]["accuracy"])
    # a resample without position 3 leaves its accuracy undefined, not 0
    weights = np.where(labels == 3, 0.0, 1.0)[None, :]
    assert np.isnan(batch_metrics(probs, labels)(weights)["position_3"][0])


def test_intervals_are_seeded_and_hold_the_point() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=200)
    labels = np.where(rng.random(200) < 0.7, probs.argmax(axis=1), rng.integers(0, 3, size=200))
    a = choice_metrics(probs, labels, resamples=300, seed=4, level=0.9)
    b = choice_metrics(probs, labels, resamples=300, seed=4, level=0.9)
    assert a == b
    low, high = a["ci"]["accuracy"]["low"], a["ci"]["accuracy"]["high"]
    assert low < a["accuracy"] < high
    # the normal approximation's width, within a loose factor
    se = np.sqrt(a["accuracy"] * (1 - a["accuracy"]) / 200)
    assert 0.6 < (high - low) / (2 * 1.645 * se) < 1.4
    for pos in a["per_position"].values():
        assert pos["ci"]["low"] <= pos["accuracy"] <= pos["ci"]["high"]


def test_margin_over_a_baseline_is_paired() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2] * 20)
    model = np.eye(3)[labels] * 0.8 + 0.2 / 3  # always right
    uniform = np.ones((len(labels), 3))  # every option ties: 1/3
    m = margin_over(model, uniform, labels, resamples=200, seed=0, level=0.95)
    assert m["accuracy"] == pytest.approx(2 / 3)
    # the same rows resampled for both: the difference does not vary at all
    assert m["ci"]["low"] == pytest.approx(2 / 3) and m["ci"]["high"] == pytest.approx(2 / 3)
    assert m["ci"]["p_not_better"] == 0.0
    assert "ci" not in margin_over(model, uniform, labels, resamples=0, seed=0, level=0.95)


def test_bad_shapes_and_values_are_refused() -> None:
    with pytest.raises(ValueError) as err:
        choice_metrics(np.ones((2, 3)) / 3, np.array([0, 3]))
    assert str(err.value) == "a label is outside [0, 3)"
    with pytest.raises(ValueError) as err:
        choice_metrics(np.ones((2, 3)), np.array([0, 1]))
    assert str(err.value) == "probabilities of a row do not sum to 1"
    with pytest.raises(ValueError) as err:
        choice_metrics(np.ones(3), np.array([0]))
    assert str(err.value) == "scores (3,) and labels (1,): expected (n, N) and (n,)"
