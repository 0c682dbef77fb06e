"""Multiple-choice baselines: the known artefacts of these data sets, as scores ``(n, N)``.

A multiple-choice set is only as hard as its distractors: SWAG's right endings were longer and
closer in wording to the context than its machine-written wrong ones, and annotators favour
some answer positions. Each baseline scores every option; the highest score is its choice, and
ties share the credit (see :mod:`nlpflow.families.choice.metrics`), so a cue that cannot tell
the options of a row apart is worth chance there, not the luck of a tie-break rule.

- ``position``: the most common right position of the *train* split (scores: each position's
  train frequency, the same for every row; these are also its probabilities).
- ``longest``: the longest option, in characters (stripped of surrounding whitespace).
- ``overlap``: the option sharing the most distinct words with the context (lower-cased
  ``\\w+`` words; a word counts once however often it occurs).

A model worth training beats the best of them by a margin whose interval stays above 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from nlpflow.errors import UserError
from nlpflow.evaluation.metrics import FloatArray, IntArray

CHOICE_BASELINES = ("position", "longest", "overlap")
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def position_scores(train_labels: Sequence[int] | IntArray, num_options: int, n: int) -> FloatArray:
    """The train split's share of each right position, for each of ``n`` rows: ``(n, N)``.

    The train split only: counting the split being scored would peek at its answers.

    Raises:
        UserError: the train split is empty.
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise UserError("the train split is empty: no position baseline can be computed")
    share = np.bincount(labels, minlength=num_options).astype(np.float64) / labels.size
    return np.tile(share, (n, 1))


def length_scores(options: Sequence[Sequence[str]]) -> FloatArray:
    """Each option's length in characters (surrounding whitespace stripped): ``(n, N)``."""
    return _matrix([[float(len(o.strip())) for o in row] for row in options])


def overlap_scores(contexts: Sequence[str], options: Sequence[Sequence[str]]) -> FloatArray:
    """How many distinct words each option shares with its context: ``(n, N)``."""
    out = []
    for context, row in zip(contexts, options, strict=True):
        seen = _words(context)
        out.append([float(len(_words(o) & seen)) for o in row])
    return _matrix(out)


def _matrix(rows: list[list[float]]) -> FloatArray:
    if len({len(r) for r in rows}) > 1:
        raise ValueError("rows with different numbers of options")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else 0)


def baseline_scores(
    name: str,
    train_labels: Sequence[int] | IntArray,
    contexts: Sequence[str],
    options: Sequence[Sequence[str]],
    num_options: int,
) -> FloatArray:
    """The scores ``(n, N)`` of baseline ``name`` (one of :data:`CHOICE_BASELINES`) on the rows
    ``contexts``/``options``, fitted on ``train_labels`` where it learns anything.

    Raises:
        ValueError: an unknown name (params validation names the known ones first).
    """
    if name == "position":
        return position_scores(train_labels, num_options, len(options))
    if name == "longest":
        return length_scores(options)
    if name == "overlap":
        return overlap_scores(contexts, options)
    raise ValueError(f"unknown multiple-choice baseline {name!r}; known: {CHOICE_BASELINES}")
