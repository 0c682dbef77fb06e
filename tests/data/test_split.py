from __future__ import annotations

import pytest

from nlpflow.data.split import label_names_from, stratified_split
from nlpflow.errors import UserError


def test_stratified_split_keeps_label_shares_and_every_row() -> None:
    labels = ["a"] * 800 + ["b"] * 200
    idx = stratified_split(labels, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=3)
    assert sorted(i for v in idx.values() for i in v) == list(range(1000))
    assert len(idx["validation"]) == 100 and len(idx["test"]) == 100
    assert sum(labels[i] == "b" for i in idx["test"]) == 20
    assert idx == stratified_split(labels, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=3)
    assert idx != stratified_split(labels, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=4)


def test_label_names_sorted_and_unseen_label_rejected() -> None:
    assert label_names_from(["b", "a", "b"], {"test": ["a"]}) == ["a", "b"]
    with pytest.raises(UserError) as err:
        label_names_from(["b", "a"], {"test": ["a", "c"]})
    assert "label(s) ['c'] occur in the test split but never in train" in str(err.value)
