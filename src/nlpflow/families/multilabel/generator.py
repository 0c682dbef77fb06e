"""The built-in multi-label task: short letter strings tagged with the properties they have.

A text is 4-8 letters written with spaces (``o b b k e``), so every tokenizer sees one token
per letter, as in the anagram task. Its labels are the properties it has, computed from the
string itself (never from how it was drawn):

- ``vowel_start``: the first letter is a vowel;
- ``vowel_end``: the last letter is a vowel;
- ``long``: the string has 7 letters or more;
- ``rare_letter``: one of q, x, z occurs (rare);
- ``same_ends``: the first and the last letter are the same (rare; it makes ``vowel_start``
  and ``vowel_end`` agree).

The strings are drawn so that the labels are correlated (``vowel_end`` is more likely after
``vowel_start``, ``rare_letter`` in ``long`` strings) and some are rare; every size of label
set, the empty one included, occurs. What makes the task a test of a model rather than of word
counts: only ``rare_letter`` is visible to a bag of letters and letter pairs (the TF-IDF
baseline); the labels about the ends and the length depend on positions, which a small
transformer reads in a few epochs. ``same_ends`` asks it to compare two positions, which it
learns much later: the weak label an error analysis should find.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from nlpflow.errors import UserError

TEXT_FIELD = "text"
LABEL_FIELD = "labels"
VOWELS = "aeiou"
RARE = "qxz"
CONSONANTS = "bcdfghklmnprst"
COMMON = VOWELS + CONSONANTS


PROPERTIES: dict[str, Callable[[list[str]], bool]] = {
    "vowel_start": lambda s: s[0] in VOWELS,
    "vowel_end": lambda s: s[-1] in VOWELS,
    "long": lambda s: len(s) >= 7,
    "same_ends": lambda s: s[0] == s[-1],
    "rare_letter": lambda s: any(c in RARE for c in s),
}
LABEL_NAMES = sorted(PROPERTIES)


def labels_of(text: str) -> list[str]:
    """The labels of a text (letters separated by spaces), in sorted order."""
    letters = text.split()
    return [name for name in LABEL_NAMES if PROPERTIES[name](letters)]


def _draw(length: int, rng: random.Random) -> list[str]:
    """One string of ``length`` letters; the probabilities below set how frequent and how
    correlated the labels are."""
    start_vowel = rng.random() < 0.4
    same_ends = rng.random() < 0.1
    end_vowel = start_vowel if same_ends else rng.random() < (0.7 if start_vowel else 0.2)
    first = rng.choice(VOWELS if start_vowel else CONSONANTS)
    if same_ends:
        last = first
    else:
        last = rng.choice([c for c in (VOWELS if end_vowel else CONSONANTS) if c != first])
    letters = [first] + [rng.choice(COMMON) for _ in range(length - 2)] + [last]
    # No equal neighbours in the middle unless a double is wanted: redraw the ones that clash.
    for i in range(1, length - 1):
        while letters[i] in (letters[i - 1], letters[i + 1]):
            letters[i] = rng.choice(COMMON)
    if rng.random() < (0.12 if length >= 7 else 0.04):  # a rare letter in the middle
        letters[rng.randrange(1, length - 1)] = rng.choice(RARE)
    return letters


def generate_multilabel(
    size: int, seed: int, min_length: int = 4, max_length: int = 8
) -> list[dict[str, Any]]:
    """Rows with ``id``, ``text`` (letters with spaces) and ``labels`` (a sorted list).

    Deterministic in ``seed``; texts are distinct. Raises UserError when ``size`` distinct
    texts cannot be found (2,000 draws in a row repeat a text) for the lengths asked.
    """
    if min_length < 3 or max_length < min_length:
        raise UserError(
            f"data.multilabel: lengths {min_length}-{max_length} are not valid; "
            "min_length must be >= 3 and max_length >= min_length"
        )
    rng = random.Random(f"multilabel-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    misses = 0  # draws in a row that gave a text already taken
    while len(rows) < size:
        if misses > 2000:
            raise UserError(
                f"params.yaml: data.multilabel.size {size} is more distinct texts than strings "
                f"of {min_length}-{max_length} letters can give (found {len(rows)}); lower it"
            )
        text = " ".join(_draw(rng.randint(min_length, max_length), rng))
        if text in seen:
            misses += 1
            continue
        misses = 0
        seen.add(text)
        rows.append({"id": f"multilabel-{len(rows):06d}", "text": text, "labels": labels_of(text)})
    return rows
