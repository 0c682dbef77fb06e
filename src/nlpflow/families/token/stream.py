"""Token classification through preprocess, streamed (:mod:`nlpflow.data.streamed`): a CoNLL
file is read a chunk of sentences at a time (:func:`nlpflow.data.files.conll_sentences`),
each chunk an Arrow table of ``tokens`` and ``tags`` (lists) and ``_line``; rows held in
memory (the built-in data set) go in as one table. The words are hashed and measured as
the words joined by spaces, as the in-memory path does (tokens are never cleaned).

Per part, the first pass records whether its tags are IOB1 (as
:func:`nlpflow.data.entities.detect_scheme` decides over the whole part) and each
sentence's most frequent entity type (the data card's example groups); a part found IOB1
is then rewritten batch by batch with its tags in IOB2
(:func:`~nlpflow.data.entities.iob1_to_iob2`). Tag counts are read back from disk per
split. Both tag rules are applied through tables of every (previous tag, tag) pair of a
batch's few distinct tags, computed by the very functions the in-memory path calls, so the
results are its results, tag for tag.

Only preprocess imports this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data.entities import starts_entity_with_b, starts_entity_with_i
from nlpflow.data.files import BadRows, Row, conll_sentences, no_sentences, utf8_lines
from nlpflow.data.prepare import ConllFile, PreparedData, Raw, SplitFigures, SplitRows
from nlpflow.data.split import label_names_from
from nlpflow.data.stream import Codes, Part, PartBuilder, rows_table
from nlpflow.families.token.data import converted_note, scheme_meta, unseen_tag_warnings
from nlpflow.io import return_freed_memory
from nlpflow.params import SPLITS, DataParams

if TYPE_CHECKING:
    import pyarrow as pa

CHUNK = 20_000  # sentences a table holds (about 300,000 words)


def streams(raw: dict[str, Raw], text_fields: list[str], label_field: str) -> bool:
    """Whether every part can stream: a CoNLL file the stream reads, or rows in memory whose
    words and tags are lists of strings (others, e.g. a file read as CSV, go the in-memory
    way, which reads and reports them in part order)."""

    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    return all(
        isinstance(part, ConllFile)
        or (
            isinstance(part, list)
            and all(strings(r.get(f)) for r in part for f in [*text_fields, label_field])
        )
        for part in raw.values()
    )


def conll_tables(path: Path, params: DataParams, bad: BadRows) -> Iterator[pa.Table]:
    """The sentences of a CoNLL file (:func:`~nlpflow.data.files.read_conll`'s, bad lines
    reported alike) as tables of up to :data:`CHUNK` sentences: ``tokens``, ``tags``
    (list<string>) and ``_line`` (int64). Raises read_conll's UserError when there is none."""
    chunk: list[Row] = []
    found = False
    for sentence in conll_sentences(path, params, bad, utf8_lines(path)):
        chunk.append(sentence)
        if len(chunk) == CHUNK:
            yield _table(chunk)
            chunk, found = [], True
    if chunk:
        yield _table(chunk)
    elif not found:
        raise no_sentences(path)


def _lists(values: list[list[str]]) -> pa.Array:
    """list<string> from Python lists, through flat values and offsets."""
    import pyarrow as pa

    lengths = np.fromiter((len(v) for v in values), dtype=np.int32, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = pa.array([w for v in values for w in v], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def _table(sentences: list[Row]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "tokens": _lists([s["tokens"] for s in sentences]),
            "tags": _lists([s["tags"] for s in sentences]),
            "_line": pa.array([s["_line"] for s in sentences], pa.int64()),
        }
    )


class _Tags:
    """One batch's tags: the distinct tags (``names``), each word's tag code (``codes``),
    the code of the tag before it in its sentence (``prev``; ``len(names)`` stands for the
    ``O`` a sentence starts after), the sentence of each word (``row``)."""

    def __init__(self, col: pa.Array) -> None:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(col.flatten())
        self.names: list[str] = encoded.dictionary.to_pylist()
        self.codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        lengths = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), np.int64)
        self.row = np.repeat(np.arange(len(col)), lengths)
        starts = np.cumsum(lengths) - lengths
        self.prev = np.empty_like(self.codes)
        self.prev[1:] = self.codes[:-1]
        self.prev[starts[lengths > 0]] = len(self.names)

    def pairs(self, rule: Any) -> np.ndarray:
        """``rule(prev, tag)`` of every word, through the table of every pair of tags."""
        before = [*self.names, "O"]
        table = np.array([[rule(p, t) for t in self.names] for p in before], dtype=object)
        return table[self.prev, self.codes]  # type: ignore[no-any-return]


class TagHook:
    """The first pass's label handling of one part (``PartBuilder``'s ``target``): whether
    an entity starts with ``I-`` or with ``B-`` anywhere in the part (its scheme), and per
    sentence its example group code (``label_codes``; ``groups``: shared by the parts)."""

    def __init__(self, label_field: str, groups: Codes) -> None:
        self.label_field = label_field
        self.groups = groups
        self.i_starts = self.b_starts = False

    @property
    def scheme(self) -> str:
        """:func:`~nlpflow.data.entities.detect_scheme`'s answer for the part so far."""
        return "IOB1" if self.i_starts and not self.b_starts else "IOB2"

    def __call__(self, builder: PartBuilder, table: pa.Table) -> pa.Table:
        col = table.column(self.label_field).combine_chunks()
        tags = _Tags(col)
        if len(tags.codes):
            self.i_starts |= bool(tags.pairs(starts_entity_with_i).any())
            self.b_starts |= bool(tags.pairs(starts_entity_with_b).any())
        builder.keep("label_codes", self._groups(tags, len(col)))
        return table

    def _groups(self, tags: _Tags, n: int) -> np.ndarray:
        """Per sentence the code of its most frequent entity type (``t[2:]`` of its tags
        other than ``O``; a tie goes to the type met first, as ``Counter.most_common``
        does), else of ``O``: ``entity_group`` of every row."""
        kind = np.array(
            [-1 if t == "O" else self.groups.code(t[2:]) for t in tags.names] or [0], np.int64
        )
        out = np.full(n, self.groups.code("O") if n else 0, dtype=np.int32)
        of_word = kind[tags.codes] if len(tags.codes) else np.zeros(0, np.int64)
        typed = np.flatnonzero(of_word >= 0)
        if not len(typed):
            return out
        width = len(self.groups.names) + 1
        keys, first, counts = np.unique(
            tags.row[typed] * width + of_word[typed], return_index=True, return_counts=True
        )
        rows, kinds = keys // width, keys % width
        order = np.lexsort((first, -counts, rows))  # by row, most frequent, met first
        rows, kinds = rows[order], kinds[order]
        lead = np.ones(len(rows), dtype=bool)
        lead[1:] = rows[1:] != rows[:-1]
        out[rows[lead]] = kinds[lead]
        return out


def iob2_column(col: pa.Array) -> pa.Array:
    """A list<string> column of IOB1 tags with every entity's first ``I-X`` made ``B-X``
    (:func:`~nlpflow.data.entities.iob1_to_iob2` of every sentence)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tags = _Tags(col)
    if not len(tags.codes):
        return col
    converted = tags.pairs(lambda p, t: "B-" + t[2:] if starts_entity_with_i(p, t) else t)
    flat = pa.array(converted.tolist(), pa.string())
    offsets = pc.subtract(col.offsets, col.offsets[0])
    return pa.ListArray.from_arrays(offsets, flat)


def _to_iob2(part: Part, label_field: str) -> None:
    """Rewrite the part's file with its tags in IOB2, batch by batch (the batches unchanged)."""
    import pyarrow as pa

    path = part.path.with_name(f"{part.path.stem}.iob2.arrow")
    writer = None
    with pa.OSFile(str(path), "wb") as sink:
        for table in part.batches():
            i = table.column_names.index(label_field)
            col = iob2_column(table.column(label_field).combine_chunks())
            table = table.set_column(i, label_field, col)
            if writer is None:
                writer = pa.ipc.new_file(sink, table.schema)
            for batch in table.combine_chunks().to_batches():
                writer.write_batch(batch)
        if writer is not None:
            writer.close()
    path.replace(part.path)


def tag_counts(split: SplitRows, label_field: str) -> Counter[str]:
    """How often each tag occurs in the split's rows (read from disk)."""
    import pyarrow.compute as pc

    counts: Counter[str] = Counter()
    for table in split.batches():
        found = pc.value_counts(table.column(label_field).combine_chunks().flatten())
        counts.update(
            dict(
                zip(
                    found.field("values").to_pylist(),
                    found.field("counts").to_pylist(),
                    strict=True,
                )
            )
        )
    return counts


def tag_ids(label: pa.Array, names: pa.Array) -> pa.Array:
    """The processed ``label`` column: each sentence's tags as ids into ``names``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.cast(pc.index_in(label.flatten(), value_set=names), pa.int64())
    return pa.ListArray.from_arrays(pc.subtract(label.offsets, label.offsets[0]), ids)


def _first_pass(raw: Raw, builder: PartBuilder, params: DataParams, bad: BadRows) -> Part:
    """One part into ``builder``: a CoNLL file chunk by chunk, or rows in memory as one table."""
    import pyarrow as pa

    if isinstance(raw, ConllFile):
        for table in conll_tables(raw.path, params, bad):
            builder.add(table)
        return builder.finish()
    assert isinstance(raw, list)  # streams() let only these through
    lists = pa.list_(pa.string())
    table, present = rows_table(
        raw, builder.task, builder.text_fields, builder.label_field, lists, lists
    )
    builder.add(table, present)
    return builder.finish()


def streamed_tokens(
    params: DataParams,
    seed: int,
    raw: dict[str, Raw],
    source: str,
    origin: dict[str, str],
    fields: tuple[str, list[str], str],
    bad: BadRows,
    workdir: Path,
) -> PreparedData:
    """:func:`~nlpflow.data.prepare.load_splits` for token classification, streamed (see
    the module doc): the passes of :mod:`nlpflow.data.streamed` without cleaning (tags must
    stay aligned with their words), the tag names, warnings and card as ``TokenData``'s."""
    from nlpflow.data.streamed import _lengths, _pick_examples, _prepared, _split_and_check

    task, text_fields, label_field = fields
    groups = Codes()
    parts: dict[str, Part] = {}
    hooks: dict[str, TagHook] = {}
    for name, part_raw in raw.items():
        hooks[name] = TagHook(label_field, groups)
        builder = PartBuilder(
            workdir, name, task, text_fields, label_field, None, Codes(), hooks[name]
        )
        parts[name] = _first_pass(part_raw, builder, params, bad)
    del raw
    where = {part: source if part == "all" else origin[part] for part in parts}
    converted = [part for part, hook in hooks.items() if hook.scheme == "IOB1"]
    for part in converted:
        _to_iob2(parts[part], label_field)
        bad.note(converted_note(part, where))
    splits, cleaning, leakage = _split_and_check(
        parts,
        lambda part: (np.zeros(part.n, dtype=np.int32), [""]),  # split at random
        params,
        seed,
        source,
        origin,
        text_fields,
        clean=False,
    )
    counts = {s: tag_counts(sr, label_field) for s, sr in splits.items()}
    held = ("validation", "test")
    names = label_names_from(
        list(counts["train"]), {s: list(counts[s]) for s in held}, origin, unseen_allowed=True
    )
    warnings = unseen_tag_warnings(set(counts["train"]), {s: counts[s] for s in held})
    lengths = _lengths(splits, parts)
    figures = {
        s: SplitFigures({n: counts[s].get(n, 0) for n in names}, *lengths[s]) for s in SPLITS
    }
    return_freed_memory()
    data = _prepared(
        fields, splits, names, source, (cleaning, leakage, bad, warnings), figures,
        _pick_examples(splits["train"], groups.names, seed),
    )  # fmt: skip
    data.meta_extra = scheme_meta(bool(converted))
    return data
