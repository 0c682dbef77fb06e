"""LoRA on a text-to-text model through the training loop, and a generation model's resume.

The "pretrained" bases are tiny GPT-2 and T5 models built from a config with the tokenizer
the tokenize stage trained, saved to a directory: what a user's local base model is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, load_model

from nlpflow.contracts import TrainInputs
from nlpflow.params import parse_params
from nlpflow.training.loop import TrainResult, train
from nlpflow.training.probe import BatchPlan
from stages import preprocess, tokenize
from tests.conftest import dump_params, tiny_params

PLAN = BatchPlan(device="cpu", batch_size=8, accumulation_steps=2, max_fitting_batch_size=64)
T2T = {"source": "builtin:text2text", "text_fields": ["input"], "label_field": "target"}
TIMINGS = {"seconds", "train_seconds", "examples_per_second", "resumed_from_step"}
# Merging adds alpha / rank * B A into W in float32: outputs agree with base + adapter up to
# float rounding (measured: below 2e-6 on these models), not bit for bit.
MERGE_ATOL = 1e-5


def _params(kind: str, **model: Any) -> dict[str, Any]:
    return tiny_params(
        data={**T2T, "text2text": {"size": 120}},
        tokenizer={"vocab_size": 300},
        model={"text2text": {"kind": kind, "max_input_length": 6, "max_target_length": 6}, **model},
        train={"epochs": 2, "early_stopping": {"metric": "loss", "mode": "min"}, "lr": 0.01},
    )


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenized built-in text2text data and its trained tokenizer (``root/tokenized``,
    ``root/tokenizer``) for the model kind ``request.param``."""
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    params = root / "params.yaml"
    params.write_text(dump_params(_params(kind)))
    a = ["--params", str(params)]
    preprocess.main([*a, "--out", str(root / "processed"), "--metrics", str(root / "p.json"),
                     "--plots", str(root / "plots"), "--report", str(root / "data.md")])  # fmt: skip
    tokenize.main([*a, "--data", str(root / "processed"), "--out", str(root / "tokenized"),
                   "--tokenizer-out", str(root / "tokenizer"), "--metrics",
                   str(root / "t.json"), "--report", str(root / "t.md")])  # fmt: skip
    return root


def _kind(root: Path) -> str:
    return root.name.rstrip("0123456789")


def _train(root: Path, out: Path, params: dict[str, Any], **kwargs: Any) -> TrainResult:
    inputs = TrainInputs.from_params(parse_params(params))
    return train(
        inputs, root / "tokenized", root / "tokenizer", PLAN, out / "models",
        out / "checkpoints", log=lambda _: None, **kwargs,
    )  # fmt: skip


def _save_base(root: Path, out: Path) -> Path:
    """A tiny model of ``root``'s kind from a config (seeded), saved with the tokenizer."""
    from nlpflow.families.text2text.modeling import build_text2text_model
    from nlpflow.modeling.tokenizers import load_tokenizer

    params = parse_params(_params(_kind(root)))
    tok = load_tokenizer(root / "tokenizer")
    torch.manual_seed(7)
    model = build_text2text_model(params.model, params.model.text2text, tok)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def _batch(root: Path) -> dict[str, torch.Tensor]:
    from datasets import load_from_disk

    from nlpflow.families.train import train_family
    from nlpflow.modeling.tokenizers import load_tokenizer

    split = load_from_disk(str(root / "tokenized"))["validation"]
    pad = load_tokenizer(root / "tokenizer").pad_token_id
    padded = train_family("text2text").padded_split(split, pad)
    return padded.batch(torch.arange(min(8, len(padded))), torch.device("cpu"))


def _logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_lora_trains_only_the_adapters_and_its_saved_forms_agree(
    data: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    from nlpflow.evaluation.predict import load_classifier
    from nlpflow.families.text2text.model import Text2TextModel
    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer

    torch.set_num_threads(1)
    kind = _kind(data)
    base_dir = _save_base(data, tmp_path / "base")
    lora = {"enabled": True, "rank": 4, "alpha": 8}
    params = _params(kind, name_or_path=str(base_dir), lora=lora)
    result = _train(data, tmp_path, params)

    # Counted: rank x (in + out) per adapted projection. GPT-2 c_attn: 16 -> 48 in each of
    # 1 layer; T5 q and v (16 -> 16) in the encoder's self-attention and the decoder's
    # self- and cross-attention.
    expected = 4 * (16 + 48) if kind == "causal" else 4 * (16 + 16) * 2 * 3
    counts = result.summary["parameters"]
    base_model = Text2TextModel().auto_class().from_pretrained(str(base_dir))
    base_total = sum(p.numel() for p in base_model.parameters())  # tied weights once
    base = base_model.state_dict()  # tied weights under each name, one storage
    assert counts == {
        "total": base_total + expected,
        "trainable": expected,
        "trainable_share": round(expected / (base_total + expected), 6),
    }
    assert result.summary["lora"]["target_modules"] == (
        ["c_attn"] if kind == "causal" else ["q", "v"]
    )
    assert result.summary["lora"]["base_model"] == str(base_dir)

    # Only the adapters changed: every base tensor of the last checkpoint equals the base's.
    step = max(
        (p for p in (tmp_path / "checkpoints").glob("step-*")), key=lambda p: int(p.name[5:])
    )
    trained = load_file(str(step / "model.safetensors"))
    compared, adapters = set(), []
    for name, value in trained.items():
        if "lora_" in name:
            adapters.append(value)
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(value, base[key]), name
        compared.add(key)
    # Every base tensor was compared: a name left out is tied to one compared (GPT-2's
    # lm_head is its wte, T5's embeddings are `shared`).
    ptrs = {base[k].data_ptr() for k in compared}
    assert all(base[k].data_ptr() in ptrs for k in set(base) - compared)
    assert sum(v.numel() for v in adapters) == expected
    assert all(v.abs().sum() > 0 for v in adapters)  # B starts at zero: it trained

    # The saved adapter (models/adapter) on the base gives the in-memory model's logits,
    # bit for bit: the last checkpoint's weights in a freshly built LoRA model.
    adapter_dir = tmp_path / "models" / "adapter"
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir)
    assert json.loads((adapter_dir / "config.json").read_text())["text2text"]["kind"] == kind
    batch = _batch(data)
    tok = load_tokenizer(data / "tokenizer")
    in_memory = build_model(parse_params(params).model, tok, [], 0, "text2text")
    load_model(in_memory, str(tmp_path / "checkpoints" / "best" / "model.safetensors"))
    unmerged = PeftModel.from_pretrained(base_model, str(adapter_dir))
    assert torch.equal(_logits(unmerged, batch), _logits(in_memory, batch))

    # Merged (models/best, and the adapter directory as evaluate/predict load it) gives
    # base + adapter's outputs within float rounding, and the same greedy generations.
    best, _ = load_classifier(tmp_path / "models" / "best", [], "text2text")
    loaded, _ = load_classifier(adapter_dir, [], "text2text")
    reference = _logits(in_memory, batch)
    for model in (best, loaded):
        assert torch.allclose(_logits(model, batch), reference, atol=MERGE_ATOL, rtol=0)
    prompts = [
        row[: int(n)]
        for row, n in zip(batch["input_ids"].tolist(), _prompt_lengths(batch, kind), strict=True)
    ]
    from nlpflow.families.text2text.modeling import generate
    from nlpflow.families.text2text.params import GenerationParams

    gen = GenerationParams(max_new_tokens=6)
    expected_out = generate(in_memory, tok, prompts, gen)
    assert generate(best, tok, prompts, gen) == expected_out
    assert generate(loaded, tok, prompts, gen) == expected_out

    # nlpflow predict on the adapter directory (with the nlpflow.json the stage writes)
    # generates what it does on models/best.
    from nlpflow.data.saved import read_meta
    from nlpflow.modelinfo import write_model_info
    from nlpflow.predict import predict_file

    meta = read_meta(data / "tokenized", tokenized=True)
    source = tmp_path / "new.jsonl"
    source.write_text("".join(json.dumps({"input": x}) + "\n" for x in ["sort c b a", "spell 4 2"]))
    outputs = []
    for directory in (adapter_dir, tmp_path / "models" / "best"):
        write_model_info(directory, meta)
        predict_file(directory, source, tmp_path / "out.jsonl", log=lambda _: None)
        outputs.append((tmp_path / "out.jsonl").read_text())
    assert outputs[0] == outputs[1] and outputs[0].count("prediction") == 2

    # The probe and the range test build the model as train does: what a LoRA step holds
    # (gradients and optimizer state of the adapters only) and the rate the adapters take.
    # One kind is enough (both go through build_model); the probe's model is checked at its
    # seam (its search times thread counts, seconds on a busy machine).
    if kind != "seq2seq":
        return
    from nlpflow.contracts import LrRangeInputs, ProbeInputs
    from nlpflow.modeling.lora import parameter_counts
    from nlpflow.training.lr_range import run_range_test

    short = parse_params({**params, "lr_range": {**params["lr_range"], "steps": 10}})
    probed = build_model(
        ProbeInputs.from_params(short).model.with_dropout(0.1), tok, [], 16, "text2text"
    )
    assert parameter_counts(probed) == counts
    ranged = run_range_test(
        LrRangeInputs.from_params(short), data / "tokenized", data / "tokenizer", PLAN,
        log=lambda _: None,
    )  # fmt: skip
    assert ranged.summary()["parameters"] == counts


def _prompt_lengths(batch: dict[str, torch.Tensor], kind: str) -> list[int]:
    if kind == "seq2seq":
        return batch["attention_mask"].sum(dim=1).tolist()
    # causal rows are prompt + target: the prompt ends where the labels start scoring
    first_scored = (batch["labels"] != -100).int().argmax(dim=1)
    return (first_scored + 1).tolist()


@pytest.mark.parametrize(("crash_at", "lora"), [(4, False), (9, False), (9, True)])
def test_interrupted_and_resumed_equals_uninterrupted(
    data: Path, tmp_path: Path, crash_at: int, lora: bool
) -> None:
    """A generation model killed after a checkpoint (mid-epoch, and in the second epoch;
    fine-tuned whole or with LoRA) resumes to the uninterrupted run's weights, history and
    metrics, bit for bit."""

    class Interrupted(Exception):
        pass

    torch.set_num_threads(1)
    model: dict[str, Any] = {}
    if lora:
        model = {
            "name_or_path": str(_save_base(data, tmp_path / "base")),
            "lora": {"enabled": True},
        }
    params = _params(_kind(data), **model)
    params["train"]["checkpoint_every_steps"] = 1
    full = _train(data, tmp_path / "full", params)

    def crash(step: int) -> None:
        if step == crash_at:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(data, tmp_path / "cut", params, on_checkpoint=crash)
    resumed = _train(data, tmp_path / "cut", params)
    assert resumed.summary["resumed_from_step"] == crash_at
    for name in ("last", "best"):
        a = load_file(str(tmp_path / "full/models" / name / "model.safetensors"))
        b = load_file(str(tmp_path / "cut/models" / name / "model.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    if lora:
        a = load_file(str(tmp_path / "full/models/adapter/adapter_model.safetensors"))
        b = load_file(str(tmp_path / "cut/models/adapter/adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.steps == full.steps and resumed.epochs == full.epochs
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMINGS}  # noqa: E731
    assert strip(resumed.summary) == strip(full.summary)
