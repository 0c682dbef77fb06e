"""Seeded stratified splits and label mapping."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from nlpflow.errors import UserError


def stratified_split(
    labels: Sequence[str], fractions: dict[str, float], seed: int
) -> dict[str, list[int]]:
    """Row indices per split, keeping each label's share the same in every split.

    Rounding leftovers go to the first split (train), so no row is lost.
    """
    rng = random.Random(f"split-{seed}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    names = list(fractions)
    out: dict[str, list[int]] = {name: [] for name in names}
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        counts = {name: int(len(idx) * fractions[name]) for name in names[1:]}
        counts[names[0]] = len(idx) - sum(counts.values())
        start = 0
        for name in names:
            out[name].extend(idx[start : start + counts[name]])
            start += counts[name]
    for name in names:
        out[name].sort()  # stable, readable order; shuffling happens at training time
    return out


def label_names_from(
    train_labels: Sequence[str],
    other: dict[str, Sequence[str]],
    origin: dict[str, str] | None = None,
    unseen_allowed: bool = False,
) -> list[str]:
    """Label names in a stable (sorted) order, checked against the other splits.

    ``origin`` names the file (or source) of each split in errors. A label of validation or
    test that train lacks is an error, unless ``unseen_allowed`` (token tasks, where a tag
    rare in train may be missing from it): then it joins the names and the caller warns.
    """
    where = {s: f"{origin[s]}: " for s in origin} if origin else {}
    names = sorted(set(train_labels))
    if len(names) < 2:
        raise UserError(
            f"{where.get('train', '')}the train split has {len(names)} distinct label(s) "
            f"({names}); need >= 2"
        )
    known = set(names)
    for split, labels in other.items():
        unseen = sorted(set(labels) - known)
        if unseen and unseen_allowed:
            names = sorted(set(names) | set(unseen))
        elif unseen:
            raise UserError(
                f"{where.get(split, '')}label(s) {unseen} occur in the {split} split but never "
                "in train; fix the labels or re-split so train has every class"
            )
    return names
