"""Entity-level scores, against seqeval's documented definitions and examples."""

from __future__ import annotations

import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.entities import (
    detect_scheme,
    entities_default,
    entities_strict,
    entity_metrics,
)

# The example of seqeval's README and docstrings.
TRUE = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
PRED = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]


def test_seqeval_readme_example() -> None:
    got = entity_metrics(TRUE, PRED)
    # seqeval: precision 0.50, recall 0.50, f1 0.50, accuracy 0.80; per type MISC 0, PER 1.
    assert (got["precision"], got["recall"], got["f1"]) == (0.5, 0.5, 0.5)
    assert got["token_accuracy"] == pytest.approx(0.8)
    assert got["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert got["f1_macro"] == 0.5 and got["f1_weighted"] == 0.5
    assert got["entities"] == 2 and got["predicted_entities"] == 2


def test_default_mode_get_entities_examples() -> None:
    # seqeval's get_entities docstring: [('PER', 0, 1), ('LOC', 3, 3)].
    assert entities_default(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # IOB1: I- starts an entity after O; B- separates two adjacent entities of one type.
    assert entities_default(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == [
        ("PER", 0, 1),
        ("PER", 2, 2),
        ("LOC", 4, 4),
    ]
    # A type change inside a run ends one entity and starts another.
    assert entities_default(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    assert entities_default(["O", "O"]) == []


def test_strict_iob2_ignores_entities_without_a_b_tag() -> None:
    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC", "I-ORG"]
    assert entities_strict(tags, "IOB2") == [("LOC", 3, 4), ("LOC", 5, 5)]
    # The lenient reading counts the stray I- runs as entities.
    assert entities_default(tags) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("ORG", 6, 6)]


def test_strict_iob1_reads_i_tags_as_entity_starts() -> None:
    assert entities_strict(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "IOB1") == [
        ("PER", 0, 1),
        ("PER", 2, 2),
        ("LOC", 4, 4),
    ]
    # A B- after O is not well formed in IOB1 (seqeval's IOB1 scheme has no O->B start).
    assert entities_strict(["O", "B-PER", "O"], "IOB1") == []


def test_strict_and_default_scores_differ_on_malformed_predictions() -> None:
    true = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]
    assert entity_metrics(true, pred, "default")["f1"] == 1.0
    assert entity_metrics(true, pred, "strict", "IOB2")["f1"] == 0.0


def test_macro_and_weighted_averages_over_true_or_predicted_types() -> None:
    true = [["B-PER", "O", "B-LOC", "B-LOC"]]
    pred = [["B-PER", "O", "B-LOC", "B-ORG"]]
    got = entity_metrics(true, pred)
    # PER 1/1/1, LOC p=1 r=.5 f=2/3, ORG p=0 r=0 (support 0).
    assert set(got["per_type"]) == {"LOC", "ORG", "PER"}
    assert got["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert got["f1_weighted"] == pytest.approx((1 * 1 + 2 / 3 * 2) / 3)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)


def test_scheme_detection_and_invalid_tags() -> None:
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "IOB2"
    assert detect_scheme([["O", "I-PER", "I-PER"]]) == "IOB1"
    with pytest.raises(UserError, match="invalid tag 'PER'"):
        entities_default(["PER"])
    with pytest.raises(UserError, match="invalid tag 'E-PER'"):
        entities_strict(["E-PER"], "IOB2")
    with pytest.raises(UserError, match="unknown tagging scheme"):
        entities_strict(["O"], "BILOU")
