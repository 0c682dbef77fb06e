"""Tokenize processed splits into unpadded token ids, stored as memory-mapped Arrow.

Every row is encoded by :class:`nlpflow.modeling.encoder.Encoder` (the one encoder the
behavioural tests, latency and prediction use too). The hot path works on Arrow batches:
each batch of ids becomes an Arrow list array built from NumPy offsets. Token-classification
labels are aligned to sub-tokens by ``word_ids``: the first sub-token of a word carries the
word's label, the rest (and special tokens) get -100, which the loss ignores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data.saved import IGNORE_INDEX
from nlpflow.modeling.encoder import Encoder
from nlpflow.params import SPLITS

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

    from nlpflow.families.data import DataFamily

SAMPLE_EXAMPLES = 5
BATCH = 2000


def training_texts(
    dataset: DatasetDict, text_fields: list[str], batch: int = BATCH
) -> Iterator[str]:
    """Train-split texts only: a tokenizer must never see validation or test."""
    from nlpflow.data.saved import split_batches

    for chunk in split_batches(dataset["train"], batch, text_fields):
        for field in text_fields:
            for value in chunk.column(field).to_pylist():
                yield " ".join(value) if isinstance(value, list) else value


def _list_array(rows: list[list[int]], dtype: Any) -> pa.Array:
    """An Arrow list array from Python rows via flat NumPy values and offsets (no per-row objects)."""
    import pyarrow as pa

    lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _full_lengths(
    encoder: Encoder,
    columns: list[list[Any]],
    lengths: np.ndarray,
    where: str,
    first: int,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """Untruncated lengths, ``(n,)`` int32. Truncation cuts a row to exactly ``max_length``
    tokens, so a row shorter than that was not cut: only rows at ``max_length`` are encoded
    again without truncation (the second encode was half of the stage's time), unless
    ``known`` (the untruncated lengths of these rows, from ``max_length: auto``) gives them."""
    if known is not None:
        return np.asarray(known, dtype=np.int32)
    full = lengths.copy()
    at_limit = np.flatnonzero(lengths >= encoder.max_length)
    if len(at_limit):
        subset = [[col[i] for i in at_limit] for col in columns]
        full[at_limit] = encoder.lengths(subset, where, first)
    return full


# ``tokens``: the tokens of a row (what the unknown-token rate divides by); ``length`` is what
# a batch pads to, the same for one sequence per row, the longest of a row's N sequences for
# multiple choice.
STAT_COLUMNS = (
    "full_length", "unknown", "special_only", "empty_words", "truncated_words", "tokens"
)  # fmt: skip
# Above these, tokenize warns: the tokenizer does not fit the text (a vocabulary of a few
# tokens maps every word to [UNK], and the model trains on inputs with nothing left in them).
UNKNOWN_RATE_WARNING = 0.05
SPECIAL_ONLY_WARNING = 0.01


def _arrow_encoder(
    encoder: Encoder, special_ids: list[int], unk_id: int | None, family: DataFamily
) -> Any:
    """A function from an Arrow batch (with its row indices) to an Arrow table of model
    inputs, plus per-row figures (``STAT_COLUMNS``) that :func:`tokenize_with_stats` sums.
    The task family encodes the batch and gives its ``labels`` column."""
    import pyarrow as pa

    specials = np.asarray(sorted(set(special_ids)), dtype=np.int64)

    def encode(
        batch: pa.Table, indices: list[int], where: str, known: np.ndarray | None = None
    ) -> pa.Table:
        columns = [batch.column(f).to_pylist() for f in encoder.text_fields]
        labels = batch.column("label")
        first = int(indices[0]) if len(indices) else 0
        enc, label_column = family.encode(encoder, columns, labels, where, first)
        own = family.input_columns(enc, specials, unk_id)
        if own is not None:  # N sequences per row (multiple choice)
            order = ["input_ids", "token_type_ids", "labels", "length", *STAT_COLUMNS]
            own["labels"] = label_column
            return pa.table({c: own[c] for c in order if c in own})
        n = len(enc)
        lengths = np.fromiter((len(r) for r in enc.input_ids), dtype=np.int32, count=n)
        flat = np.fromiter(
            chain.from_iterable(enc.input_ids), dtype=np.int64, count=int(lengths.sum())
        )
        row_of = np.repeat(np.arange(n), lengths)
        content = np.bincount(row_of[~np.isin(flat, specials)], minlength=n)
        unknown = (
            np.bincount(row_of[flat == unk_id], minlength=n) if unk_id is not None else np.zeros(n)
        )
        out: dict[str, Any] = {"input_ids": _list_array(enc.input_ids, np.int32)}
        if enc.token_type_ids is not None:
            out["token_type_ids"] = _list_array(enc.token_type_ids, np.int8)
        if isinstance(label_column, list):  # a list of labels per row (aligned to tokens)
            out["labels"] = _list_array(label_column, np.int32)
        else:
            out["labels"] = label_column
        out["length"] = pa.array(lengths)
        if known is not None:
            known = known[np.asarray(indices, dtype=np.int64)]
        out["full_length"] = pa.array(_full_lengths(encoder, columns, lengths, where, first, known))
        out["unknown"] = pa.array(unknown.astype(np.int32))
        out["special_only"] = pa.array(content == 0)
        if encoder.task == "token":  # words: pre-split input
            out["empty_words"] = pa.array([len(e) for e in enc.empty_words], pa.int32())
            out["truncated_words"] = pa.array(enc.truncated_words, pa.int32())
        else:
            out["empty_words"] = pa.array(np.zeros(n, dtype=np.int32))
            out["truncated_words"] = pa.array(np.zeros(n, dtype=np.int32))
        out["tokens"] = out["length"]
        return pa.table(out)

    return encode


def _features(encoder: Encoder, family: DataFamily, processed_label: Any) -> Any:
    """The tokenized columns' features; the family types ``labels`` from the processed
    ``label`` feature (a UserError when data/processed is not what it writes)."""
    from datasets import Features, Sequence, Value

    label_feature = family.tokenized_label_feature(processed_label)
    inputs = family.input_features(encoder.segments) or {
        "input_ids": Sequence(Value("int32")),
        **({"token_type_ids": Sequence(Value("int8"))} if encoder.segments else {}),
    }
    return Features({**inputs, "labels": label_feature, "length": Value("int32")})


STAT_FEATURES = {
    "full_length": "int32",
    "unknown": "int32",
    "special_only": "bool",
    "empty_words": "int32",
    "truncated_words": "int32",
    "tokens": "int32",
}


class SplitStats:
    """The figures of :func:`split_figures`, summed batch by batch. The untruncated lengths
    are kept as a count of rows per length (``(longest + 1,)`` int64), not one per row: the
    figures need only their distribution, and an array kept per batch grew with the rows."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)  # rows of each untruncated length
        self.sums = dict.fromkeys(
            ("tokens", "unknown", "special_only", "empty_words", "truncated_words"), 0
        )

    def add(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        counts = np.bincount(table.column("full_length").to_numpy())
        if len(counts) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(counts) - len(self.counts)))
        self.counts[: len(counts)] += counts
        for key in self.sums:
            column = table.column(key)
            if key == "special_only":
                column = pc.cast(column, "int64")
            self.sums[key] += int(pc.sum(column).as_py() or 0)

    def figures(self, max_length: int) -> dict[str, Any]:
        # the lengths in ascending order (the percentiles of any order are the same), in
        # the smallest integer type that holds the longest (uint16 for most text: 2 bytes a row)
        lengths = np.arange(len(self.counts), dtype=np.min_scalar_type(len(self.counts)))
        full = np.repeat(lengths, self.counts)
        return _figures(full, self.sums, max_length, scratch=True)


def encode_splits(
    dataset: DatasetDict,
    encoder: Encoder,
    tokenizer: PreTrainedTokenizerBase,
    source: str = "",
    known_full: dict[str, np.ndarray] | None = None,
    family: DataFamily | None = None,
) -> tuple[Any, dict[str, tuple[Any, Iterator[pa.Table]]], dict[str, SplitStats]]:
    """Encode every split batch by batch, as streams: per split (features, tables of model
    inputs) and the :class:`SplitStats` each stream fills as it is read. The rows are read
    from the splits' Arrow files with plain reads (:func:`nlpflow.data.saved.split_batches`),
    so memory stays flat. ``known_full``: untruncated lengths per split, when known.
    ``family``: the task's data family (default: the one of ``encoder.task``), which encodes
    each batch and types the ``labels`` column."""
    from nlpflow.data.saved import split_batches
    from nlpflow.families.data import data_family

    family = family or data_family(encoder.task)
    features = _features(encoder, family, dataset["train"].features["label"])
    encode = _arrow_encoder(
        encoder, list(tokenizer.all_special_ids), tokenizer.unk_token_id, family
    )
    wanted = [*encoder.text_fields, "label"]
    stats = {split: SplitStats() for split in dataset}

    def stream(split: str) -> Iterator[pa.Table]:
        where = f"{source}/{split}" if source else split
        known = (known_full or {}).get(split)
        done = 0
        for batch in split_batches(dataset[split], BATCH, wanted):
            indices = list(range(done, done + batch.num_rows))
            out = encode(batch, indices, where, known)
            done += batch.num_rows
            stats[split].add(out)
            yield out.drop_columns(list(STAT_COLUMNS))

    return features, {split: (features, stream(split)) for split in dataset}, stats


def tokenize_with_stats(
    dataset: DatasetDict,
    encoder: Encoder,
    tokenizer: PreTrainedTokenizerBase,
    num_proc: int | None = None,
    source: str = "",
    family: DataFamily | None = None,
    known_full: dict[str, np.ndarray] | None = None,
) -> tuple[DatasetDict, dict[str, dict[str, Any]]]:
    """Encode every split with ``encoder`` into memory: ``input_ids`` (and
    ``token_type_ids``), ``labels``, ``length`` per example, unpadded; and per split the
    figures of :func:`split_figures` (one encoding pass; the untruncated lengths in the same
    batch). ``num_proc`` > 1 encodes with ``datasets.map`` in that many processes. The stage
    streams to disk instead (:func:`encode_splits`). ``family``: the task's data family
    (default: the one of ``encoder.task``), which encodes each batch and types ``labels``.

    Raises UserError when a row cannot be truncated as asked (``only_second`` with a first
    text longer than ``max_length``), naming ``source``/split and the row.
    """
    import pyarrow as pa
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    from nlpflow.families.data import data_family

    family = family or data_family(encoder.task)
    if num_proc and num_proc > 1:
        return _map_with_stats(dataset, encoder, tokenizer, num_proc, source, known_full, family)
    features, streams, stats = encode_splits(
        dataset, encoder, tokenizer, source, known_full, family
    )
    out = {}
    for split, (_, tables) in streams.items():
        parts = list(tables)
        table = pa.concat_tables(parts) if parts else features.arrow_schema.empty_table()
        table = InMemoryTable(table.cast(features.arrow_schema))
        out[split] = Dataset(table, info=DatasetInfo(features=features))
    figures = {split: s.figures(encoder.max_length) for split, s in stats.items()}
    return DatasetDict(out), figures


def _map_with_stats(
    dataset: DatasetDict,
    encoder: Encoder,
    tokenizer: PreTrainedTokenizerBase,
    num_proc: int,
    source: str,
    known_full: dict[str, np.ndarray] | None,
    family: DataFamily,
) -> tuple[DatasetDict, dict[str, dict[str, Any]]]:
    """:func:`tokenize_with_stats` through ``datasets.map`` with ``num_proc`` processes."""
    from datasets import DatasetDict, Features, Value

    base = _features(encoder, family, dataset["train"].features["label"])
    features = Features({**base, **{k: Value(v) for k, v in STAT_FEATURES.items()}})
    encode = _arrow_encoder(
        encoder, list(tokenizer.all_special_ids), tokenizer.unk_token_id, family
    )
    columns = dataset["train"].column_names
    out = {}
    for split, data in dataset.items():
        out[split] = (
            data.with_format("arrow")
            .map(
                encode,
                batched=True,
                batch_size=BATCH,
                with_indices=True,
                fn_kwargs={
                    "where": f"{source}/{split}" if source else split,
                    "known": (known_full or {}).get(split),
                },
                num_proc=num_proc,
                remove_columns=columns,
                features=features,
                desc=f"tokenize {split}",
            )
            .with_format(None)
        )
    encoded = DatasetDict(out)
    stats = {split: split_figures(data, encoder.max_length) for split, data in encoded.items()}
    return encoded.remove_columns(list(STAT_COLUMNS)), stats


def split_figures(data: Any, max_length: int) -> dict[str, Any]:
    """Truncation, unknown-token and special-only rates and untruncated length percentiles of
    one encoded split (with the ``STAT_COLUMNS``); empty and truncated words for token tasks."""
    import pyarrow.compute as pc

    table = data.select_columns(list(STAT_COLUMNS)).with_format("arrow")[:]
    full = table.column("full_length").to_numpy().astype(np.int64)
    sums = {}
    for key in ("tokens", "unknown", "special_only", "empty_words", "truncated_words"):
        column = table.column(key)
        if key == "special_only":
            column = pc.cast(column, "int64")
        sums[key] = int(pc.sum(column).as_py() or 0)
    return _figures(full, sums, max_length)


def _figures(
    full: np.ndarray, sums: dict[str, int], max_length: int, scratch: bool = False
) -> dict[str, Any]:
    """The figures of one split from its untruncated lengths ``full`` (``(n,)``) and the
    summed counts; ``scratch``: ``full`` may be reordered (the percentiles then make no copy)."""
    n = len(full)
    special_only = sums["special_only"]
    truncated_fraction = round(float(np.mean(full > max_length)) if n else 0.0, 4)
    length_max = int(full.max()) if n else 0
    p50, p95, p99 = (
        (int(v) for v in np.percentile(full, [50, 95, 99], overwrite_input=scratch))
        if n
        else (0, 0, 0)
    )
    return {
        "examples": n,
        "truncated_fraction": truncated_fraction,
        "unknown_token_rate": round(sums["unknown"] / max(1, sums["tokens"]), 5),
        "special_only_fraction": round(special_only / n if n else 0.0, 5),
        "special_only_examples": special_only,
        "empty_words": sums["empty_words"],
        "truncated_words": sums["truncated_words"],
        "length_p50": p50,
        "length_p95": p95,
        "length_p99": p99,
        "length_max": length_max,
    }


def tokenize_splits(
    dataset: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
    truncation: str = "longest_first",
    task: str = "sequence",
    num_proc: int | None = None,
    segments: bool | None = None,
) -> DatasetDict:
    """``input_ids`` (and ``token_type_ids``), ``labels``, ``length`` per example, unpadded,
    encoded by an :class:`Encoder` of these settings."""
    encoder = Encoder(tokenizer, text_fields, max_length, truncation, task, segments)
    return tokenize_with_stats(dataset, encoder, tokenizer, num_proc)[0]


def auto_max_length(
    dataset: DatasetDict,
    encoder: Encoder,
    percentile: float,
    model_limit: int,
    family: DataFamily | None = None,
) -> tuple[int, np.ndarray]:
    """The ``percentile`` of train token lengths (untruncated; of each encoded sequence, N
    per row for multiple choice), capped by the model's limit; and those lengths, ``(m,)``
    int64 (one a row: the train split's figures reuse them instead of encoding its longest
    rows untruncated a second time)."""
    from nlpflow.data.saved import split_batches
    from nlpflow.families.data import data_family

    family = family or data_family(encoder.task)
    lengths = [
        family.lengths(encoder, [chunk.column(f).to_pylist() for f in encoder.text_fields], "train")
        for chunk in split_batches(dataset["train"], BATCH, encoder.text_fields)
    ]
    full = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    flat = full if len(full) else np.zeros(1, dtype=np.int64)
    return int(min(model_limit, max(4, np.ceil(np.percentile(flat, percentile))))), full


def describe_tokens(
    stats: dict[str, dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, Any]:
    """The tokenize metrics: vocabulary, max_length, the figures per split, and ``warnings``
    (one sentence each) when the tokenizer leaves little of the text."""
    report: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "max_length": max_length,
        "splits": {s: stats[s] for s in SPLITS if s in stats},
    }
    report["warnings"] = tokenization_warnings(report)
    return report


def tokenization_warnings(report: dict[str, Any]) -> list[str]:
    """What a person must know before training on these inputs (empty list when nothing)."""
    out = []
    for split, s in report["splits"].items():
        if s["unknown_token_rate"] > UNKNOWN_RATE_WARNING:
            out.append(
                f"{split}: {100 * s['unknown_token_rate']:.1f}% of tokens are the unknown token "
                f"(vocabulary {report['vocab_size']}): the tokenizer does not cover this text; "
                "raise tokenizer.vocab_size or use a tokenizer made for this language"
            )
        if s["special_only_fraction"] > SPECIAL_ONLY_WARNING:
            out.append(
                f"{split}: {s['special_only_examples']} of {s['examples']} inputs "
                f"({100 * s['special_only_fraction']:.1f}%) hold only special or unknown "
                "tokens: the model sees nothing of their text"
            )
        if s["empty_words"]:
            out.append(
                f"{split}: {s['empty_words']} word(s) have no sub-token (zero-width or control "
                "characters standing as words); they get no prediction and are scored as misses"
            )
    return out


def tokenization_sample(
    dataset: DatasetDict,
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    n: int = SAMPLE_EXAMPLES,
    task: str = "sequence",
    warnings: Sequence[str] = (),
) -> str:
    """A markdown page showing a few train examples token by token, as the model sees them,
    after the ``warnings`` of :func:`tokenization_warnings`."""
    lines = ["# Tokenization sample", ""]
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    lines += [
        f"Tokenizer: `{type(tokenizer).__name__}`, vocabulary {len(tokenizer)} tokens. "
        "Each example below is shown as the model sees it: special tokens and separators "
        "included, `·` between tokens.",
        "",
    ]
    train, tok = dataset["train"], tokenized["train"]
    names = train.features["label"]
    for i in range(min(n, len(train))):
        row, enc = train[i], tok[i]
        texts = " / ".join(
            repr(" ".join(row[f]) if isinstance(row[f], list) else row[f]) for f in text_fields
        )
        lines += [f"## Example {i + 1}: `{row['id']}`", "", f"- text: {texts}"]
        if enc["input_ids"] and isinstance(enc["input_ids"][0], list):  # N sequences a row
            for j, ids in enumerate(enc["input_ids"]):
                shown = tokenizer.convert_ids_to_tokens(ids)
                lines.append(f"- option {j}, {len(shown)} tokens: `{' · '.join(shown)}`")
            lines.append("")
            continue
        tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
        lines.append(f"- {len(tokens)} tokens: `{' · '.join(tokens)}`")
        if "token_type_ids" in enc:
            lines.append(f"- segments: `{' '.join(str(t) for t in enc['token_type_ids'])}`")
        if task == "token":
            tag_names = names.feature.names
            shown = [
                f"{t}/{tag_names[label]}" if label != IGNORE_INDEX else f"{t}/-"
                for t, label in zip(tokens, enc["labels"], strict=True)
            ]
            lines.append(
                f"- labels (first sub-token of each word; `-` = ignored): `{' '.join(shown)}`"
            )
        lines.append("")
    return "\n".join(lines)
