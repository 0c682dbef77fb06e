"""The built-in multi-label data: seeded, labels true to the strings, correlated, some rare."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.families.multilabel.generator import LABEL_NAMES, generate_multilabel, labels_of
from nlpflow.families.multilabel.labels import multi_hot


def test_labels_of_hand_examples() -> None:
    assert labels_of("a b c d e") == ["vowel_end", "vowel_start"]
    assert labels_of("a b c d a") == ["same_ends", "vowel_end", "vowel_start"]
    assert labels_of("b q c d f g h") == ["long", "rare_letter"]
    assert labels_of("b c d f") == []


def test_seeded_distinct_and_true_to_the_text() -> None:
    rows = generate_multilabel(600, seed=3)
    assert rows == generate_multilabel(600, seed=3)
    assert rows != generate_multilabel(600, seed=4)
    assert len({r["text"] for r in rows}) == 600
    for row in rows:
        assert row["labels"] == labels_of(row["text"])
        assert 4 <= len(row["text"].split()) <= 8


def test_frequencies_and_correlation() -> None:
    rows = generate_multilabel(3000, seed=0)
    y = multi_hot([r["labels"] for r in rows], LABEL_NAMES).astype(bool)
    freq = dict(zip(LABEL_NAMES, y.mean(axis=0), strict=True))
    assert 0.05 < freq["rare_letter"] < 0.12
    assert 0.06 < freq["same_ends"] < 0.15
    for common in ("long", "vowel_end", "vowel_start"):
        assert 0.3 < freq[common] < 0.5
    start, end = y[:, LABEL_NAMES.index("vowel_start")], y[:, LABEL_NAMES.index("vowel_end")]
    assert end[start].mean() > 2 * end[~start].mean()  # correlated labels
    sizes = Counter(int(n) for n in y.sum(axis=1))
    assert sizes[0] > 0 and sizes[4] > 0  # the empty set and large sets both occur
    assert np.all(y.sum(axis=0) > 0)


def test_impossible_sizes_are_refused() -> None:
    with pytest.raises(UserError) as err:
        generate_multilabel(10, seed=0, min_length=2, max_length=3)
    assert "min_length must be >= 3" in str(err.value)
    with pytest.raises(UserError) as err:
        generate_multilabel(20_000, seed=0, min_length=3, max_length=3)
    assert "data.multilabel.size 20000 is more distinct texts" in str(err.value)
