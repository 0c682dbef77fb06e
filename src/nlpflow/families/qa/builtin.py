"""The built-in extractive QA task (``builtin:qa``): short contexts of facts, seeded, offline.

A context is a few sentences about a person's thing, mixed with sentences about someone
else, in shuffled order::

    sofia cooked cheese for nina . nina keeps the lamp in the hall . sofia lives near the
    office . the lamp is deep sea green . nina bought it in 1956 .

and one question asks about the thing: ``who keeps the lamp ?`` (``nina``), ``where does
nina keep the lamp ?`` (``the hall``), ``what colour is the lamp ?`` (``deep sea green``) or
``when did nina buy the lamp ?`` (``1956``). Every kind of answer has a distractor of its
kind in the other sentences (a place someone lives near, a year someone was born, the
colour of the sky, another person), so the answer is found by reading the words around it,
not by spotting a colour or a year. An unanswerable question (a share ``unanswerable`` of
them) asks for the fact whose sentence the context leaves out, distractors still there.

What it shows (``benchmarks/qa_learnability.py``: 2,000 train and 400 validation questions,
windows of 64 tokens, a 2-layer BERT of hidden size 64 from scratch, AdamW lr 3e-3, batch 32):
validation F1 0.61 after 200 steps and 0.75 after 500 (no-answer threshold tuned there), far
above the two baselines: "always no answer" scores the unanswerable share (EM and F1 0.30),
and the sentence with the most question words an F1 of 0.22 (its sentence is often the
right one, but the answer is one to three of its words; it answers every unanswerable
question).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nlpflow.errors import UserError

PEOPLE = (
    "anna", "tom", "maria", "omar", "sofia", "jan", "kofi", "yuki", "pedro", "nina", "ravi",
    "lena", "ahmed", "chen", "ines", "marco", "zara", "olga", "sam", "ida",
)  # fmt: skip
THINGS = (
    "box", "cup", "pen", "hat", "book", "lamp", "bag", "key", "chair", "clock", "ball", "coat",
    "kite", "vase",
)  # fmt: skip
COLOURS = (
    "red", "blue", "green", "black", "white", "yellow", "grey", "brown", "purple", "dark blue",
    "light green", "bright orange", "pale pink", "deep sea green",
)  # fmt: skip
PLACES = (
    "kitchen", "garden", "hall", "office", "attic", "garage", "cellar", "study", "living room",
    "spare bedroom", "back yard", "old tool shed",
)  # fmt: skip
YEARS = tuple(str(y) for y in range(1950, 2025, 3))
FOODS = ("apples", "rice", "green tea", "soup", "cheese", "bread", "plums", "hot chocolate")
QUESTION_KINDS = ("owner", "place", "colour", "year")


@dataclass(frozen=True)
class QaBuiltinParams:
    """Size and shape of the built-in QA data.

    ``size``: questions (one per context); ``min_facts``/``max_facts``: sentences of a
    context (4 to 8: up to three facts, a distractor, other sentences); ``unanswerable``: the share of questions whose answer the context leaves out
    (0 gives a SQuAD v1-style data set).
    """

    size: int = 2000
    min_facts: int = 4
    max_facts: int = 6
    unanswerable: float = 0.3

    def check(self) -> None:
        if self.size < 1:
            raise UserError(f"params.yaml: data.qa.size is {self.size}; use 1 or more")
        if not 4 <= self.min_facts <= self.max_facts <= 8:
            raise UserError(
                f"params.yaml: data.qa.min_facts {self.min_facts} and max_facts "
                f"{self.max_facts} must satisfy 4 <= min_facts <= max_facts <= 8"
            )
        if not 0.0 <= self.unanswerable < 1.0:
            raise UserError(
                f"params.yaml: data.qa.unanswerable is {self.unanswerable}; use a share in [0, 1)"
            )


def _question(kind: str, person: str, thing: str) -> str:
    return {
        "owner": f"who keeps the {thing} ?",
        "place": f"where does {person} keep the {thing} ?",
        "colour": f"what colour is the {thing} ?",
        "year": f"when did {person} buy the {thing} ?",
    }[kind]


def _example(rng: random.Random, params: QaBuiltinParams) -> dict[str, Any]:
    person, other = rng.sample(PEOPLE, 2)
    thing = rng.choice(THINGS)
    colour, place, year = rng.choice(COLOURS), rng.choice(PLACES), rng.choice(YEARS)
    # Each fact: (the question kinds it answers, the sentence, {kind: (answer, offset)}).
    keeps = f"{person} keeps the {thing} in "
    facts: dict[str, tuple[str, dict[str, tuple[str, int]]]] = {
        "keeps": (
            f"{keeps}the {place} .",
            {"owner": (person, 0), "place": (f"the {place}", len(keeps))},
        ),
        "colour": (f"the {thing} is {colour} .", {"colour": (colour, len(f"the {thing} is "))}),
        "year": (
            f"{person} bought it in {year} .",
            {"year": (year, len(f"{person} bought it in "))},
        ),
    }
    distractors = {
        "owner": f"{other} likes {rng.choice(FOODS)} .",
        "place": f"{other} lives near the {rng.choice(PLACES)} .",
        "year": f"{other} was born in {rng.choice(YEARS)} .",
        "colour": f"the sky over the {rng.choice(PLACES)} was {rng.choice(COLOURS)} .",
    }
    kind = rng.choice(QUESTION_KINDS)
    needed = "keeps" if kind in ("owner", "place") else kind
    unanswerable = rng.random() < params.unanswerable
    kept = [name for name in facts if not (unanswerable and name == needed)]
    # The distractor of the question's kind, then others up to the context's length.
    pool = [text for k, text in distractors.items() if k != kind]
    pool.append(f"{other} cooked {rng.choice(FOODS)} for {person} .")
    others = [distractors[kind], *rng.sample(pool, len(pool))]
    count = rng.randint(params.min_facts, params.max_facts)
    parts = [facts[name] for name in kept] + [(text, {}) for text in others[: count - len(kept)]]
    rng.shuffle(parts)
    context_parts, answer, offset = [], None, 0
    for text, found in parts:
        if kind in found:
            answer = (found[kind][0], offset + found[kind][1])
        context_parts.append(text)
        offset += len(text) + 1
    return {
        "context": " ".join(context_parts),
        "question": _question(kind, person, thing),
        "answers": {
            "text": [answer[0]] if answer else [],
            "answer_start": [answer[1]] if answer else [],
        },
    }


def generate_qa(params: QaBuiltinParams, seed: int) -> list[dict[str, Any]]:
    """Rows in the reader layout (``id``, ``title``, ``context``, ``question``, ``answers``),
    ``params.size`` of them with distinct (context, question) pairs, from ``seed``.

    Raises UserError for invalid params.
    """
    params.check()
    rng = random.Random(f"qa-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    while len(rows) < params.size:
        example = _example(rng, params)
        key = (example["context"], example["question"])
        if key in seen:
            continue
        seen.add(key)
        rows.append({"id": f"qa-{len(rows):06d}", "title": "facts", **example})
    return rows
