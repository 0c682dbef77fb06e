"""Extractive QA baselines, scored with the model's metric code on the same questions.

- ``no_answer``: always "no answer". On SQuAD v2-style data it scores the share of
  unanswerable questions (EM and F1 alike); on answerable questions it scores 0.
- ``sentence_overlap``: the sentence of the context that shares the most distinct question
  words (SQuAD-normalised tokens), the first one on a tie; it always answers. Sentences end
  at ``.``, ``!`` or ``?`` followed by whitespace or the end of the context (abbreviations
  such as "U.S. Army" split a sentence: a baseline, not a segmenter). It finds where the
  answer is but not which words: its F1 is the answer's share of its sentence.

Neither looks at the gold answers, so neither needs fitting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nlpflow.families.qa.metrics import answer_tokens

BASELINES = ("no_answer", "sentence_overlap")
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s|$)|$)", re.DOTALL)


def sentences(context: str) -> list[tuple[int, str]]:
    """(start character, text) of each sentence of ``context``, in order."""
    return [(m.start(), m.group(0)) for m in _SENTENCE.finditer(context)]


def overlap_sentence(question: str, context: str) -> tuple[int, str]:
    """(start, text) of the sentence sharing the most distinct question words, its final
    ``.``/``!``/``?`` and spaces removed; ``(-1, "")`` for a context without words."""
    words = set(answer_tokens(question))
    best, best_count = (-1, ""), -1
    for start, text in sentences(context):
        count = len(words & set(answer_tokens(text)))
        if count > best_count:
            best, best_count = (start, text.rstrip(".!? \t\n")), count
    return best


def baseline_predictions(name: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The predicted answer text of baseline ``name`` for each row (``question``,
    ``context``); ``""`` is no answer. Raises ValueError for an unknown name."""
    if name == "no_answer":
        return ["" for _ in rows]
    if name == "sentence_overlap":
        return [overlap_sentence(r["question"], r["context"])[1] for r in rows]
    raise ValueError(f"unknown QA baseline '{name}'; use one of {list(BASELINES)}")
