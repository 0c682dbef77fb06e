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


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 1), ("LOC", 3, 3)}),
        (["I-PER", "I-PER", "O"], {("PER", 0, 1)}),  # lenient: I- after O starts one
        (["B-PER", "B-PER"], {("PER", 0, 0), ("PER", 1, 1)}),
        (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 0), ("LOC", 1, 2)}),
        (["O", "O"], set()),
        (["B-ORG"], {("ORG", 0, 0)}),
    ],
)
def test_entities_read_like_conlleval(tags: list[str], expected: set[tuple[str, int, int]]) -> None:
    from nlpflow.training.metrics import entities

    assert entities(tags) == expected


def test_entity_f1_matches_seqeval_default_mode() -> None:
    from nlpflow.training.metrics import entity_f1, is_bio

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    true = [[1, 2, 0, 3], [0, 3, 4, 0], [1, 0, 0, 0]]
    pred = [[1, 2, 0, 0], [0, 3, 0, 0], [2, 0, 0, 3]]
    # true: PER(0-1), LOC(3), LOC(1-2), PER(0) = 4; pred: PER(0-1), LOC(1), PER(0), LOC(3) = 4;
    # correct: PER(0-1) in row 0 and PER(0) in row 2 = 2 -> F1 = 2 * 2 / 8.
    assert entity_f1(true, pred, names) == pytest.approx(0.5)
    assert is_bio(names) and not is_bio(["no", "yes"])


def test_token_task_info_and_alignment(tiny_token_data: tuple[Path, Path]) -> None:
    from nlpflow.training.data import data_info

    data_dir, tok_dir = tiny_token_data
    data = load_tokenized(data_dir)
    info = data_info(data, data_dir)
    assert info.task == "token" and info.label_names == ["O", "B-PER", "I-PER", "B-LOC"]
    split = PaddedSplit.from_dataset(data["validation"], load_tokenizer(tok_dir).pad_token_id)
    assert split.token_task and split.labels.shape == split.input_ids.shape
    row = data["validation"][0]
    assert split.labels[0, : row["length"]].tolist() == row["labels"]
    assert (split.labels[0, row["length"] :] == -100).all()
    assert split.targets(torch.tensor([0])).tolist() == [t for t in row["labels"] if t != -100]


def test_token_task_without_label_names_is_one_clear_error(
    tiny_token_data: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from nlpflow.errors import UserError
    from nlpflow.training.data import data_info

    copy = tmp_path / "tokenized"
    shutil.copytree(tiny_token_data[0], copy)
    (copy / "meta.json").write_text('{"task": "token"}')
    with pytest.raises(UserError, match="lacks the 'label_names'"):
        data_info(load_tokenized(copy), copy)


def test_sgd_with_momentum_uses_the_same_groups(tiny_data: tuple[Path, Path]) -> None:
    _, tok = tiny_data
    model = build_model(tiny_params().model, load_tokenizer(tok), LABELS, 16)
    opt = build_optimizer(model, lr=0.1, weight_decay=0.01, kind="sgd", momentum=0.8)
    assert isinstance(opt, torch.optim.SGD)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert opt.param_groups[0]["momentum"] == 0.8


def test_initializer_range_sets_the_scale_of_a_model_from_the_config(
    tiny_data: tuple[Path, Path],
) -> None:
    import dataclasses

    _, tok = tiny_data
    tokenizer = load_tokenizer(tok)

    def weight_std(initializer_range: float) -> float:
        params = dataclasses.replace(tiny_params().model, initializer_range=initializer_range)
        torch.manual_seed(0)
        model = build_model(params, tokenizer, LABELS, 16)
        assert model.config.initializer_range == initializer_range
        w = model.bert.encoder.layer[0].attention.self.query.weight
        return float(w.detach().std())

    # Linear weights are drawn from N(0, initializer_range^2): the sample std tracks it.
    assert weight_std(0.02) == pytest.approx(0.02, rel=0.2)
    assert weight_std(0.1) == pytest.approx(0.1, rel=0.2)


def test_pretrained_dropout_and_token_head(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    from nlpflow.params import ModelParams
    from tests.training.tiny import make_tiny_data

    _, tok_dir = make_tiny_data(tmp_path / "d", n_train=8, n_val=4, n_test=4)
    tokenizer = load_tokenizer(tok_dir)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    BertModel(config).save_pretrained(tmp_path / "pretrained")
    params = ModelParams(
        name_or_path=str(tmp_path / "pretrained"), dropout=0.3, freeze_embeddings=True
    )
    model = build_model(params, tokenizer, ["O", "B-X"], 16, task="token")
    assert type(model).__name__ == "BertForTokenClassification"
    assert model.config.hidden_dropout_prob == 0.3 == model.config.attention_probs_dropout_prob
    assert model.config.id2label == {0: "O", 1: "B-X"}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("bert.embeddings.") for n in frozen)
    kept = build_model(
        ModelParams(name_or_path=str(tmp_path / "pretrained"), dropout=None),
        tokenizer,
        ["a", "b"],
        16,
    )
    assert kept.config.hidden_dropout_prob == 0.1  # the pretrained config's own
