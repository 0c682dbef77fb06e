"""The built-in regression task: a rating that a modifier scales, generated from the seed.

Each example is a pair: ``first`` a modifier word (``very``, ``quite``, ``hardly``,
``not``) and ``second`` a phrase of ``min_letters``..``max_letters`` space-separated
letters (``c a j b e``) over the first ``alphabet`` letters. Every letter has a value,
evenly spaced in [-1, 1] and assigned by the seed; every modifier a factor (``very`` 1.5,
``quite`` 0.5, ``hardly`` -0.5, ``not`` -1.5). The target ``score`` is the modifier's
factor times the mean value of the phrase's letters, in [-1.5, 1.5]: sentiment with
intensifiers and negation, in miniature.

The factors average to 0 and every letter occurs under every modifier alike, so neither
field alone says anything about the score: a bag of words of each field (TF-IDF + ridge,
per field) scores R² about 0, as does the train mean; the model must combine the two,
which attention from the phrase to the modifier does.
"""

from __future__ import annotations

import random
import string
from typing import Any

from nlpflow.params import RegressionParams

TEXT_FIELDS = ("first", "second")
LABEL_FIELD = "score"
MODIFIERS = {"very": 1.5, "quite": 0.5, "hardly": -0.5, "not": -1.5}


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
