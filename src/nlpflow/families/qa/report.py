"""Error analysis of extractive QA: the worst answers in context, and scores by slice.

Works on prediction records (one per question, plain dicts), built by
:func:`prediction_records`::

    {"id", "question", "context", "answers": [gold texts], "answer_starts": [ints],
     "prediction": str ("" = no answer), "start": int (-1 = no answer),
     "probability": float, "exact": float, "f1": float}

Slices: the question word (``what``, ``who``, ``when``, ... the first one in the question,
``other`` without one) and the gold answer's length in normalised words (``no answer`` for
unanswerable questions). The worst answers are the lowest F1 first and, among equal F1, the
most confident first: a confident wrong span is the error worth reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nlpflow.families.qa.metrics import answer_tokens, scoring_golds
from nlpflow.families.qa.postprocess import Answer
from nlpflow.markdown import cell, table

QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")
LENGTH_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 8, "5-8"), (9, 10**9, "9+"))
NO_ANSWER = "no answer"
EXCERPT_CHARS = 100


def question_word(question: str) -> str:
    """The first question word of ``question`` (SQuAD-normalised tokens), else ``other``."""
    for token in answer_tokens(question):
        if token in QUESTION_WORDS:
            return token
    return "other"


def answer_length(golds: Sequence[str]) -> str:
    """The length bin (normalised words) of the shortest scoring gold answer, or
    ``no answer``."""
    kept = scoring_golds(golds)
    if kept == [""]:
        return NO_ANSWER
    words = min(len(answer_tokens(g)) for g in kept)
    return next(name for low, high, name in LENGTH_BINS if low <= words <= high)


def prediction_records(
    rows: Sequence[dict[str, Any]],
    answers: Sequence[Answer],
    exact: Sequence[float],
    f1: Sequence[float],
) -> list[dict[str, Any]]:
    """One record per question (reader rows, their answers and per-question scores)."""
    out = []
    for row, answer, em, f in zip(rows, answers, exact, f1, strict=True):
        out.append(
            {
                "id": row["id"],
                "question": row["question"],
                "context": row["context"],
                "answers": list(row["answers"]["text"]),
                "answer_starts": list(row["answers"]["answer_start"]),
                "prediction": answer.text,
                "start": answer.start,
                "probability": answer.probability,
                "exact": float(em),
                "f1": float(f),
            }
        )
    return out


def slice_scores(records: Sequence[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Per slice (``by``: ``question_word`` or ``answer_length``): questions, EM, F1 and
    errors (questions not exactly right), the most errors first."""
    key = question_word if by == "question_word" else None
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        name = key(r["question"]) if key else answer_length(r["answers"])
        groups.setdefault(name, []).append(r)
    out = []
    for name, members in groups.items():
        n = len(members)
        right = sum(m["exact"] == 1.0 for m in members)
        out.append(
            {
                "slice": name,
                "n": n,
                "exact": right / n,
                "f1": sum(m["f1"] for m in members) / n,
                "errors": n - right,
            }
        )
    return sorted(out, key=lambda s: (-s["errors"], s["slice"]))


def worst_answers(records: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` records with the lowest F1, most confident first among equal F1; only
    records not exactly right."""
    wrong = [r for r in records if r["exact"] < 1.0]
    return sorted(wrong, key=lambda r: (r["f1"], -r["probability"], str(r["id"])))[:k]


def excerpt(context: str, marks: Sequence[tuple[int, int]], width: int = EXCERPT_CHARS) -> str:
    """``context`` around ``marks`` (character spans, end exclusive), each span wrapped in
    ``»…«`` (overlapping spans marked as their union), cut ``width`` characters before the
    first and after the last with ``…``."""
    merged: list[list[int]] = []
    for s, e in sorted((s, e) for s, e in marks if 0 <= s < e <= len(context)):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    if not merged:
        text = context[: 2 * width]
        return text + ("…" if len(context) > 2 * width else "")
    low = max(0, merged[0][0] - width)
    high = min(len(context), merged[-1][1] + width)
    pieces, pos = [], low
    for s, e in merged:
        pieces += [context[pos:s], "»", context[s:e], "«"]
        pos = e
    pieces.append(context[pos:high])
    return ("…" if low > 0 else "") + "".join(pieces) + ("…" if high < len(context) else "")


def _quoted(texts: Sequence[str]) -> str:
    return " | ".join(f'"{t}"' for t in texts) if texts else "(no answer)"


def report_lines(
    records: Sequence[dict[str, Any]],
    k: int = 10,
    windowing: dict[str, Any] | None = None,
) -> list[str]:
    """Markdown lines of the QA error analysis: slices by question word and answer length,
    and the ``k`` worst answers with their context (predicted span and gold spans marked)."""
    lines: list[str] = []
    for by, title, heading in (
        ("question_word", "question word", "Answers by question word"),
        ("answer_length", "answer words", "Answers by gold answer length"),
    ):
        lines += [f"## {heading}", ""]
        rows = [
            [s["slice"], s["n"], f"{s['exact']:.3f}", f"{s['f1']:.3f}", s["errors"]]
            for s in slice_scores(records, by)
        ]
        lines += [*table([title, "questions", "EM", "F1", "errors"], rows, "lrrrr"), ""]
    if windowing:
        lines += [
            "Answers lost to windowing (no window holds the whole answer): "
            f"{windowing.get('answers_lost_to_windowing', 0)} of "
            f"{windowing.get('questions', 0)} questions.",
            "",
        ]
    worst = worst_answers(records, k)
    lines += [f"## The {len(worst)} worst answers", ""]
    if not worst:
        lines += ["Every answer is exactly right.", ""]
    for i, r in enumerate(worst, start=1):
        marks = [(r["start"], r["start"] + len(r["prediction"]))] if r["prediction"] else []
        marks += [(s, s + len(t)) for t, s in zip(r["answers"], r["answer_starts"], strict=True)]
        lines += [
            f"{i}. `{cell(r['id'])}` F1 {r['f1']:.2f}, confidence {r['probability']:.2f}",
            f"   - question: {cell(r['question'], None)}",
            f"   - gold: {cell(_quoted(list(dict.fromkeys(r['answers']))), None)}",
            f"   - predicted: {cell(_quoted([r['prediction']] if r['prediction'] else []), None)}",
            f"   - context: {cell(excerpt(r['context'], marks), None)}",
        ]
    return lines
