"""Multi-label classification, streamed through preprocess: the label lists of a batch read
column-wise and kept per row as label codes (``Part.extra``: ``ml_counts``, labels per row,
and ``ml_codes``, their codes in the order written: 4 bytes a row and 4 a label), with a
64-bit digest of each list (what duplicate rows compare). What the in-memory hooks of
:class:`~nlpflow.families.multilabel.data.MultilabelData` compute from Python rows
(the rarest-label strata, label counts, names and warnings, the data card's examples) is
computed here from those codes, with the same results.

A CSV cell that :func:`parse_labels` refuses (or a label outside the declared list) sends
the file to the family's Python reader, which names the row. Only preprocess imports this
module (``nlpflow.data.prepare``), so that the other stages' code deps stay as they are.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data import columns
from nlpflow.data.files import printable
from nlpflow.data.stream import Codes, EmptyLabel, Part, PartBuilder, gather
from nlpflow.errors import UserError
from nlpflow.families.multilabel.labels import LabelFormat, LabelValueError, parse_labels

if TYPE_CHECKING:
    import pyarrow as pa

NO_LABEL = "(no label)"  # the data card's group of examples without a label


class LabelLists:
    """The first pass's label column (:class:`~nlpflow.data.stream.PartBuilder`'s hook) and
    the per-row label codes it keeps; ``codes`` numbers labels across parts."""

    def __init__(self, fmt: LabelFormat, codes: Codes) -> None:
        self.fmt, self.codes = fmt, codes

    def _parsed(self, cells: pa.Array) -> pa.Array:
        """CSV cells as label lists, each distinct cell parsed once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(cells)
        declared = set(self.fmt.labels)
        lists = []
        for cell in encoded.dictionary.to_pylist():
            try:
                labels = parse_labels(cell, False, self.fmt)
            except LabelValueError:
                raise EmptyLabel from None  # the Python reader names the row
            if declared and any(x not in declared for x in labels):
                raise EmptyLabel
            lists.append(labels)
        return pa.array(lists, pa.list_(pa.string())).take(encoded.indices)

    def __call__(self, builder: PartBuilder, table: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        field = builder.label_field
        col = table.column(field).combine_chunks()
        if not pa.types.is_list(col.type):  # a CSV cell per row
            col = self._parsed(col)
            table = table.set_column(table.column_names.index(field), field, col)
        counts = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), np.int32)
        flat = pc.list_flatten(col)
        encoded = pc.dictionary_encode(flat)
        codes = self.codes.codes(encoded.dictionary.to_pylist())
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
        builder.keep("ml_counts", counts)
        builder.keep("ml_codes", codes[indices] if len(codes) else np.zeros(0, np.int32))
        builder.keep("label_keys", columns.digests(pc.binary_join(col, "\x1f")))
        return table


def row_codes(part: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels of ``rows`` (sorted) of ``part``: per row their number ``(n,)`` and all
    their codes in row order ``(sum,)``."""
    counts = part.extra["ml_counts"]
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    chosen = gather(counts, rows)
    if not len(rows):
        return chosen, np.zeros(0, np.int32)
    each = np.repeat(gather(starts, rows), chosen)  # each label's row start...
    offset = np.arange(len(each)) - np.repeat(np.cumsum(chosen) - chosen, chosen)
    return chosen, part.extra["ml_codes"][each + offset]  # ...plus its place in the row


def strata(part: Part, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each row's rarest label in ``part`` (ties: the name first in sorted order), as
    ``MultilabelData.strata``; rows without a label form the stratum ``""``."""
    counts, flat = row_codes(part, np.arange(part.n))
    k = len(names)
    seen = np.bincount(flat, minlength=k)
    order = sorted(range(k), key=lambda c: (int(seen[c]), names[c]))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    out = np.full(part.n, k, dtype=np.int32)  # code k: no label
    filled = counts > 0
    if filled.any():
        starts = (np.cumsum(counts) - counts)[filled]
        out[filled] = np.asarray(order)[np.minimum.reduceat(rank[flat], starts)]
    return out, [*names, ""]


def label_counts(part: Part, rows: np.ndarray, k: int) -> np.ndarray:
    """``(k,)``: how many of ``rows`` hold each label code."""
    return np.bincount(row_codes(part, rows)[1], minlength=k)


def check_known(
    splits: dict[str, Any], names: list[str], codes: list[str], files: dict[str, Path], field: str
) -> None:
    """``check_known_labels`` for streamed splits (``files`` in the order the parts were
    read): a UserError naming the file, line and label of the first row of another split
    holding a label train never has."""
    known_codes = {codes.index(n) for n in names}
    for split in files:
        chosen = splits[split]
        counts, flat = row_codes(chosen.part, chosen.rows)
        unknown = ~np.isin(flat, list(known_codes))
        if not unknown.any():
            continue
        first = int(np.searchsorted(np.cumsum(counts), np.flatnonzero(unknown)[0], "right"))
        row = chosen[first]
        label = next(x for x in row[field] if x not in names)
        where = "row" if ".parquet" in files[split].name.lower() else "line"
        raise UserError(
            f"{files[split]}, {where} {int(row.get('_line', 0))}, column '{printable(field)}': label "
            f"'{label}' occurs in no train example (the train labels are {names[:10]}"
            f"{'...' if len(names) > 10 else ''}); fix the label or add train examples with it"
        )


def pick_examples(train: Any, codes: list[str], seed: int, per_label: int) -> dict[str, list]:
    """``PreparedData.examples_by_label`` of streamed multi-label train rows: under each label
    (and ``(no label)``), in sorted order, up to ``per_label`` rows (``card-<seed>``)."""
    rng = random.Random(f"card-{seed}")
    counts, flat = row_codes(train.part, train.rows)
    row_of = np.repeat(np.arange(len(counts)), counts)
    groups: dict[str, np.ndarray] = {codes[c]: row_of[flat == c] for c in np.unique(flat).tolist()}
    if (counts == 0).any():
        groups[NO_LABEL] = np.flatnonzero(counts == 0)
    out = {}
    for label in sorted(groups):
        members = groups[label]
        picks = rng.sample(range(len(members)), min(per_label, len(members)))
        out[label] = train.part.rows([int(train.rows[members[p]]) for p in picks])
    return out


def label_ids(column: pa.Array, names: list[str]) -> pa.Array:
    """A batch's label lists as the processed column: each list's class ids, sorted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), np.int64)
    ids = np.asarray(
        pc.index_in(pc.list_flatten(col), value_set=pa.array(names, pa.string())).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.int64,
    )
    row = np.repeat(np.arange(len(counts)), counts)
    ids = ids[np.lexsort((ids, row))]
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, pa.int64()))
