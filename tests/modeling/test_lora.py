"""LoRA on a pretrained encoder classifier (a tiny BERT saved from a config), its saved
adapter loaded as evaluate and predict load it, the checks of model.lora, the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from nlpflow.errors import UserError
from nlpflow.modeling.build import build_model
from nlpflow.modeling.lora import parameter_counts
from nlpflow.modeling.tokenizers import load_tokenizer
from nlpflow.params import LoraParams, ModelParams, parse_params
from tests.modeling.families import make_family

LABELS = ["no", "yes"]


def _lora_model(
    root: Path,
    task: str = "sequence",
    labels: list[str] = LABELS,
    family: str = "bert",
    **lora: Any,
) -> tuple[Any, Any, Path]:
    base = make_family(family, root, ["a b c", "d e f", "a d"])
    tok = load_tokenizer(base)
    params = ModelParams(name_or_path=str(base), lora=LoraParams(enabled=True, rank=2, **lora))
    torch.manual_seed(0)
    return build_model(params, tok, labels, 16, task), tok, base


def test_a_classifier_trains_its_adapters_and_new_head_only(tmp_path: Path) -> None:
    model, _, _ = _lora_model(tmp_path)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    # BERT query and value (16 -> 16) of 1 layer: rank 2 x (16 + 16) each; the new head
    # (16 x 2 + 2) trains whole.
    assert sum(v for n, v in trainable.items() if "lora_" in n) == 2 * 2 * (16 + 16)
    assert sum(v for n, v in trainable.items() if "lora_" not in n) == 16 * 2 + 2
    assert all("classifier" in n for n in trainable if "lora_" not in n)
    counts = parameter_counts(model)
    assert counts["trainable"] == 128 + 34 < counts["total"]
    assert model.config.nlpflow_lora["target_modules"] == ["query", "value"]


def test_the_saved_adapter_loads_as_base_plus_adapter(tmp_path: Path) -> None:
    from nlpflow.evaluation.predict import load_classifier
    from nlpflow.training.loop import save_adapter_dir, save_pretrained

    model, tok, _ = _lora_model(tmp_path)
    with torch.no_grad():  # as if trained: adapters and head away from their start
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    model.eval()
    batch = tok(["a b c", "d a"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    save_adapter_dir(model, tok, tmp_path / "adapter", LoraParams(enabled=True, rank=2))
    save_pretrained(model, tok, tmp_path / "best")
    for directory in ("adapter", "best"):
        loaded, _ = load_classifier(tmp_path / directory, LABELS, "sequence")
        with torch.no_grad():
            got = loaded(**batch).logits
        # Merged weights: base + adapter up to float rounding.
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), directory
    assert not (tmp_path / "adapter" / "README.md").exists()  # the card is nlpflow's
    merged_only = tmp_path / "merged"
    save_adapter_dir(model, tok, merged_only, LoraParams(enabled=True, merge=True))
    assert list(merged_only.iterdir()) == []  # merge: true keeps no adapter (DVC: empty dir)


def test_lora_needs_a_pretrained_model_and_known_modules(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        parse_params({"model": {"lora": {"enabled": True}}})
    assert "model.lora.enabled needs a pretrained model" in str(err.value)
    with pytest.raises(UserError) as err:
        _lora_model(tmp_path, target_modules=["c_attn"])
    assert "target_modules ['c_attn'] are not modules of this bert model" in str(err.value)


def test_the_card_names_the_base_and_the_adapter() -> None:
    from tests.test_card import card, tiny_params

    params = {k: tiny_params()[k] for k in ("seed", "data", "tokenizer", "model", "train")}
    params["model"] = {**params["model"], "name_or_path": "models/base"}
    params["model"]["lora"] = {**params["model"]["lora"], "enabled": True}
    text = card(params={**params, "evaluate": {"confidence_level": 0.9}})
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["base_model"] == "models/base"
    assert "LoRA (peft) on the base model `models/base`: rank 8, alpha 16" in text
    assert "the adapter alone is in `models/adapter`" in text
    assert "base_model" not in yaml.safe_load(card().split("---\n")[1])


# Each family's labels as its data gives them (meta.json label_names) and its head.
HEADS = {
    "sequence": (LABELS, ["classifier"]),
    "regression": (["score"], ["classifier"]),
    "multilabel": (["news", "sport", "tech"], ["classifier"]),
    "token": (["O", "B-PER", "I-PER"], ["classifier"]),
    "qa": (["start", "end"], ["qa_outputs"]),
    "choice": (["0", "1", "2"], ["classifier"]),
}


@pytest.mark.parametrize("task", list(HEADS))
def test_every_classifier_family_trains_adapters_and_its_head_and_reloads(
    tmp_path: Path, task: str
) -> None:
    """Per family: only the adapters and the task head have gradients after a backward pass,
    and the merged model and the adapter alone reload (as evaluate and predict load them)
    with the trained outputs."""
    from nlpflow.evaluation.predict import load_classifier
    from nlpflow.training.loop import save_adapter_dir, save_pretrained

    labels, heads = HEADS[task]
    model, tok, _ = _lora_model(tmp_path, task, labels)
    if task == "regression":  # what the train side records (the target's standardisation)
        model.config.target_mean, model.config.target_std = 2.0, 0.5
    batch = dict(tok(["a b c", "d a"], padding=True, return_tensors="pt"))
    if task == "choice":  # (2 questions, 3 options, length)
        batch = {k: v.unsqueeze(1).expand(-1, 3, -1).contiguous() for k, v in batch.items()}
    outputs = model(**batch)
    logits = [v for k, v in outputs.items() if k.endswith("logits")]
    sum(t.square().sum() for t in logits).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == with_grad
    assert any("lora_B" in n for n in with_grad)
    assert {n.split(".modules_to_save.")[0].rsplit(".", 1)[-1] for n in with_grad
            if "lora_" not in n} == set(heads)  # fmt: skip

    with torch.no_grad():  # as if trained: adapters and head away from their start
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    model.eval()
    with torch.no_grad():
        expected = [v for k, v in model(**batch).items() if k.endswith("logits")]
    save_adapter_dir(model, tok, tmp_path / "adapter", LoraParams(enabled=True, rank=2))
    save_pretrained(model, tok, tmp_path / "best")
    for directory in ("adapter", "best"):
        loaded, _ = load_classifier(tmp_path / directory, labels, task)
        with torch.no_grad():
            got = [v for k, v in loaded(**batch).items() if k.endswith("logits")]
        for a, b in zip(got, expected, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=0), (task, directory)


def test_a_deberta_classifier_trains_its_new_pooler_too(tmp_path: Path) -> None:
    """DeBERTa's sequence head is a pooler and a classifier, both new: under LoRA both train
    (peft's own default for SEQ_CLS would leave the pooler frozen at its random start)."""
    model, _, _ = _lora_model(tmp_path, family="deberta-v2")
    trainable = {n.split(".modules_to_save.")[0].rsplit(".", 1)[-1]
                 for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n}  # fmt: skip
    assert trainable == {"classifier", "pooler"}
