"""Text-to-text models: encoder-decoder (``seq2seq``) and decoder-only (``causal``).

One encoder turns every example into ids, for training, validation and generation alike:

- the prompt is ``model.prompt_template`` with the input in place of ``{input}``; the input is
  cut to ``max_input_length`` of its own tokens *before* the template is applied, so a long
  input never cuts the template's tail (the ``=`` after which the answer comes);
- ``seq2seq`` (T5/BART style): the encoder reads the prompt with the tokenizer's own special
  tokens (T5 appends ``</s>``, BART wraps in ``<s> ... </s>``); the labels are the target as
  the tokenizer encodes a target (``text_target``), cut to ``max_target_length`` keeping its
  end token; the model shifts them right behind ``decoder_start_token_id``;
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.text2text.params import GenerationParams, Text2TextModelParams
from nlpflow.params import ModelParams

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

IGNORE = -100
SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
}
# Positions of the tiny decoder-only model: prompts, targets and few-shot contexts fit.
TINY_CAUSAL_POSITIONS = 512


# --------------------------------------------------------------------------- tokenizer


def train_text2text_tokenizer(
    texts: Sequence[str], kind: str = "wordpiece", vocab_size: int = 512, lowercase: bool = False
) -> PreTrainedTokenizerFast:
    """A tokenizer trained on ``texts`` (inputs, targets and the prompt template of train),
    with ``[PAD] [UNK] [BOS] [EOS]``; encoding a text appends ``[EOS]`` (as T5's does), and
    decoding joins word pieces back into words.

    ``kind``: ``wordpiece`` or ``bpe`` (both with ``##`` continuation pieces, so decoding
    restores the words). Raises UserError for another kind (``char`` tokens cannot be
    decoded back into words).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    unk = SPECIAL_TOKENS["unk_token"]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        trainer: trainers.Trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False
        )
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=unk, continuing_subword_prefix="##"))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            continuing_subword_prefix="##",
            show_progress=False,
        )
    else:
        raise UserError(
            f"params.yaml: tokenizer.kind '{kind}' cannot be used for text generation; use "
            "wordpiece or bpe (their pieces decode back into words)"
        )
    norm: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if lowercase:
        norm.append(normalizers.Lowercase())
    tok.normalizer = normalizers.Sequence(norm)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(list(texts), trainer=trainer)
    eos = SPECIAL_TOKENS["eos_token"]
    tok.post_processor = TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tok.token_to_id(eos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=10**6, **SPECIAL_TOKENS)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerFast, kind: str) -> list[str]:
    """Make a (pretrained) tokenizer usable for ``kind``; returns what was changed, for the
    report. A decoder-only model needs an end-of-text token (where a target ends) and a
    padding token (its end-of-text token when it has none, as for GPT-2)."""
    from nlpflow.modeling.tokenizers import ensure_pad_token

    notes = []
    if kind == "causal" and tokenizer.eos_token_id is None:
        raise UserError(
            "the tokenizer of model.name_or_path has no end-of-text token (eos_token), so a "
            "decoder-only model cannot learn where a target ends; add one to its "
            "tokenizer_config.json or use model.text2text.kind: seq2seq"
        )
    if tokenizer.pad_token_id is None:
        pad = ensure_pad_token(tokenizer)
        notes.append(f"the tokenizer has no padding token: batches are padded with {pad!r}")
    return notes


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


# --------------------------------------------------------------------------- encoding


@dataclass
class Example:
    """One encoded example: ``prompt_ids`` (what the model reads before generating) and
    ``target_ids`` (what it learns to write, its end token included)."""

    prompt_ids: list[int]
    target_ids: list[int]


@dataclass
class EncodingStats:
    """Token lengths before truncation and how many examples were cut."""

    input_lengths: list[int] = field(default_factory=list)
    target_lengths: list[int] = field(default_factory=list)
    inputs_truncated: int = 0
    targets_truncated: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts, truncation rates and length percentiles (p50, p90, p99, max) in tokens."""
        n = len(self.input_lengths)

        def pct(values: list[int]) -> dict[str, float]:
            if not values:
                return {}
            arr = np.asarray(values)
            out = {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}
            out["max"] = float(arr.max())
            return out

        return {
            "n": n,
            "inputs_truncated": self.inputs_truncated,
            "targets_truncated": self.targets_truncated,
            "input_truncation_rate": self.inputs_truncated / n if n else 0.0,
            "target_truncation_rate": self.targets_truncated / n if n else 0.0,
            "input_tokens": pct(self.input_lengths),
            "target_tokens": pct(self.target_lengths),
        }


class Text2TextEncoder:
    """Turns (input, target) texts into :class:`Example` ids for one model kind (module
    docstring), counting the truncations in :attr:`stats`."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, params: Text2TextModelParams) -> None:
        self.tokenizer = tokenizer
        self.kind = params.kind
        self.template = params.prompt_template
        self.max_input_length = params.max_input_length
        self.max_target_length = params.max_target_length
        self.stats = EncodingStats()

    def _cut_input(self, text: str) -> tuple[str, int]:
        """The input cut to ``max_input_length`` of its own tokens, and its full length."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if len(ids) > self.max_input_length:
            return text[: offsets[self.max_input_length - 1][1]], len(ids)
        return text, len(ids)

    def prompt_ids(self, text: str, count: bool = False) -> list[int]:
        """Ids of the prompt for input ``text``: cut, put in the template, encoded."""
        cut, length = self._cut_input(text)
        if count:
            self.stats.input_lengths.append(length)
            self.stats.inputs_truncated += int(length > self.max_input_length)
        prompt = self.template.format(input=cut)
        if self.kind == "seq2seq":
            return list(self.tokenizer(prompt)["input_ids"])
        bos = self.tokenizer.bos_token_id
        ids = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return ([bos] if bos is not None else []) + ids

    def target_ids(self, text: str, count: bool = False) -> list[int]:
        """Ids the model learns to write for ``text``, the end token last."""
        tok = self.tokenizer
        if self.kind == "seq2seq":
            full = list(tok(text_target=text)["input_ids"])
            ids = full
            if len(full) > self.max_target_length:
                ids = list(
                    tok(text_target=text, truncation=True, max_length=self.max_target_length)[
                        "input_ids"
                    ]
                )
        else:
            body = list(tok(text, add_special_tokens=False)["input_ids"])
            full = [*body, tok.eos_token_id]
            ids = [*body[: self.max_target_length - 1], tok.eos_token_id]
        if count:
            self.stats.target_lengths.append(len(full))
            self.stats.targets_truncated += int(len(full) > self.max_target_length)
        return ids

    def encode(self, inputs: Sequence[str], targets: Sequence[str]) -> list[Example]:
        """Examples of every (input, target) pair, counted in :attr:`stats`."""
        return [
            Example(self.prompt_ids(x, count=True), self.target_ids(y, count=True))
            for x, y in zip(inputs, targets, strict=True)
        ]


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
