"""Error table, slices and the report, on a hand-made set of predictions with known answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation import error_analysis as ea
from nlpflow.evaluation import report
from nlpflow.evaluation.error_analysis import SliceStats
from nlpflow.io import write_jsonl
from tests.evaluation import tiny

P = tiny.prediction
LABELS = tiny.LABEL_NAMES
EDGES = [8, 12]


def hand_made() -> list[dict[str, Any]]:
    """8 predictions; comments: total input length, right/wrong, confidence."""
    return [
        P("a", "abcd", "dcba", "anagram", "yes", 0.9),  # 8   right .9
        P("b", "abcd", "abc", "dropped", "no", 0.8),  # 7   WRONG .8
        P("c", "abcde", "abcd", "dropped", "no", 0.95),  # 9   WRONG .95
        P("d", "abcd", "abcde", "added", "no", 0.2),  # 9   right .8
        P("e", "ab|cd", "dc|ba", "anagram", "yes", 0.1),  # 10  WRONG .9
        P("f", "abcdefgh", "hgfedcba", "anagram", "yes", 0.6),  # 16  right .6
        P("g", "abcdefgh", "abcdefgz", "substituted", "no", 0.1),  # 16  right .9
        P("h", "abcdef", "abcdeg", "substituted", "no", 0.8),  # 12  WRONG .8
    ]


def slices_of(rows: list[dict[str, Any]]) -> ea.Slices:
    return ea.compute_slices(rows, tiny.TEXT_FIELDS, tiny.METADATA_FIELDS, LABELS, EDGES)


def test_slices_of_the_hand_made_example() -> None:
    slices = slices_of(hand_made())
    assert list(slices) == ["kind", "label", "length"]
    assert slices["kind"] == {
        "added": SliceStats(1, 1),
        "anagram": SliceStats(3, 2),
        "dropped": SliceStats(2, 0),
        "substituted": SliceStats(2, 1),
    }
    assert slices["label"] == {"no": SliceStats(5, 2), "yes": SliceStats(3, 2)}
    assert slices["length"] == {
        "0-8": SliceStats(2, 1),
        "9-12": SliceStats(4, 1),
        "13+": SliceStats(2, 2),
    }
    assert slices["kind"]["anagram"].accuracy == pytest.approx(2 / 3)


def test_error_metrics_of_the_hand_made_example() -> None:
    rows = hand_made()
    got = ea.error_metrics(rows, slices_of(rows))
    assert got == {
        "n": 8,
        "accuracy": 0.5,
        "errors": 4,
        "slices": {
            "kind": {
                "added": {"n": 1, "accuracy": 1.0},
                "anagram": {"n": 3, "accuracy": 0.666667},
                "dropped": {"n": 2, "accuracy": 0.0},
                "substituted": {"n": 2, "accuracy": 0.5},
            },
            "label": {"no": {"n": 5, "accuracy": 0.4}, "yes": {"n": 3, "accuracy": 0.666667}},
            "length": {
                "0-8": {"n": 2, "accuracy": 0.5},
                "9-12": {"n": 4, "accuracy": 0.25},
                "13+": {"n": 2, "accuracy": 1.0},
            },
        },
    }
    json.dumps(got, allow_nan=False)


def test_errors_sorted_by_confidence_descending_and_capped() -> None:
    rows = hand_made()
    assert [r["id"] for r in ea.misclassified(rows, 10)] == ["c", "e", "b", "h"]
    # b and h tie at 0.8: file order decides, so the cut at 3 is reproducible.
    capped = ea.misclassified(rows, 3)
    assert [r["id"] for r in capped] == ["c", "e", "b"]
    confidences = [r["confidence"] for r in capped]
    assert confidences == sorted(confidences, reverse=True)


def test_weakest_slices_prefer_slices_with_enough_examples() -> None:
    slices = slices_of(hand_made())
    assert ea.weakest_in(slices["kind"]) == ["dropped"]  # no kind has 5 rows: all compete
    assert ea.weakest_in(slices["label"]) == ["no"]
    # Overall, only label=no (n=5) reaches the minimum size, so it wins over dropped (n=2).
    family, value, stats = ea.weakest_slice(slices)
    assert (family, value, stats) == ("label", "no", SliceStats(5, 2))
    assert ea.weakest_slice(slices, min_n=1)[:2] == ("kind", "dropped")
    assert ea.weakest_in({"x": SliceStats(3, 3), "y": SliceStats(2, 2)}) == []
    assert ea.weakest_in({"x": SliceStats(6, 3), "y": SliceStats(8, 4)}) == []
    assert ea.weakest_in({"x": SliceStats(6, 3), "y": SliceStats(8, 4), "z": SliceStats(5, 5)}) == [
        "x",
        "y",
    ]


@pytest.mark.parametrize(
    ("length", "bucket"), [(0, "0-8"), (8, "0-8"), (9, "9-12"), (12, "9-12"), (13, "13+")]
)
def test_length_bucket_edges_are_inclusive_upper_bounds(length: int, bucket: str) -> None:
    assert ea.length_bucket(length, EDGES) == bucket


def test_no_edges_means_one_open_bucket() -> None:
    assert ea.length_bucket_names([]) == ["0+"]
    assert ea.length_bucket(99, []) == "0+"


def test_metadata_field_named_like_a_builtin_family_is_renamed() -> None:
    rows = [P("a", "x", "y", "k", "yes", 0.9) | {"length": "long"}]
    slices = ea.compute_slices(rows, tiny.TEXT_FIELDS, ["length"], LABELS, EDGES)
    assert list(slices) == ["meta_length", "label", "length"]
    assert slices["meta_length"] == {"long": SliceStats(1, 1)}


def test_id_like_metadata_keeps_only_the_largest_slices() -> None:
    rows = [P(str(i), "x", "y", f"v{i:02d}", "yes", 0.9) for i in range(30)]
    rows += [P("extra", "x", "y", "v29", "yes", 0.2)]
    slices = ea.compute_slices(rows, tiny.TEXT_FIELDS, ["kind"], LABELS, EDGES)
    assert len(slices["kind"]) == ea.MAX_SLICES_PER_FIELD
    assert slices["kind"]["v29"] == SliceStats(2, 1)  # the largest survives the cut


def _table_after(text: str, heading: str) -> list[str]:
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


EVALUATE = {
    "n": 8,
    "accuracy": 0.5,
    "f1_macro": 0.48,
    "pr_auc": 0.6,
    "ci": {"accuracy": {"low": 0.2, "high": 0.8}, "f1_macro": {"low": 0.1, "high": 0.7}},
    "baselines": {
        "majority": {"accuracy": 0.625, "f1_macro": 0.38, "margin": {"accuracy": -0.125}},
        "tfidf_logreg": {"accuracy": 0.4, "f1_macro": 0.4, "margin": {"accuracy": 0.1}},
    },
}


def inputs(rows: list[dict[str, Any]], **kw: Any) -> report.ReportInputs:
    return report.ReportInputs(
        rows=rows,
        slices=slices_of(rows),
        text_fields=tiny.TEXT_FIELDS,
        metadata_fields=tiny.METADATA_FIELDS,
        label_names=LABELS,
        max_examples=kw.pop("max_examples", 3),
        **kw,
    )


def test_report_summary_error_table_and_slices() -> None:
    rows = hand_made()
    text = report.render_report(inputs(rows, evaluate=EVALUATE))
    summary = text.split("## Figures", 1)[0].split("## Model and baselines", 1)[0]
    assert "accuracy 0.5000 (95% CI 0.2000–0.8000)" in summary
    assert "macro-F1 0.4800 (95% CI 0.1000–0.7000)" in summary
    assert (
        "**Baselines (accuracy / macro-F1; model margin):** majority 0.6250 (-0.1250) / "
        "0.3800 (+0.1000); tfidf_logreg 0.4000 (+0.1000) / 0.4000 (+0.0800) ⚠ no better"
    ) in summary
    assert "**Errors:** 4 of 8 examples (50.0%)" in summary
    assert "**Weakest slice:** label = no: accuracy 0.4000" in summary
    # The near-miss kind gets its own line: what the anagram model fails on.
    assert "**Weakest kind:** kind = dropped: accuracy 0.0000" in summary
    assert "**Worst confusion:** no → yes: 3 of 5 'no' examples (60.0%)" in summary

    table = _table_after(text, "## Misclassified examples")
    assert "3 of 4 shown" in text
    assert table[0] == (
        "| # | id | first | second | kind | true | predicted | p(predicted) | p(true) |"
    )
    body = table[2:]
    assert [line.split(" | ")[1] for line in body] == ["c", "e", "b"]
    assert "| 2 | e | ab\\|cd | dc\\|ba | anagram | yes | no | 0.9000 | 0.1000 |" in body
    # Every row has as many cells as the header once escaped pipes are discounted.
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in table]
    assert len(set(cells)) == 1

    kind = _table_after(text, "### kind")
    assert "| **dropped** | 2 | 0.0000 | 0.00–0.66 | 2 | ⚠ weakest |" in kind
    assert "| **9-12** | 4 | 0.2500 |" in "\n".join(_table_after(text, "### input length"))
    pairs = _table_after(text, "## Confusion pairs")
    assert pairs[2:] == ["| no | yes | 3 | 60.0% |", "| yes | no | 1 | 33.3% |"]
    confusion = _table_after(text, "## Confusion matrix")
    assert confusion[2:] == ["| no | 2 | 3 |", "| yes | 1 | 2 |"]
    baselines = _table_after(text, "## Model and baselines")
    assert baselines[2].startswith("| **model** | **0.5000** |")


def test_least_sure_and_possible_label_errors() -> None:
    rows = hand_made()
    # Margins |2p - 1|: f .2, g/h/b/d .6/.6..., the smallest first.
    assert [r["id"] for r in ea.least_sure(rows, 2)] == ["f", "b"]
    found = ea.possible_label_errors(rows, 0.9, 10)
    assert [(d.row["id"], d.confidence) for d in found] == [("c", 0.95), ("e", 0.9)]
    text = report.render_report(inputs(rows, label_error_confidence=0.9))
    table = _table_after(text, "## Possible label errors")
    assert table[2].startswith("| c | abcde | abcd | no | yes | 0.9500 | 0.0500 |")


def test_report_without_errors_or_baseline() -> None:
    rows = [P("a", "ab", "ba", "anagram", "yes", 0.9), P("b", "ab", "a", "dropped", "no", 0.1)]
    text = report.render_report(inputs(rows, max_examples=5))
    assert "Baselines" not in text
    assert "**Accuracy:** 1.0000 (2 of 2 correct)" in text
    assert "None: every example is classified correctly." in text
    assert "**Weakest slice:** none" in text


def test_report_of_behavioural_tests() -> None:
    from nlpflow.evaluation.behaviour import TestResult

    passed = TestResult("invariance: case", "invariance", "case on first, second", 10, 0)
    failed = TestResult("a substituted letter lowers p(yes)", "directional", "sub", 4, 3)
    failed.failures = [
        {"id": "x", "original": {"first": "a b", "second": "b a"},
         "perturbed": {"first": "a b", "second": "b q"}, "before": "p(yes) 0.8",
         "after": "p(yes) 0.8"}
    ]  # fmt: skip
    skipped = TestResult("typo", "invariance", "typo")
    skipped.skipped = "the perturbation applies to no example"
    rows = hand_made()
    text = report.render_report(inputs(rows, behaviour=[passed, failed, skipped]))
    assert (
        "**Behavioural failure rates:** invariance: case 0.0% (0/10); "
        "a substituted letter lowers p(yes) 75.0% (3/4)"
    ) in text
    table = _table_after(text, "## Behavioural tests")
    assert (
        "| typo | invariance | – | – | skipped | the perturbation applies to no example |" in table
    )
    failing = _table_after(text, "### Failing: a substituted letter lowers p(yes)")
    assert failing[2] == "| x | b a | 'b q' | p(yes) 0.8 | p(yes) 0.8 |"
    note = report.render_report(inputs(rows, behaviour_note="not run: no --model given."))
    assert "**Behavioural tests:** not run: no --model given." in note


def test_token_task_rows() -> None:
    def sent(id_: str, gold: list[str], pred: list[str], conf: float) -> dict[str, Any]:
        probs = [{t: (conf if t == p else (1 - conf) / 2) for t in TAGS} for p in pred]
        return {
            "id": id_,
            "tokens": [f"w{i}" for i in range(len(gold))],
            "label": gold,
            "prediction": pred,
            "confidence": [conf] * len(gold),
            "probabilities": probs,
        }

    rows = [
        sent("s1", ["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-LOC"], 0.9),
        sent("s2", ["B-PER", "I-PER", "O"], ["B-PER", "O", "O"], 0.95),
        sent("s3", ["O", "O"], ["O", "O"], 0.6),
    ]
    assert [ea.is_correct(r) for r in rows] == [True, False, True]
    slices = ea.compute_slices(rows, ["tokens"], [], TAGS, [2])
    assert slices["label"] == {
        "LOC": SliceStats(1, 1),
        "PER": SliceStats(2, 1),
        "(no entity)": SliceStats(1, 1),
    }
    assert slices["length"] == {"0-2": SliceStats(1, 1), "3+": SliceStats(2, 1)}
    assert ea.confusion_pairs(rows) == [("I-PER", "O", 1, 1)]
    text = report.render_report(
        report.ReportInputs(rows, slices, ["tokens"], [], TAGS, 5, task="token")
    )
    assert "| 1 | s2 | w0 w1[I-PER→O] w2 | 1 | 0.9500 |" in text
    assert "**Worst confusion:** I-PER → O: 1 of 1 'I-PER' words (100.0%)" in text


TAGS = ["B-LOC", "B-PER", "I-PER", "O"]


def test_load_predictions_reads_rows_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    write_jsonl(path, hand_made())
    assert ea.load_predictions(path, tiny.TEXT_FIELDS, LABELS) == hand_made()

    path.write_text(json.dumps(hand_made()[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test\.jsonl, line 2: not valid JSON"):
        ea.load_predictions(path, tiny.TEXT_FIELDS, LABELS)
    path.write_text(json.dumps({"id": "x", "label": "no"}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"line 1: missing key\(s\) \['prediction'"):
        ea.load_predictions(path, tiny.TEXT_FIELDS, LABELS)
    path.write_text(json.dumps(P("a", "x", "y", "k", "maybe", 0.9)) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="label 'maybe' is not one of"):
        ea.load_predictions(path, tiny.TEXT_FIELDS, LABELS)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="holds no predictions"):
        ea.load_predictions(path, tiny.TEXT_FIELDS, LABELS)
    with pytest.raises(UserError, match="run the evaluate stage first"):
        ea.load_predictions(tmp_path / "missing.jsonl", tiny.TEXT_FIELDS, LABELS)


def test_auto_length_edges_make_about_equal_buckets() -> None:
    edges = ea.auto_length_edges(list(range(1, 101)))
    assert edges == [25, 50, 75]
    assert ea.auto_length_edges([5, 5, 5]) == []
    assert ea.auto_length_edges([]) == []


def test_the_evaluate_metrics_are_read_with_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.json"
    path.write_text(json.dumps({"test": {"baselines": {"majority": {"accuracy": 0.5}}}}))
    assert ea.read_evaluate_metrics(path)["test"]["baselines"]["majority"]["accuracy"] == 0.5
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON at line 1"):
        ea.read_evaluate_metrics(path)
    with pytest.raises(UserError, match="not found"):
        ea.read_evaluate_metrics(tmp_path / "nope.json")


def test_summary_warns_when_the_labels_are_imbalanced() -> None:
    rows = hand_made()
    evaluate = {
        "accuracy": 0.95,
        "f1_macro": 0.9,
        "pr_auc": 0.92,
        "baselines": {"majority": {"accuracy": 0.87, "f1_macro": 0.46, "pr_auc": 0.13}},
    }
    text = report.render_report(inputs(rows, evaluate=evaluate))
    assert (
        "**Imbalanced labels:** always predicting the majority label already scores accuracy "
        "0.8700 (macro-F1 0.4600, PR-AUC 0.1300)"
    ) in text
