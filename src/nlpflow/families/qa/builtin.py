"""The built-in extractive QA task (``builtin:qa``): short contexts of facts, seeded, offline.

A context is a few facts, one sentence per person::

    tom keeps the dark blue cup in the garage . anna keeps the red box in the living room .
    omar keeps the green cup in the hall .

and one question asks about one of them: ``what colour is the cup of tom ?`` (``dark
blue``), ``where does anna keep the box ?`` (``the living room``) or ``who keeps the green
cup ?`` (``omar``). Kinds of thing repeat within a context, so the answer needs the person
(or the colour) of the question found in the context, not only the thing. An unanswerable
question (a share ``unanswerable`` of them) names a thing of the context with a person (or a
colour) that the context does not hold.

The two baselines sit well below what a small model learns: "always no answer" scores the
unanswerable share, and the sentence with the most question words scores an F1 of about
0.3 on answerable questions (the answer is one to three words of a seven-to-ten-word
sentence) and 0 on the others.
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
QUESTION_KINDS = ("colour", "place", "owner")


@dataclass(frozen=True)
class QaBuiltinParams:
    """Size and shape of the built-in QA data.

    ``size``: questions (one per context); ``min_facts``/``max_facts``: sentences (people) of
    a context; ``unanswerable``: the share of questions without an
    answer in their context (0 gives a SQuAD v1-style data set).
    """

    size: int = 2000
    min_facts: int = 2
    max_facts: int = 4
    unanswerable: float = 0.3

    def check(self) -> None:
        if self.size < 1:
            raise UserError(f"params.yaml: data.qa.size is {self.size}; use 1 or more")
        if not 2 <= self.min_facts <= self.max_facts <= 8:
            raise UserError(
                f"params.yaml: data.qa.min_facts {self.min_facts} and max_facts "
                f"{self.max_facts} must satisfy 2 <= min_facts <= max_facts <= 8"
            )
        if not 0.0 <= self.unanswerable < 1.0:
            raise UserError(
                f"params.yaml: data.qa.unanswerable is {self.unanswerable}; use a share in [0, 1)"
            )


@dataclass(frozen=True)
class _Fact:
    person: str
    thing: str
    colour: str
    place: str


def _facts(rng: random.Random, count: int) -> list[_Fact]:
    """``count`` facts of distinct people, distinct things and distinct colours."""
    people = rng.sample(PEOPLE, count)
    things = rng.sample(THINGS, count)
    colours = rng.sample(COLOURS, count)
    return [
        _Fact(p, t, c, rng.choice(PLACES)) for p, t, c in zip(people, things, colours, strict=True)
    ]


def _question(kind: str, person: str, thing: str, colour: str) -> str:
    if kind == "colour":
        return f"what colour is the {thing} of {person} ?"
    if kind == "place":
        return f"where does {person} keep the {thing} ?"
    return f"who keeps the {colour} {thing} ?"


def _example(rng: random.Random, params: QaBuiltinParams) -> dict[str, Any]:
    facts = _facts(rng, rng.randint(params.min_facts, params.max_facts))
    sentences, spans, offset = [], {}, 0
    for fact in facts:
        before = f"{fact.person} keeps the {fact.colour} {fact.thing} in "
        sentence = f"{before}the {fact.place} ."
        spans[fact] = {
            "owner": (fact.person, offset),
            "colour": (fact.colour, offset + len(f"{fact.person} keeps the ")),
            "place": (f"the {fact.place}", offset + len(before)),
        }
        sentences.append(sentence)
        offset += len(sentence) + 1
    context = " ".join(sentences)
    kind = rng.choice(QUESTION_KINDS)
    fact = rng.choice(facts)
    if rng.random() < params.unanswerable:
        # The thing of a fact, with a person (or colour) that the context does not hold.
        if kind == "owner":
            present = {f.colour for f in facts}
            colour = rng.choice([c for c in COLOURS if c not in present])
            question = _question(kind, "", fact.thing, colour)
        else:
            present = {f.person for f in facts}
            person = rng.choice([p for p in PEOPLE if p not in present])
            question = _question(kind, person, fact.thing, "")
        return {
            "context": context,
            "question": question,
            "answers": {"text": [], "answer_start": []},
        }
    answer, start = spans[fact][kind]
    return {
        "context": context,
        "question": _question(kind, fact.person, fact.thing, fact.colour),
        "answers": {"text": [answer], "answer_start": [start]},
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
