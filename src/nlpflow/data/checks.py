"""Leakage between splits: the same text in train and test makes test scores meaningless."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlpflow.data.clean import normalise_for_match
from nlpflow.data.files import Row
from nlpflow.errors import UserError
from nlpflow.params import SPLITS

# Pairs checked, the later split first: a duplicate is dropped from the later split.
PAIRS = (("validation", "train"), ("test", "train"), ("test", "validation"))
EXAMPLES_KEPT = 5


@dataclass
class Leakage:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(c["exact"] + c["normalised"] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.counts,
            "total": self.total,
            "dropped": self.dropped,
            "examples": self.examples,
        }


def _key(row: Row, text_fields: list[str]) -> str:
    # Token-task rows hold a list of words; compare them as one text.
    return "\x1f".join(
        " ".join(row[f]) if isinstance(row[f], list) else row[f] for f in text_fields
    )


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _digests(rows: list[Row], text_fields: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, 128-bit digests of its text as is and normalised, two ``(n,)`` ``S16`` arrays:
    16 bytes a row instead of Python sets of whole strings, each text normalised once."""
    exact = np.empty(len(rows), dtype="S16")
    loose = np.empty(len(rows), dtype="S16")
    for i, row in enumerate(rows):
        key = _key(row, text_fields)
        exact[i] = _digest(key)
        loose[i] = _digest(normalise_for_match(key))
    return exact, loose


def find_leakage(
    splits: dict[str, list[Row]], text_fields: list[str], policy: str
) -> tuple[dict[str, list[Row]], Leakage]:
    """Count exact and normalised duplicates across splits; apply warn, drop or fail.

    A text counts as ``exact`` when identical after cleaning, ``normalised`` when identical
    only once case, punctuation and spacing are ignored. Texts are compared by 128-bit
    BLAKE2b digests (a false match is about as likely as 2**-128 per pair).
    """
    leak = Leakage()
    exact: dict[str, np.ndarray] = {}
    loose: dict[str, np.ndarray] = {}
    for s in SPLITS:
        exact[s], loose[s] = _digests(splits[s], text_fields)
    drop: dict[str, set[int]] = {s: set() for s in SPLITS}
    for later, earlier in PAIRS:
        in_exact = np.isin(exact[later], exact[earlier])
        in_loose = np.isin(loose[later], loose[earlier]) & ~in_exact
        found = np.flatnonzero(in_exact | in_loose)
        drop[later].update(found.tolist())
        for i in found[: max(0, EXAMPLES_KEPT - len(leak.examples))].tolist():
            row = splits[later][i]
            leak.examples.append(
                {
                    "splits": f"{earlier}/{later}",
                    "id": str(row.get("id", row.get("_line"))),
                    "text": _key(row, text_fields).replace("\x1f", " / ")[:160],
                }
            )
        leak.counts[f"{earlier}/{later}"] = {
            "exact": int(in_exact.sum()),
            "normalised": int(in_loose.sum()),
        }
    if leak.total and policy == "fail":
        detail = ", ".join(
            f"{pair}: {c['exact']} exact + {c['normalised']} normalised"
            for pair, c in leak.counts.items()
            if c["exact"] or c["normalised"]
        )
        first = leak.examples[0]
        raise UserError(
            f"{leak.total} text(s) occur in more than one split ({detail}); e.g. "
            f"{first['text'][:60]!r}; set data.leakage: drop to remove them from the later split"
        )
    if policy == "drop":
        for split in SPLITS:
            leak.dropped[split] = len(drop[split])
        splits = {
            s: [r for i, r in enumerate(rows) if i not in drop[s]] for s, rows in splits.items()
        }
    return splits, leak
