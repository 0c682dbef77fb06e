"""Text-to-text models: tiny encoder-decoder and decoder-only models from a config, encoding,
losses, batched generation and the prompted baseline's prompts (no download)."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.families.text2text.data import generate_text2text
from nlpflow.families.text2text.encoding import (
    Text2TextEncoder,
    prepare_tokenizer,
    train_text2text_tokenizer,
)
from nlpflow.families.text2text.modeling import (
    IGNORE,
    build_text2text_model,
    choose_shots,
    collate,
    few_shot_prompt,
    generate,
    target_token_losses,
)
from nlpflow.families.text2text.params import (
    GenerationParams,
    Text2TextDataParams,
    Text2TextModelParams,
)
from nlpflow.params import ModelParams

KINDS = ("seq2seq", "causal")
ROWS = generate_text2text(Text2TextDataParams(size=240, kinds={"sort": 1.0}, max_letters=4), 0)
INPUTS = [r["input"] for r in ROWS]
TARGETS = [r["target"] for r in ROWS]


def _tiny(kind: str, **kw: Any) -> tuple[ModelParams, Text2TextModelParams]:
    """A tiny model's params; ``kw`` of ``model.text2text`` go there, the rest to ``model``."""
    t2t_keys = {f.name for f in dataclasses.fields(Text2TextModelParams)}
    sizes: dict[str, Any] = {
        "hidden_size": 32,
        "num_layers": 1,
        "num_heads": 2,
        "intermediate_size": 64,
        "dropout": 0.0,
    }
    sizes.update({k: v for k, v in kw.items() if k not in t2t_keys})
    t2t = Text2TextModelParams(kind=kind, **{k: v for k, v in kw.items() if k in t2t_keys})
    return ModelParams(**sizes), t2t


def _setup(kind: str, **kw: Any) -> tuple[Any, Any, Text2TextModelParams]:
    import torch

    torch.manual_seed(0)
    model_params, params = _tiny(kind, **kw)
    tok = train_text2text_tokenizer([*INPUTS, *TARGETS, params.prompt_template])
    return tok, build_text2text_model(model_params, params, tok), params


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_model_trains_and_generates(kind: str) -> None:
    """A plain loop on the built-in task: the loss falls well below its start, and the model
    generates one output per prompt, most of them ended by the end token."""
    import torch

    torch.set_num_threads(1)
    tok, model, params = _setup(kind)
    encoder = Text2TextEncoder(tok, params)
    examples = encoder.encode(INPUTS, TARGETS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = random.Random(0)
    losses = []
    model.train()
    for _ in range(80):  # ~2 s on one core
        batch = collate(rng.sample(examples, 16), kind, tok.pad_token_id)
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < 0.4 * first, (first, last)
    prompts = [encoder.prompt_ids(x) for x in INPUTS[:16]]
    out = generate(model, tok, prompts, GenerationParams(max_new_tokens=8, batch_size=16))
    assert len(out) == 16
    assert sum(g.ended for g in out) >= 8
    assert all(g.tokens <= 8 for g in out)
    assert sum(g.text == t for g, t in zip(out, TARGETS[:16], strict=True)) >= 1


def test_causal_labels_score_the_target_only() -> None:
    tok, _, params = _setup("causal")
    encoder = Text2TextEncoder(tok, params)
    (ex,) = encoder.encode(["sort c b"], ["b c"])
    assert tok.convert_ids_to_tokens(ex.prompt_ids) == ["[BOS]", "sort", "c", "b", "="]
    assert tok.convert_ids_to_tokens(ex.target_ids) == ["b", "c", "[EOS]"]
    batch = collate([ex, *encoder.encode(["sort a"], ["a"])], "causal", tok.pad_token_id)
    assert batch["labels"][0].tolist() == [IGNORE] * 5 + ex.target_ids
    # the shorter row: padded, its padding neither attended nor scored
    assert batch["attention_mask"][1].tolist() == [1] * 6 + [0] * 2
    assert batch["labels"][1].tolist()[-3:] == [tok.eos_token_id, IGNORE, IGNORE]


def test_seq2seq_encoding_ends_with_eos() -> None:
    tok, _, params = _setup("seq2seq")
    (ex,) = Text2TextEncoder(tok, params).encode(["sort c b"], ["b c"])
    assert tok.convert_ids_to_tokens(ex.prompt_ids) == ["sort", "c", "b", "=", "[EOS]"]
    assert tok.convert_ids_to_tokens(ex.target_ids) == ["b", "c", "[EOS]"]


@pytest.mark.parametrize("kind", KINDS)
def test_truncation_keeps_the_template_and_the_end_token(kind: str) -> None:
    tok, _, params = _setup(kind, max_input_length=3, max_target_length=3)
    encoder = Text2TextEncoder(tok, params)
    (ex, short) = encoder.encode(["sort d c b a", "sort a"], ["a b c d", "a"])
    prompt = tok.convert_ids_to_tokens(ex.prompt_ids)
    assert [t for t in prompt if t not in ("[BOS]", "[EOS]")] == ["sort", "d", "c", "="]
    assert tok.convert_ids_to_tokens(ex.target_ids) == ["a", "b", "[EOS]"]
    stats = encoder.stats.summary()
    assert stats["inputs_truncated"] == 1 and stats["targets_truncated"] == 1
    assert stats["input_truncation_rate"] == 0.5
    assert stats["input_tokens"]["max"] == 5.0  # sort d c b a: its own 5 tokens
    assert stats["target_tokens"]["max"] == 5.0  # a b c d [EOS]
    assert len(short.target_ids) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_target_losses_give_the_models_loss_and_a_hand_computed_perplexity(kind: str) -> None:
    import torch

    tok, model, params = _setup(kind)
    model.eval()
    examples = Text2TextEncoder(tok, params).encode(INPUTS[:6], TARGETS[:6])
    batch = collate(examples, kind, tok.pad_token_id)
    sums, counts = target_token_losses(model, batch)
    with torch.no_grad():
        mean = model(**batch).loss.item()
    assert sums.sum().item() / counts.sum().item() == pytest.approx(mean, rel=1e-5)
    # by hand: one example alone, the log-probability of each target token given what precedes
    ex = examples[0]
    with torch.no_grad():
        if kind == "causal":
            ids = torch.tensor([ex.prompt_ids + ex.target_ids])
            logp = model(input_ids=ids).logits[0].log_softmax(-1)
            start = len(ex.prompt_ids)
            token_losses = [-logp[start + i - 1, t].item() for i, t in enumerate(ex.target_ids)]
        else:
            decoder = [model.config.decoder_start_token_id, *ex.target_ids[:-1]]
            logp = (
                model(
                    input_ids=torch.tensor([ex.prompt_ids]),
                    decoder_input_ids=torch.tensor([decoder]),
                )
                .logits[0]
                .log_softmax(-1)
            )
            token_losses = [-logp[i, t].item() for i, t in enumerate(ex.target_ids)]
    assert counts[0].item() == len(ex.target_ids)
    assert sums[0].item() == pytest.approx(sum(token_losses), rel=1e-5)
    assert math.exp(sums[0].item() / counts[0].item()) == pytest.approx(
        math.exp(sum(token_losses) / len(token_losses)), rel=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_batched_generation_equals_one_at_a_time(kind: str) -> None:
    """Prompts of different lengths: padding (left for a decoder, right for an encoder)
    changes no greedy output."""
    tok, model, params = _setup(kind)
    encoder = Text2TextEncoder(tok, params)
    texts = ["sort a", "sort d c b a", "sort b a", "sort c"]
    prompts = [encoder.prompt_ids(x) for x in texts]
    gen = GenerationParams(max_new_tokens=5, batch_size=4)
    batched = generate(model, tok, prompts, gen)
    single = generate(model, tok, prompts, GenerationParams(max_new_tokens=5, batch_size=1))
    assert batched == single
    # an untrained model rarely stops: those are truncated at max_new_tokens
    assert all(g.tokens == 5 for g in batched if not g.ended)


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_is_seeded_and_beams_run(kind: str) -> None:
    tok, model, params = _setup(kind)
    encoder = Text2TextEncoder(tok, params)
    prompts = [encoder.prompt_ids(x) for x in INPUTS[:4]]
    sample = GenerationParams(max_new_tokens=6, do_sample=True, seed=3, temperature=2.0)
    first = generate(model, tok, prompts, sample)
    assert first == generate(model, tok, prompts, sample)
    other = GenerationParams(max_new_tokens=6, do_sample=True, seed=4, temperature=2.0)
    assert first != generate(model, tok, prompts, other)
    beams = generate(model, tok, prompts, GenerationParams(max_new_tokens=6, num_beams=3))
    assert len(beams) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_loads_from_a_directory(kind: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok, model, params = _setup(kind)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    loaded = build_text2text_model(*_tiny(kind, name_or_path=str(tmp_path)), loaded_tok)
    encoder = Text2TextEncoder(loaded_tok, params)
    prompts = [encoder.prompt_ids(x) for x in INPUTS[:3]]
    gen = GenerationParams(max_new_tokens=4)
    assert generate(loaded, loaded_tok, prompts, gen) == generate(model, tok, prompts, gen)
    other = "causal" if kind == "seq2seq" else "seq2seq"
    with pytest.raises(UserError) as err:
        build_text2text_model(*_tiny(other, name_or_path=str(tmp_path)), loaded_tok)
    assert f"but model.text2text.kind is {other}; set model.text2text.kind: {kind}" in str(
        err.value
    )


def test_a_tokenizer_without_padding_pads_with_its_end_token() -> None:
    tok, _, _ = _setup("causal")
    tok.pad_token = None
    notes = prepare_tokenizer(tok, "causal")
    assert tok.pad_token == "[EOS]"
    assert notes == ["the tokenizer has no padding token: batches are padded with '[EOS]'"]
    tok.eos_token = None
    with pytest.raises(UserError) as err:
        prepare_tokenizer(tok, "causal")
    assert "has no end-of-text token" in str(err.value)


def test_char_tokenizer_is_refused() -> None:
    with pytest.raises(UserError) as err:
        train_text2text_tokenizer(["a b"], kind="char")
    assert "tokenizer.kind 'char' cannot be used for text generation" in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
def test_few_shot_prompt_uses_the_training_template(kind: str) -> None:
    tok, _, params = _setup(kind)
    encoder = Text2TextEncoder(tok, params)
    shots = choose_shots(INPUTS, TARGETS, 2, seed=5)
    assert shots == choose_shots(INPUTS, TARGETS, 2, seed=5)
    assert shots != choose_shots(INPUTS, TARGETS, 2, seed=6)
    ids, used = few_shot_prompt(encoder, shots, "sort b a", limit=None)
    assert used == 2
    text = tok.decode(ids, skip_special_tokens=True)
    (x1, y1), (x2, y2) = shots
    assert text == f"{x1} = {y1} {x2} = {y2} sort b a ="
    if kind == "causal":  # each shot ends as a training example ends
        assert tok.convert_ids_to_tokens(ids).count("[EOS]") == 2
    zero, none_used = few_shot_prompt(encoder, [], "sort b a", limit=None)
    assert none_used == 0 and zero == encoder.prompt_ids("sort b a")
    limited, used = few_shot_prompt(encoder, shots, "sort b a", limit=len(zero) + 3)
    assert used == 0 and limited == zero


@pytest.mark.parametrize("kind", KINDS)
def test_prompted_baseline(kind: str) -> None:
    from nlpflow.families.text2text.modeling import prompted_baseline

    tok, model, params = _setup(kind)
    encoder = Text2TextEncoder(tok, params)
    gen = GenerationParams(max_new_tokens=4)
    zero, info = prompted_baseline(model, encoder, INPUTS, TARGETS, INPUTS[:3], 0, 1, gen)
    assert zero == generate(model, tok, [encoder.prompt_ids(x) for x in INPUTS[:3]], gen)
    assert info == {"k": 0, "seed": 1, "shots": [], "fewest_shots_used": 0}
    few, info = prompted_baseline(model, encoder, INPUTS, TARGETS, INPUTS[:3], 3, 1, gen)
    assert len(few) == 3
    assert [s["input"] for s in info["shots"]] == [
        x for x, _ in choose_shots(INPUTS, TARGETS, 3, 1)
    ]
    assert info["fewest_shots_used"] == 3
