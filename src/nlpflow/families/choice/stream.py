"""Multiple choice through preprocess, streamed (:mod:`nlpflow.data.streamed`): a CSV/TSV
file whose options are columns (SWAG's ``ending0`` .. ``ending3``) is read in Arrow
batches (:mod:`nlpflow.data.fastcsv`); each batch's records are checked as
:func:`~nlpflow.families.choice.reader.read_choice_file` checks them (the same bad rows,
notes and one-line errors, held until the file is read): in Arrow at once when the batch's
texts are printable ASCII and no record is bad (:func:`_checked_at_once`), else row by row
by the reader's own :class:`~nlpflow.families.choice.reader.RowChecker`. The good records
become a table of ``context`` (string), ``options`` (list<string>), ``label`` (the position as a
string, ``"0"`` .. ``"N-1"``), ``_line`` and the metadata columns. The context and every
option are cleaned as ``ChoiceData.clean`` cleans them (column by column, one bit mask per
text); digests, lengths and the vocabulary are of the texts the in-memory path joins
(``context \\x1f options joined by spaces``; ``context / options``). Duplicate rows
compare the whole row: the digest, the context's length, and the label with every option's
length (``label_keys``), so options cut differently never count as one.

A file the batches cannot take (quoting the stream does not read alike, a column missing)
is read whole by the Python reader, as in memory; other sources (JSONL, a list column, the
built-in task) stay in memory. Only preprocess imports this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlpflow.data import columns, fastcsv
from nlpflow.data.files import BadRows, Row
from nlpflow.data.prepare import FastFile, PreparedData, Raw, _rows
from nlpflow.data.stream import ID, LINE, Codes, Deferred, Part, PartBuilder, metadata_columns
from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, LABEL, OPTIONS
from nlpflow.families.choice.data import position_warnings
from nlpflow.families.choice.reader import Expected, RowChecker
from nlpflow.io import return_freed_memory
from nlpflow.params import DataParams
from nlpflow.threads import read_ahead

if TYPE_CHECKING:
    import pyarrow as pa

    from nlpflow.data.streamed import StreamInputs


def streams(raw: dict[str, Raw], params: DataParams) -> bool:
    """Whether the parts stream: every one a CSV/TSV file to read in batches, the options
    named as columns (the number of options is then theirs, in every file)."""
    return len(params.choice.options) > 1 and all(isinstance(p, FastFile) for p in raw.values())


def rows_table(rows: list[Row]) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Checked rows (:meth:`RowChecker.check`'s) as one table, metadata as strings; and per
    metadata key, which rows have it."""
    import pyarrow as pa

    cols: dict[str, pa.Array] = {
        CONTEXT: pa.array([r[CONTEXT] for r in rows], pa.string()),
        OPTIONS: pa.array([r[OPTIONS] for r in rows], pa.list_(pa.string())),
        LABEL: pa.array([str(r[LABEL]) for r in rows], pa.string()),
        LINE: pa.array([r[LINE] for r in rows], pa.int64()),
    }
    present = metadata_columns(rows, cols)
    return pa.table(cols), present


class ChoiceBuilder(PartBuilder):
    """:class:`PartBuilder` for multiple choice: the context and each option cleaned (bit
    masks ``bits0`` for the context, ``bits1`` .. ``bitsN`` for the options), ``label_keys``
    the label with the options' lengths."""

    def __init__(
        self, directory: Path, name: str, params: DataParams, labels: Codes, width: int
    ) -> None:
        super().__init__(
            directory, name, "choice", [CONTEXT, OPTIONS], LABEL, params.cleaning, labels
        )
        self.width = width

    def features(self, table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        n, width = table.num_rows, self.width
        out: dict[str, np.ndarray] = {}
        context = table.column(CONTEXT).combine_chunks()
        listed = table.column(OPTIONS).combine_chunks()
        flat = listed.flatten()
        simple = columns.simple_rows(context)
        flat_simple = columns.simple_rows(flat)
        assert self.cleaning is not None
        context, bits = columns.clean_column(context, self.cleaning, simple)
        out["bits0"] = bits
        blank = columns.blank_rows(context, simple)
        flat, flat_bits = columns.clean_column(flat, self.cleaning, flat_simple)
        by_row = flat_bits.reshape(n, width)
        for k in range(width):
            out[f"bits{k + 1}"] = np.ascontiguousarray(by_row[:, k])
        blank |= columns.blank_rows(flat, flat_simple).reshape(n, width).any(axis=1)
        out["blank"] = blank
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        options = pa.ListArray.from_arrays(offsets, flat)
        table = table.set_column(table.column_names.index(CONTEXT), CONTEXT, context)
        table = table.set_column(table.column_names.index(OPTIONS), OPTIONS, options)
        simple &= flat_simple.reshape(n, width).all(axis=1)
        texts = [context, pc.binary_join(options, " ")]
        key = columns.joined(texts, "\x1f")
        out["exact"] = columns.digests(key)
        out["loose"] = columns.digests(columns.match_keys(key, simple))
        out["first_len"] = np.asarray(
            pc.utf8_length(context).to_numpy(zero_copy_only=False), np.int32
        )
        lengths = pc.cast(pc.utf8_length(flat), pa.string()).to_numpy(zero_copy_only=False)
        shape = lengths.reshape(n, width)
        label = table.column(LABEL).combine_chunks()
        parts = [label, *(pa.array(shape[:, k], pa.string()) for k in range(width))]
        out["label_keys"] = columns.digests(pc.binary_join_element_wise(*parts, ":"))
        chars, words = columns.lengths(columns.joined(texts, " / "), simple, False)
        out["chars"] = chars.astype(np.int32)
        out["words"] = words.astype(np.int32)
        return table.combine_chunks(), out

    def finish(self) -> Part:
        """The part, with the options' cleaning bits beside the context's."""
        part = super().finish()
        if self.cleaning is not None:
            part.bits += [part.extra.pop(f"bits{k}") for k in range(2, self.width + 1)]
        return part


def _batches(path: Path, params: DataParams, bad: BadRows, width: int) -> Iterator[pa.Table]:
    """The file's records checked batch by batch (problems to ``bad``), as tables of the
    good rows; raises ``fastcsv.NotFast`` when the file needs the Python reader (which also
    names a missing column)."""
    names = params.choice.options
    expected = Expected(width, f"data.choice.options ({width} columns)")
    checker = RowChecker(path, "line", params, params.choice, bad, expected)
    wanted = [*params.text_fields, *names, params.label_field]
    for table in read_ahead(fastcsv.read_batches(path, params)):
        header = [c for c in table.column_names if c != fastcsv.LINE_COLUMN]
        if not set(wanted) <= set(header):
            raise fastcsv.NotFast
        fast = _checked_at_once(table, header, params, checker)
        if fast is not None:
            if fast.num_rows:
                yield fast
            continue
        lines = table.column(fastcsv.LINE_COLUMN).to_pylist()
        values = [table.column(c).to_pylist() for c in header]
        rows = []
        for i, line in enumerate(lines):
            row = checker.check(line, {c: v[i] for c, v in zip(header, values, strict=True)})
            if row is not None:
                rows.append(row)
        if rows:  # every row of a file has every column: no metadata is missing anywhere
            yield rows_table(rows)[0]
    checker.finish()


def _checked_at_once(
    table: pa.Table, header: list[str], params: DataParams, checker: RowChecker
) -> pa.Table | None:
    """:meth:`RowChecker.check` of a whole batch in Arrow, as :func:`rows_table` would hold
    its rows, when no record of it is bad and every text is printable ASCII (where
    ``str.strip`` is Arrow's ASCII trim); None sends the batch row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from nlpflow.families.choice.reader import OWN_COLUMNS, _as_int

    names = params.choice.options
    n, width = table.num_rows, len(names)
    texts = [table.column(c).combine_chunks() for c in [*params.text_fields, *names]]
    if not columns.simple_rows(*texts).all():
        return None
    trimmed = [pc.ascii_trim_whitespace(t) for t in texts]
    if not all(pc.all(pc.greater(pc.binary_length(t), 0)).as_py() for t in trimmed):
        return None  # a blank context field or option (several fields: joined row by row)
    encoded = pc.dictionary_encode(table.column(params.label_field).combine_chunks())
    base = params.choice.label_base
    indices = []
    for value in encoded.dictionary.to_pylist():
        index = _as_int(value) if value.strip() else None
        if index is None or not base <= index < width + base:
            return None
        indices.append(index - base)
    label = np.asarray(indices, dtype=np.int64)[
        np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    ]
    options = texts[len(params.text_fields) :]
    right = pc.choose(pa.array(label.astype(np.int32)), *options)
    same = sum(np.asarray(pc.equal(o, right).to_numpy(zero_copy_only=False)) for o in options)
    line = table.column(LINE).combine_chunks()
    repeated = np.flatnonzero(np.asarray(same) > 1)
    if len(repeated):
        checker.repeated += len(repeated)
        checker.first_repeated = checker.first_repeated or int(line[int(repeated[0])].as_py())
    contexts = trimmed[: len(params.text_fields)]
    context = contexts[0] if len(contexts) == 1 else pc.binary_join_element_wise(*contexts, " ")
    order = (np.arange(n)[:, None] + np.arange(width)[None, :] * n).ravel()
    flat = pa.concat_arrays(options).take(pa.array(order))
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    cols: dict[str, pa.Array] = {
        CONTEXT: context,
        OPTIONS: pa.ListArray.from_arrays(offsets, flat),
        LABEL: pc.cast(pa.array(label), pa.string()),
        LINE: line,
    }
    metadata = {}
    for name in header:
        if name in checker.consumed:
            continue
        key = name
        if key in OWN_COLUMNS:  # as reader._metadata renames it
            key = f"{name}_in_file"
            while key in header:
                key += "_"
            checker.bad.note(
                f"{checker.path.name}: the column '{name}' is kept as '{key}' (the processed "
                f"data writes its own '{name}' column)"
            )
        metadata[key] = table.column(name).combine_chunks()
    if ID in metadata:
        cols[ID] = metadata[ID]
    cols.update({k: v for k, v in metadata.items() if k not in cols})
    return pa.table(cols)


def _first_pass(raw: FastFile, builder: ChoiceBuilder, params: DataParams, bad: BadRows) -> Part:
    """One file into ``builder``: in batches, its problems held until the file is read
    (the Python reader reads a whole file before its rows are checked), or, when the
    stream cannot take it, whole through the Python reader."""
    held = Deferred()
    builder.checked = False
    try:
        builder.add_all(_batches(raw.path, params, held, builder.width))
    except fastcsv.NotFast:
        builder.reset()
        rows = _rows(raw, params, bad)
        table, present = rows_table(rows)
        builder.add(table, present)
        return builder.finish()
    except BaseException:
        builder.close()
        raise
    finally:
        builder.checked = True
    try:
        held.replay(bad)  # under on_bad_rows: fail, the first one raises
        if not builder.n:
            raise UserError(
                f"{raw.path}: no usable data rows; every row was bad (see data.on_bad_rows)"
            )
    except BaseException:
        builder.close()
        raise
    return builder.finish()


def streamed_choice(inputs: StreamInputs) -> PreparedData:
    """:func:`~nlpflow.data.prepare.load_splits` for multiple choice, streamed (see the
    module doc): the passes of :mod:`nlpflow.data.streamed`, the label names, warnings and
    card as ``ChoiceData``'s."""
    from nlpflow.data.streamed import (
        _pick_examples,
        _prepared,
        _split_and_check,
        label_figures,
        read_parts,
        split_label_counts,
    )

    params, seed, source, fields, bad = (
        inputs.params, inputs.seed, inputs.source, inputs.fields, inputs.bad
    )  # fmt: skip
    width = len(params.choice.options)
    labels = Codes()

    def read(name: str, raw: Raw) -> Part:
        assert isinstance(raw, FastFile)  # streams() let only these through
        return _first_pass(
            raw, ChoiceBuilder(inputs.workdir, name, params, labels, width), params, bad
        )

    parts = read_parts(inputs, read)
    splits, cleaning, leakage = _split_and_check(
        parts, lambda part: (part.label_codes, labels.names), inputs
    )
    names = [str(j) for j in range(width)]
    counts = split_label_counts(splits, labels)
    train = Counter({int(k): v for k, v in counts["train"].items() if v})
    warnings = position_warnings(train, len(splits["train"]), width)
    figures = label_figures(splits, parts, counts, names)
    return_freed_memory()
    return _prepared(
        fields, splits, names, source, (cleaning, leakage, bad, warnings), figures,
        _pick_examples(splits["train"], labels.names, seed),
    )  # fmt: skip
