"""Multi-label baselines: hand-worked frequency baselines, TF-IDF learning what words show."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import TfidfSettings
from nlpflow.families.multilabel.baselines import (
    label_frequencies,
    label_frequency,
    most_frequent_set,
    tfidf_logreg_scores,
)

TRAIN = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_label_frequency() -> None:
    assert label_frequencies(TRAIN).tolist() == [0.75, 0.25, 0.0]
    scores, predicted = label_frequency(TRAIN, 2000, seed=1)
    assert scores.shape == (2000, 3)
    assert np.all(scores == [0.75, 0.25, 0.0])
    assert predicted.mean(axis=0) == pytest.approx([0.75, 0.25, 0.0], abs=0.03)
    again = label_frequency(TRAIN, 2000, seed=1)[1]
    assert np.array_equal(predicted, again)


def test_most_frequent_set() -> None:
    scores, predicted = most_frequent_set(TRAIN, 2)
    assert predicted.tolist() == [[1, 0, 0], [1, 0, 0]]  # {a} twice; {a, b} and {} once
    assert scores[0].tolist() == [1.0, 0.125, 0.0]
    # a tie goes to the set met first in train; the empty set counts as a set
    _, predicted = most_frequent_set(np.array([[0, 0], [0, 1], [0, 1], [0, 0]]), 1)
    assert predicted.tolist() == [[0, 0]]
    with pytest.raises(UserError) as err:
        most_frequent_set(np.zeros((0, 2)), 1)
    assert "train split is empty" in str(err.value)


def test_tfidf_learns_word_labels_and_keeps_constant_ones() -> None:
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "sun", "rain", "tea"]
    texts, rows = [], []
    for _ in range(200):
        picked = [w for w in words if rng.random() < 0.4] or ["tea"]
        texts.append(" ".join(picked))
        rows.append([int("cat" in picked), int("sun" in picked), 1])  # the last: every example
    y = np.array(rows)
    test = ["cat rain", "sun dog", "tea"]
    out = tfidf_logreg_scores([texts], y, {"test": [test]}, TfidfSettings(), seed=0)
    s = out["test"]
    assert s.shape == (3, 3)
    assert (s[:, :2] >= 0.5).astype(int).tolist() == [[1, 0], [0, 1], [0, 0]]
    assert s[:, 2].tolist() == [1.0, 1.0, 1.0]
    # one label to fit (a binary problem to scikit-learn) still gives one column
    one = tfidf_logreg_scores([texts], y[:, [0, 2]], {"t": [test]}, TfidfSettings(), seed=0)
    assert one["t"].shape == (3, 2)
    assert one["t"][:, 0] == pytest.approx(s[:, 0])
    assert tfidf_logreg_scores([["", " "]], np.array([[1], [0]]), {}, TfidfSettings(), 0) == {}
