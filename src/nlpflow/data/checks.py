"""Leakage between splits: the same text in train and test makes test scores meaningless."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def find_leakage(
    splits: dict[str, list[Row]], text_fields: list[str], policy: str
) -> tuple[dict[str, list[Row]], Leakage]:
    """Count exact and normalised duplicates across splits; apply warn, drop or fail.

    A text counts as ``exact`` when identical after cleaning, ``normalised`` when identical
    only once case, punctuation and spacing are ignored.
    """
    leak = Leakage()
    exact = {s: {_key(r, text_fields) for r in splits[s]} for s in SPLITS}
    loose = {s: {normalise_for_match(_key(r, text_fields)) for r in splits[s]} for s in SPLITS}
    drop: dict[str, set[int]] = {s: set() for s in SPLITS}
    for later, earlier in PAIRS:
        n_exact = n_loose = 0
        for i, row in enumerate(splits[later]):
            key = _key(row, text_fields)
            if key in exact[earlier]:
                n_exact += 1
            elif normalise_for_match(key) in loose[earlier]:
                n_loose += 1
            else:
                continue
            drop[later].add(i)
            if len(leak.examples) < EXAMPLES_KEPT:
                leak.examples.append(
                    {
                        "splits": f"{earlier}/{later}",
                        "id": str(row.get("id", row.get("_line"))),
                        "text": key.replace("\x1f", " / ")[:160],
                    }
                )
        leak.counts[f"{earlier}/{later}"] = {"exact": n_exact, "normalised": n_loose}
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
