"""The built-in multiple-choice task (``builtin:choice``), generated from the seed.

"Which thing did the person want?" The context names a category (``a fruit``) and mentions
other things on the way; the options are single words, one of that category (the answer) and
the rest of other categories. Knowing which word belongs to which category is what a model has
to learn; the known shortcuts of multiple-choice data sets are taken away on purpose:

- every option is a five-letter word, so the longest option is never a cue (all tie);
- the answer never occurs in the context, while 0, 1 or 2 of the wrong options do (``mentioned``
  records how many): the option with the most words in common with the context is never right
  when one is mentioned, and a tie otherwise;
- the answer's position is drawn uniformly, so the most common position is right about 1/N of
  the time.

Each row records ``category`` (the answer's) and ``mentioned`` for the error analysis' slices.
"""

from __future__ import annotations

import random
from typing import Any

from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, LABEL, OPTIONS
from nlpflow.families.choice.config import ChoiceParams

METADATA_FIELDS = ["category", "mentioned"]
WORD_LENGTH = 5
CATEGORIES: dict[str, list[str]] = {
    "animal": ["tiger", "horse", "zebra", "camel"],
    "drink": ["water", "juice", "cocoa", "cider"],
    "fruit": ["apple", "mango", "lemon", "grape"],
    "furniture": ["chair", "couch", "stool", "bench"],
    "garment": ["shirt", "scarf", "glove", "dress"],
    "instrument": ["piano", "flute", "cello", "banjo"],
}
NAMES = ["Ada", "Ben", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jun", "Kofi"]
# Short and alike, 24 words in 6 categories: a model of two layers and 64 units learns the
# task in a few epochs (8 categories of 5 words took twice as long, and not every seed made it).
TEMPLATES = [
    "{name} passed the {m1} and the {m2} and took {a_category} : the",
    "{name} saw the {m1} and the {m2} but wanted {a_category} : the",
    "near the {m1} and the {m2} , {name} found {a_category} : the",
]


def _word_category() -> dict[str, str]:
    return {w: c for c, words in CATEGORIES.items() for w in words}


def generate_choice(params: ChoiceParams, seed: int) -> list[dict[str, Any]]:
    """Rows with ``id``, ``context``, ``options`` (``num_options`` words), ``label`` (int, from
    0), ``category`` and ``mentioned`` (how many wrong options the context names: 0 to 2).

    Raises UserError when ``params.size`` distinct rows cannot be drawn.
    """
    rng = random.Random(f"choice-{seed}")
    n = params.num_options
    categories = sorted(CATEGORIES)
    of = _word_category()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    attempts = 0
    while len(rows) < params.size:
        attempts += 1
        if attempts > params.size * 50:  # pragma: no cover - the space is far larger than 50x
            raise UserError(
                f"params.yaml: data.choice.size {params.size} is more distinct rows than the "
                f"built-in task can draw (found {len(rows)}); lower the size"
            )
        category = rng.choice(categories)
        answer = rng.choice(CATEGORIES[category])
        others = sorted(w for w, c in of.items() if c != category)
        wrong = rng.sample(others, n - 1)
        mentioned = min(rng.randrange(3), n - 1)
        # The context names two things: `mentioned` of the wrong options, then other words of
        # other categories than the answer's, never an option.
        fillers = rng.sample(sorted(set(others) - set(wrong)), 2 - mentioned)
        named = wrong[:mentioned] + fillers
        rng.shuffle(named)
        context = rng.choice(TEMPLATES).format(
            name=rng.choice(NAMES),
            a_category=("an " if category[0] in "aeiou" else "a ") + category,
            m1=named[0],
            m2=named[1],
        )
        options = [*wrong]
        label = rng.randrange(n)
        options.insert(label, answer)
        key = (context, tuple(options))
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "id": f"choice-{len(rows):06d}",
                CONTEXT: context,
                OPTIONS: options,
                LABEL: label,
                "category": category,
                "mentioned": mentioned,
            }
        )
    return rows
