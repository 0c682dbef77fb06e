"""Entity tag schemes of token files: IOB1 (CoNLL-2003 as published) read as IOB2.

In IOB1 an entity starts with ``I-X``; ``B-X`` only separates two adjacent entities of the
same type. In IOB2 (what the pipeline trains and scores) every entity starts with ``B-X``.
The conversion is lossless: the entities are the same, only their first tag changes.
"""

from __future__ import annotations

from collections.abc import Sequence


def _kind(tag: str) -> str:
    return tag[2:] if tag[:2] in ("B-", "I-") else ""


def starts_entity_with_i(prev: str, tag: str) -> bool:
    """True when ``tag`` is ``I-X`` and the tag before it (``prev``) is not of type X."""
    return tag.startswith("I-") and (prev == "O" or _kind(prev) != _kind(tag))


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
            elif tag.startswith("B-") and (prev == "O" or _kind(prev) != _kind(tag)):
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
