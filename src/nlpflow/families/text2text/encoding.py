"""Text-to-text encoding: the tokenizer and the one encoder of every example.

- the prompt is ``model.text2text.prompt_template`` with the input in place of ``{input}``;
  the input is cut to ``max_input_length`` of its own tokens *before* the template is
  applied, so a long input never cuts the template's tail (the ``=`` after which the answer
  comes);
- ``seq2seq`` (T5/BART style): the encoder reads the prompt with the tokenizer's own special
  tokens (T5 appends ``</s>``, BART wraps in ``<s> ... </s>``); the labels are the target as
  the tokenizer encodes a target (``text_target``), cut to ``max_target_length`` keeping its
  end token;
- ``causal`` (GPT-2/Llama style): ``[bos] prompt`` then ``target [eos]``; the loss is on the
  target tokens (and the end token) only.

Used by the tokenize stage (data side: no training or evaluation code here) and by
:mod:`.modeling` for generation prompts, so training and generation read the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.text2text.params import Text2TextModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
}


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

    from nlpflow.modeling.tokenizers import train_deterministic

    specials = list(SPECIAL_TOKENS.values())
    unk = SPECIAL_TOKENS["unk_token"]
    if kind not in ("wordpiece", "bpe"):
        raise UserError(
            f"params.yaml: tokenizer.kind '{kind}' cannot be used for text generation; use "
            "wordpiece or bpe (their pieces decode back into words)"
        )

    def make_trainer(special: list[str], alphabet: list[str]) -> trainers.Trainer:
        if kind == "wordpiece":
            return trainers.WordPieceTrainer(
                vocab_size=vocab_size,
                special_tokens=special,
                initial_alphabet=alphabet,
                show_progress=False,
            )
        return trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=special,
            initial_alphabet=alphabet,
            continuing_subword_prefix="##",
            show_progress=False,
        )

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
    else:
        tok = Tokenizer(models.BPE(unk_token=unk, continuing_subword_prefix="##"))
    norm: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if lowercase:
        norm.append(normalizers.Lowercase())
    tok.normalizer = normalizers.Sequence(norm)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    # the same vocabulary, ids included, in every process (see nlpflow.modeling.tokenizers)
    tok = train_deterministic(tok, make_trainer, specials, texts, "##")
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


IGNORE = -100


def training_row(example: Example, kind: str, decoder_start: int | None) -> dict[str, Any]:
    """The columns of ``data/tokenized`` that training reads for one example.

    ``causal``: ``input_ids`` = prompt + target; ``labels`` aligned with it and already
    shifted (position i holds the token at i + 1 where that is a target token, else -100,
    so a plain token-level cross-entropy of the logits at each position is the loss on the
    target tokens only); ``prompt_length``; ``length`` = all tokens.
    ``seq2seq``: ``input_ids`` = prompt; ``labels`` = target; ``decoder_input_ids`` =
    ``decoder_start`` + target less its last token (teacher forcing, as the model's own
    shift does); ``length`` = the longer of prompt and target (the probe's worst case).
    """
    prompt, target = example.prompt_ids, example.target_ids
    if kind == "causal":
        ids = prompt + target
        labels = [IGNORE] * (len(prompt) - 1) + target + [IGNORE]
        return {
            "input_ids": ids,
            "labels": labels,
            "prompt_length": len(prompt),
            "length": len(ids),
        }
    if decoder_start is None:
        raise UserError(
            "the seq2seq model has no decoder_start_token_id and the tokenizer no padding "
            "token to start decoding from; set decoder_start_token_id in its config.json"
        )
    return {
        "input_ids": prompt,
        "labels": target,
        "decoder_input_ids": [decoder_start, *target[:-1]],
        "length": max(len(prompt), len(target)),
    }
