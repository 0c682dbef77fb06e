"""Tiny, self-made data for the training tests: anagram-like pairs of letter sequences.

``("a b c d", "d c b a")`` is a rearrangement ("yes"); a near miss with one letter
swapped for another is "no". Letters are space-separated so every letter is one token.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlpflow.contracts import TrainInputs
from nlpflow.data.saved import DataMeta, write_saved
from nlpflow.params import parse_params

LABELS = ["no", "yes"]
# For subprocesses, to match one_torch_thread() in the test process.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ALPHABET = "abcdefghij"


def make_pairs(
    n: int, seed: int, lengths: tuple[int, int] = (3, 6), alphabet: str = ALPHABET
) -> list[tuple[str, str, int]]:
    """``n`` pairs ``(first, second, label)``, half of them rearrangements."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        word = [rng.choice(alphabet) for _ in range(rng.randint(*lengths))]
        other = word[:]
        rng.shuffle(other)
        label = i % 2
        if label == 0:  # a near miss: one letter replaced by one the word does not have
            pos = rng.randrange(len(other))
            other[pos] = rng.choice([c for c in alphabet if c not in word])
        rows.append((" ".join(word), " ".join(other), label))
    return rows


def make_tiny_data(
    root: Path,
    n_train: int = 96,
    n_val: int = 32,
    n_test: int = 32,
    seed: int = 0,
    lengths: tuple[int, int] = (3, 6),
    alphabet: str = ALPHABET,
) -> tuple[Path, Path]:
    """Write ``root/tokenized`` (DatasetDict) and ``root/tokenizer``; return both paths.

    ``lengths`` bounds the word length; a pair is ``2 * length + 3`` tokens long.
    """
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    from nlpflow.modeling.tokenizers import train_tokenizer

    splits = {
        name: make_pairs(n, seed + i, lengths, alphabet)
        for i, (name, n) in enumerate([("train", n_train), ("validation", n_val), ("test", n_test)])
    }
    texts = [t for first, second, _ in splits["train"] for t in (first, second)]
    tokenizer = train_tokenizer(texts, kind="wordpiece", vocab_size=64, model_max_length=64)

    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "token_type_ids": Sequence(Value("int8")),
            "labels": ClassLabel(names=LABELS),
            "length": Value("int32"),
        }
    )
    out: dict[str, Dataset] = {}
    for name, rows in splits.items():
        enc = tokenizer([r[0] for r in rows], [r[1] for r in rows])
        columns: dict[str, list[Any]] = {
            "input_ids": enc["input_ids"],
            "token_type_ids": enc["token_type_ids"],
            "labels": [r[2] for r in rows],
            "length": [len(ids) for ids in enc["input_ids"]],
        }
        out[name] = Dataset.from_dict(columns, features=features)
    data_dir, tok_dir = root / "tokenized", root / "tokenizer"
    datasets.disable_progress_bars()  # test logs stay readable
    meta = DataMeta(["first", "second"], list(LABELS), task="sequence")
    write_saved(data_dir, DatasetDict(out), meta.tokenized(64, "longest_first"))
    tokenizer.save_pretrained(str(tok_dir))
    return data_dir, tok_dir


TAGS = ["O", "B-PER", "I-PER", "B-LOC"]
FIRST = ["ada", "alan", "grace", "ken"]
LAST = ["lovelace", "turing", "hopper"]
PLACES = ["paris", "lagos", "tokyo"]
FILLER = ["the", "met", "in", "and", "went", "to", "saw", "today"]


def make_sentences(n: int, seed: int) -> list[tuple[list[str], list[int]]]:
    """``n`` sentences with a person (1-2 words) and sometimes a place, tagged in BIO."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words: list[str] = []
        tags: list[int] = []
        for part in rng.sample(["per", "loc", "fill", "fill"], 4):
            if part == "per":
                words.append(rng.choice(FIRST))
                tags.append(1)
                if rng.random() < 0.5:
                    words.append(rng.choice(LAST))
                    tags.append(2)
            elif part == "loc":
                words.append(rng.choice(PLACES))
                tags.append(3)
            else:
                words.append(rng.choice(FILLER))
                tags.append(0)
        rows.append((words, tags))
    return rows


def make_tiny_token_data(
    root: Path, n_train: int = 64, n_val: int = 24, n_test: int = 24, seed: int = 0
) -> tuple[Path, Path]:
    """A token-classification ``root/tokenized`` (labels aligned to sub-tokens, -100 on
    special tokens and continuation pieces, meta.json with the tag names) and its tokenizer."""
    import datasets
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    from nlpflow.modeling.tokenizers import train_tokenizer

    splits = {
        name: make_sentences(n, seed + i)
        for i, (name, n) in enumerate([("train", n_train), ("validation", n_val), ("test", n_test)])
    }
    texts = [" ".join(words) for words, _ in splits["train"]]
    tokenizer = train_tokenizer(texts, kind="wordpiece", vocab_size=48, model_max_length=64)
    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "token_type_ids": Sequence(Value("int8")),
            "labels": Sequence(Value("int32")),
            "length": Value("int32"),
        }
    )
    out: dict[str, Dataset] = {}
    for name, rows in splits.items():
        columns: dict[str, list[Any]] = {k: [] for k in features}
        for words, tags in rows:
            enc = tokenizer(words, is_split_into_words=True)
            labels, previous = [], None
            for word in enc.word_ids():
                labels.append(-100 if word is None or word == previous else tags[word])
                previous = word
            columns["input_ids"].append(enc["input_ids"])
            columns["token_type_ids"].append(enc["token_type_ids"])
            columns["labels"].append(labels)
            columns["length"].append(len(enc["input_ids"]))
        out[name] = Dataset.from_dict(columns, features=features)
    data_dir, tok_dir = root / "tokenized", root / "tokenizer"
    datasets.disable_progress_bars()
    meta = DataMeta(["tokens"], list(TAGS), task="token")
    write_saved(data_dir, DatasetDict(out), meta.tokenized(64, "longest_first"))
    tokenizer.save_pretrained(str(tok_dir))
    return data_dir, tok_dir


def tiny_params(**train: Any) -> TrainInputs:
    """The train stage's inputs for a 1-layer, hidden-16 model; keyword arguments override
    ``train``."""
    train_section = {
        "epochs": 3,
        "lr": 3e-3,
        "warmup_ratio": 0.1,
        "effective_batch_size": 16,
        "early_stopping": {"metric": "f1_macro", "mode": "max", "patience": 10},
    }
    train_section.update(train)
    params = parse_params(
        {
            "seed": 7,
            "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
            "train": train_section,
        }
    )
    return TrainInputs.from_params(params)


def write_params(path: Path, params: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for the duration, then restore the thread count.

    Why: on a 2-core machine shared with other jobs, torch's default 2 OpenMP threads
    spin-wait for each other and tiny steps get up to 50x slower; one thread keeps these
    tests' run time predictable. Results are deterministic at any fixed thread count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
