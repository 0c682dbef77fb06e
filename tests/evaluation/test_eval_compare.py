"""Comparing two experiments: pairing, McNemar, paired intervals, flips, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from nlpflow.cli import main as cli
from nlpflow.errors import UserError
from nlpflow.evaluation.compare import Side, compare, mcnemar, read_side, render
from nlpflow.io import write_jsonl
from tests.evaluation import tiny

P = tiny.prediction


def side(name: str, p_yes: list[float], labels: list[str] | None = None) -> Side:
    labels = labels or ["yes", "no"] * (len(p_yes) // 2)
    rows = [
        P(str(i), "a b", "b a", "k", lab, p)
        for i, (lab, p) in enumerate(zip(labels, p_yes, strict=True))
    ]
    return Side(name, name, rows)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 0), (5, 2), (10, 3), (30, 12), (12, 30)])
def test_mcnemar_matches_scipy(b: int, c: int) -> None:
    got = mcnemar(b, c)
    n = b + c
    if n == 0:
        assert got["p_value"] == 1.0
    elif n < 25:
        assert got["method"] == "exact binomial"
        assert got["p_value"] == pytest.approx(stats.binomtest(b, n, 0.5).pvalue)
    else:
        stat = (abs(b - c) - 1) ** 2 / n
        assert got["statistic"] == pytest.approx(stat)
        assert got["p_value"] == pytest.approx(stats.chi2.sf(stat, 1))


def test_compare_counts_flips_both_ways_and_reports_paired_differences() -> None:
    # 40 examples; A right on all; B wrong on the first 6 "yes" and right elsewhere.
    a = side("A", [0.9, 0.1] * 20)
    b_probs = [0.9, 0.1] * 20
    for i in range(0, 12, 2):
        b_probs[i] = 0.3
    b = side("B", b_probs)
    result = compare(a, b, resamples=300, seed=0)
    assert len(result.regressions) == 6 and result.fixes == 0
    assert result.metrics["accuracy"] == pytest.approx({"a": 1.0, "b": 34 / 40, "diff": -6 / 40})
    ci = result.intervals["accuracy"]
    assert ci["high"] < 0 and ci["p_not_better"] == 1.0
    assert result.mcnemar["method"] == "exact binomial" and result.mcnemar["p_value"] < 0.05
    text = render(result, max_flips=2)
    assert "## Flipped from right to wrong (6)" in text and "2 of 6 shown" in text
    assert json.loads(json.dumps(result.as_json()))["right_to_wrong"] == 6


def test_different_test_sets_are_refused() -> None:
    a = side("A", [0.9, 0.1])
    b = side("B", [0.9, 0.1])
    b.rows[1]["id"] = "other"
    with pytest.raises(UserError, match="not scored on the same test set"):
        compare(a, b)
    c = side("C", [0.9, 0.1], labels=["no", "no"])
    with pytest.raises(UserError, match="the test sets differ"):
        compare(a, c)


def test_read_side_from_files_and_project_directories(tmp_path: Path) -> None:
    rows = side("x", [0.9, 0.1]).rows
    write_jsonl(tmp_path / "p" / "data" / "predictions" / "test.jsonl", rows)
    assert read_side(str(tmp_path / "p"), "test").rows == rows
    assert (
        read_side(str(tmp_path / "p" / "data" / "predictions" / "test.jsonl"), "test").rows == rows
    )
    with pytest.raises(UserError, match="neither a file nor a git revision"):
        read_side("no-such-rev", "test", repo=tmp_path)


def test_cli_compare_writes_a_report_and_gates_on_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def write(name: str, probs: list[float]) -> str:
        path = tmp_path / f"{name}.jsonl"
        write_jsonl(path, side(name, probs).rows)
        return str(path)

    a = write("a", [0.9, 0.1, 0.9, 0.1])
    b = write("b", [0.2, 0.1, 0.9, 0.1])
    out = tmp_path / "cmp.md"
    assert cli(["compare", a, b, "--resamples", "50", "--out", str(out)]) == 0
    assert "Flipped from right to wrong (1)" in out.read_text()
    capsys.readouterr()
    assert cli(["compare", a, b, "--resamples", "50", "--max-regressions", "0", "--json"]) == 1
    captured = capsys.readouterr()
    data: dict[str, Any] = json.loads(captured.out)
    assert data["right_to_wrong"] == 1 and data["regressions"] == ["0"]
    assert "flipped from right to wrong" in captured.err
    assert cli(["compare", a, str(tmp_path / "missing.jsonl")]) == 2


def test_token_comparisons_read_entities_as_the_evaluate_stage_was_told() -> None:
    """An I- tag with no B- before it is an entity to conlleval (default) but not to strict
    IOB2: `nlpflow compare` must score as `evaluate.entity_mode` did."""
    from nlpflow.evaluation.entities import entity_metrics

    def token_side(name: str, predictions: list[list[str]]) -> Side:
        rows = [
            {"id": str(i), "tokens": ["w"] * len(p), "label": ["B-PER", "I-PER", "O"],
             "prediction": p, "confidence": [0.9] * len(p),
             "probabilities": [{"O": 0.1, "B-PER": 0.8, "I-PER": 0.1}] * len(p)}
            for i, p in enumerate(predictions)
        ]  # fmt: skip
        return Side(name, name, rows)

    gold = [["B-PER", "I-PER", "O"]] * 4
    loose = [["I-PER", "I-PER", "O"]] * 2 + [["B-PER", "I-PER", "O"]] * 2
    a, b = token_side("A", gold), token_side("B", loose)
    for mode in ("default", "strict"):
        result = compare(a, b, resamples=50, seed=0, entity_mode=mode, entity_scheme="IOB2")
        expected = entity_metrics(gold, loose, mode=mode, scheme="IOB2")["f1"]
        assert result.metrics["f1"]["b"] == pytest.approx(expected), mode
    assert entity_metrics(gold, loose, mode="default", scheme="IOB2")["f1"] == 1.0
    assert entity_metrics(gold, loose, mode="strict", scheme="IOB2")["f1"] < 1.0
