"""The choice family through the shared data code: preprocess's reading and splitting, the
processed and tokenized columns, padded (B, N, T) batches and the probe's worst case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.data.tokenize import tokenize_with_stats
from nlpflow.errors import UserError
from nlpflow.families.choice.config import ChoiceParams
from nlpflow.families.data import data_family
from nlpflow.families.train import train_family
from nlpflow.modeling.encoder import Encoder
from nlpflow.modeling.tokenizers import train_tokenizer
from nlpflow.params import DataParams


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _rows(n: int, width: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "question": f"question {i}",
            "choices": [f"option {i} {j}" for j in range(width)],
            "answer": i % width,
            "source": "a" if i % 2 else "b",
        }
        for i in range(start, start + n)
    ]


def _params(files: dict[str, str]) -> DataParams:
    return DataParams(
        files=files,
        task="choice",
        text_fields=["question"],
        label_field="answer",
        choice=ChoiceParams(options=["choices"]),
    )


def test_files_read_split_and_processed_as_context_options_label(tmp_path: Path) -> None:
    files = {
        "train": _jsonl(tmp_path / "train.jsonl", _rows(40, 3)),
        "test": _jsonl(tmp_path / "test.jsonl", _rows(10, 3, start=100)),
    }
    data = load_splits(_params(files), seed=0)
    assert data.task == "choice"
    assert data.text_fields == ["context", "options"] and data.label_field == "label"
    assert data.label_names == ["0", "1", "2"]
    assert data.metadata_fields == ["source"]
    assert sum(len(rows) for rows in data.splits.values()) == 50
    dataset = to_dataset_dict(data)
    train = dataset["train"]
    assert train.features["label"].names == ["0", "1", "2"]
    assert train.features["options"].feature.dtype == "string"
    row = train[0]
    assert len(row["options"]) == 3 and row["context"].startswith("question ")
    assert row["options"][row["label"]] == f"option {row['context'].split()[1]} {row['label']}"


def test_files_with_different_numbers_of_options_are_refused(tmp_path: Path) -> None:
    files = {
        "train": _jsonl(tmp_path / "train.jsonl", _rows(40, 3)),
        "test": _jsonl(tmp_path / "test.jsonl", _rows(10, 4, start=100)),
    }
    with pytest.raises(UserError) as err:
        load_splits(_params(files), seed=0)
    assert str(err.value) == (
        f"{files['test']}: rows of 4 options, but {files['train']} has 3; a data set has one "
        "number of options (the model scores N options per example): make every file's rows "
        "have the same number"
    )


def test_the_builtin_source_and_a_position_warning(tmp_path: Path) -> None:
    params = DataParams(
        source="builtin:choice",
        text_fields=["context"],
        label_field="label",
        choice=ChoiceParams(size=120, num_options=3),
    )
    data = load_splits(params, seed=1)
    assert data.task == "choice" and data.metadata_fields == ["category", "mentioned"]
    assert data.warnings == []
    skewed = [{"context": "c", "options": ["a", "b"], "label": 0}] * 9 + [
        {"context": "d", "options": ["a", "b"], "label": 1}
    ]
    warnings = data_family("choice").warnings(["0", "1"], {"train": skewed}, "label")
    assert warnings == [
        "the right option is option 0 in 90% of the train rows (balanced: 50%); a model can "
        "learn that position instead of the task: compare with the position baseline, or "
        "shuffle the options"
    ]


def test_tokenized_rows_hold_n_sequences_and_batch_as_b_n_t(tmp_path: Path) -> None:
    files = {
        "train": _jsonl(tmp_path / "train.jsonl", _rows(30, 3)),
        "test": _jsonl(tmp_path / "test.jsonl", _rows(6, 3, start=100)),
    }
    data = load_splits(_params(files), seed=0)
    dataset = to_dataset_dict(data)
    texts = [r["context"] for r in data.splits["train"]] + [
        o for r in data.splits["train"] for o in r["options"]
    ]
    tokenizer = train_tokenizer(texts, vocab_size=120)
    encoder = Encoder(tokenizer, data.text_fields, 7, "longest_first")
    family = data_family("choice")
    tokenized, stats = tokenize_with_stats(dataset, encoder, tokenizer, family=family)
    train = tokenized["train"]
    first = train[0]
    assert len(first["input_ids"]) == 3 and len(first["token_type_ids"]) == 3
    ref = tokenizer(
        dataset["train"][0]["context"],
        dataset["train"][0]["options"][1],
        truncation="longest_first",
        max_length=7,
    )
    assert first["input_ids"][1] == ref["input_ids"]
    assert first["length"] == max(len(ids) for ids in first["input_ids"])
    assert stats["train"]["examples"] == len(train)  # rows, not pairs
    # tokenizer.max_length: auto takes its percentile over the (context, option) pairs
    from nlpflow.data.tokenize import auto_max_length

    wide = Encoder(tokenizer, data.text_fields, 64, "longest_first")
    longest = max(
        len(tokenizer(r["context"], o)["input_ids"]) for r in dataset["train"] for o in r["options"]
    )
    limit, lengths = auto_max_length(dataset, wide, 100.0, 512, family)
    assert limit == longest
    assert int(lengths.max()) == longest
    # a row counts as truncated when any of its pairs was cut
    full = [
        max(len(tokenizer(r["context"], o)["input_ids"]) for o in r["options"])
        for r in dataset["train"]
    ]
    assert 0 < np.mean(np.array(full) > 7) == stats["train"]["truncated_fraction"]

    import torch

    split = train_family("choice").padded_split(train, tokenizer.pad_token_id)
    batch = split.batch(torch.arange(4), torch.device("cpu"))
    assert batch["input_ids"].shape == (4, 3, 7)
    assert batch["attention_mask"].shape == (4, 3, 7)
    assert batch["labels"].tolist() == list(np.asarray(train["labels"][:4]))
    sub = split.subset(torch.tensor([1, 2]))
    assert sub.input_ids.shape[0] == 2 and sub.pair_lengths.shape == (2, 3)

    probe = train_family("choice").probe_batch(torch.zeros(1, 8, dtype=torch.long), 5, 3, True)
    assert probe["input_ids"].shape == (5, 3, 8)
    assert probe["token_type_ids"].shape == (5, 3, 8)
    assert probe["labels"].tolist() == [0, 1, 2, 0, 1]


def test_a_datasets_directory_is_refused_with_what_to_do(tmp_path: Path) -> None:
    from datasets import Dataset

    rows = _rows(30, 3)
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    params = DataParams(
        source=str(tmp_path / "saved"),
        task="choice",
        text_fields=["question"],
        label_field="answer",
        choice=ChoiceParams(options=["choices"]),
    )
    with pytest.raises(UserError) as err:
        load_splits(params, seed=0)
    assert str(err.value).startswith(
        f"{tmp_path / 'saved'}: multiple choice reads local files (JSONL, JSON, Parquet, CSV, "
        "TSV) and builtin:choice; save this data set with to_json(path, lines=True)"
    )
