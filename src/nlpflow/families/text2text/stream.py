"""Text-to-text, streamed through preprocess (:class:`nlpflow.data.stream.Target`): the
target text kept as read, its words (the data card's figure) and a 64-bit digest (what
duplicate rows compare, with the input) kept per row. A CSV batch with an empty input or
target sends the file to the family's Python reader, which names the row.

Only preprocess imports this module (``nlpflow.data.prepare``), so that the other stages'
code deps stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlpflow.data import columns
from nlpflow.data.files import BadRows
from nlpflow.data.stream import EmptyLabel, PartBuilder, Target
from nlpflow.families.text2text.data import one_input_field
from nlpflow.params import DataParams

if TYPE_CHECKING:
    import pyarrow as pa


class TextTarget(Target):
    """A target text per row; one stratum (random splits)."""

    def __init__(self, params: DataParams) -> None:
        one_input_field(params)

    def column(self, builder: PartBuilder, table: pa.Table, origin: Path, bad: BadRows) -> pa.Table:
        target = table.column(builder.label_field).combine_chunks()
        if not builder.checked:  # read_text2text_rows refuses an empty input or target
            for f in (*builder.text_fields, builder.label_field):
                if columns.blank_rows(table.column(f).combine_chunks()).any():
                    raise EmptyLabel
        words = columns.lengths(target)[1]
        builder.keep("targets", words.astype(np.float64))
        builder.keep("label_keys", columns.digests(target))
        return table
