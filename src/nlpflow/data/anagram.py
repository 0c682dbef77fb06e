"""The built-in anagram pair task, generated deterministically from the seed.

"Can the second word be formed by rearranging the letters of the first?" Letters are
space-separated (``g r k a q`` / ``q a k r g``) so every tokenizer sees one token per letter.
Negatives are near misses, and each example records which kind it is so that error analysis
can slice by it: a letter ``dropped``, ``added`` or ``substituted``, drawn with the relative
weights ``near_misses``. Only ``substituted`` keeps both words the same length: a model that
compares lengths gets every other kind right, so weighting it up makes the length cue worth less.
"""

from __future__ import annotations

import random
from typing import Any

from nlpflow.errors import UserError
from nlpflow.params import AnagramParams

TEXT_FIELDS = ["first", "second"]
LABEL_FIELD = "label"
METADATA_FIELDS = ["kind"]
NEAR_MISS_KINDS = ("dropped", "added", "substituted")
POSITIVE, NEGATIVE = "yes", "no"


def _near_miss(letters: list[str], kind: str, alphabet: str, rng: random.Random) -> list[str]:
    out = list(letters)
    if kind == "dropped":
        del out[rng.randrange(len(out))]
    elif kind == "added":
        out.insert(rng.randrange(len(out) + 1), rng.choice(alphabet))
    else:  # substituted: a different letter, so the letter multiset always changes
        i = rng.randrange(len(out))
        out[i] = rng.choice([c for c in alphabet if c != out[i]])
    return out


def _shuffled(letters: list[str], rng: random.Random) -> list[str]:
    """A permutation that differs from the input where one exists (a copy is too easy)."""
    out = list(letters)
    for _ in range(10):
        rng.shuffle(out)
        if out != letters or len(set(letters)) == 1:
            break
    return out


def generate_anagram(params: AnagramParams, seed: int) -> list[dict[str, Any]]:
    """Rows with ``id``, ``first``, ``second``, ``label`` (yes/no) and ``kind``.

    ``kind`` is ``anagram`` for the positives, else the near-miss kind. Raises UserError when
    ``params.size`` distinct pairs cannot be found (alphabet or word lengths too small).
    """
    rng = random.Random(f"anagram-{seed}")
    alphabet = "".join(sorted(set(params.alphabet)))
    weights = [float(params.near_misses.get(kind, 0.0)) for kind in NEAR_MISS_KINDS]
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    attempts = 0
    while len(rows) < params.size:
        attempts += 1
        if attempts > params.size * 50:
            raise UserError(
                f"params.yaml: data.anagram.size {params.size} is more distinct pairs than "
                f"words of {params.min_word_length}-{params.max_word_length} letters from "
                f"'{alphabet}' can give (found {len(rows)}); lower the size, or widen the "
                "alphabet or the word lengths"
            )
        length = rng.randint(params.min_word_length, params.max_word_length)
        letters = [rng.choice(alphabet) for _ in range(length)]
        if rng.random() < params.positive_fraction:
            kind, label, other = "anagram", POSITIVE, _shuffled(letters, rng)
        else:
            kind = rng.choices(NEAR_MISS_KINDS, weights)[0]
            label, other = NEGATIVE, _shuffled(_near_miss(letters, kind, alphabet, rng), rng)
        first, second = " ".join(letters), " ".join(other)
        if (first, second) in seen:  # keeps splits free of exact duplicates
            continue
        seen.add((first, second))
        rows.append(
            {
                "id": f"anagram-{len(rows):06d}",
                "first": first,
                "second": second,
                "label": label,
                "kind": kind,
            }
        )
    return rows
