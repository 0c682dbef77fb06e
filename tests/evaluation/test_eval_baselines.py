"""The majority baseline: its label comes from the train split, never from the split scored."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import majority_baseline, majority_label
from nlpflow.evaluation.evaluate import split_metrics

NAMES = ["no", "yes"]


def test_majority_label_is_the_most_frequent_train_label() -> None:
    assert majority_label([0, 1, 1, 1, 0], 2) == 1
    assert majority_label([2, 2, 0], 3) == 2


def test_majority_label_tie_goes_to_the_smallest_id() -> None:
    assert majority_label([1, 0, 1, 0], 2) == 0


def test_majority_label_of_an_empty_train_split_is_a_user_error() -> None:
    with pytest.raises(UserError, match="train split is empty"):
        majority_label([], 2)


def test_baseline_uses_the_train_majority_not_the_test_majority() -> None:
    train = [0, 0, 0, 1]  # majority "no"
    test = np.array([1, 1, 1, 0])  # majority "yes"
    base = majority_baseline(test, majority_label(train, 2), NAMES)
    # Always "no" on test: 1 of 4 right; F1 is 0.4 for "no" (P=0.25, R=1) and 0 for "yes".
    assert base == pytest.approx({"accuracy": 0.25, "f1_macro": 0.2})


def test_split_metrics_puts_the_baseline_beside_the_model() -> None:
    probs = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    got = split_metrics([1, 1, 1, 0], probs, NAMES, majority=0)
    assert got["accuracy"] == pytest.approx(0.75)
    assert got["baselines"] == {"majority": pytest.approx({"accuracy": 0.25, "f1_macro": 0.2})}
