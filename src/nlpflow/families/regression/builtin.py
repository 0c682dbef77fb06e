"""The built-in regression task: a rating that a modifier scales, generated from the seed.

Each example is a pair: ``first`` a modifier word (``very``, ``quite``, ``hardly``,
``not``) and ``second`` a phrase of ``min_letters``..``max_letters`` space-separated
letters (``c a j b e``) over the first ``alphabet`` letters. Every letter has a value,
evenly spaced in [-1, 1] and assigned by the seed; every modifier a factor (``very`` 1.5,
``quite`` 0.75, ``hardly`` -0.25, ``not`` -1). The target ``score`` is the modifier's
factor times the mean value of the phrase's letters, in [-1.5, 1.5]: sentiment with
intensifiers and negation, in miniature.

Every letter occurs under every modifier alike and the factors average to 0.25, so neither
field alone says much: the modifier says nothing (the letter values average 0), the
letters alone at most R² 0.065 (0.25² over the factors' mean square, 0.969). A bag of words
of each field (TF-IDF + ridge, per field) scores about that, the train mean 0; the model
must combine the two fields, which attention from the phrase to the modifier does. (With
factors averaging exactly 0 nothing at all points the way at the start, and a small model
stayed on the mean's plateau for the whole run: the 0.25 is the foothold.)
"""

from __future__ import annotations

import random
import string
from typing import Any

from nlpflow.params import RegressionParams

TEXT_FIELDS = ("first", "second")
LABEL_FIELD = "score"
MODIFIERS = {"very": 1.5, "quite": 0.75, "hardly": -0.25, "not": -1.0}


def letter_values(alphabet: int, seed: int) -> dict[str, float]:
    """Each of the first ``alphabet`` letters' value, evenly spaced in [-1, 1], seeded."""
    letters = list(string.ascii_lowercase[:alphabet])
    values = [-1.0 + 2.0 * i / (alphabet - 1) for i in range(alphabet)]
    random.Random(f"regression-values-{seed}").shuffle(values)
    return dict(zip(letters, values, strict=True))


def score(modifier: str, letters: list[str], values: dict[str, float]) -> float:
    """``MODIFIERS[modifier]`` times the mean value of ``letters``."""
    return MODIFIERS[modifier] * sum(values[c] for c in letters) / len(letters)


def generate_regression(params: RegressionParams, seed: int) -> list[dict[str, Any]]:
    """``params.size`` rows with ``id``, ``first`` (a modifier), ``second`` (letters) and
    ``score`` (a float, rounded to 6 decimals)."""
    rng = random.Random(f"regression-{seed}")
    values = letter_values(params.alphabet, seed)
    alphabet = sorted(values)
    modifiers = sorted(MODIFIERS)
    rows = []
    for i in range(params.size):
        modifier = rng.choice(modifiers)
        letters = [
            rng.choice(alphabet) for _ in range(rng.randint(params.min_letters, params.max_letters))
        ]
        rows.append(
            {
                "id": f"regression-{i}",
                "first": modifier,
                "second": " ".join(letters),
                "score": round(score(modifier, letters, values), 6),
            }
        )
    return rows
