"""Token classification through preprocess, streamed (:mod:`nlpflow.data.streamed`): a CoNLL
file is read in blocks cut at sentence boundaries (:func:`conll_tables`), each block an
Arrow table of ``tokens`` and ``tags`` (lists) and ``_line``; rows held in memory (the
built-in data set, a ``datasets`` source) go in as one table. The words are hashed and
measured as the words joined by spaces, as the in-memory path does (tokens are never
cleaned).

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
from nlpflow.data.files import BadRows, Row, conll_sentences, no_sentences
from nlpflow.data.prepare import ConllFile, PreparedData, Raw, SplitRows
from nlpflow.data.split import label_names_from
from nlpflow.data.stream import Codes, Part, PartBuilder, rows_table
from nlpflow.families.token.data import converted_note, scheme_meta, unseen_tag_warnings
from nlpflow.io import return_freed_memory
from nlpflow.params import DataParams
from nlpflow.threads import read_ahead

if TYPE_CHECKING:
    import pyarrow as pa

    from nlpflow.data.streamed import StreamInputs

BLOCK = 4 << 20  # bytes of a CoNLL file read at a time (about 20,000 sentences)


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
    reported alike) as tables of ``tokens``, ``tags`` (list<string>) and ``_line`` (int64),
    one per block of about :data:`BLOCK` bytes cut after a blank line (a sentence
    boundary). A block of plain lines (single spaces between columns, no tab, a carriage
    return only at a line's end, every token line of the file's width, every tag O, B-X or
    I-X) is split by Arrow; any other block goes line by line through read_conll's own
    parser (:func:`~nlpflow.data.files.conll_sentences`), which reports its problems.
    Raises read_conll's UserError when the file has no sentence."""
    width = 0
    found = False
    for first, block in _blocks(path):
        plain = _plain_block(block, first, width, params.conll_tag_column)
        if plain is not None:
            table, width = plain
        else:
            lines = _numbered(block, first)
            sentences = conll_sentences(path, params, bad, lines, width=width, prev=first - 1)
            chunk: list[Row] = []
            while True:
                try:
                    chunk.append(next(sentences))
                except StopIteration as done:
                    width = done.value
                    break
            table = _table(chunk)
        if table.num_rows:
            found = True
            yield table
    if not found:
        raise no_sentences(path)


def _blocks(path: Path) -> Iterator[tuple[int, str]]:
    """(number of the first line, text) of the file's blocks: about :data:`BLOCK` bytes
    each, cut after a blank line (``\\n\\n`` or ``\\n\\r\\n``), the last one to the end;
    a UTF-8 byte-order mark at the start removed (as :func:`utf8_lines` does)."""
    line = 1
    rest = b""
    with path.open("rb") as fh:
        data = fh.read(BLOCK)
        data = data.removeprefix(b"\xef\xbb\xbf")
        while data:
            buf = rest + data
            ends = (buf.rfind(b"\n\n"), buf.rfind(b"\n\r\n"))
            cut = max(ends[0] + 2 if ends[0] >= 0 else 0, ends[1] + 3 if ends[1] >= 0 else 0)
            if not cut:  # no blank line yet: read on
                rest, data = buf, fh.read(BLOCK)
                continue
            block, rest = buf[:cut], buf[cut:]
            yield line, block.decode("utf-8")
            line += block.count(b"\n")
            data = fh.read(BLOCK)
        if rest:
            yield line, rest.decode("utf-8")


def _numbered(block: str, first: int) -> Iterator[tuple[int, str]]:
    """A block's lines as :func:`utf8_lines` gives them (each with its ``\\n``)."""
    parts = block.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return enumerate(lines, start=first)


def _plain_block(
    block: str, first: int, width: int, tag_column: int
) -> tuple[pa.Table, int] | None:
    """A block of plain lines (see :func:`conll_tables`) as a table of its sentences, and
    the file's width; None when the block needs the line-by-line parser."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "\t" in block:
        return None
    lines = pc.split_pattern(pa.array([block]), "\n").flatten()
    if block.endswith("\n"):
        lines = lines.slice(0, len(lines) - 1)
    if "\r" in block:
        lines = pc.replace_substring_regex(lines, r"\r$", "")
        if pc.any(pc.match_substring(lines, "\r")).as_py():
            return None
    parts = pc.split_pattern(lines, " ")
    separator = pc.or_(
        pc.equal(lines, ""), pc.equal(pc.list_element(parts, 0), "-DOCSTART-")
    ).to_numpy(zero_copy_only=False)
    token = ~separator
    words = parts.filter(pa.array(token))
    if not len(words):
        return _table([]), width
    counts = np.asarray(pc.list_value_length(words).to_numpy(zero_copy_only=False))
    width = width or int(counts[0])
    column = tag_column if tag_column >= 0 else width + tag_column
    if width < 2 or (counts != width).any() or not 0 <= column < width:
        return None
    if pc.any(pc.equal(words.flatten(), "")).as_py():  # spaces doubled, leading or trailing
        return None
    tags = pc.list_element(words, column)
    valid = pc.or_(
        pc.equal(tags, "O"),
        pc.and_(
            pc.greater(pc.utf8_length(tags), 2),
            pc.or_(pc.starts_with(tags, "B-"), pc.starts_with(tags, "I-")),
        ),
    )
    if not pc.all(valid).as_py():
        return None
    starts = token.copy()
    starts[1:] &= separator[:-1]  # a token line after a separator (or first) opens a sentence
    at = np.flatnonzero(starts)
    offsets = np.searchsorted(np.flatnonzero(token), at).astype(np.int32)
    offsets = pa.array(np.append(offsets, len(words)).astype(np.int32))
    table = pa.table(
        {
            "tokens": pa.ListArray.from_arrays(offsets, pc.list_element(words, 0)),
            "tags": pa.ListArray.from_arrays(offsets, tags),
            "_line": pa.array(at + first, pa.int64()),
        }
    )
    return table, width


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
        return table[self.prev, self.codes]


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
    """One part into ``builder``: a CoNLL file block by block, or rows in memory as one table."""
    import pyarrow as pa

    if isinstance(raw, ConllFile):  # blocks read ahead on a thread, described two at a time
        builder.add_all(read_ahead(conll_tables(raw.path, params, bad)))
        return builder.finish()
    assert isinstance(raw, list)  # streams() let only these through
    lists = pa.list_(pa.string())
    table, present = rows_table(
        raw, builder.task, builder.text_fields, builder.label_field, lists, lists
    )
    builder.add(table, present)
    return builder.finish()


def streamed_tokens(inputs: StreamInputs) -> PreparedData:
    """:func:`~nlpflow.data.prepare.load_splits` for token classification, streamed (see
    the module doc): the passes of :mod:`nlpflow.data.streamed` without cleaning (tags must
    stay aligned with their words), the tag names, warnings and card as ``TokenData``'s."""
    from nlpflow.data.streamed import (
        _pick_examples,
        _prepared,
        _split_and_check,
        label_figures,
        read_parts,
    )

    params, seed, source, origin, fields, bad = (
        inputs.params, inputs.seed, inputs.source, inputs.origin, inputs.fields, inputs.bad
    )  # fmt: skip
    task, text_fields, label_field = fields
    groups = Codes()
    hooks: dict[str, TagHook] = {}

    def read(name: str, raw: Raw) -> Part:
        hooks[name] = TagHook(label_field, groups)
        builder = PartBuilder(
            inputs.workdir, name, task, text_fields, label_field, None, Codes(), hooks[name]
        )
        return _first_pass(raw, builder, params, bad)

    parts = read_parts(inputs, read)
    where = {part: source if part == "all" else origin[part] for part in parts}
    converted = [part for part, hook in hooks.items() if hook.scheme == "IOB1"]
    for part in converted:
        _to_iob2(parts[part], label_field)
        bad.note(converted_note(part, where))
    splits, cleaning, leakage = _split_and_check(
        parts,
        lambda part: (np.zeros(part.n, dtype=np.int32), [""]),  # split at random
        inputs,
        clean=False,
    )
    counts = {s: tag_counts(sr, label_field) for s, sr in splits.items()}
    held = ("validation", "test")
    names = label_names_from(
        list(counts["train"]), {s: list(counts[s]) for s in held}, origin, unseen_allowed=True
    )
    warnings = unseen_tag_warnings(set(counts["train"]), {s: counts[s] for s in held})
    figures = label_figures(splits, parts, counts, names)
    return_freed_memory()
    data = _prepared(
        fields, splits, names, source, (cleaning, leakage, bad, warnings), figures,
        _pick_examples(splits["train"], groups.names, seed),
    )  # fmt: skip
    data.meta_extra = scheme_meta(bool(converted))
    return data
