"""Text-to-text with 'pretrained' models of real families, loaded from a directory: a GPT-2
(byte-level BPE, no padding token, no special tokens around a text) and a BART (``<s> ...
</s>`` around every text, decoding starts at ``</s>``), each with its tokenizer built here
(tests/modeling/families.py) and tiny random weights. What each family needs is handled:
GPT-2 pads with its end token, BART's targets keep their ``<s>``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from nlpflow.families.text2text.data import generate_text2text
from nlpflow.families.text2text.encoding import Text2TextEncoder, prepare_tokenizer
from nlpflow.families.text2text.modeling import (
    build_text2text_model,
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
from tests.modeling.families import _byte_level

ROWS = generate_text2text(Text2TextDataParams(size=120, kinds={"sort": 1.0}, max_letters=4), 0)
INPUTS = [r["input"] for r in ROWS]
TARGETS = [r["target"] for r in ROWS]


def _save(kind: str, root: Path) -> Path:
    import torch
    import transformers as tf

    texts = [*INPUTS, *TARGETS, "="]
    out = root / kind
    if kind == "causal":
        backend = _byte_level(texts, ["<|endoftext|>"], roberta=False)
        end = "<|endoftext|>"
        tok = tf.GPT2TokenizerFast(
            tokenizer_object=backend, bos_token=end, eos_token=end, unk_token=end
        )
        config: Any = tf.GPT2Config(
            vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2, n_inner=32,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )  # fmt: skip
        torch.manual_seed(0)
        tf.GPT2LMHeadModel(config).save_pretrained(str(out))
    else:
        backend = _byte_level(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], roberta=True)
        tok = tf.BartTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        )  # fmt: skip
        config = tf.BartConfig(
            vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=None,
        )  # fmt: skip
        torch.manual_seed(0)
        tf.BartForConditionalGeneration(config).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_pretrained_family_encodes_trains_and_generates(kind: str, tmp_path: Path) -> None:
    import torch

    from nlpflow.modeling.tokenizers import load_tokenizer

    torch.set_num_threads(1)
    path = _save(kind, tmp_path)
    tok = load_tokenizer(path)
    notes = prepare_tokenizer(tok, kind)
    t2t = Text2TextModelParams(kind=kind)  # type: ignore[arg-type]
    model = build_text2text_model(ModelParams(name_or_path=str(path)), t2t, tok)
    encoder = Text2TextEncoder(tok, t2t)
    (ex,) = encoder.encode(["sort c b"], ["b c"])
    prompt = tok.convert_ids_to_tokens(ex.prompt_ids)
    target = tok.convert_ids_to_tokens(ex.target_ids)
    assert tok.decode(ex.prompt_ids, skip_special_tokens=True) == "sort c b ="
    assert tok.decode(ex.target_ids, skip_special_tokens=True) == "b c"
    if kind == "causal":  # GPT-2: no padding token, nothing around a text but what we add
        assert notes == [
            "the tokenizer has no padding token: batches are padded with '<|endoftext|>'"
        ]
        assert tok.pad_token_id == tok.eos_token_id
        assert prompt[0] == "<|endoftext|>" and "<|endoftext|>" not in prompt[1:]
        assert target[-1] == "<|endoftext|>" and "<|endoftext|>" not in target[:-1]
    else:  # BART: <s> ... </s> around both; the decoder starts at </s>
        assert notes == []
        assert prompt[0] == "<s>" and prompt[-1] == "</s>"
        assert target[0] == "<s>" and target[-1] == "</s>"
        assert model.config.decoder_start_token_id == tok.eos_token_id
    examples = encoder.encode(INPUTS, TARGETS)
    batch = collate(examples[:8], kind, tok.pad_token_id)
    sums, counts = target_token_losses(model, batch)
    with torch.no_grad():
        assert sums.sum().item() / counts.sum().item() == pytest.approx(
            model(**batch).loss.item(), rel=1e-5
        )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = random.Random(0)
    losses = []
    for _ in range(40):
        loss = model(**collate(rng.sample(examples, 16), kind, tok.pad_token_id)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:3]) / 3
    prompts = [encoder.prompt_ids(x) for x in ["sort a", "sort d c b a", "sort b a"]]
    gen = GenerationParams(max_new_tokens=6)
    batched = generate(model, tok, prompts, gen)
    assert batched == generate(
        model, tok, prompts, GenerationParams(max_new_tokens=6, batch_size=1)
    )
    assert all("<" not in g.text for g in batched)  # special tokens never reach the text
    ids, used = few_shot_prompt(
        encoder, list(zip(INPUTS[:2], TARGETS[:2], strict=True)), "sort b a", 60
    )
    assert used == 2 and len(ids) <= 60
