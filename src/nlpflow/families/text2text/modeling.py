"""Text-to-text models: encoder-decoder (``seq2seq``) and decoder-only (``causal``).

Examples are encoded once, by :class:`~.encoding.Text2TextEncoder` (prompt and target ids),
for training, validation and generation alike. In a batch:

- ``seq2seq`` (T5/BART style): the encoder reads the prompt; the labels are the target ids,
  which the model shifts right behind ``decoder_start_token_id``;
- ``causal`` (GPT-2/Llama style): ``[bos] prompt target [eos]`` in one sequence, the labels
  ``-100`` over ``[bos] prompt`` so the loss is on the target tokens (and the end token)
  only; the model shifts them itself. A tokenizer without a padding token pads with its
  end-of-text token (:func:`nlpflow.modeling.tokenizers.ensure_pad_token`): the labels and
  the attention mask, not the padding id, say what counts.

Shapes: a batch is ``input_ids``/``attention_mask``/``labels`` of ``(B, T)`` (``labels``
``(B, L)`` for seq2seq), ``-100`` on every label position that is not scored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.families.text2text.encoding import Example, Text2TextEncoder
from nlpflow.families.text2text.params import GenerationParams, Text2TextModelParams
from nlpflow.params import ModelParams

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

IGNORE = -100
# Positions of the tiny decoder-only model: prompts, targets and few-shot contexts fit.
TINY_CAUSAL_POSITIONS = 512


# --------------------------------------------------------------------------- model


def build_text2text_model(
    model: ModelParams, t2t: Text2TextModelParams, tokenizer: PreTrainedTokenizerFast
) -> PreTrainedModel:
    """The model of ``t2t.kind``: tiny from the sizes in ``model`` (a T5 encoder-decoder or a
    GPT-2 decoder, sized to ``tokenizer``; dropout 0 where ``model.dropout`` is None) when
    ``model.name_or_path`` is empty, else pretrained.

    Raises UserError when the pretrained model is not of the kind asked for (an encoder-decoder
    for ``causal`` or the reverse), or cannot be loaded.
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    params = model
    kind = t2t.kind
    dropout = 0.0 if params.dropout is None else params.dropout
    pad, eos, bos = tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id
    built: PreTrainedModel
    if not params.name_or_path:
        if kind == "seq2seq":
            config = T5Config(
                vocab_size=len(tokenizer),
                d_model=params.hidden_size,
                d_kv=params.hidden_size // params.num_heads,
                d_ff=params.intermediate_size,
                num_layers=params.num_layers,
                num_heads=params.num_heads,
                relative_attention_num_buckets=16,
                relative_attention_max_distance=64,
                dropout_rate=dropout,
                pad_token_id=pad,
                eos_token_id=eos,
            )
            config.decoder_start_token_id = pad  # as T5's own: decoding starts at padding
            built = T5ForConditionalGeneration(config)
        else:
            gpt = GPT2Config(
                vocab_size=len(tokenizer),
                n_positions=TINY_CAUSAL_POSITIONS,
                n_embd=params.hidden_size,
                n_layer=params.num_layers,
                n_head=params.num_heads,
                n_inner=params.intermediate_size,
                resid_pdrop=dropout,
                embd_pdrop=dropout,
                attn_pdrop=dropout,
                bos_token_id=bos,
                eos_token_id=eos,
                pad_token_id=pad,
            )
            built = GPT2LMHeadModel(gpt)
        _set_generation_ids(built, tokenizer)
        return built
    from nlpflow.modeling.build import load_config

    config = load_config(params.name_or_path, params.trust_remote_code)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if encoder_decoder != (kind == "seq2seq"):
        what = "an encoder-decoder" if encoder_decoder else "a decoder-only"
        other = "seq2seq" if encoder_decoder else "causal"
        raise UserError(
            f"params.yaml: model.name_or_path '{params.name_or_path}' is {what} model "
            f"({type(config).__name__}) but model.text2text.kind is {kind}; set "
            f"model.text2text.kind: {other}"
        )
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    try:
        built = auto.from_pretrained(
            params.name_or_path, trust_remote_code=params.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot load model.name_or_path '{params.name_or_path}' as a {kind} model: "
            f"{str(err).splitlines()[0]}"
        ) from None
    _set_generation_ids(built, tokenizer)
    return built


def _set_generation_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """The padding and end ids of generation are the tokenizer's (GPT-2's config has no pad)."""
    for obj in (model.config, model.generation_config):
        obj.pad_token_id = tokenizer.pad_token_id
        if tokenizer.eos_token_id is not None:
            obj.eos_token_id = tokenizer.eos_token_id
    if model.config.is_encoder_decoder and model.config.decoder_start_token_id is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    if model.config.is_encoder_decoder:
        model.generation_config.decoder_start_token_id = model.config.decoder_start_token_id


# --------------------------------------------------------------------------- batches


def collate(examples: Sequence[Example], kind: str, pad_id: int) -> dict[str, torch.Tensor]:
    """A training batch, padded on the right: ``input_ids``, ``attention_mask``, ``labels``
    (``-100`` where not scored). Causal: prompt and target in one row, labels on the target."""
    import torch

    if kind == "seq2seq":
        rows = [e.prompt_ids for e in examples]
        label_rows = [e.target_ids for e in examples]
    else:
        rows = [e.prompt_ids + e.target_ids for e in examples]
        label_rows = [[IGNORE] * len(e.prompt_ids) + e.target_ids for e in examples]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    label_width = max(len(r) for r in label_rows)
    labels = torch.full((len(rows), label_width), IGNORE, dtype=torch.long)
    for i, row in enumerate(label_rows):
        labels[i, : len(row)] = torch.tensor(row)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def target_token_losses(
    model: PreTrainedModel, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, the summed cross-entropy (nats) of the scored target tokens and their
    number: ``(B,)`` and ``(B,)``. exp(sum of losses / sum of counts) is the perplexity, and
    sum / count over a batch equals the model's own mean loss."""
    import torch

    with torch.no_grad():  # given labels, an encoder-decoder builds its decoder inputs
        logits = model(**batch).logits
    labels = batch["labels"]
    if not model.config.is_encoder_decoder:  # position t predicts token t + 1
        logits, labels = logits[:, :-1], labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
    )
    return losses.sum(dim=1), (labels != IGNORE).sum(dim=1)


# --------------------------------------------------------------------------- generation


@dataclass
class Generated:
    """One generation: the ``text`` (special tokens dropped, ends stripped), how many tokens
    were generated (the end token included) and whether the end token came."""

    text: str
    tokens: int
    ended: bool


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
) -> list[Generated]:
    """Outputs for prompt ids (from :meth:`Text2TextEncoder.prompt_ids`), in batches of
    ``params.batch_size``: greedy, beam search (``num_beams``) or sampling (``do_sample``,
    seeded with ``params.seed`` per batch, so the same batches give the same samples).

    A decoder-only model's prompts are padded on the left (generation continues at the right
    end of every row), an encoder's on the right.
    """
    import torch

    model.eval()
    causal = not model.config.is_encoder_decoder
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device
    generate_fn: Any = model.generate  # typed as a module attribute by transformers
    out: list[Generated] = []
    for start in range(0, len(prompts), params.batch_size):
        chunk = prompts[start : start + params.batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, row in enumerate(chunk):
            if causal:
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            else:
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
        options: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "num_beams": params.num_beams,
            "do_sample": params.do_sample,
            "pad_token_id": pad,
            "eos_token_id": eos,
        }
        if params.do_sample:
            options.update(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p)
            torch.manual_seed(params.seed + start)
        with torch.no_grad():
            result = generate_fn(
                input_ids=ids.to(device), attention_mask=mask.to(device), **options
            )
        new = result[:, width:] if causal else result[:, 1:]  # seq2seq: after the start token
        for row in new.tolist():
            ended = eos in row
            body = row[: row.index(eos)] if ended else row
            text = str(tokenizer.decode(body, skip_special_tokens=True)).strip()
            out.append(Generated(text, len(body) + int(ended), ended))
    return out


# --------------------------------------------------------------------------- prompting


def choose_shots(
    train_inputs: Sequence[str], train_targets: Sequence[str], k: int, seed: int
) -> list[tuple[str, str]]:
    """``k`` (input, target) examples of train drawn without replacement with ``seed`` (all
    of train when it has fewer)."""
    rng = random.Random(f"shots-{seed}")
    picks = rng.sample(range(len(train_inputs)), min(k, len(train_inputs)))
    return [(train_inputs[i], train_targets[i]) for i in picks]


def few_shot_prompt(
    encoder: Text2TextEncoder, shots: Sequence[tuple[str, str]], text: str, limit: int | None
) -> tuple[list[int], int]:
    """Prompt ids for ``text`` behind the ``shots``, each rendered through the same template as
    training, and the number of shots used: shots that would push the prompt past ``limit``
    tokens (the model's positions less what is generated) are left out, the last ones first.

    Causal: ``[bos] p1 t1 [eos] p2 t2 [eos] ... p`` (each shot as one training example is
    written). Seq2seq: the encoder reads ``p1 t1 p2 t2 ... p`` as one text.
    """
    tok = encoder.tokenizer
    if encoder.kind == "seq2seq":
        used = len(shots)
        while True:
            parts = [encoder.template.format(input=x) + " " + y for x, y in shots[:used]]
            prompt_text = " ".join([*parts, encoder.template.format(input=text)])
            ids = list(tok(prompt_text)["input_ids"])
            if limit is None or len(ids) <= limit or used == 0:
                return ids, used
            used -= 1
    query = encoder.prompt_ids(text)
    blocks = [
        encoder.prompt_ids(x)[1 if tok.bos_token_id is not None else 0 :] + encoder.target_ids(y)
        for x, y in shots
    ]
    used = len(blocks)
    while used and limit is not None and len(query) + sum(len(b) for b in blocks[:used]) > limit:
        used -= 1
    head = query[:1] if tok.bos_token_id is not None else []
    body = [t for block in blocks[:used] for t in block]
    return head + body + query[len(head) :], used


def prompted_baseline(
    model: PreTrainedModel,
    encoder: Text2TextEncoder,
    train_inputs: Sequence[str],
    train_targets: Sequence[str],
    inputs: Sequence[str],
    k: int,
    seed: int,
    params: GenerationParams,
) -> tuple[list[Generated], dict[str, Any]]:
    """The model as it is (the base model, before fine-tuning) prompted zero-shot (``k`` 0) or
    few-shot with ``k`` train examples drawn with ``seed``, through the training template.

    Returns the generations and what was used: ``k``, ``seed``, the shots, and the fewest
    shots a prompt kept (shots are dropped where a prompt would pass the model's positions).
    """
    from nlpflow.modeling.build import position_limit

    shots = choose_shots(train_inputs, train_targets, k, seed) if k else []
    positions = position_limit(model.config) if not model.config.is_encoder_decoder else None
    limit = None if positions is None else max(1, positions - params.max_new_tokens)
    prompts, used = [], []
    for text in inputs:
        ids, n = few_shot_prompt(encoder, shots, text, limit)
        prompts.append(ids)
        used.append(n)
    info = {
        "k": k,
        "seed": seed,
        "shots": [{"input": x, "target": y} for x, y in shots],
        "fewest_shots_used": min(used, default=0),
    }
    return generate(model, encoder.tokenizer, prompts, params), info
