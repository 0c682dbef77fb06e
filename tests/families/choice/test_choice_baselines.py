"""Multiple-choice baselines on hand-made rows."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.families.choice.baselines import (
    baseline_scores,
    length_scores,
    overlap_scores,
    position_scores,
)
from nlpflow.families.choice.metrics import credit


def test_position_is_the_train_share_of_each_position() -> None:
    scores = position_scores([2, 2, 0, 2, 1], num_options=4, n=3)
    assert scores.shape == (3, 4)
    assert scores[0].tolist() == [0.2, 0.2, 0.6, 0.0]
    assert credit(scores, np.array([2, 0, 3])).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(UserError) as err:
        position_scores([], num_options=4, n=3)
    assert str(err.value) == "the train split is empty: no position baseline can be computed"


def test_longest_counts_characters_without_surrounding_space() -> None:
    scores = length_scores([["ab", " abc ", "a"], ["xyz", "xy z", "q"]])
    assert scores.tolist() == [[2, 3, 1], [3, 4, 1]]


def test_overlap_counts_distinct_shared_words_case_blind() -> None:
    contexts = ["The cat sat on the mat.", "Nothing here"]
    options = [["the cat the cat", "on a MAT, sat", "dogs run"], ["a", "b", "c"]]
    scores = overlap_scores(contexts, options)
    assert scores.tolist() == [[2, 3, 0], [0, 0, 0]]
    # a row where every option ties is worth 1/N, whatever the position of the answer
    assert credit(scores, np.array([1, 2])).tolist() == [1.0, pytest.approx(1 / 3)]


def test_baseline_scores_dispatches_and_refuses_unknown_names() -> None:
    contexts, options = ["a b"], [["a", "bb", "ccc"]]
    assert baseline_scores("longest", [0], contexts, options, 3).tolist() == [[1, 2, 3]]
    assert baseline_scores("overlap", [0], contexts, options, 3).tolist() == [[1, 0, 0]]
    assert baseline_scores("position", [1], contexts, options, 3).tolist() == [[0, 1, 0]]
    with pytest.raises(ValueError) as err:
        baseline_scores("random", [0], contexts, options, 3)
    assert "unknown multiple-choice baseline 'random'" in str(err.value)
