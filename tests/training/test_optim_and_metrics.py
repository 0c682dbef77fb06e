"""No weight decay on biases and LayerNorm weights; macro F1 matches scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nlpflow.modeling.build import build_model
from nlpflow.modeling.tokenizers import load_tokenizer
from nlpflow.training.data import PaddedSplit, load_tokenized
from nlpflow.training.metrics import evaluate, f1_macro
from nlpflow.training.optim import build_optimizer, param_groups
from tests.training.tiny import LABELS, tiny_params


def test_no_decay_on_bias_and_layernorm(tiny_data: tuple[Path, Path]) -> None:
    _, tok = tiny_data
    model = build_model(tiny_params().model, load_tokenizer(tok), LABELS, 16)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert decayed.isdisjoint(not_decayed)
    assert decayed | not_decayed == set(names.values()), "every parameter in exactly one group"
    for name in not_decayed:
        assert name.endswith(".bias") or "LayerNorm" in name, name
    for name in decayed:
        assert not name.endswith(".bias") and "LayerNorm" not in name, name
    assert any("LayerNorm.weight" in n for n in not_decayed)
    assert "classifier.weight" in decayed
    assert "bert.embeddings.word_embeddings.weight" in decayed

    opt = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_layernorm_found_by_type_not_name() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = param_groups(model, 0.01)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 3  # linear bias, norm weight, norm bias


@pytest.mark.parametrize("seed", range(5))
def test_f1_macro_matches_sklearn(seed: int) -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    k = 4
    y_true = rng.integers(0, k, 50)
    y_pred = rng.integers(0, k - 1, 50)  # class 3 never predicted: a 0/0 precision
    expected = f1_score(y_true, y_pred, average="macro", labels=list(range(k)), zero_division=0)
    assert f1_macro(y_true, y_pred, k) == pytest.approx(expected)


def test_evaluate_on_tiny_data(tiny_data: tuple[Path, Path]) -> None:
    data_dir, tok_dir = tiny_data
    tokenizer = load_tokenizer(tok_dir)
    split = PaddedSplit.from_dataset(load_tokenized(data_dir)["validation"], tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = build_model(tiny_params().model, tokenizer, LABELS, 16)
    small = evaluate(model, split, batch_size=5, device=torch.device("cpu"))
    large = evaluate(model, split, batch_size=64, device=torch.device("cpu"))
    assert set(small) == {"loss", "accuracy", "f1_macro"}
    assert small["accuracy"] == large["accuracy"] and small["f1_macro"] == large["f1_macro"]
    assert small["loss"] == pytest.approx(large["loss"], rel=1e-5)
    assert model.training, "evaluate restores the training mode"


def test_dynamic_padding_pads_to_the_longest_in_the_batch(tiny_data: tuple[Path, Path]) -> None:
    data_dir, tok_dir = tiny_data
    pad = load_tokenizer(tok_dir).pad_token_id
    raw = load_tokenized(data_dir)["train"]
    split = PaddedSplit.from_dataset(raw, pad)
    index = torch.tensor([0, 1, 2])
    batch = split.batch(index, torch.device("cpu"))
    lengths = [raw[i]["length"] for i in range(3)]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert batch["input_ids"][row, :n].tolist() == raw[row]["input_ids"]
        assert (batch["input_ids"][row, n:] == pad).all()
    assert batch["token_type_ids"][0, : lengths[0]].tolist() == raw[0]["token_type_ids"]
