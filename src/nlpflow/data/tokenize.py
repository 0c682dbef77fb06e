"""Tokenize processed splits into unpadded token ids, stored as memory-mapped Arrow.

Pairs are joined with the tokenizer's own separator (its post-processor adds ``[SEP]`` or
``</s></s>``). The hot path works on Arrow batches and the Rust tokenizer directly, so the
ids never exist as Python lists for the whole set: each batch of ids becomes an Arrow list
array built from NumPy offsets. Token-classification labels are aligned to sub-tokens: the
first sub-token of a word carries the word's label, the rest (and special tokens) get -100,
which the loss ignores.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data.saved import IGNORE_INDEX
from nlpflow.params import SPLITS

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import DatasetDict
    from tokenizers import Encoding, Tokenizer
    from transformers import PreTrainedTokenizerBase

SAMPLE_EXAMPLES = 5
BATCH = 2000


def training_texts(
    dataset: DatasetDict, text_fields: list[str], batch: int = BATCH
) -> Iterator[str]:
    """Train-split texts only: a tokenizer must never see validation or test."""
    for chunk in dataset["train"].select_columns(text_fields).iter(batch_size=batch):
        for field in text_fields:
            for value in chunk[field]:
                yield " ".join(value) if isinstance(value, list) else value


def _list_array(rows: list[list[int]], dtype: Any) -> pa.Array:
    """An Arrow list array from Python rows via flat NumPy values and offsets (no per-row objects)."""
    import pyarrow as pa

    lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _align_labels(enc: Encoding, word_labels: list[int]) -> list[int]:
    out = []
    previous = None
    for word in enc.word_ids:
        if word is None or word == previous:
            out.append(IGNORE_INDEX)
        else:
            out.append(word_labels[word])
        previous = word
    return out


def make_encoder(
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
    truncation: str = "longest_first",
    task: str = "sequence",
) -> Any:
    """A function from an Arrow batch to an Arrow table of ``input_ids`` (+ segments, labels)."""
    import pyarrow as pa

    backend: Tokenizer = tokenizer.backend_tokenizer
    backend.no_padding()
    # Single texts cannot use only_first/only_second: truncate them plainly.
    strategy = truncation if len(text_fields) == 2 else "longest_first"
    backend.enable_truncation(max_length, strategy=strategy)
    with_segments = "token_type_ids" in tokenizer.model_input_names

    def encode(batch: pa.Table) -> pa.Table:
        columns = [batch.column(f).to_pylist() for f in text_fields]
        if task == "token":
            encs = backend.encode_batch(columns[0], is_pretokenized=True)
        elif len(columns) == 2:
            encs = backend.encode_batch(list(zip(columns[0], columns[1], strict=True)))
        else:
            encs = backend.encode_batch(columns[0])
        ids = [e.ids for e in encs]
        out: dict[str, Any] = {"input_ids": _list_array(ids, np.int32)}
        if with_segments:
            out["token_type_ids"] = _list_array([e.type_ids for e in encs], np.int8)
        labels = batch.column("label")
        if task == "token":
            word_labels = labels.to_pylist()
            out["labels"] = _list_array(
                [_align_labels(e, w) for e, w in zip(encs, word_labels, strict=True)], np.int32
            )
        else:
            out["labels"] = labels
        out["length"] = pa.array(np.fromiter((len(r) for r in ids), dtype=np.int32, count=len(ids)))
        return pa.table(out)

    return encode


def tokenize_splits(
    dataset: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
    truncation: str = "longest_first",
    task: str = "sequence",
    num_proc: int | None = None,
) -> DatasetDict:
    """``input_ids`` (and ``token_type_ids``), ``labels``, ``length`` per example, unpadded."""
    from datasets import ClassLabel, Features, Sequence, Value

    encode = make_encoder(tokenizer, text_fields, max_length, truncation, task)
    label_feature = dataset["train"].features["label"]
    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            **(
                {"token_type_ids": Sequence(Value("int8"))}
                if "token_type_ids" in tokenizer.model_input_names
                else {}
            ),
            "labels": Sequence(Value("int32")) if task == "token" else label_feature,
            "length": Value("int32"),
        }
    )
    assert task == "token" or isinstance(label_feature, ClassLabel)
    columns = dataset["train"].column_names
    return (
        dataset.with_format("arrow")
        .map(
            encode,
            batched=True,
            batch_size=BATCH,
            num_proc=num_proc if num_proc and num_proc > 1 else None,
            remove_columns=columns,
            features=features,
            desc="tokenize",
        )
        .with_format(None)
    )


def auto_max_length(
    dataset: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    task: str,
    percentile: float,
    model_limit: int,
) -> int:
    """The ``percentile`` of train token lengths (untruncated), capped by the model's limit."""
    lengths = _untruncated_lengths(dataset, tokenizer, text_fields, "train", task)
    return int(min(model_limit, max(4, np.ceil(np.percentile(lengths, percentile)))))


def _untruncated_lengths(
    dataset: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    split: str,
    task: str,
) -> np.ndarray:
    # A copy without truncation: the shared tokenizer's settings stay as they are.
    backend = type(tokenizer.backend_tokenizer).from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    out: list[int] = []
    for chunk in (
        dataset[split].select_columns(text_fields).with_format("arrow").iter(batch_size=BATCH)
    ):
        cols = [chunk.column(f).to_pylist() for f in text_fields]
        if task == "token":
            encs = backend.encode_batch(cols[0], is_pretokenized=True)
        elif len(cols) == 2:
            encs = backend.encode_batch(list(zip(cols[0], cols[1], strict=True)))
        else:
            encs = backend.encode_batch(cols[0])
        out.extend(len(e.ids) for e in encs)
    return np.asarray(out, dtype=np.int64)


def describe_tokens(
    dataset: DatasetDict,
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
    task: str = "sequence",
) -> dict[str, Any]:
    """Truncation rate, unknown-token rate and length percentiles per split (batch by batch)."""
    import pyarrow.compute as pc

    report: dict[str, Any] = {"vocab_size": len(tokenizer), "max_length": max_length, "splits": {}}
    unk = tokenizer.unk_token_id
    for split in SPLITS:
        full = _untruncated_lengths(dataset, tokenizer, text_fields, split, task)
        n_tokens = n_unk = 0
        for chunk in (
            tokenized[split]
            .select_columns(["input_ids"])
            .with_format("arrow")
            .iter(batch_size=BATCH * 5)
        ):
            flat = pc.list_flatten(chunk.column("input_ids"))
            n_tokens += len(flat)
            if unk is not None:
                n_unk += int(pc.sum(pc.equal(flat, unk)).as_py() or 0)
        report["splits"][split] = {
            "truncated_fraction": round(float(np.mean(full > max_length)), 4),
            "unknown_token_rate": round(n_unk / max(1, n_tokens), 5),
            "length_p50": int(np.percentile(full, 50)),
            "length_p95": int(np.percentile(full, 95)),
            "length_p99": int(np.percentile(full, 99)),
            "length_max": int(full.max()),
        }
    return report


def tokenization_sample(
    dataset: DatasetDict,
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    n: int = SAMPLE_EXAMPLES,
    task: str = "sequence",
) -> str:
    """A markdown page showing a few train examples token by token, as the model sees them."""
    lines = [
        "# Tokenization sample",
        "",
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
        tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
        lines += [
            f"## Example {i + 1}: `{row['id']}`",
            "",
            f"- text: {texts}",
            f"- {len(tokens)} tokens: `{' · '.join(tokens)}`",
        ]
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
