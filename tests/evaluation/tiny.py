"""Tiny anagram-like data, a tiny saved model and prediction files for the evaluation tests.

Import it as ``from tests.evaluation import tiny`` (the project root is on pytest's
``pythonpath``), from tests/stages as well as from tests/evaluation.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from nlpflow.data import saved
from nlpflow.data.saved import DataMeta, write_saved

LABEL_NAMES = ["no", "yes"]
TEXT_FIELDS = ["first", "second"]
METADATA_FIELDS = ["kind"]
SIZES = {"train": 40, "validation": 16, "test": 20}
# The train split leans "no" and the others "yes": a baseline that took its majority from the
# split being scored would say "yes" and score 0.75 on test instead of 0.25.
POSITIVE_RATES = {"train": 0.25, "validation": 0.75, "test": 0.75}
META = DataMeta(TEXT_FIELDS, LABEL_NAMES, METADATA_FIELDS, label_field="label")


def anagram_rows(
    n: int, seed: int, prefix: str, positive_rate: float = 0.5
) -> list[dict[str, Any]]:
    """Rows like the built-in task: spaced letters, positives and three kinds of near miss.

    Exactly ``round-down(n * positive_rate)`` rows are positive, spread evenly; negatives
    cycle through dropped, added and substituted.
    """
    rng = random.Random(seed)
    misses = ["dropped", "added", "substituted"]
    rows, negatives = [], 0
    for i in range(n):
        word = [rng.choice("abcdefgh") for _ in range(rng.randint(4, 7))]
        positive = int((i + 1) * positive_rate) > int(i * positive_rate)
        if positive:
            kind = "anagram"
        else:
            kind = misses[negatives % 3]
            negatives += 1
        other = word[:]
        rng.shuffle(other)
        if kind == "dropped":
            other.pop()
        elif kind == "added":
            other.append("z")
        elif kind == "substituted":
            other[0] = "z"
        rows.append(
            {
                "id": f"{prefix}-{i}",
                "first": " ".join(word),
                "second": " ".join(other),
                "label": 1 if positive else 0,
                "kind": kind,
            }
        )
    return rows


def make_processed(root: Path) -> Path:
    """A processed DatasetDict with meta.json under ``root/processed``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "id": Value("string"),
            "first": Value("string"),
            "second": Value("string"),
            "label": ClassLabel(names=LABEL_NAMES),
            "kind": Value("string"),
        }
    )
    data = DatasetDict(
        {
            split: Dataset.from_list(
                anagram_rows(n, seed=i, prefix=split, positive_rate=POSITIVE_RATES[split]),
                features=features,
            )
            for i, (split, n) in enumerate(SIZES.items())
        }
    )
    out = root / "processed"
    write_saved(out, data, META)
    return out


def make_model_and_tokenized(root: Path, processed: Path) -> tuple[Path, Path]:
    """A 1-layer BERT (hidden 16) with a trained tokenizer, and the tokenized splits."""
    import torch
    from datasets import load_from_disk
    from transformers import BertConfig, BertForSequenceClassification

    from nlpflow.modeling.tokenizers import train_tokenizer

    data = load_from_disk(str(processed))
    texts = [t for col in TEXT_FIELDS for t in data["train"][col]]
    tokenizer = train_tokenizer(texts, kind="char", vocab_size=64, model_max_length=32)

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        enc = tokenizer(batch["first"], batch["second"], truncation=True)
        enc["labels"] = batch["label"]
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return dict(enc)

    tokenized = data.map(encode, batched=True, remove_columns=data["train"].column_names)
    tokenized = tokenized.remove_columns("attention_mask")  # the contract has no mask
    tok_dir = root / "tokenized"
    # As the tokenize stage writes it: the length inputs were truncated to, and how.
    write_saved(tok_dir, tokenized, META.tokenized(32, "longest_first"))

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        # Wide initial weights: an untrained model whose probabilities differ between
        # examples, so curves, confidence order and both predicted classes get exercised.
        initializer_range=1.0,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={n: i for i, n in enumerate(LABEL_NAMES)},
    )
    model = BertForSequenceClassification(config)
    model_dir = root / "model"
    model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return model_dir, tok_dir


def make_all(root: Path) -> dict[str, Path]:
    """Processed data, tokenized data and a saved model under ``root``."""
    processed = make_processed(root)
    model, tokenized = make_model_and_tokenized(root, processed)
    return {"processed": processed, "tokenized": tokenized, "model": model}


def prediction(
    id: str,
    first: str,
    second: str,
    kind: str,
    label: str,
    p_yes: float,
) -> dict[str, Any]:
    """A hand-made prediction record in the evaluate stage's format."""
    probs = {"no": 1 - p_yes, "yes": p_yes}
    pred = "yes" if p_yes > 0.5 else "no"
    return {
        "id": id,
        "first": first,
        "second": second,
        "kind": kind,
        "label": label,
        "prediction": pred,
        "confidence": probs[pred],
        "probabilities": probs,
    }


def write_meta(processed: Path) -> None:
    """Only the meta.json of a processed directory: all the error analysis reads from it."""
    processed.mkdir(parents=True, exist_ok=True)
    saved.write_meta(processed, META)


# --------------------------------------------------------------------------- token tasks

TAG_NAMES = ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
TOKEN_SIZES = {"train": 40, "validation": 12, "test": 16}


def make_token_all(root: Path, max_length: int = 32) -> dict[str, Path]:
    """Processed entity sentences (meta task "token"), tokenized with the project's own
    alignment, and an untrained 1-layer BertForTokenClassification.

    ``max_length`` small enough truncates some sentences, so the truncated-word path runs.
    """
    import torch
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
    from transformers import BertConfig, BertForTokenClassification

    from nlpflow.data.entities import generate_entities
    from nlpflow.data.tokenize import tokenize_splits
    from nlpflow.modeling.tokenizers import train_tokenizer
    from nlpflow.params import EntitiesParams

    sentences = generate_entities(EntitiesParams(size=sum(TOKEN_SIZES.values())), seed=0)
    features = Features(
        {
            "id": Value("string"),
            "tokens": Sequence(Value("string")),
            "label": Sequence(ClassLabel(names=TAG_NAMES)),
            "template": Value("string"),
        }
    )
    splits, start = {}, 0
    for split, n in TOKEN_SIZES.items():
        part = sentences[start : start + n]
        start += n
        splits[split] = Dataset.from_list(
            [
                {
                    "id": r["id"],
                    "tokens": r["tokens"],
                    "label": r["tags"],
                    "template": r["template"],
                }
                for r in part
            ],
            features=features,
        )
    data = DatasetDict(splits)
    processed = root / "processed"
    meta = DataMeta(["tokens"], TAG_NAMES, ["template"], task="token", label_field="tags")
    write_saved(processed, data, meta)

    texts = [" ".join(t) for t in data["train"]["tokens"]]
    tokenizer = train_tokenizer(texts, kind="wordpiece", vocab_size=120, model_max_length=64)
    tokenized = tokenize_splits(data, tokenizer, ["tokens"], max_length, task="token")
    tok_dir = root / "tokenized"
    write_saved(tok_dir, tokenized, meta.tokenized(max_length, "longest_first"))

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        initializer_range=1.0,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(TAG_NAMES),
        id2label=dict(enumerate(TAG_NAMES)),
        label2id={n: i for i, n in enumerate(TAG_NAMES)},
    )
    model_dir = root / "model"
    BertForTokenClassification(config).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return {"processed": processed, "tokenized": tok_dir, "model": model_dir}
