"""Token classification: the built-in task, and the entity tag schemes of token files.

The built-in task: sentences with entities tagged in BIO (IOB2) form, generated from templates
and name lists, deterministically from the seed, so every model head can be trained and tested
offline.

Tag schemes: in IOB1 (CoNLL-2003 as published) an entity starts with ``I-X`` and ``B-X`` only
separates two adjacent entities of the same type; in IOB2 (what the pipeline trains and
scores) every entity starts with ``B-X``. Files in IOB1 are converted on reading; the
conversion is lossless (the entities are the same, only their first tag changes).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from nlpflow.errors import UserError
from nlpflow.params import EntitiesParams

TOKENS_FIELD = "tokens"
TAGS_FIELD = "tags"

NAMES = {
    "PER": [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Marie Curie",
        "Ken Thompson",
        "Noam Chomsky",
        "Karen Jones",
        "Yann",
        "Fei-Fei Li",
        "Geoffrey Hinton",
        "Ilya",
        "Barbara Liskov",
        "John McCarthy",
        "Claude Shannon",
        "Emmy Noether",
    ],
    "LOC": [
        "Paris",
        "New York",
        "Lagos",
        "Tokyo",
        "Buenos Aires",
        "Oslo",
        "Cape Town",
        "Mumbai",
        "Lima",
        "San Francisco",
        "Berlin",
        "Cairo",
        "Hanoi",
        "Quebec City",
    ],
    "ORG": [
        "Acme Corp",
        "the United Nations",
        "Globex",
        "Initech",
        "Bell Labs",
        "Reuters",
        "the Red Cross",
        "Umbrella Inc",
        "Stark Industries",
        "Wayne Enterprises",
        "NASA",
    ],
}
TEMPLATES = [
    "{PER} visited {LOC} last week",
    "{ORG} opened an office in {LOC}",
    "{PER} joined {ORG} as a researcher",
    "yesterday {PER} met {PER} in {LOC}",
    "{ORG} announced that {PER} will lead the team",
    "the report from {ORG} was published in {LOC} on Monday",
    "{PER} said the weather in {LOC} was fine",
    "analysts at {ORG} expect growth",
    "nobody expected the meeting to end so early",
    "{PER} moved from {LOC} to {LOC} with {ORG}",
]
FILLERS = ["today", "again", "quietly", "as planned", "after all", "in the end"]


def generate_entities(params: EntitiesParams, seed: int) -> list[dict[str, Any]]:
    """Rows with ``id``, ``tokens``, ``tags`` and ``template`` (for slicing errors)."""
    rng = random.Random(f"entities-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    attempts = 0
    while len(rows) < params.size:
        attempts += 1
        if attempts > params.size * 50:
            raise UserError(
                f"params.yaml: data.entities.size {params.size} is more distinct sentences than "
                f"the built-in templates and names can give (found {len(rows)}); lower the size"
            )
        t = rng.randrange(len(TEMPLATES))
        tokens: list[str] = []
        tags: list[str] = []
        for word in TEMPLATES[t].split():
            if word.startswith("{"):
                kind = word.strip("{}")
                name = rng.choice(NAMES[kind]).split()
                tokens += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        while len(tokens) < params.min_words or (
            rng.random() < 0.3 and len(tokens) < params.max_words
        ):
            extra = rng.choice(FILLERS).split()
            tokens += extra
            tags += ["O"] * len(extra)
        tokens, tags = tokens[: params.max_words], tags[: params.max_words]
        if tuple(tokens) in seen:
            continue
        seen.add(tuple(tokens))
        rows.append(
            {"id": f"entities-{len(rows):06d}", "tokens": tokens, "tags": tags, "template": str(t)}
        )
    return rows


# --------------------------------------------------------------------------- tag schemes


def _kind(tag: str) -> str:
    return tag[2:] if tag[:2] in ("B-", "I-") else ""


def starts_entity_with_i(prev: str, tag: str) -> bool:
    """True when ``tag`` is ``I-X`` and the tag before it (``prev``) is not of type X."""
    return tag.startswith("I-") and (prev == "O" or _kind(prev) != _kind(tag))


def starts_entity_with_b(prev: str, tag: str) -> bool:
    """True when ``tag`` is ``B-X`` after ``O`` or a tag of another type (only IOB2 does so)."""
    return tag.startswith("B-") and (prev == "O" or _kind(prev) != _kind(tag))


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """``IOB1`` when entities start with ``I-`` and no ``B-`` opens an entity after ``O``,
    the sentence start or another type (which only IOB2 does); else ``IOB2``.

    A file with both patterns is IOB2 with stray ``I-`` tags, not IOB1: it is left as written.
    """
    i_starts = b_starts = False
    for tags in sentences:
        prev = "O"
        for tag in tags:
            if starts_entity_with_i(prev, tag):
                i_starts = True
            elif starts_entity_with_b(prev, tag):
                b_starts = True
            prev = tag
    return "IOB1" if i_starts and not b_starts else "IOB2"


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """The tags of one sentence with every entity's first ``I-X`` made ``B-X``."""
    out = []
    prev = "O"
    for tag in tags:
        out.append("B-" + tag[2:] if starts_entity_with_i(prev, tag) else tag)
        prev = tag
    return out
