"""The built-in data, the baselines, the error report and the span loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.families.qa.baselines import baseline_predictions, overlap_sentence, sentences
from nlpflow.families.qa.builtin import QaBuiltinParams, generate_qa
from nlpflow.families.qa.metrics import question_scores, squad_metrics
from nlpflow.families.qa.postprocess import Answer
from nlpflow.families.qa.report import (
    answer_length,
    excerpt,
    prediction_records,
    question_word,
    report_lines,
    slice_scores,
    worst_answers,
)

# --------------------------------------------------------------------------- built-in data


def test_builtin_is_seeded_and_has_the_asked_shape() -> None:
    params = QaBuiltinParams(size=2000, unanswerable=0.3)
    rows = generate_qa(params, seed=5)
    assert rows == generate_qa(params, seed=5)
    assert rows != generate_qa(params, seed=6)
    assert len({(r["context"], r["question"]) for r in rows}) == 2000
    unanswerable = sum(not r["answers"]["text"] for r in rows) / len(rows)
    assert 0.27 < unanswerable < 0.33  # 3 standard errors of 2,000 draws at 0.3
    assert {question_word(r["question"]) for r in rows} == {"what", "where", "who", "when"}
    for r in rows:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start : start + len(text)] == text


def test_builtin_answers_have_distractors_and_unanswerables_leave_the_fact_out() -> None:
    rows = generate_qa(QaBuiltinParams(size=400, min_facts=6, max_facts=6), seed=0)
    kinds = {"who": "owner", "where": "place", "what": "colour", "when": "year"}
    for r in rows:
        sentences = [s for s in r["context"].split(" . ") if s]
        assert len(sentences) == 6
        kind = kinds[question_word(r["question"])]
        thing = r["question"].split()[-2]
        fact = {
            "owner": f"keeps the {thing} in",
            "place": f"keeps the {thing} in",
            "colour": f"the {thing} is",
            "year": "bought it in",
        }[kind]
        assert (fact in r["context"]) == bool(r["answers"]["text"])
        # a distractor of the answer's kind in every context
        distractor = {"owner": "likes", "place": "lives near the", "colour": "the sky over",
                      "year": "was born in"}[kind]  # fmt: skip
        assert any(distractor in s for s in sentences if fact not in s)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        (QaBuiltinParams(size=0), "data.qa.size"),
        (QaBuiltinParams(min_facts=3), "min_facts"),
        (QaBuiltinParams(min_facts=5, max_facts=4), "min_facts"),
        (QaBuiltinParams(unanswerable=1.0), "data.qa.unanswerable"),
    ],
)
def test_builtin_bad_params(params: QaBuiltinParams, key: str) -> None:
    with pytest.raises(UserError) as err:
        generate_qa(params, seed=0)
    assert key in str(err.value)


def test_no_unanswerable_gives_v1_data() -> None:
    rows = generate_qa(QaBuiltinParams(size=100, unanswerable=0.0), seed=0)
    assert all(r["answers"]["text"] for r in rows)


# --------------------------------------------------------------------------- baselines


def test_sentences_and_overlap_hand_worked() -> None:
    context = "the box of anna is red. the cup of tom is blue! is it? yes"
    assert sentences(context) == [
        (0, "the box of anna is red."),
        (24, "the cup of tom is blue!"),
        (48, "is it?"),
        (55, "yes"),
    ]
    # question words: what colour is cup of tom (articles dropped) -> sentence 2 shares 4
    assert overlap_sentence("what colour is the cup of tom ?", context) == (
        24,
        "the cup of tom is blue",
    )
    # a tie goes to the first sentence
    assert overlap_sentence("is", context)[0] == 0
    assert overlap_sentence("q", "") == (-1, "")


def test_baselines_on_builtin_data_hand_checked_shape() -> None:
    rows = generate_qa(QaBuiltinParams(size=400), seed=2)
    golds = [r["answers"]["text"] for r in rows]
    unanswerable = sum(not g for g in golds) / len(golds)
    none = squad_metrics(question_scores(golds, baseline_predictions("no_answer", rows)))
    assert none["exact"] == pytest.approx(unanswerable) and none["HasAns_f1"] == 0.0
    overlap = squad_metrics(question_scores(golds, baseline_predictions("sentence_overlap", rows)))
    assert overlap["NoAns_exact"] == 0.0 and overlap["exact"] == 0.0
    # the answer is 1-3 words of a 6-10-word normalised sentence, when the sentence is right
    assert 0.15 < overlap["HasAns_f1"] < 0.45
    with pytest.raises(ValueError):
        baseline_predictions("oracle", rows)


# --------------------------------------------------------------------------- error report


@pytest.mark.parametrize(
    ("question", "word"),
    [
        ("What colour is it?", "what"),
        ("In which year did it end?", "which"),
        ("The man who sold it was whom?", "who"),
        ("How many?", "how"),
        ("Name the river.", "other"),
        ("Whatever happened?", "other"),
    ],
)
def test_question_word(question: str, word: str) -> None:
    assert question_word(question) == word


def test_answer_length_bins() -> None:
    assert answer_length([]) == "no answer"
    assert answer_length(["the"]) == "no answer"
    assert answer_length(["the red box"]) == "2"
    assert answer_length(["one two three four five six", "a b c"]) == "2"  # shortest; 'a' drops
    assert answer_length(["w " * 12]) == "9+"


def _records() -> list[dict[str, Any]]:
    rows = [
        {"id": "1", "question": "what colour is the box ?", "context": "the box is red .",
         "answers": {"text": ["red"], "answer_start": [11]}},
        {"id": "2", "question": "who has it ?", "context": "anna has it .",
         "answers": {"text": ["anna"], "answer_start": [0]}},
        {"id": "3", "question": "who has the cup ?", "context": "tom has the box .",
         "answers": {"text": [], "answer_start": []}},
        {"id": "4", "question": "where is it ?", "context": "it is in the big old hall .",
         "answers": {"text": ["the big old hall"], "answer_start": [9]}},
    ]  # fmt: skip
    answers = [
        Answer("red", 11, None, 0.0, -1.0, 0.9),
        Answer("has it", 5, None, 0.0, -1.0, 0.8),
        Answer("tom", 0, None, 0.0, -1.0, 0.95),
        Answer("old hall", 17, None, 0.0, -1.0, 0.4),
    ]
    scores = question_scores([r["answers"]["text"] for r in rows], [a.text for a in answers])
    return prediction_records(rows, answers, scores.exact, scores.f1)


def test_records_slices_and_worst() -> None:
    records = _records()
    assert [r["f1"] for r in records] == [1.0, 0.0, 0.0, pytest.approx(0.8)]
    by_word = {s["slice"]: s for s in slice_scores(records, "question_word")}
    assert by_word["who"] == {"slice": "who", "n": 2, "exact": 0.0, "f1": 0.0, "errors": 2}
    assert by_word["what"]["errors"] == 0
    assert slice_scores(records, "question_word")[0]["slice"] == "who"  # most errors first
    by_length = {s["slice"]: s["n"] for s in slice_scores(records, "answer_length")}
    assert by_length == {"1": 2, "no answer": 1, "3-4": 1}
    # lowest F1 first; among F1 0 the more confident (0.95) first; the exact one left out
    assert [r["id"] for r in worst_answers(records, 10)] == ["3", "2", "4"]
    assert [r["id"] for r in worst_answers(records, 1)] == ["3"]


def test_excerpt_marks_spans() -> None:
    context = "x" * 150 + " the red box " + "y" * 150
    start = context.index("red")
    # predicted "red", gold "the red box": overlapping, marked as one union
    text = excerpt(context, [(start, start + 3), (start - 4, start + 7)], width=10)
    assert text == "…" + "x" * 9 + " »the red box« " + "y" * 9 + "…"
    two = excerpt("a red b blue c", [(2, 5), (8, 12)], width=1)
    assert two == "… »red« b »blue« …"
    assert excerpt("short", []) == "short"


def test_report_lines() -> None:
    lines = report_lines(
        _records(), k=2, windowing={"answers_lost_to_windowing": 3, "questions": 9}
    )
    text = "\n".join(lines)
    assert "## Answers by question word" in text and "## Answers by gold answer length" in text
    assert "| who | 2 | 0.000 | 0.000 | 2 |" in text
    assert "Answers lost to windowing (no window holds the whole answer): 3 of 9" in text
    assert "## The 2 worst answers" in text
    assert "- gold: (no answer)" in text and '- predicted: "tom"' in text
    assert "»tom« has the box ." in text
    assert "Every answer is exactly right." in "\n".join(report_lines(_records()[:1]))


# --------------------------------------------------------------------------- span loss


def test_span_loss_matches_the_transformers_head() -> None:
    import torch
    from transformers import BertConfig

    from nlpflow.families.qa.model import qa_model_from_config, span_loss

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32)  # fmt: skip
    model = qa_model_from_config(config)
    ids = torch.randint(0, 30, (3, 7))
    starts, ends = torch.tensor([1, 0, 9]), torch.tensor([2, 0, 3])  # 9: past the window
    out = model(input_ids=ids, start_positions=starts, end_positions=ends)
    ours = span_loss(out.start_logits, out.end_logits, starts, ends)
    assert torch.allclose(ours, out.loss)
    # hand-worked: uniform logits over 7 tokens give log(7) per side
    flat = torch.zeros(2, 7)
    loss = span_loss(flat, flat, torch.tensor([0, 3]), torch.tensor([6, 3]))
    assert float(loss) == pytest.approx(float(np.log(7)))


# --------------------------------------------------------------------------- split scoring


def test_split_metrics_and_tuned_threshold() -> None:
    from nlpflow.families.qa.postprocess import Candidate
    from nlpflow.families.qa.scoring import split_metrics, tune_null_threshold

    rows = [
        {"id": "a", "question": "what colour ?", "context": "it is red . it is big .",
         "answers": {"text": ["red"], "answer_start": [6]}},
        {"id": "b", "question": "who ?", "context": "tom is here .",
         "answers": {"text": [], "answer_start": []}},
        {"id": "c", "question": "where ?", "context": "in the hall .",
         "answers": {"text": ["the hall"], "answer_start": [3]}},
    ]  # fmt: skip
    answers = [
        Answer("red", 6, Candidate("red", 6, 9, 5.0), 1.0, -4.0, 0.9),
        Answer("tom", 0, Candidate("tom", 0, 3, 2.0), 3.0, 1.0, 0.5),
        Answer("hall", 7, Candidate("hall", 7, 11, 1.0), 3.0, 2.0, 0.5),
    ]
    # margins -4 (right span), 1 (no-answer question), 2 (right span): answering all three
    # gives (1 + 0 + 1) / 3; answering only the first (1 + 1 + 0) / 3: the first threshold
    # reaching 2/3 is -4.
    tuned = tune_null_threshold(rows, answers)
    assert tuned == {"null_threshold": -4.0, "f1": pytest.approx(2 / 3)}
    m = split_metrics(rows, ["red", "", "hall"], resamples=50, seed=0, level=0.9)
    assert m["n"] == 3 and m["exact"] == 1.0 and m["HasAns_total"] == 2
    assert set(m["ci"]) == {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"}
    none = m["baselines"]["no_answer"]
    assert none["exact"] == pytest.approx(1 / 3)
    assert none["margin"]["exact"] == pytest.approx(2 / 3)
    overlap = m["baselines"]["sentence_overlap"]
    # "it is red" vs red: 1/3 tokens -> F1 0.5; "in the hall" vs "the hall": [in, hall] vs
    # [hall] -> 2/3; the unanswerable one answered: 0
    assert overlap["f1"] == pytest.approx((0.5 + 0 + 2 / 3) / 3)
    assert "ci" not in split_metrics(rows, ["", "", ""], 0, 0, 0.9, baselines=())


# --------------------------------------------------------------------------- data card


def test_describe_questions_and_card_lines() -> None:
    from nlpflow.families.qa.card import card_lines, describe_questions

    rows = [
        {"id": "1", "question": "Who won?", "context": "the Broncos won .",
         "answers": {"text": ["the Broncos", "Broncos"], "answer_start": [0, 4]}},
        {"id": "2", "question": "When?", "context": "the Broncos won .",
         "answers": {"text": [], "answer_start": []}},
        {"id": "3", "question": "what year was it", "context": "it was in 2016 , in May .",
         "answers": {"text": ["2016"], "answer_start": [10]}},
    ]  # fmt: skip
    f = describe_questions(rows)
    assert f["questions"] == 3 and f["contexts"] == 2
    assert f["unanswerable"] == 1 and f["unanswerable_share"] == pytest.approx(1 / 3)
    assert f["several_answers"] == 1
    # per row 4, 4, 8 words; p95 at index 0.95 * 2 = 1.9: 4 + 0.9 * (8 - 4)
    assert f["context_words"] == {"p50": 4.0, "p95": pytest.approx(7.6), "max": 8.0}
    assert f["answer_words"]["max"] == 1.0  # "the Broncos" -> [broncos]
    assert f["question_words"] == {"what": 1, "when": 1, "who": 1}
    lines = card_lines({"train": f, "test": f}, {"train": {"answers_lost_to_windowing": 2}})
    text = "\n".join(lines)
    assert "| unanswerable | 1 (33.3%) | 1 (33.3%) |" in text
    assert "| answers lost to windowing | 2 |  |" in text
    assert "| who | 1 | 1 |" in text
