"""Tiny models trained through the real stages (preprocess, tokenize, train) for the predict
and model card tests: a pair task (built-in anagram), a single-text task (a CSV file) and a
token task (built-in entities). The probe is skipped: its plan is written by hand."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from tests.conftest import dump_params, tiny_params

# Short single texts whose label is whether "good" occurs: learnable in a few epochs.
WORDS = ["fine", "bad", "dull", "ok", "nice", "poor", "grand", "weak", "calm", "loud"]


def single_text_csv(path: Path, n: int = 160, seed: int = 0) -> Path:
    """A CSV of ``text,label`` rows (label ``pos`` when the text holds "good")."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
            positive = i % 2 == 0
            if positive:
                words.insert(rng.randrange(len(words) + 1), "good")
            writer.writerow([" ".join(words), "pos" if positive else "neg"])
    return path


def train_tiny(root: Path, epochs: int = 2, **override: Any) -> Path:
    """Run preprocess, tokenize and train in-process under ``root``; return models/best."""
    from stages.preprocess import main as preprocess
    from stages.tokenize import main as tokenize
    from stages.train import main as train

    root.mkdir(parents=True, exist_ok=True)
    train_override = {"epochs": epochs, "effective_batch_size": 16, "lr": 0.003}
    params = tiny_params(**{**override, "train": {**train_override, **override.get("train", {})}})
    (root / "params.yaml").write_text(dump_params(params))
    p = ["--params", str(root / "params.yaml")]
    preprocess(
        [*p, "--out", str(root / "data/processed"), "--metrics", str(root / "m/pre.json"),
         "--plots", str(root / "plots"), "--report", str(root / "r/data.md")]
    )  # fmt: skip
    tokenize(
        [*p, "--data", str(root / "data/processed"), "--out", str(root / "data/tokenized"),
         "--tokenizer-out", str(root / "models/tokenizer"), "--metrics", str(root / "m/tok.json"),
         "--report", str(root / "r/tok.md")]
    )  # fmt: skip
    plan = root / "data/probe/plan.json"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(
        json.dumps(
            {"device": "cpu", "batch_size": 16, "accumulation_steps": 1,
             "max_fitting_batch_size": 16}
        )
    )  # fmt: skip
    train(
        [*p, "--data", str(root / "data/tokenized"), "--tokenizer", str(root / "models/tokenizer"),
         "--probe", str(plan), "--models", str(root / "models"),
         "--checkpoints", str(root / "checkpoints"), "--metrics", str(root / "m/train.json"),
         "--plots", str(root / "plots/train")]
    )  # fmt: skip
    return root / "models" / "best"
