"""The multiple-choice error report on hand-made prediction records."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.families.choice.report import error_report


def _record(i: int, label: int, probs: list[float], **meta: Any) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "context": f"context {i} | with a pipe",
        "options": [f"opt{i}a", f"opt{i}b", f"opt{i}c"],
        "label": label,
        "prediction": max(range(3), key=lambda j: probs[j]),
        "probabilities": probs,
        **meta,
    }


RECORDS = [
    _record(0, 0, [0.8, 0.1, 0.1], kind="x"),  # right
    _record(1, 0, [0.05, 0.93, 0.02], kind="x"),  # wrong, sure
    _record(2, 1, [0.5, 0.3, 0.2], kind="y"),  # wrong, unsure
    _record(3, 2, [0.1, 0.1, 0.8], kind="y"),  # right
    _record(4, 0, [0.2, 0.2, 0.6], kind="y"),  # wrong
]


def test_figures_count_errors_by_gold_position_and_slices() -> None:
    _, figures = error_report(RECORDS, max_examples=10, level=0.95, metadata_fields=["kind"])
    assert figures["n"] == 5 and figures["errors"] == 3
    assert figures["by_gold_position"] == {
        "0": {"n": 3, "errors": 2, "accuracy": pytest.approx(1 / 3, abs=1e-6)},
        "1": {"n": 1, "errors": 1, "accuracy": 0.0},
        "2": {"n": 1, "errors": 0, "accuracy": 1.0},
    }
    assert figures["confident_errors"] == 1
    assert figures["slices"] == {
        "kind": {
            "x": {"n": 2, "accuracy": 0.5},
            "y": {"n": 3, "accuracy": pytest.approx(1 / 3, abs=1e-6)},
        }
    }


def test_confident_wrong_choices_come_surest_first_with_every_option() -> None:
    lines, _ = error_report(RECORDS, max_examples=2, level=0.9)
    text = "\n".join(lines)
    first, second = text.index("`r1`"), text.index("`r4`")
    assert first < second and "`r2`" not in text  # limited to the two surest
    assert "**1.** `r1` chose option 1 (p = 0.930); the right option is 0 (p = 0.050)." in text
    assert "> context 1 | with a pipe" in text
    assert "| 0 | opt1a | 0.050 | ✓ right |" in text
    assert "| 1 | opt1b | 0.930 | → chosen |" in text
    assert "| 2 | opt1c | 0.020 |  |" in text
    assert "90% CI" in text


def test_position_tables() -> None:
    lines, _ = error_report(RECORDS, max_examples=0, level=0.95)
    assert "| 0 | 3 | 2 | 33.3% (" in "\n".join(lines)
    gold_chosen = lines[lines.index("| gold ↓ chosen → | 0 | 1 | 2 |") :][2:5]
    assert gold_chosen == ["| 0 | 1 | 1 | 1 |", "| 1 | 1 | 0 | 0 |", "| 2 | 0 | 0 | 1 |"]


def test_no_errors_and_malformed_records() -> None:
    right = [RECORDS[0], RECORDS[3]]
    lines, figures = error_report(right, max_examples=5, level=0.95)
    assert "No wrong choice." in lines and figures["errors"] == 0
    with pytest.raises(ValueError) as err:
        error_report([{**RECORDS[0], "probabilities": [1.0]}], 5, 0.95)
    assert str(err.value) == "prediction record 0 has another number of options than 3"
