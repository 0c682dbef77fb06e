"""What a QA split holds, for the data card: questions, unanswerable share, lengths, question
words, and (after tokenizing) the answers that windowing loses.

:func:`describe_questions` gives the figures of one split (plain numbers, JSON-ready, as
``metrics/data.json`` holds them); :func:`card_lines` renders the splits side by side with the
windowing figures of :class:`~nlpflow.families.qa.windows.WindowReport` when given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nlpflow.families.qa.metrics import answer_tokens
from nlpflow.families.qa.report import question_word
from nlpflow.markdown import table

Row = dict[str, Any]


def _percentiles(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return {"p50": float(p50), "p95": float(p95), "max": float(max(values))}


def describe_questions(rows: Sequence[Row]) -> dict[str, Any]:
    """Figures of one split (reader layout): ``questions``, ``contexts`` (distinct),
    ``unanswerable`` and its ``unanswerable_share``, ``several_answers`` (questions with more
    than one distinct gold text), whitespace-word length percentiles of contexts, questions
    and (first) gold answers, and ``question_words`` (counts by first question word)."""
    n = len(rows)
    unanswerable = sum(not r["answers"]["text"] for r in rows)
    answers = [r["answers"]["text"][0] for r in rows if r["answers"]["text"]]
    words = Counter(question_word(r["question"]) for r in rows)
    return {
        "questions": n,
        "contexts": len({r["context"] for r in rows}),
        "unanswerable": unanswerable,
        "unanswerable_share": unanswerable / n if n else 0.0,
        "several_answers": sum(len(set(r["answers"]["text"])) > 1 for r in rows),
        "context_words": _percentiles([len(r["context"].split()) for r in rows]),
        "question_words_length": _percentiles([len(r["question"].split()) for r in rows]),
        "answer_words": _percentiles([len(answer_tokens(a)) for a in answers]),
        "question_words": dict(sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def card_lines(
    figures: Mapping[str, Mapping[str, Any]],
    windowing: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Markdown lines: one column per split of ``figures`` (from :func:`describe_questions`)
    and, when given, the windowing counts per split (``WindowReport.as_dict()``)."""
    splits = list(figures)

    def row(name: str, get: Any) -> list[Any]:
        return [name, *(get(figures[s]) for s in splits)]

    rows = [
        row("questions", lambda f: f["questions"]),
        row("distinct contexts", lambda f: f["contexts"]),
        row("unanswerable", lambda f: f"{f['unanswerable']} ({f['unanswerable_share']:.1%})"),
        row("several gold answers", lambda f: f["several_answers"]),
        row("context words p50 / p95 / max", lambda f: _triple(f["context_words"])),
        row("answer words p50 / p95 / max", lambda f: _triple(f["answer_words"])),
    ]
    if windowing:
        for label, key in (
            ("model windows", "windows"),
            ("questions split into windows", "split_questions"),
            ("answers lost to windowing", "answers_lost_to_windowing"),
            ("answers not on token boundaries", "inexact_answer_boundaries"),
        ):
            rows.append([label, *(windowing.get(s, {}).get(key, "") for s in splits)])
    lines = [*table(["", *splits], rows, "l" + "r" * len(splits)), ""]
    words = sorted({w for s in splits for w in figures[s]["question_words"]})
    word_rows = [[w, *(figures[s]["question_words"].get(w, 0) for s in splits)] for w in words]
    lines += [*table(["question word", *splits], word_rows, "l" + "r" * len(splits)), ""]
    return lines


def _triple(p: Mapping[str, float]) -> str:
    return f"{p['p50']:g} / {p['p95']:g} / {p['max']:g}"
