"""The built-in extractive QA task (``builtin:qa``): short contexts of facts, seeded, offline.

A context lists facts about people's things, in shuffled order::

    the cup of tom is dark blue . anna keeps the box in the living room . the box of anna
    is red . tom keeps the cup in the garage .

and one question asks about one of them: ``what colour is the cup of tom ?`` (``dark blue``),
``where does tom keep the cup ?`` (``the garage``) or ``who owns the red box ?`` (``anna``).
Every context names several people and several kinds of thing, so the answer needs both
halves of the question matched: the same person owns other things and other people own the
same kind of thing. An unanswerable question (a share ``unanswerable`` of them) asks about a
person and a thing that both occur in the context, but never together (``what colour is the
box of tom ?``), so a model has to read rather than spot a known name.

The two baselines sit well below what a small model learns: "always no answer" scores the
unanswerable share, and the sentence with the most question words scores an F1 of about a
third on answerable questions (the answer is one to three words of a five-to-eight-word
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

    ``size``: questions (one per context); ``min_facts``/``max_facts``: things described in a
    context (each gives two sentences); ``unanswerable``: the share of questions without an
    answer in their context (0 gives a SQuAD v1-style data set).
    """

    size: int = 2000
    min_facts: int = 3
    max_facts: int = 5
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
    """``count`` facts over 2 or 3 people and as many kinds of thing, each (person, thing)
    once and each (colour, thing) once, so every answerable question has one answer, and at
    least one (person, thing) pair left over for an unanswerable question."""
    n = 2 if count <= 3 else 3
    people, things = rng.sample(PEOPLE, n), rng.sample(THINGS, n)
    pairs = [(p, t) for p in people for t in things]
    rng.shuffle(pairs)
    facts: list[_Fact] = []
    used: set[tuple[str, str]] = set()
    for person, thing in pairs[:count]:
        colour = rng.choice([c for c in COLOURS if (c, thing) not in used])
        used.add((colour, thing))
        facts.append(_Fact(person, thing, colour, rng.choice(PLACES)))
    return facts


def _sentences(fact: _Fact) -> list[tuple[str, dict[str, tuple[str, int]]]]:
    """The two sentences of a fact, each with the answers (text, offset in the sentence) that
    the fact's questions have in it, by question kind."""
    owner_prefix = f"the {fact.thing} of "
    colour_prefix = f"{owner_prefix}{fact.person} is "
    place_prefix = f"{fact.person} keeps the {fact.thing} in "
    return [
        (
            f"{colour_prefix}{fact.colour} .",
            {
                "colour": (fact.colour, len(colour_prefix)),
                "owner": (fact.person, len(owner_prefix)),
            },
        ),
        (f"{place_prefix}the {fact.place} .", {"place": (f"the {fact.place}", len(place_prefix))}),
    ]


def _question(kind: str, person: str, thing: str, colour: str) -> str:
    if kind == "colour":
        return f"what colour is the {thing} of {person} ?"
    if kind == "place":
        return f"where does {person} keep the {thing} ?"
    return f"who owns the {colour} {thing} ?"


def _example(rng: random.Random, params: QaBuiltinParams) -> dict[str, Any]:
    facts = _facts(rng, rng.randint(params.min_facts, params.max_facts))
    sentences = [(fact, text, found) for fact in facts for text, found in _sentences(fact)]
    rng.shuffle(sentences)
    spans: dict[tuple[str, _Fact], tuple[str, int]] = {}
    offset = 0
    for fact, text, found in sentences:
        for kind, (answer, start) in found.items():
            spans[(kind, fact)] = (answer, offset + start)
        offset += len(text) + 1
    context = " ".join(text for _, text, _ in sentences)
    kind = rng.choice(QUESTION_KINDS)
    if rng.random() < params.unanswerable:
        question = _unanswerable(rng, kind, facts)
        if question is not None:
            return {
                "context": context,
                "question": question,
                "answers": {"text": [], "answer_start": []},
            }
    fact = rng.choice(facts)
    answer, start = spans[(kind, fact)]
    return {
        "context": context,
        "question": _question(kind, fact.person, fact.thing, fact.colour),
        "answers": {"text": [answer], "answer_start": [start]},
    }


def _unanswerable(rng: random.Random, kind: str, facts: list[_Fact]) -> str | None:
    """A question whose two halves both occur in the context but never in one fact."""
    if kind == "owner":
        known = {(f.colour, f.thing) for f in facts}
        options = [(c, t) for c in {f.colour for f in facts} for t in {f.thing for f in facts}]
        free = [(c, t) for c, t in sorted(options) if (c, t) not in known]
        if not free:
            return None
        colour, thing = rng.choice(free)
        return _question(kind, "", thing, colour)
    known_pairs = {(f.person, f.thing) for f in facts}
    people, things = sorted({f.person for f in facts}), sorted({f.thing for f in facts})
    free_pairs = [(p, t) for p in people for t in things if (p, t) not in known_pairs]
    if not free_pairs:
        return None
    person, thing = rng.choice(free_pairs)
    return _question(kind, person, thing, "")


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
