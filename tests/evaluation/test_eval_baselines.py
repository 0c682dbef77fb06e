"""Baselines: fitted on the train split only, scored like the model."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import (
    TfidfSettings,
    majority_label,
    majority_probabilities,
    stratified_probabilities,
    tag_majority,
    tag_with,
    tfidf_logreg_probabilities,
    word_majority_tagger,
)


def test_majority_label_is_the_most_frequent_train_label() -> None:
    assert majority_label([0, 1, 1, 1, 0], 2) == 1
    assert majority_label([2, 2, 0], 3) == 2
    assert majority_label([1, 0, 1, 0], 2) == 0  # a tie goes to the smallest id
    with pytest.raises(UserError, match="train split is empty"):
        majority_label([], 2)


def test_majority_predicts_the_train_majority_with_train_priors() -> None:
    probs, pred = majority_probabilities([0, 0, 0, 1], 2, 3)
    np.testing.assert_allclose(probs, [[0.75, 0.25]] * 3)
    np.testing.assert_array_equal(pred, [0, 0, 0])


def test_stratified_draws_with_the_train_priors_and_the_seed() -> None:
    train = [0] * 90 + [1] * 10
    _, a = stratified_probabilities(train, 2, 5000, seed=1)
    _, b = stratified_probabilities(train, 2, 5000, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(0.1, abs=0.02)


def test_tfidf_logreg_learns_a_word_cue_and_keeps_fields_apart() -> None:
    words = ["good", "bad"]
    train_a = [f"this is {words[i % 2]} stuff" for i in range(40)]
    train_b = ["x y z"] * 40
    labels = [i % 2 for i in range(40)]
    out = tfidf_logreg_probabilities(
        [train_a, train_b],
        labels,
        {"test": [["so good", "so bad"], ["x", "y"]]},
        2,
        TfidfSettings(),
        seed=0,
    )
    probs = out["test"]
    assert probs.shape == (2, 2)
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1  # good -> 0, bad -> 1
    # Single letters count as words (the anagram data spells words out).
    letters = tfidf_logreg_probabilities(
        [["a b", "c d"] * 5], [0, 1] * 5, {"t": [["a b"]]}, 2, TfidfSettings(), 0
    )
    assert letters["t"].shape == (1, 2)
    assert (
        tfidf_logreg_probabilities([["a", "b"]], [1, 1], {"t": [["a"]]}, 2, TfidfSettings(), 0)
        == {}
    )


def test_token_baselines() -> None:
    tokens = [["Ada", "visited", "Paris"], ["Paris", "is", "big"]]
    tags = [["B-PER", "O", "B-LOC"], ["B-LOC", "O", "O"]]
    assert tag_majority(tags) == "O"
    table, fallback = word_majority_tagger(tokens, tags)
    assert tag_with(table, fallback, [["paris", "Bob"]]) == [["B-LOC", "O"]]
