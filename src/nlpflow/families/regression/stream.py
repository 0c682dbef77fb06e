"""Regression, streamed through preprocess (:class:`nlpflow.data.stream.Target`): each
distinct label string of a batch parsed once, exactly as :func:`parse_number` parses a row,
a bad one reported with its file, line and value (the message the in-memory path gives);
the targets kept as float64 (8 bytes a row), stratified by quintile and checked once split.

Only preprocess imports this module (``nlpflow.data.prepare``), so that the other stages'
code deps stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlpflow.data.files import BadRows, Row
from nlpflow.data.stream import EmptyLabel, Part, PartBuilder, Target
from nlpflow.families.regression.data import (
    STRATA,
    RegressionData,
    check_varies,
    not_a_number,
    outside_train_range,
    parse_number,
    quantile_strata,
)

if TYPE_CHECKING:
    import pyarrow as pa


class NumberTarget(Target):
    """A finite number per row; duplicates compare the number itself."""

    label_type = "double"

    def column(self, builder: PartBuilder, table: pa.Table, origin: Path, bad: BadRows) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        field = builder.label_field
        i = table.column_names.index(field)
        col = table.column(field).combine_chunks()
        if pa.types.is_floating(col.type):  # rows the Python path checked (:meth:`rows`)
            values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        else:  # strings as the CSV stream read them: stripped, as the Python reader does
            encoded = pc.dictionary_encode(col)
            stripped = [str(v).strip() for v in encoded.dictionary.to_pylist()]
            if any(not s for s in stripped):
                raise EmptyLabel
            parsed = np.array(
                [np.nan if (v := parse_number(s)) is None else v for s in stripped],
                dtype=np.float64,
            )
            indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
            values = parsed[indices] if len(parsed) else np.zeros(0, np.float64)
            table = table.set_column(
                i, field, pa.array(stripped, pa.string()).take(encoded.indices)
            )
            wrong = np.isnan(values)
            for r in np.flatnonzero(wrong).tolist():
                row = table.slice(r, 1).to_pylist()[0]
                bad.report(
                    origin,
                    "line",
                    int(row["_line"]),
                    field,
                    not_a_number(row[field]),
                    str(row)[:80],
                )
            if wrong.any():
                table = table.filter(pa.array(~wrong))
                values = values[~wrong]
            table = table.set_column(i, field, pa.array(values, pa.float64()))
        builder.keep("targets", values)
        return table

    def rows(
        self, rows: list[Row], label_field: str, part: str, origin: str, bad: BadRows
    ) -> list[Row]:
        raw = {part: rows}
        RegressionData().normalise(raw, label_field, {part: origin}, bad)
        return raw[part]

    def strata(self, part: Part) -> tuple[np.ndarray, list[str]]:
        assert part.targets is not None
        if not part.n:
            return np.zeros(0, dtype=np.int32), [f"q{i}" for i in range(STRATA)]
        codes = quantile_strata(part.targets).astype(np.int32)
        return codes, [f"q{i}" for i in range(STRATA)]

    def names(self, label_field: str, train: np.ndarray, origin: dict[str, str]) -> list[str]:
        check_varies(train, origin["train"])
        return [label_field]

    def warnings(self, targets: dict[str, np.ndarray]) -> list[str]:
        return outside_train_range(targets["train"], targets)
