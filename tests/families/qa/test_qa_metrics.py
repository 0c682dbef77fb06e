"""SQuAD metrics: hand-worked values, the official v2.0 script's behaviour on small cases
(worked out by hand from its definitions), properties, the threshold search."""

from __future__ import annotations

import math
import re
import string
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlpflow.families.qa.metrics import (
    best_null_threshold,
    exact_match,
    normalize_answer,
    question_scores,
    score_question,
    squad_intervals,
    squad_metrics,
    token_f1,
)

# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat", "cat"),
        ("  a   dog, an apple.", "dog apple"),
        ("Theater", "theater"),  # 'the' only as a whole word
        ("the-the", "thethe"),  # punctuation goes first, so no word boundary is left
        ("an\tA\nthe", ""),
        ("Denver Broncos!", "denver broncos"),
        ("“smart” quotes", "“smart” quotes"),  # only ASCII punctuation, as SQuAD
        ("", ""),
    ],
)
def test_normalize_answer_hand_worked(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def _official_normalize(s: str) -> str:
    """The official script's four steps, written out as it chains them."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aAnNtThHeE .,!-'\t\nxyz")), max_size=30))
def test_normalize_matches_the_four_steps_and_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert once == _official_normalize(text)
    assert normalize_answer(once) == once


# --------------------------------------------------------------------------- EM and F1


def test_f1_hand_worked() -> None:
    # gold "the big red ball" -> [big, red, ball]; pred "red ball game" -> [red, ball, game]
    # common 2: precision 2/3, recall 2/3, F1 2/3
    assert token_f1("the big red ball", "red ball game") == pytest.approx(2 / 3)
    # tokens count as bags: gold [x, x, y], pred [x] -> p 1, r 1/3
    assert token_f1("x x y", "x") == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert token_f1("Paris", "paris.") == 1.0
    assert token_f1("Paris", "London") == 0.0


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Denver Broncos", "denver broncos") == 1.0
    assert exact_match("Denver Broncos", "Broncos") == 0.0


def test_official_cases_for_empty_answers() -> None:
    """The v2.0 script: an unanswerable question's only gold is ""; F1 with an empty side is
    1 only when both are empty; golds that normalise to nothing are dropped."""
    assert score_question([], "") == (1.0, 1.0)
    assert score_question([], "something") == (0.0, 0.0)
    assert score_question(["Paris"], "") == (0.0, 0.0)
    assert score_question(["the"], "") == (1.0, 1.0)  # 'the' normalises away: unanswerable
    assert score_question(["a", "Paris"], "paris") == (1.0, 1.0)
    # A prediction of only an article is empty after normalisation.
    assert score_question(["Paris"], "the") == (0.0, 0.0)


def test_max_over_gold_answers() -> None:
    em, f1 = score_question(["Denver Broncos", "the Broncos", "Broncos team"], "Broncos")
    assert em == 1.0 and f1 == 1.0
    em, f1 = score_question(["red ball", "big red ball"], "big red")
    # vs "red ball": 1 common of 2/2 -> 0.5; vs "big red ball": 2 common, p 1, r 2/3 -> 0.8
    assert em == 0.0 and f1 == pytest.approx(0.8)


def test_squad_metrics_hand_worked_v2() -> None:
    """Four questions worked by hand; the official script would print these x 100."""
    golds = [["Paris"], ["blue whale"], [], []]
    preds = ["paris", "whale", "", "London"]
    # EM: 1, 0, 1, 0 -> 0.5; F1: 1, 2/3, 1, 0 -> (8/3)/4
    m = squad_metrics(question_scores(golds, preds))
    assert m["exact"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 1) / 4)
    assert m["total"] == 4
    assert m["HasAns_exact"] == pytest.approx(0.5)
    assert m["HasAns_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["HasAns_total"] == 2
    assert m["NoAns_exact"] == pytest.approx(0.5)
    assert m["NoAns_f1"] == pytest.approx(0.5)
    assert m["NoAns_total"] == 2


def test_squad_metrics_v1_has_no_noans_keys() -> None:
    m = squad_metrics(question_scores([["x y"], ["c"]], ["y", "c"]))
    assert "NoAns_exact" not in m and m["HasAns_total"] == 2
    assert m["f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError) as err:
        question_scores([["a"]], ["a", "b"])
    assert "1 questions but 2 predictions" in str(err.value)


def _reference_f1(gold: str, pred: str) -> float:
    g, p = _official_normalize(gold).split(), _official_normalize(pred).split()
    if not g or not p:
        return float(g == p)
    same = sum((Counter(g) & Counter(p)).values())
    return 0.0 if same == 0 else 2 * same / (len(g) + len(p))


words = st.lists(st.sampled_from(["the", "a", "red", "Red", "ball", "x", "y.", ","]), max_size=6)


@settings(max_examples=100, deadline=None)
@given(words, words)
def test_f1_properties(gold: list[str], pred: list[str]) -> None:
    g, p = " ".join(gold), " ".join(pred)
    f = token_f1(g, p)
    assert 0.0 <= f <= 1.0
    assert f == pytest.approx(token_f1(p, g))  # symmetric
    assert f == pytest.approx(_reference_f1(g, p))  # 2|common| / (|g| + |p|)
    assert exact_match(g, p) <= f  # an exact match has F1 1
    assert token_f1(g, g) == 1.0


# --------------------------------------------------------------------------- intervals


def test_intervals_bracket_the_point_values_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    golds = [["a b"] if rng.random() < 0.6 else [] for _ in range(200)]
    preds = [("a" if rng.random() < 0.5 else "a b") if g else "" for g in golds]
    scores = question_scores(golds, preds)
    point = squad_metrics(scores)
    ci = squad_intervals(scores, resamples=300, seed=1, level=0.9)
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1"):
        assert ci[key]["low"] < point[key] < ci[key]["high"]
    assert ci["NoAns_exact"] == {"low": 1.0, "high": 1.0}
    assert squad_intervals(scores, 300, 1, 0.9) == ci


def test_intervals_leave_out_groups_with_no_questions() -> None:
    scores = question_scores([["x"], ["y"]], ["x", "z"])
    ci = squad_intervals(scores, resamples=50, seed=0, level=0.95)
    assert "NoAns_exact" not in ci and "exact" in ci


# --------------------------------------------------------------------------- threshold


def _official_best(margins: list[float], spans: list[float], has: list[bool]) -> float:
    """find_best_thresh of the v2.0 script (na_probs = margins; preds all non-empty)."""
    cur = best = sum(not h for h in has)
    for i in sorted(range(len(margins)), key=lambda i: margins[i]):
        cur += spans[i] if has[i] else -1
        best = max(best, cur)
    return best / len(margins)


def _applied(t: float, margins: list[float], spans: list[float], has: list[bool]) -> float:
    total = sum(
        (spans[i] if m <= t else 0.0) if has[i] else (0.0 if m <= t else 1.0)
        for i, m in enumerate(margins)
    )
    return total / len(margins)


def test_threshold_hand_worked() -> None:
    # margins:        -2     -1     0.5    3
    # answerable:     yes    no     yes    no
    # span score:     1      0      0.5    0
    # all null: 2/4; t=-2: +1 -> 3/4; t=-1: -1 -> 2/4; t=0.5: +0.5 -> 2.5/4; t=3: -1
    t, score = best_null_threshold([-2, -1, 0.5, 3], [1, 0, 0.5, 0], [True, False, True, False])
    assert t == -2.0 and score == pytest.approx(0.75)


def test_threshold_all_null_is_below_every_margin() -> None:
    t, score = best_null_threshold([1.0, 2.0], [0.0, 0.0], [False, False])
    assert t < 1.0 and score == 1.0


def test_threshold_ties_move_together() -> None:
    # Equal margins: the official script could stop inside the tie (score 1/2 + 1/2 = 1.0
    # after the answerable one); applied, a threshold answers both, giving 1/2.
    t, score = best_null_threshold([0.0, 0.0], [1.0, 0.0], [True, False])
    assert score == pytest.approx(_applied(t, [0.0, 0.0], [1.0, 0.0], [True, False]))
    assert score == pytest.approx(0.5)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-5, 5, allow_nan=False), st.sampled_from([0.0, 0.5, 1.0]), st.booleans()
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda x: x[0],
    )
)
def test_threshold_matches_official_on_distinct_margins(
    rows: list[tuple[float, float, bool]],
) -> None:
    margins = [r[0] for r in rows]
    spans = [r[1] if r[2] else 0.0 for r in rows]  # an unanswerable question's span scores 0
    has = [r[2] for r in rows]
    t, score = best_null_threshold(margins, spans, has)
    assert score == pytest.approx(_official_best(margins, spans, has))
    assert score == pytest.approx(_applied(t, margins, spans, has))


def test_threshold_empty() -> None:
    t, score = best_null_threshold([], [], [])
    assert t == 0.0 and math.isnan(score)


# --------------------------------------------------------------------------- whole eval


def _official_eval(golds: list[list[str]], preds: list[str]) -> dict[str, float]:
    """The v2.0 script's main() without na_probs, written out from its definitions:
    get_raw_scores (golds that normalise to nothing dropped, [""] when none is left),
    compute_exact / compute_f1, make_eval_dict over all, HasAns (qa['answers'] non-empty)
    and NoAns questions, as percentages."""

    def f1(gold: str, pred: str) -> float:
        g, p = _official_normalize(gold).split(), _official_normalize(pred).split()
        common = Counter(g) & Counter(p)
        same = sum(common.values())
        if len(g) == 0 or len(p) == 0:
            return float(g == p)
        if same == 0:
            return 0.0
        precision, recall = same / len(p), same / len(g)
        return 2 * precision * recall / (precision + recall)

    exact, f1s, has = [], [], []
    for gold, pred in zip(golds, preds, strict=True):
        kept = [g for g in gold if _official_normalize(g)] or [""]
        exact.append(max(float(_official_normalize(g) == _official_normalize(pred)) for g in kept))
        f1s.append(max(f1(g, pred) for g in kept))
        has.append(bool(gold))
    out = {"exact": 100 * sum(exact) / len(exact), "f1": 100 * sum(f1s) / len(f1s)}
    for name, want in (("HasAns", True), ("NoAns", False)):
        ids = [i for i, h in enumerate(has) if h == want]
        if ids:
            out[f"{name}_exact"] = 100 * sum(exact[i] for i in ids) / len(ids)
            out[f"{name}_f1"] = 100 * sum(f1s[i] for i in ids) / len(ids)
    return out


phrases = st.lists(
    st.sampled_from(["the", "An", "red", "ball", "Ball!", "x-y", "2016"]), max_size=4
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(phrases.map(" ".join), max_size=3), phrases.map(" ".join)),
        min_size=1,
        max_size=8,
    )
)
def test_squad_metrics_match_the_official_script(cases: list[tuple[list[str], str]]) -> None:
    """Whole-split scores x 100 equal the script's, golds that normalise to nothing
    ('the') included."""
    golds = [gold for gold, _ in cases]
    preds = [p for _, p in cases]
    ours = squad_metrics(question_scores(golds, preds))
    official = _official_eval(golds, preds)
    assert {k for k in ours if not k.endswith("total")} == set(official)
    for key, value in official.items():
        assert 100 * ours[key] == pytest.approx(value)
