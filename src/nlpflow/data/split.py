"""Seeded stratified splits and label mapping."""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

import numpy as np

from nlpflow.errors import UserError


def stratified_split(
    labels: Sequence[str], fractions: dict[str, float], seed: int
) -> dict[str, list[int]]:
    """Row indices per split, keeping each label's share the same in every split.

    Rounding leftovers go to the first split (train), so no row is lost.
    """
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
    out = stratified_split_codes(codes, names, fractions, seed)
    return {name: idx.tolist() for name, idx in out.items()}


def stratified_split_codes(
    codes: np.ndarray, names: Sequence[str], fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """:func:`stratified_split` of rows whose label is ``names[codes[i]]``: sorted row
    indices per split (``int32`` below 2**31 rows, 4 bytes a row, else ``int64``), the same
    rows for the same labels and seed."""
    rng = random.Random(f"split-{seed}")
    splits = list(fractions)
    small = len(codes) < 2**31
    dtype, typecode = (np.int32, "i") if small else (np.int64, "q")
    out: dict[str, list[np.ndarray]] = {name: [] for name in splits}
    for code in sorted(range(len(names)), key=lambda c: names[c]):
        # a typed array: 4 or 8 bytes a row instead of a list of int objects; random.shuffle
        # draws the same numbers whatever the sequence type
        idx = array(typecode, np.flatnonzero(codes == code).astype(dtype).tobytes())
        if not idx:
            continue
        rng.shuffle(idx)
        counts = {name: int(len(idx) * fractions[name]) for name in splits[1:]}
        counts[splits[0]] = len(idx) - sum(counts.values())
        start = 0
        for name in splits:
            out[name].append(np.frombuffer(idx[start : start + counts[name]], dtype=dtype))
            start += counts[name]
        del idx
    # stable, readable order; shuffling happens at training time
    result = {}
    for name in splits:
        parts = out.pop(name)
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        del parts
        rows.sort()
        result[name] = rows
    return result


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
