"""Rows kept on disk between the passes of preprocess, so that memory stays flat as rows grow.

Each raw part of the source (all rows, or the file of one split) is read once in Arrow
batches: labels stripped, texts cleaned, and each row described by a few numbers (label
code, or a :class:`Target` family's number and key; step bits, two 64-bit digests, lengths:
about 30 to 45 bytes a row) kept in NumPy arrays,
while the cleaned batch goes to a temporary Arrow IPC file. Splitting, dropping and the
leakage checks then work on the arrays alone; the processed splits are written by reading
the temporary file back batch by batch (plain reads, not memory-mapped: pages read do not
stay in the process's resident memory).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data import columns
from nlpflow.data.clean import STEPS
from nlpflow.data.files import BadRows, Row
from nlpflow.params import CleaningParams

if TYPE_CHECKING:
    import pyarrow as pa

LINE = "_line"
ID = "id"
CHUNK = 1 << 20  # rows a search over per-row arrays takes at a time


def gather(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` a million rows at a time: NumPy indexes through a platform-int copy
    of ``rows`` (8 bytes a row for int32 ``rows``), which this bounds."""
    if len(rows) <= CHUNK:
        return values[rows]
    out = np.empty(len(rows), dtype=values.dtype)
    for lo in range(0, len(rows), CHUNK):
        out[lo : lo + CHUNK] = values[rows[lo : lo + CHUNK]]
    return out


class EmptyLabel(Exception):
    """A label that is empty once stripped (the Python reader reports where)."""


class Codes:
    """Strings numbered in order of first appearance (labels, tags, example groups)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def code(self, name: str) -> int:
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]

    def codes(self, names: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.code(n) for n in names), dtype=np.int32, count=len(names))


@dataclass
class Part:
    """One raw part after the first pass: its temporary file and per-row arrays."""

    name: str
    path: Path
    starts: list[int]  # first row of each record batch
    n: int
    columns: list[str]
    label_codes: np.ndarray  # (n,) int32 label of each row (codes of a shared Codes)
    bits: list[np.ndarray]  # per text field, (n,) uint8 cleaning step bits
    blank: np.ndarray  # (n,) bool: a text field is empty after cleaning
    exact: np.ndarray  # (n,) uint64 digest of the texts joined by \x1f
    loose: np.ndarray  # (n,) uint64 digest of normalise_for_match of the same
    first_len: np.ndarray | None  # (n,) int32 length of the first of two text fields
    chars: np.ndarray  # (n,) int32 characters of the texts joined by " / "
    words: np.ndarray  # (n,) int32 words of the same
    present: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (n,) bool
    # families with a target instead of classes (:class:`Target`)
    targets: np.ndarray | None = None  # (n,) float64 the number the data card describes
    label_keys: np.ndarray | None = None  # (n,) what duplicates compare (else label_codes)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # a family's own arrays
    # the simple rows' texts are single-spaced and stripped (PartBuilder.single_spaced)
    single_spaced: bool = False

    def batches(self, rows: np.ndarray | None = None) -> Iterator[pa.Table]:
        """The part's rows (``rows``: sorted row indices; None: all) as tables, in order."""
        import pyarrow as pa

        with pa.OSFile(str(self.path)) as fh:
            reader = pa.ipc.open_file(fh)
            for b, start in enumerate(self.starts):
                end = self.starts[b + 1] if b + 1 < len(self.starts) else self.n
                if rows is None:
                    yield pa.Table.from_batches([reader.get_batch(b)])
                    continue
                lo, hi = np.searchsorted(rows, [start, end])
                if hi > lo:
                    batch = pa.Table.from_batches([reader.get_batch(b)])
                    yield batch.take(pa.array(rows[lo:hi] - start))

    def forget(self, *names: str) -> None:
        """Free per-row arrays no longer needed (each becomes empty), so that the next
        phase's peak does not stack on them."""
        for name in names:
            setattr(self, name, getattr(self, name)[:0].copy())

    def rows(self, indices: Sequence[int]) -> list[Row]:
        """Single rows as dicts (``_line``, ``id`` when the source had one), for examples."""
        import pyarrow as pa

        out = []
        with pa.OSFile(str(self.path)) as fh:
            reader = pa.ipc.open_file(fh)
            for i in indices:
                b = int(np.searchsorted(self.starts, i, side="right")) - 1
                row = reader.get_batch(b).slice(i - self.starts[b], 1).to_pylist()[0]
                out.append({k: v for k, v in row.items() if k != ID or v is not None})
        return out


class PartBuilder:
    """The first pass over one part: :meth:`add` each batch, then :meth:`finish`."""

    def __init__(
        self,
        directory: Path,
        name: str,
        task: str,
        text_fields: list[str],
        label_field: str,
        cleaning: CleaningParams | None,
        labels: Codes,
        target: Callable[[PartBuilder, pa.Table], pa.Table] | None = None,
    ) -> None:
        self.path = directory / f"{name}.arrow"
        self.target = target  # a Target family's label column (None: class labels)
        self.checked = True  # whether the rows added were checked by the Python reader
        self.name, self.task = name, task
        self.text_fields, self.label_field = text_fields, label_field
        self.cleaning = cleaning
        self.labels = labels
        self.n = 0
        self.starts: list[int] = []
        # per-row arrays, appended batch by batch to files beside the part (a list of small
        # arrays in memory would fragment the heap: twice their size resident at the end)
        self.arrays: dict[str, tuple[Any, np.dtype]] = {}
        self.present: dict[str, list[np.ndarray]] = {}
        self._sink: Any = None
        self._writer: Any = None
        self._schema: Any = None

    def keep(self, key: str, value: np.ndarray) -> None:
        """Append one batch's values of the array ``key``: ``Part``'s field of that name,
        else an entry of ``Part.extra`` (any length per batch, e.g. one value per label)."""
        self._keep(key, value)

    def _keep(self, key: str, value: np.ndarray) -> None:
        if key not in self.arrays:
            self.arrays[key] = (open(self._array_path(key), "wb"), value.dtype)  # noqa: SIM115
        self.arrays[key][0].write(np.ascontiguousarray(value).tobytes())

    def _array_path(self, key: str) -> Path:
        return self.path.with_name(f"{self.path.stem}.{key}.bin")

    def _labels(self, table: pa.Table) -> pa.Table:
        """Labels stripped (as the Python reader does), coded; the column replaced."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = table.column(self.label_field).combine_chunks()
        encoded = pc.dictionary_encode(col)
        stripped = [str(v).strip() for v in encoded.dictionary.to_pylist()]
        if any(not s for s in stripped):
            raise EmptyLabel
        codes = self.labels.codes(stripped)
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
        row_codes = codes[indices] if len(codes) else np.zeros(0, dtype=np.int32)
        self._keep("label_codes", row_codes)
        i = table.column_names.index(self.label_field)
        return table.set_column(
            i, self.label_field, pa.array(stripped, pa.string()).take(encoded.indices)
        )

    def add(self, table: pa.Table, present: dict[str, np.ndarray] | None = None) -> None:
        """One batch of rows: labels coded (or the family's target), texts cleaned, digests
        and lengths kept, the rows appended to the part."""
        table = self._coded(table)
        if table.num_rows:
            self._write(*self.features(table), present)

    def add_all(self, tables: Iterable[pa.Table]) -> None:
        """:meth:`add` each of ``tables`` in order, their :meth:`features` computed by two
        threads at a time (:func:`~nlpflow.threads.map_ahead`): the same part as one
        :meth:`add` after another, in less time on two cores."""
        from nlpflow.threads import map_ahead

        coded = (self._coded(t) for t in tables)  # in order: label codes by first appearance
        for table, arrays in map_ahead(self.features, (t for t in coded if t.num_rows)):
            self._write(table, arrays)

    @property
    def single_spaced(self) -> bool:
        """One text field cleaned by ``whitespace`` (and not cut after): its simple rows
        (:func:`~nlpflow.data.columns.simple_rows`) are single-spaced and stripped, which
        saves passes over the text."""
        return (
            len(self.text_fields) == 1
            and self.cleaning is not None
            and self.cleaning.whitespace
            and not self.cleaning.max_chars
        )

    def _coded(self, table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        return self._labels(table) if self.target is None else self.target(self, table)

    def features(self, table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """The rows' texts cleaned (the table with them) and their per-row arrays: ``blank``,
        cleaning ``bits<k>``, ``exact`` and ``loose`` digests, ``chars``, ``words`` (and
        ``first_len`` for several text fields). Reads nothing of the builder's state but its
        settings, so batches may be computed at the same time."""
        import pyarrow.compute as pc

        n = table.num_rows
        out: dict[str, np.ndarray] = {}
        texts = []
        blank = np.zeros(n, dtype=bool)
        simple = np.ones(n, dtype=bool)  # every text field printable ASCII (columns.py)
        for k, f in enumerate(self.text_fields):
            col = as_text(table.column(f).combine_chunks())
            simple &= columns.simple_rows(col)
            if self.cleaning is not None:
                col, bits = columns.clean_column(col, self.cleaning, simple)
                table = table.set_column(table.column_names.index(f), f, col)
                out[f"bits{k}"] = bits
                blank |= columns.blank_rows(col, simple, self.single_spaced)
            texts.append(col)
        out["blank"] = blank
        key = columns.joined(texts, "\x1f")
        out["exact"] = columns.digests(key)
        out["loose"] = columns.digests(columns.match_keys(key, simple))
        if len(texts) > 1:  # one field: the same digest is the same length
            first_len = pc.utf8_length(texts[0])
            out["first_len"] = np.asarray(first_len.to_numpy(zero_copy_only=False), np.int32)
        chars, words = columns.lengths(columns.joined(texts, " / "), simple, self.single_spaced)
        out["chars"] = chars.astype(np.int32)
        out["words"] = words.astype(np.int32)
        return table.combine_chunks(), out

    def _write(
        self,
        table: pa.Table,
        arrays: dict[str, np.ndarray],
        present: dict[str, np.ndarray] | None = None,
    ) -> None:
        import pyarrow as pa

        for key_name, value in arrays.items():
            self._keep(key_name, value)
        for key_name, mask in (present or {}).items():
            self.present.setdefault(key_name, []).append(mask)
        batch = table.to_batches()
        if self._writer is None:
            self._schema = table.schema
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, table.schema)
        elif table.schema != self._schema:
            batch = table.cast(self._schema).combine_chunks().to_batches()
        for b in batch:
            self.starts.append(self.n)
            self._writer.write_batch(b)
            self.n += b.num_rows

    def reset(self) -> None:
        """Forget what was added (the part is read again another way)."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.n = 0
        self.starts = []
        for key in list(self.arrays):
            self._array_path(key).unlink(missing_ok=True)
        self.arrays = {}
        self.present = {}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None
        for fh, _ in self.arrays.values():
            fh.close()

    def finish(self) -> Part:
        import pyarrow as pa

        self.close()
        pa.default_memory_pool().release_unused()  # the batches' buffers, back to the system

        def cat(key: str, dtype: Any) -> np.ndarray:
            if key not in self.arrays:
                return np.zeros(0, dtype)
            stored = self.arrays.pop(key)[1]
            path = self._array_path(key)
            out = np.fromfile(path, dtype=stored).astype(dtype, copy=False)
            path.unlink()
            return out

        label_codes = cat("label_codes", np.int32)

        fields = range(len(self.text_fields))
        bits = [cat(f"bits{k}", np.uint8) for k in fields] if self.cleaning else []
        schema_names: list[str] = []
        if self.n:
            import pyarrow as pa

            with pa.OSFile(str(self.path)) as fh:
                schema_names = list(pa.ipc.open_file(fh).schema.names)
        return Part(
            self.name,
            self.path,
            self.starts,
            self.n,
            schema_names,
            label_codes,
            bits,
            cat("blank", bool),
            cat("exact", np.uint64),
            cat("loose", np.uint64),
            cat("first_len", np.int32) if len(self.text_fields) > 1 else None,
            cat("chars", np.int32),
            cat("words", np.int32),
            {k: np.concatenate(v) for k, v in self.present.items()},
            cat("targets", np.float64) if self.target is not None else None,
            cat("label_keys", self.arrays["label_keys"][1])
            if "label_keys" in self.arrays
            else None,
            {key: cat(key, stored) for key, (_, stored) in list(self.arrays.items())},
            self.single_spaced,
        )


def as_text(col: pa.Array) -> pa.Array:
    """A text column as strings: a list of words (token tasks, which are not cleaned) as
    the words joined by spaces, what ``key_text`` and ``PreparedData.text`` make of it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return pc.binary_join(col, " ")
    return col


def entity_group(tags: list[str]) -> str:
    """The most frequent entity type of a token example (the data card groups by it)."""
    types = Counter(t[2:] for t in tags if t != "O")
    return types.most_common(1)[0][0] if types else "O"


def rows_table(
    rows: list[Row],
    task: str,
    text_fields: list[str],
    label_field: str,
    label_type: pa.DataType | None = None,
    text_type: pa.DataType | None = None,
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Python rows (from the readers that hold them) as one table like the streaming reader's,
    with metadata values as strings; and per metadata key, which rows have it. The label
    column is of ``label_type``, the text fields of ``text_type`` (default: strings)."""
    import pyarrow as pa

    text_type = text_type or pa.string()
    cols: dict[str, pa.Array] = {}
    for f in text_fields:
        cols[f] = pa.array([r[f] for r in rows], text_type)
    cols[label_field] = pa.array([r[label_field] for r in rows], label_type or pa.string())
    cols[LINE] = pa.array([r.get(LINE) for r in rows], pa.int64())
    present = metadata_columns(rows, cols)
    return pa.table(cols), present


def metadata_columns(rows: list[Row], cols: dict[str, pa.Array]) -> dict[str, np.ndarray]:
    """Add to ``cols`` every other key of the ``rows`` (``id`` first) as a string column;
    per such key, which rows have it (``(n,)`` bool)."""
    import pyarrow as pa

    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    if ID in keys and ID not in cols:
        cols[ID] = pa.array([str(r[ID]) if ID in r else None for r in rows], pa.string())
    present = {}
    for k in keys:
        if k in cols:
            continue
        cols[k] = pa.array([None if r.get(k) is None else str(r[k]) for r in rows], pa.string())
        present[k] = np.fromiter((k in r for r in rows), dtype=bool, count=len(rows))
    return present


def step_counts(part: Part, rows: np.ndarray) -> Counter[str]:
    """Texts each cleaning step changed among ``rows`` of ``part`` (all text fields)."""
    counts: Counter[str] = Counter()
    for bits in part.bits:
        counts.update(columns.step_counts(gather(bits, rows), STEPS))
    return counts


def first_occurrences(part: Part, rows: np.ndarray) -> np.ndarray:
    """``(n,)`` bool per row of ``rows`` (sorted): the first with its texts and label (its
    code; a target family's ``label_keys``, e.g. the target text's digest, else its
    ``targets``, the number itself).

    Candidates share their digest (found by one in-place sort of the digests: 8 bytes a
    row); only those are compared on the whole key: the digest, the label and, with two
    text fields, the first one's length (two pairs joined alike differ there)."""
    out = np.ones(len(rows), dtype=bool)
    if len(rows) < 2:
        return out
    ordered = gather(part.exact, rows)
    ordered.sort()
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if not len(repeated):
        return out
    found = []
    for lo in range(0, len(rows), CHUNK):  # a few bytes a row at a time
        digest = part.exact[rows[lo : lo + CHUNK]]
        at = np.minimum(np.searchsorted(repeated, digest), len(repeated) - 1)
        found.append(lo + np.flatnonzero(repeated[at] == digest))
    labels = part.label_codes
    if part.label_keys is not None:
        labels = part.label_keys
    elif part.targets is not None:
        labels = part.targets
    seen: set[tuple[int, Any, int]] = set()
    for i in np.concatenate(found).tolist():  # in row order: the first of a key stays
        r = int(rows[i])
        key = (
            int(part.exact[r]),
            labels[r].item(),  # a float target: -0.0 and 0.0 are one key, as in Python
            -1 if part.first_len is None else int(part.first_len[r]),
        )
        if key in seen:
            out[i] = False
        seen.add(key)
    return out


def label_counts(part: Part, rows: np.ndarray, n_codes: int) -> np.ndarray:
    """``(n_codes,)`` int64: how often each label code occurs in ``rows`` (sorted)."""
    return np.bincount(gather(part.label_codes, rows), minlength=n_codes)


class Deferred(BadRows):
    """A :class:`BadRows` that keeps what it is told, for :meth:`replay` into the real one
    later: the in-memory path reports label problems after every part is read, so the
    streamed path holds them until then (the same first error, the same order)."""

    def __init__(self) -> None:
        super().__init__("skip")
        self.calls: list[tuple[Any, ...]] = []

    def report(
        self, path: Path, where: str, line: int, column: str, reason: str, excerpt: str = ""
    ) -> None:
        self.calls.append((path, where, line, column, reason, excerpt))

    def note(self, text: str) -> None:
        self.calls.append((text,))

    def rewind(self, mark: int) -> None:
        """Forget what came after ``len(self.calls)`` was ``mark`` (a part read again)."""
        del self.calls[mark:]

    def replay(self, bad: BadRows) -> None:
        for call in self.calls:
            if len(call) == 1:
                bad.note(call[0])
            else:
                bad.report(*call)
        self.calls = []


class Target:
    """How a family whose label is a target, not a class (regression: a number; text to
    text: a text), streams through preprocess. The defaults: a text target kept as read,
    one stratum, no check once split. A family subclasses it in its ``data.py`` and returns
    it from ``DataFamily.stream_target``; ``nlpflow.data.prepare`` does the rest as for
    sequence classification."""

    label_type = "string"  # Arrow type of the label column kept and written

    def column(self, builder: PartBuilder, table: pa.Table, origin: Path, bad: BadRows) -> pa.Table:
        """The first pass's label handling of one batch: check the label column (a bad row
        goes to ``bad``, naming ``origin`` and the row's ``_line``, and is left out, or
        :class:`EmptyLabel` sends the file to the Python reader), keep per row ``targets``
        (``(n,)`` float64, what the data card describes) and ``label_keys`` (what duplicate
        rows compare) with ``builder.keep``, and return the table."""
        raise NotImplementedError

    def rows(
        self, rows: list[Row], label_field: str, part: str, origin: str, bad: BadRows
    ) -> list[Row]:
        """Rows held by the Python reader, checked as the family's ``normalise`` does in
        memory (``part``: its name, ``origin``: its file or source)."""
        return rows

    def strata(self, part: Part) -> tuple[np.ndarray, list[str]]:
        """Per row of ``part`` a stratum code, and the strata's names (codes index them)."""
        return np.zeros(part.n, dtype=np.int32), [""]

    def names(self, label_field: str, train: np.ndarray, origin: dict[str, str]) -> list[str]:
        """``meta.json``'s ``label_names`` from the train ``targets``; a UserError naming
        ``origin["train"]`` for targets the task cannot use."""
        return [label_field]

    def warnings(self, targets: dict[str, np.ndarray]) -> list[str]:
        """Problems that do not stop the stage, from the ``targets`` of each split."""
        return []
