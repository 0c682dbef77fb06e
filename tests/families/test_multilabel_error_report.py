"""The multi-label error report: hand-worked counts, ordering of the worst examples, co-occurrence."""

from __future__ import annotations

import numpy as np

from nlpflow.families.multilabel.error_report import (
    cooccurrence,
    error_summary,
    label_errors,
    label_swaps,
    report_lines,
    worst_examples,
)

NAMES = ["a", "b", "c"]
Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
P = np.array([[1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 0, 0]])
S = np.array([[0.9, 0.2, 0.4], [0.6, 0.3, 0.8], [0.7, 0.6, 0.3], [0.95, 0.1, 0.2]])


def test_missed_and_spurious_per_label() -> None:
    assert label_errors(Y, P, NAMES) == {
        "a": {"support": 2, "predicted": 4, "missed": 0, "spurious": 2},
        "b": {"support": 2, "predicted": 1, "missed": 1, "spurious": 0},
        "c": {"support": 1, "predicted": 1, "missed": 1, "spurious": 1},
    }


def test_swaps_count_a_missed_label_beside_a_spurious_one() -> None:
    # row 1 misses b and adds a and c; row 0 misses c, adds nothing
    assert label_swaps(Y, P, NAMES) == [
        {"missed": "b", "predicted_instead": "a", "count": 1},
        {"missed": "b", "predicted_instead": "c", "count": 1},
    ]


def test_worst_examples_most_wrong_then_surest() -> None:
    worst = worst_examples(Y, P, S, NAMES, ["t0", "t1", "t2", "t3"], ["i0", "i1", "i2", "i3"])
    # row 1: 3 wrong; rows 0 and 3: 1 wrong each, row 3 surer (|0 - 0.95| > |1 - 0.4|)
    assert [w["id"] for w in worst] == ["i1", "i3", "i0"]
    first = worst[0]
    assert first["gold"] == ["b"]
    assert first["predicted"] == ["a", "c"]
    assert first["missed"] == ["b"]
    assert first["spurious"] == ["a", "c"]
    assert first["scores"] == {"a": 0.6, "b": 0.3, "c": 0.8}
    assert worst_examples(Y, P, S, NAMES, ["x"] * 4, ["y"] * 4, limit=1)[0]["wrong"] == 3


def test_cooccurrence_with_conditional_shares() -> None:
    y = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 1, 1]])
    pairs = cooccurrence(y, NAMES)
    assert pairs == [
        {"a": "a", "b": "b", "count": 2, "p_b_given_a": 2 / 3, "p_a_given_b": 2 / 3},
        {"a": "b", "b": "c", "count": 2, "p_b_given_a": 2 / 3, "p_a_given_b": 1.0},
        {"a": "a", "b": "c", "count": 1, "p_b_given_a": 1 / 3, "p_a_given_b": 0.5},
    ]


def test_summary_and_report() -> None:
    summary = error_summary(Y, P, S, NAMES, ["t|0", "t1", "t2", "t3"], ["i0", "i1", "i2", "i3"])
    assert (summary["n"], summary["examples_with_errors"]) == (4, 3)
    assert (summary["missed"], summary["spurious"]) == (2, 3)
    text = "\n".join(report_lines(summary, "test"))
    assert "3 of 4 examples have at least one wrong label: 2 labels missed, 3 spurious." in text
    assert "| a | 2 | 4 | 0 | 2 |" in text
    assert "| i1 | t1 | b | a, c | a 0.60, b 0.30, c 0.80 |" in text
    assert "t\\|0" in text  # a | in a text never splits a cell
    assert "| a | b | 1 | 1 | 0.500 |" in text  # gold a+b once (row 2), predicted once (row 2)
