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


def _lora_model(root: Path, task: str = "sequence", **lora: Any) -> tuple[Any, Any, Path]:
    base = make_family("bert", root, ["a b c", "d e f", "a d"])
    tok = load_tokenizer(base)
    params = ModelParams(name_or_path=str(base), lora=LoraParams(enabled=True, rank=2, **lora))
    torch.manual_seed(0)
    return build_model(params, tok, LABELS, 16, task), tok, base


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
    with pytest.raises(UserError) as err:
        _lora_model(tmp_path, task="regression")
    assert "model.lora is wired for text2text, sequence and token tasks" in str(err.value)


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
