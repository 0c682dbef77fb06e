"""Tokenize processed splits: pairs joined by the tokenizer's separator, no padding stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.params import SPLITS

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

SAMPLE_EXAMPLES = 5


def training_texts(dataset: DatasetDict, text_fields: list[str], batch: int = 1000) -> Iterator[list[str]]:
    """Train-split texts only, in batches: a tokenizer must never see validation or test."""
    train = dataset["train"]
    for start in range(0, len(train), batch):
        chunk = train[start : start + batch]
        for field in text_fields:
            yield chunk[field]


def tokenize_splits(
    dataset: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
    num_proc: int | None = None,
) -> DatasetDict:
    """``input_ids`` (and ``token_type_ids``), ``labels``, ``length`` per example, unpadded.

    Pairs are truncated longest-first so both texts keep as much as possible.
    """

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        texts = [batch[f] for f in text_fields]
        enc = tokenizer(
            *texts, truncation="longest_first" if len(texts) == 2 else True,
            max_length=max_length, padding=False,
        )
        out = {"input_ids": enc["input_ids"], "length": [len(ids) for ids in enc["input_ids"]]}
        if "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"]
        return out

    columns = dataset["train"].column_names
    tokenized = dataset.map(
        encode, batched=True, batch_size=1000, num_proc=num_proc,
        remove_columns=[c for c in columns if c != "label"], desc="tokenize",
    )
    return tokenized.rename_column("label", "labels")


def untruncated_lengths(
    dataset: DatasetDict, tokenizer: PreTrainedTokenizerBase, text_fields: list[str], split: str
) -> np.ndarray:
    """Token counts before truncation, to report how much truncation cuts."""
    ds = dataset[split]
    lengths: list[int] = []
    for start in range(0, len(ds), 1000):
        chunk = ds[start : start + 1000]
        enc = tokenizer(*[chunk[f] for f in text_fields], truncation=False)
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return np.asarray(lengths)


def describe_tokens(
    dataset: DatasetDict,
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str],
    max_length: int,
) -> dict[str, Any]:
    """Truncation rate, unknown-token rate and length percentiles per split."""
    report: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "max_length": max_length,
        "splits": {},
    }
    unk = tokenizer.unk_token_id
    for split in SPLITS:
        full = untruncated_lengths(dataset, tokenizer, text_fields, split)
        ids = tokenized[split]["input_ids"]
        n_tokens = sum(len(x) for x in ids)
        n_unk = sum(sum(1 for t in x if t == unk) for x in ids) if unk is not None else 0
        report["splits"][split] = {
            "truncated_fraction": round(float(np.mean(full > max_length)), 4),
            "unknown_token_rate": round(n_unk / max(1, n_tokens), 5),
            "length_p50": int(np.percentile(full, 50)),
            "length_p95": int(np.percentile(full, 95)),
            "length_max": int(full.max()),
        }
    return report


def tokenization_sample(
    dataset: DatasetDict, tokenized: DatasetDict, tokenizer: PreTrainedTokenizerBase,
    text_fields: list[str], n: int = SAMPLE_EXAMPLES,
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
    for i in range(min(n, len(train))):
        texts = " / ".join(repr(train[i][f]) for f in text_fields)
        tokens = tokenizer.convert_ids_to_tokens(tok[i]["input_ids"])
        lines += [
            f"## Example {i + 1}: `{train[i]['id']}`",
            "",
            f"- text: {texts}",
            f"- {len(tokens)} tokens: `{' · '.join(tokens)}`",
        ]
        if "token_type_ids" in tok.column_names:
            lines.append(f"- segments: `{' '.join(str(t) for t in tok[i]['token_type_ids'])}`")
        lines.append("")
    return "\n".join(lines)
