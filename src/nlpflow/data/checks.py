"""Leakage between splits: the same text in train and test makes test scores meaningless."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def key_text(row: Row, text_fields: list[str]) -> str:
    """The text fields of a row joined by ``\\x1f`` (a list of words joined by spaces first)."""
    return "\x1f".join(
        " ".join(row[f]) if isinstance(row[f], list) else row[f] for f in text_fields
    )


def isin_digests(a: np.ndarray, b: np.ndarray, overwrite_b: bool = False) -> np.ndarray:
    """``np.isin`` for ``uint64`` digests (:func:`nlpflow.data.columns.digests`) by a sorted
    search: ``(len(a),)`` bool. ``overwrite_b``: sort ``b`` in place (no copy of it)."""
    hb = b if overwrite_b else np.sort(b)
    if overwrite_b:
        hb.sort()
    if not len(hb):
        return np.zeros(len(a), dtype=bool)
    return hb[np.minimum(np.searchsorted(hb, a), len(hb) - 1)] == a


def find_leakage(
    splits: dict[str, list[Row]], text_fields: list[str], policy: str
) -> tuple[dict[str, list[Row]], Leakage]:
    """:func:`find_leakage_digests` for rows in memory: the splits (rows dropped as
    ``policy`` says) and what was found."""
    import pyarrow as pa

    from nlpflow.data.columns import digests, match_keys

    exact, loose = {}, {}
    for split in SPLITS:
        keys = pa.array([key_text(r, text_fields) for r in splits[split]], pa.string())
        exact[split], loose[split] = digests(keys), digests(match_keys(keys))

    def example(split: str, idx: list[int]) -> list[tuple[str, str]]:
        rows = [splits[split][i] for i in idx]
        return [
            (str(r.get("id", r.get("_line"))), key_text(r, text_fields).replace("\x1f", " / "))
            for r in rows
        ]

    drop, leak = find_leakage_digests(
        {s: len(splits[s]) for s in SPLITS},
        lambda kind, split: (exact if kind == "exact" else loose)[split].copy(),
        example,
        policy,
    )
    if policy == "drop":
        splits = {
            s: [r for r, d in zip(rows, drop[s], strict=True) if not d]
            for s, rows in splits.items()
        }
    return splits, leak


def find_leakage_digests(
    rows: dict[str, int],
    digests: Callable[[str, str], np.ndarray],
    example: Callable[[str, list[int]], list[tuple[str, str]]],
    policy: str,
) -> tuple[dict[str, np.ndarray], Leakage]:
    """Count exact and normalised duplicates across splits; apply warn, drop or fail.

    ``rows``: the number of rows per split; ``digests(kind, split)``: ``(n,)`` ``uint64`` digests of each row's text as is
    (``"exact"``) or normalised (``"loose"``), :func:`nlpflow.data.columns.digests`; asked
    for two splits at a time, so that streamed data holds no more than those in memory, and
    each array given is the caller's no more (the earlier split's is sorted in place).
    ``example(split, rows)`` gives the
    (id, text) of rows for the report. A text counts as ``exact`` when identical after
    cleaning, ``normalised`` when identical only once case, punctuation and spacing are
    ignored. Returns per split a ``(n,)`` bool mask of the rows to drop (all False unless
    ``policy`` is drop).
    """
    leak = Leakage()
    drop = {s: np.zeros(rows[s], dtype=bool) for s in SPLITS}
    for later, earlier in PAIRS:
        in_exact = isin_digests(digests("exact", later), digests("exact", earlier), True)
        in_loose = isin_digests(digests("loose", later), digests("loose", earlier), True)
        in_loose &= ~in_exact
        found = np.flatnonzero(in_exact | in_loose)
        drop[later][found] = True
        shown = found[: max(0, EXAMPLES_KEPT - len(leak.examples))].tolist()
        for row_id, text in example(later, shown):
            leak.examples.append({"splits": f"{earlier}/{later}", "id": row_id, "text": text[:160]})
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
            leak.dropped[split] = int(drop[split].sum())
    else:
        drop = {s: np.zeros_like(m) for s, m in drop.items()}
    return drop, leak
