"""Windows with a stride, answers to token positions and back, n-best post-processing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpflow.errors import UserError
from nlpflow.families.qa.builtin import QaBuiltinParams, generate_qa
from nlpflow.families.qa.postprocess import Answer, answer_all, answer_question, apply_threshold
from nlpflow.families.qa.windows import Window, answer_positions, encode_windows, span_text

WORDS = ["tom", "keeps", "the", "red", "box", "in", "garden", "anna", "blue", "cup", "1998",
         "Zürich", "dark", "green", "U.S.", "well-known", "(see)", ",", ".", "?"]  # fmt: skip


@pytest.fixture(scope="module")
def wordpiece() -> Any:
    from nlpflow.modeling.tokenizers import train_tokenizer

    return train_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)


def _oracle_logits(windows: list[Window]) -> tuple[list[Any], list[Any]]:
    """Logits that put the labels of each window on top."""
    starts, ends = [], []
    for w in windows:
        s = np.zeros(len(w.input_ids))
        e = np.zeros(len(w.input_ids))
        assert w.start_position is not None and w.end_position is not None
        s[w.start_position] = 5.0
        e[w.end_position] = 5.0
        starts.append(s)
        ends.append(e)
    return starts, ends


@st.composite
def qa_rows(draw: st.DrawFn) -> dict[str, Any]:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=40))
    gaps = draw(
        st.lists(st.sampled_from([" ", "  ", "\n"]), min_size=len(words), max_size=len(words))
    )
    pieces, starts = [], []
    pos = 0
    for word, gap in zip(words, gaps, strict=True):
        starts.append(pos)
        pieces.append(word + gap)
        pos += len(word) + len(gap)
    context = "".join(pieces).rstrip()
    first = draw(st.integers(0, len(words) - 1))
    last = draw(st.integers(first, min(len(words) - 1, first + 3)))
    start = starts[first]
    text = context[start : starts[last] + len(words[last])]
    return {"id": "h", "question": "what is it ?", "context": context,
            "answers": {"text": [text], "answer_start": [start]}}  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(qa_rows())
def test_offsets_round_trip_and_stride_keeps_short_answers(
    wordpiece: Any, row: dict[str, Any]
) -> None:
    stride = 6
    windows, report = encode_windows(wordpiece, [row], max_length=20, stride=stride)
    answer = row["answers"]["text"][0]
    start = row["answers"]["answer_start"][0]
    held = []
    for w in windows:
        positions = answer_positions(w.offsets, start, start + len(answer))
        if positions is not None:
            assert span_text(row["context"], w.offsets, *positions) == answer
            assert (w.start_position, w.end_position) == positions
            held.append(w)
        else:
            assert w.start_position == w.end_position == w.cls_index == 0
    answer_tokens = len(wordpiece(answer, add_special_tokens=False)["input_ids"])
    if answer_tokens <= stride + 1:  # consecutive windows share `stride` tokens
        assert held and report.answers_lost == 0
    assert report.answers_lost == (0 if held else 1)
    # The windows cover every context token, in order.
    covered = sorted({o for w in windows for o in w.offsets if o is not None})
    whole = [tuple(o) for o in wordpiece(row["context"], return_offsets_mapping=True,
                                         add_special_tokens=False)["offset_mapping"]]  # fmt: skip
    assert covered == sorted(set(whole))
    # Oracle logits give the gold text back through the n-best search.
    starts, ends = _oracle_logits(windows)
    (got,) = answer_all([row["context"]], windows, starts, ends, max_answer_length=40)
    assert got.text == (answer if held else "")


def test_builtin_data_round_trips_through_windows(wordpiece: Any) -> None:
    from nlpflow.modeling.tokenizers import train_tokenizer

    rows = generate_qa(QaBuiltinParams(size=60), seed=1)
    tok = train_tokenizer([r["context"] + " " + r["question"] for r in rows], vocab_size=150)
    windows, report = encode_windows(tok, rows, max_length=32, stride=8)
    assert report.questions == 60 and report.windows == len(windows) > 60
    assert report.split_questions > 0 and report.answers_lost == 0
    assert report.inexact_answers == 0
    starts, ends = _oracle_logits(windows)
    answers = answer_all([r["context"] for r in rows], windows, starts, ends)
    assert [a.text for a in answers] == [(r["answers"]["text"] or [""])[0] for r in rows]


@pytest.mark.parametrize("family", ["roberta", "gpt2", "deberta-v2"])
def test_other_tokenizer_families(family: str) -> None:
    """Byte-level BPE (spaces inside the offsets; GPT-2 has no classifier token) and Unigram,
    built as the model-family tests build them (tests/modeling/families.py)."""
    import transformers as tf

    from tests.modeling.families import _byte_level, _unigram

    rows = generate_qa(QaBuiltinParams(size=30), seed=2)
    texts = [r["context"] + " " + r["question"] for r in rows]
    tok: Any
    if family == "roberta":
        specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                    "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>"}  # fmt: skip
        backend = _byte_level(texts, ["<s>", "<pad>", "</s>", "<unk>"], roberta=True)
        tok = tf.RobertaTokenizerFast(tokenizer_object=backend, **specials)
    elif family == "gpt2":
        backend = _byte_level(texts, ["<|endoftext|>"], roberta=False)
        tok = tf.GPT2TokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")  # fmt: skip
    else:
        tok = tf.DebertaV2TokenizerFast(tokenizer_object=_unigram(texts), pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]")  # fmt: skip
    windows, report = encode_windows(tok, rows, max_length=40, stride=10)
    assert report.answers_lost == 0
    starts, ends = _oracle_logits(windows)
    answers = answer_all([r["context"] for r in rows], windows, starts, ends)
    assert [a.text for a in answers] == [(r["answers"]["text"] or [""])[0] for r in rows]


def test_lost_answers_are_counted(wordpiece: Any) -> None:
    context = "tom keeps the red box in the garden , anna keeps the blue cup in the garden ."
    answer = "the red box in the garden , anna keeps the blue cup"
    row = {"id": "long", "question": "what ?", "context": context,
           "answers": {"text": [answer], "answer_start": [context.index(answer)]}}  # fmt: skip
    windows, report = encode_windows(wordpiece, [row], max_length=12, stride=2)
    assert report.answers_lost == 1 and report.lost_ids == ["long"]
    assert all(w.start_position == w.cls_index for w in windows)
    assert report.as_dict()["answers_lost_to_windowing"] == 1


def test_question_too_long_for_the_window(wordpiece: Any) -> None:
    row = {"id": "q7", "question": " ".join(["tom"] * 30), "context": "anna",
           "answers": {"text": [], "answer_start": []}}  # fmt: skip
    with pytest.raises(UserError) as err:
        encode_windows(wordpiece, [row], max_length=32, stride=4)
    assert str(err.value).startswith("question 'q7' is 30 tokens")
    assert "raise max_length or lower the stride" in str(err.value)


# --------------------------------------------------------------------------- post-processing


def _window(offsets: list[tuple[int, int] | None], example: int = 0) -> Window:
    n = len(offsets)
    return Window([0] * n, [1] * n, [], example, offsets, cls_index=0)


CONTEXT = "red box blue cup"
# tokens: [CLS] q [SEP] red box blue cup [SEP]
OFFSETS = [None, None, None, (0, 3), (4, 7), (8, 12), (13, 16), None]


def test_best_span_null_margin_and_rules() -> None:
    x = -10.0  # tokens that start or end no span worth listing
    start = np.array([1.0, 9.0, x, 4.0, x, 3.0, x, 9.0])
    end = np.array([1.0, x, 9.0, x, 2.0, x, 3.5, 9.0])
    # Valid: starts 3 (4.0), 5 (3.0); ends 4 (2.0), 6 (3.5); end >= start; length <= max.
    # (3,6) 7.5 "red box blue cup"; (5,6) 6.5 "blue cup"; (3,4) 6.0 "red box"
    a = answer_question(CONTEXT, [_window(OFFSETS)], [start], [end], n_best=20,
                        max_answer_length=30, allow_null=True, null_threshold=0.0)  # fmt: skip
    assert [c.text for c in a.n_best[:3]] == ["red box blue cup", "blue cup", "red box"]
    assert all(c.score < 0 for c in a.n_best[3:])
    assert a.text == "red box blue cup" and a.start == 0
    assert a.null_score == 2.0 and a.margin == pytest.approx(2.0 - 7.5)
    expected = np.exp(7.5) / np.exp([*(c.score for c in a.n_best), 2.0]).sum()
    assert a.probability == pytest.approx(expected)
    # At most 2 tokens: the 4-token span goes.
    short = answer_question(CONTEXT, [_window(OFFSETS)], [start], [end], max_answer_length=2)
    assert short.text == "blue cup"
    # n_best=1 keeps only the top start (1) and the top end (2), neither in the context, so
    # no span is valid: no answer, even without allow_null.
    none = answer_question(CONTEXT, [_window(OFFSETS)], [start], [end], n_best=1, allow_null=False)
    assert none.text == "" and none.best is None and none.margin == float("inf")


def test_threshold_and_v1_mode() -> None:
    start = np.array([6.0, 0, 0, 2.0, 0, 0, 0, 0])
    end = np.array([6.0, 0, 0, 0, 2.0, 0, 0, 0])
    a = answer_question(CONTEXT, [_window(OFFSETS)], [start], [end], null_threshold=0.0)
    assert a.text == "" and a.margin == pytest.approx(12.0 - 4.0)
    assert a.best is not None and a.best.text == "red box"
    # A threshold above the margin answers; v1 (no null allowed) always answers.
    assert apply_threshold([a], 8.0)[0].text == "red box"
    assert apply_threshold([a], 7.9)[0].text == ""
    v1 = answer_question(CONTEXT, [_window(OFFSETS)], [start], [end], allow_null=False)
    assert v1.text == "red box"


def test_spans_across_windows_and_lowest_null() -> None:
    # Two windows over the same context: "box blue" appears in both; the higher score wins.
    w1 = _window([None, (0, 3), (4, 7), (8, 12), None])
    w2 = _window([None, (4, 7), (8, 12), (13, 16), None])
    s1, e1 = np.array([5.0, 0, 1.0, 0, 0]), np.array([5.0, 0, 0, 1.0, 0])  # box blue: 2
    s2, e2 = np.array([1.0, 3.0, 0, 0, 0]), np.array([1.0, 0, 3.0, 0, 0])  # box blue: 6
    answers = answer_all([CONTEXT], [w1, w2], [s1, s2], [e1, e2])
    (a,) = answers
    assert a.text == "box blue" and a.n_best[0].score == 6.0
    assert len({(c.start, c.end) for c in a.n_best}) == len(a.n_best)
    assert a.null_score == 2.0  # min(10, 2)
    assert isinstance(a, Answer) and a.as_dict()["prediction"] == "box blue"


def test_answer_all_checks_its_inputs() -> None:
    with pytest.raises(ValueError):
        answer_all([CONTEXT], [_window(OFFSETS)], [], [])
    with pytest.raises(ValueError) as err:
        answer_all([CONTEXT, CONTEXT], [_window(OFFSETS)], [np.zeros(8)], [np.zeros(8)])
    assert "question 1 has no window" in str(err.value)


def test_window_columns_round_trip_through_arrow(wordpiece: Any) -> None:
    from datasets import Dataset

    from nlpflow.families.qa.windows import WINDOW_COLUMNS, window_columns, windows_from_columns

    rows = generate_qa(QaBuiltinParams(size=12), seed=4)
    for labels in (True, False):
        windows, _ = encode_windows(wordpiece, rows, max_length=48, stride=8, labels=labels)
        assert len(windows) > len(rows)
        stored = Dataset.from_dict(window_columns(windows))
        assert tuple(stored.column_names) == WINDOW_COLUMNS
        assert windows_from_columns(stored.to_dict()) == windows
    columns = window_columns(windows)
    columns["offset_end"][0] = columns["offset_end"][0][:-1]
    with pytest.raises(ValueError) as err:
        windows_from_columns(columns)
    assert "window 0:" in str(err.value)
    with pytest.raises(ValueError) as err:
        windows_from_columns({"input_ids": []})
    assert "rerun tokenize" in str(err.value)
