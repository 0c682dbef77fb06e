"""A split's generation results: baselines, paired differences, failures, worst, slices."""

from __future__ import annotations

import pytest

from nlpflow.families.text2text.evaluation import evaluate_split, length_slices
from nlpflow.families.text2text.metrics import score_generations
from nlpflow.families.text2text.outputs import copy_input_baseline, most_common_target_baseline

INPUTS = ["sort c b a", "sort b a", "sort d a", "spell 4 2", "spell 7", "sort e d c b a"]
TARGETS = ["a b c", "a b", "a d", "forty two", "seven", "a b c d e"]
OUTPUTS = ["a b c", "a b", "a d", "forty", "", "a a a a a a a a"]
TOKENS = [4, 3, 3, 2, 1, 8]
ENDED = [True, True, True, True, True, False]


def _result(resamples: int = 200) -> dict:
    baselines = {
        "copy_input": copy_input_baseline(INPUTS),
        "most_common_target": most_common_target_baseline(["a b", "a b", "seven"], len(INPUTS)),
    }
    return evaluate_split(INPUTS, TARGETS, OUTPUTS, TOKENS, ENDED, 8, baselines, resamples, 0, 0.9)


def test_metrics_baselines_and_margins() -> None:
    result = _result()
    assert result["exact_match"] == pytest.approx(3 / 6)
    copy = result["baselines"]["copy_input"]
    assert copy["exact_match"] == 0.0
    assert copy["margin"]["exact_match"] == pytest.approx(3 / 6)
    common = result["baselines"]["most_common_target"]
    assert common["exact_match"] == pytest.approx(1 / 6)  # "a b" is right once
    assert common["margin"]["exact_match"] == pytest.approx(2 / 6)
    paired = result["paired"]["copy_input"]["exact_match"]
    assert 0 < paired["low"] <= 0.5 <= paired["high"]
    assert paired["p_not_better"] < 0.05
    assert set(result["paired"]["copy_input"]) == {
        "exact_match",
        "token_f1",
        "rougeL",
        "bleu",
        "chrf",
    }


def test_failures_and_worst() -> None:
    result = _result(0)
    assert result["failures"]["empty"] == {"count": 1, "share": pytest.approx(1 / 6)}
    assert result["failures"]["repetition"]["count"] == 1
    assert result["failures"]["truncated"]["count"] == 1
    assert result["failures"]["copied_input"]["count"] == 0
    worst = result["worst"]
    assert [w["index"] for w in worst] == [4, 5, 3]  # F1 0, then 1/7 ... the right ones left out
    assert worst[0]["failures"] == ["empty"]
    assert worst[1]["failures"] == ["repetition", "truncated"]
    assert worst[1]["output"] == "a a a a a a a a" and worst[1]["target"] == "a b c d e"


def test_length_slices() -> None:
    scores = score_generations(OUTPUTS, TARGETS)
    slices = length_slices(INPUTS, scores)
    assert sum(s["n"] for s in slices) == 6
    by_name = {s["input_words"]: s for s in slices}
    # words 2 3 3 3 4 6: thirds at 2, 3, 3.33 (rounded 3), 6 -> slices [2, 3) and [3, 6]
    assert list(by_name) == ["2", "3-6"]
    assert by_name["2"]["n"] == 1 and by_name["2"]["exact_match"] == 0.0
    assert by_name["3-6"]["n"] == 5 and by_name["3-6"]["exact_match"] == pytest.approx(3 / 5)
    one = length_slices(["a b", "c d"], score_generations(["x", "y"], ["x", "z"]))
    assert one == [{"input_words": "2", "n": 2, "exact_match": 0.5, "token_f1": 0.5}]


def test_label_task_metrics_against_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from nlpflow.families.text2text.evaluation import label_task_metrics

    names = ["neg", "pos", "neutral"]
    true = ["pos", "neg", "pos", "neutral", "neg", "pos"]
    outputs = ["pos", "Neg.", "I think positive", "neutral", "pos", ""]
    result = label_task_metrics(true, outputs, names, 100, 0, 0.9)
    assert result["parsed"] == {"exact": 3, "normalised": 1, "unparseable": 2}
    assert result["unparseable_share"] == pytest.approx(2 / 6)
    # scikit-learn: unparseable as a prediction outside the labels
    pred = ["pos", "neg", "?", "neutral", "pos", "?"]
    assert result["accuracy"] == pytest.approx(accuracy_score(true, pred))
    for avg in ("macro", "weighted"):
        expected = f1_score(true, pred, labels=names, average=avg, zero_division=0)
        assert result[f"f1_{avg}"] == pytest.approx(expected)
    assert result["per_class"]["pos"]["recall"] == pytest.approx(1 / 3)
    assert result["per_class"]["pos"]["precision"] == pytest.approx(1 / 2)
    assert result["unparseable_examples"] == ["I think positive", ""]
    low, high = result["ci"]["unparseable_share"]["low"], result["ci"]["unparseable_share"]["high"]
    assert low <= 2 / 6 <= high
    with pytest.raises(ValueError) as err:
        label_task_metrics(["other"], ["x"], names, 0, 0, 0.9)
    assert "true labels ['other'] are not among the label names" in str(err.value)


def test_error_report() -> None:
    from nlpflow.families.text2text.evaluation import error_report

    text = error_report("test", _result(), 0.9)
    assert text.startswith("# Generation errors (test, 6 examples)")
    assert "| exact_match | 0.5000 (" in text
    assert "90% CI" in text
    assert "| copy_input | exact_match | +" in text
    assert "| empty | 1 | 16.7% |" in text
    assert "| spell 7 | seven |  | 0.000 | empty |" in text
