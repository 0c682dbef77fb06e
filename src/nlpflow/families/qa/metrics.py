"""Extractive QA scores with the official SQuAD v2.0 evaluation script's definitions.

- Answers are normalised as SQuAD does: lowercase, punctuation (``string.punctuation``)
  removed, the articles ``a``/``an``/``the`` removed as whole words, whitespace collapsed.
- Exact match (EM) is 1 when the normalised prediction equals a normalised gold answer.
- Token F1 is the F1 of the bag of normalised tokens of prediction and gold answer.
- Both take the maximum over the gold answers. Gold answers that normalise to nothing are
  dropped, and a question with none left is unanswerable: its only gold answer is ``""``, so
  an empty prediction scores 1 and any other 0 (F1 is 1 only when both sides are empty).
- SQuAD v2 reports the scores over all questions and split into ``HasAns`` (questions with
  gold answers) and ``NoAns`` (questions without) questions. As in the official script, a
  question whose gold answers all normalise to nothing (only ``"the"``) is in ``HasAns`` but
  scored as unanswerable.

The official script prints percentages; here every score is a fraction in [0, 1], as every
other metric of the project. Per-question scores come from :func:`question_scores`; the point
values and every bootstrap resample are weighted means of them (:func:`batch_metrics`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.evaluation.bootstrap import BatchMetrics, bootstrap_intervals
from nlpflow.evaluation.metrics import FloatArray

BoolArray = npt.NDArray[np.bool_]
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
# The metrics that get a bootstrap interval.
MAIN = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """The normalised tokens of ``text`` (what token F1 counts)."""
    return normalize_answer(text).split()


def exact_match(gold: str, predicted: str) -> float:
    """1.0 when both normalise to the same string, else 0.0."""
    return float(normalize_answer(gold) == normalize_answer(predicted))


def token_f1(gold: str, predicted: str) -> float:
    """F1 of the normalised token bags; when either side is empty, 1.0 only if both are."""
    gold_tokens, pred_tokens = answer_tokens(gold), answer_tokens(predicted)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def scoring_golds(golds: Sequence[str]) -> list[str]:
    """The gold answers a prediction is scored against: those that normalise to something,
    else ``[""]`` (the question is unanswerable)."""
    kept = [g for g in golds if normalize_answer(g)]
    return kept or [""]


def score_question(golds: Sequence[str], predicted: str) -> tuple[float, float]:
    """(EM, F1) of one prediction, each the maximum over the gold answers."""
    kept = scoring_golds(golds)
    return (
        max(exact_match(g, predicted) for g in kept),
        max(token_f1(g, predicted) for g in kept),
    )


@dataclass(frozen=True)
class QuestionScores:
    """Per-question scores of one split, in the split's order (arrays of shape ``(n,)``)."""

    exact: FloatArray
    f1: FloatArray
    has_answer: BoolArray  # True where the question has gold answers (the HasAns group)

    def __len__(self) -> int:
        return int(self.exact.shape[0])


def question_scores(golds: Sequence[Sequence[str]], predictions: Sequence[str]) -> QuestionScores:
    """EM and F1 of each question; raises ValueError when the two lists differ in length."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} questions but {len(predictions)} predictions")
    pairs = [score_question(g, p) for g, p in zip(golds, predictions, strict=True)]
    exact = np.asarray([p[0] for p in pairs], dtype=np.float64).reshape(len(pairs))
    f1 = np.asarray([p[1] for p in pairs], dtype=np.float64).reshape(len(pairs))
    has = np.asarray([len(g) > 0 for g in golds], dtype=bool).reshape(len(pairs))
    return QuestionScores(exact=exact, f1=f1, has_answer=has)


def batch_metrics(scores: QuestionScores) -> BatchMetrics:
    """EM and F1 overall, on HasAns and on NoAns questions, for a batch of weight rows
    ``(B, n)`` (unit weights: the point values; bootstrap counts: a resample). A group with no
    question in a resample gives NaN."""
    has = scores.has_answer.astype(np.float64)
    groups = {"": np.ones_like(has), "HasAns_": has, "NoAns_": 1.0 - has}

    def compute(weights: FloatArray) -> dict[str, FloatArray]:
        out: dict[str, FloatArray] = {}
        for prefix, mask in groups.items():
            w = weights * mask
            total = w.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{prefix}exact"] = np.where(total > 0, w @ scores.exact / total, np.nan)
                out[f"{prefix}f1"] = np.where(total > 0, w @ scores.f1 / total, np.nan)
        return out

    return compute


def squad_metrics(scores: QuestionScores) -> dict[str, Any]:
    """The official script's keys as fractions: ``exact``, ``f1``, ``total``, and
    ``HasAns_*``/``NoAns_*`` (``exact``, ``f1``, ``total``) for the groups that have
    questions."""
    values = batch_metrics(scores)(np.ones((1, len(scores))))
    has = int(scores.has_answer.sum())
    totals = {"": len(scores), "HasAns_": has, "NoAns_": len(scores) - has}
    out: dict[str, Any] = {}
    for prefix, total in totals.items():
        if total == 0:
            continue
        out[f"{prefix}exact"] = float(values[f"{prefix}exact"][0])
        out[f"{prefix}f1"] = float(values[f"{prefix}f1"][0])
        out[f"{prefix}total"] = total
    return out


def squad_intervals(
    scores: QuestionScores, resamples: int, seed: int, level: float
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals (resampling questions) of :data:`MAIN`; a group that no
    resample holds is left out."""
    return bootstrap_intervals(batch_metrics(scores), len(scores), resamples, seed, level)


# --------------------------------------------------------------------------- threshold


def best_null_threshold(
    null_margins: Sequence[float] | FloatArray,
    span_scores: Sequence[float] | FloatArray,
    has_answer: Sequence[bool] | BoolArray,
) -> tuple[float, float]:
    """The no-answer threshold that maximises the mean score, and that mean.

    ``null_margins[i]`` is how far question ``i``'s no-answer score beats its best span
    (null score - best span score); the rule is "answer nothing when the margin is greater
    than the threshold". ``span_scores[i]`` is the EM or F1 of the best span (what the
    question scores when answered); ``has_answer[i]`` whether it is answerable. A question
    answered with nothing scores 1 when unanswerable and 0 otherwise, so the official
    script's ``find_best_thresh`` sweep is run over the sorted margins, starting from "no
    question answered". Unlike that script, questions with equal margins are answered
    together (one threshold cannot split them), so the score returned is the one the
    threshold gives when applied. The first (smallest) best threshold wins; when answering
    nothing is best it is 1 below the smallest margin. Returns ``(threshold, mean score)``;
    with no questions, ``(0.0, nan)``.
    """
    margins = np.asarray(null_margins, dtype=np.float64)
    spans = np.asarray(span_scores, dtype=np.float64)
    has = np.asarray(has_answer, dtype=bool)
    n = margins.shape[0]
    if not (spans.shape[0] == has.shape[0] == n):
        raise ValueError("null_margins, span_scores and has_answer differ in length")
    if n == 0:
        return 0.0, float("nan")
    # Answering question i instead of abstaining changes the total by gain[i].
    gain = np.where(has, spans, spans - 1.0)
    order = np.argsort(margins, kind="stable")
    sorted_margins, sorted_gain = margins[order], gain[order]
    # Start below every margin (nothing answered), then raise the threshold through the
    # distinct margins in increasing order, answering each tie group at once.
    total = float((~has).sum())
    best_total, best_t = total, float(sorted_margins[0]) - 1.0
    i = 0
    for value in np.unique(sorted_margins):
        while i < n and sorted_margins[i] == value:
            total += float(sorted_gain[i])
            i += 1
        if total > best_total:
            best_total, best_t = total, float(value)
    return best_t, best_total / n
