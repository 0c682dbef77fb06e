"""The one encoder: processed rows -> model inputs, for every path that turns text into ids.

The tokenize stage, the behavioural tests, latency and prediction all encode through
:class:`Encoder`, so the model sees at evaluation exactly what it was trained on:

- single texts: ``[CLS] a [SEP]`` (or the model's own template: ``<s> a </s>``, none for GPT-2);
- pairs: the tokenizer's own pair template, truncated with ``truncation`` (``longest_first``,
  ``only_first``, ``only_second``); single texts are always truncated plainly;
- token classification (one text field holding a list of words): the words are encoded as
  pre-split (``is_pretokenized``), the label of a word goes to its first sub-token and every
  other position gets ``-100``. Words are located by the encoding's ``word_ids``, never by
  position: a word with no sub-tokens (a zero-width space standing as a word) is counted in
  ``empty_words`` and shifts nothing. Words cut off by ``max_length`` are ``truncated_words``.

The encoder works on a private copy of the Rust tokenizer (no padding, its own truncation), so
the tokenizer object passed in is never changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.data.saved import IGNORE_INDEX, TRUNCATIONS
from nlpflow.errors import UserError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer
    from transformers import PreTrainedTokenizerBase


@dataclass
class Encoded:
    """Model inputs for ``n`` rows, unpadded.

    ``input_ids``/``token_type_ids``: ``n`` lists of token ids (``token_type_ids`` None when the
    model takes no segment ids). Token tasks also fill ``labels`` (per sub-token, ``-100``
    where ignored), ``word_ids`` (per sub-token, the word index or ``-1`` for special tokens),
    ``empty_words`` (per row, the indices of words with no sub-token at all) and
    ``truncated_words`` (per row, how many words fell past ``max_length``).
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None
    labels: list[list[int]] | None = None
    word_ids: list[list[int]] = field(default_factory=list)
    empty_words: list[list[int]] = field(default_factory=list)
    truncated_words: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def _byte_level(node: Any) -> bool:
    """Whether a pre-tokenizer JSON node is (or contains) a ByteLevel without a prefix space."""
    if not isinstance(node, dict):
        return False
    if node.get("type") == "ByteLevel":
        return not node.get("add_prefix_space", False)
    return any(_byte_level(n) for n in node.get("pretokenizers") or [])


def _with_prefix_space(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("type") == "ByteLevel":
            return {**node, "add_prefix_space": True}
        return {k: _with_prefix_space(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_prefix_space(n) for n in node]
    return node


def needs_prefix_space(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Byte-level BPE (GPT-2, RoBERTa) reads a word after a space as ``Ġword``; encoded as
    pre-split words without a prefix space, every word would look like the start of a text."""
    raw = json.loads(tokenizer.backend_tokenizer.to_str())
    return _byte_level(raw.get("pre_tokenizer"))


def add_prefix_space(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give a byte-level tokenizer ``add_prefix_space`` (pre-tokenizer and post-processor), in
    place, so pre-split words encode as they do inside a sentence; True when it changed."""
    from tokenizers import Tokenizer

    if not needs_prefix_space(tokenizer):
        return False
    raw = json.loads(tokenizer.backend_tokenizer.to_str())
    for key in ("pre_tokenizer", "post_processor"):
        raw[key] = _with_prefix_space(raw.get(key))
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(raw))
    tokenizer.init_kwargs["add_prefix_space"] = True  # saved in tokenizer_config.json
    if hasattr(tokenizer, "add_prefix_space"):
        tokenizer.add_prefix_space = True
    return True


def takes_segments(tokenizer: PreTrainedTokenizerBase, config: Any | None) -> bool:
    """Whether inputs carry ``token_type_ids``: the tokenizer makes them and the model has a
    segment embedding with more than one row (``type_vocab_size > 1``; RoBERTa has 1,
    DistilBERT and GPT-2 none). ``config`` None: a BERT built by nlpflow (two segments)."""
    if "token_type_ids" not in tokenizer.model_input_names:
        return False
    return config is None or int(getattr(config, "type_vocab_size", 0) or 0) > 1


class Encoder:
    """Turns columns of processed rows into :class:`Encoded` model inputs.

    ``text_fields``: one or two column names (token tasks: one, a list of words per row).
    ``max_length``: the longest input in tokens, special tokens included. ``segments``:
    whether to return ``token_type_ids`` (see :func:`takes_segments`).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        text_fields: Sequence[str],
        max_length: int,
        truncation: str = "longest_first",
        task: str = "sequence",
        segments: bool | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        if truncation not in TRUNCATIONS:
            raise UserError(f"tokenizer.truncation '{truncation}' is not one of {TRUNCATIONS}")
        if task == "token" and len(text_fields) != 1:
            raise UserError("a token task has one text field (the list of words)")
        self.text_fields = list(text_fields)
        self.max_length = int(max_length)
        self.task = task
        # Single texts cannot use only_first/only_second: truncate them plainly.
        self.truncation = truncation if len(self.text_fields) == 2 else "longest_first"
        self.segments = takes_segments(tokenizer, None) if segments is None else segments
        raw = json.loads(tokenizer.backend_tokenizer.to_str())
        if task == "token" and _byte_level(raw.get("pre_tokenizer")):
            raw["pre_tokenizer"] = _with_prefix_space(raw["pre_tokenizer"])
            raw["post_processor"] = _with_prefix_space(raw.get("post_processor"))
        self._full: Tokenizer = Tokenizer.from_str(json.dumps(raw))
        self._full.no_padding()
        self._full.no_truncation()
        self._cut: Tokenizer = Tokenizer.from_str(json.dumps(raw))
        self._cut.no_padding()
        self._cut.enable_truncation(self.max_length, strategy=self.truncation)

    # ----------------------------------------------------------------------- raw encodings

    def _encode(
        self, backend: Tokenizer, columns: Sequence[Sequence[Any]], where: str, first_row: int
    ) -> list[Encoding]:
        try:
            return self._encode_unchecked(backend, columns)
        except Exception as err:  # tokenizers raises a bare Exception
            if "Truncation error" not in str(err):
                raise
        # Find the row the batch failed on, for a message the user can act on.
        for r in range(len(columns[0])):
            try:
                self._encode_unchecked(backend, [c[r : r + 1] for c in columns])
            except Exception:
                raise UserError(f"{where or 'input'} row {first_row + r}: {self._why()}") from None
        raise AssertionError("a batch failed to encode but no single row of it did")

    def _why(self) -> str:
        if self.truncation == "longest_first":
            return (
                f"max_length {self.max_length} leaves no room for text beside the special "
                "tokens; use a larger tokenizer.max_length"
            )
        other = "first" if self.truncation == "only_second" else "second"
        return (
            f"tokenizer.truncation '{self.truncation}' cannot fit this row in max_length "
            f"{self.max_length} because the {other} text alone is longer; use "
            "tokenizer.truncation longest_first or a larger tokenizer.max_length"
        )

    def _encode_unchecked(
        self, backend: Tokenizer, columns: Sequence[Sequence[Any]]
    ) -> list[Encoding]:
        if self.task == "token":
            return backend.encode_batch([list(w) for w in columns[0]], is_pretokenized=True)
        # Sequence inputs need no character offsets: encode_batch_fast skips them (the same
        # ids and segments, about a fifth less time).
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        if len(columns) == 2:
            return encode(list(zip(columns[0], columns[1], strict=True)))
        return encode(list(columns[0]))

    # ----------------------------------------------------------------------- public

    def encode(
        self,
        columns: Sequence[Sequence[Any]],
        labels: Sequence[Sequence[int]] | None = None,
        where: str = "",
        first_row: int = 0,
    ) -> Encoded:
        """Encode ``columns`` (one list per text field, same length). Token tasks align
        ``labels`` (one list of word label ids per row) to the first sub-token of each word.
        ``where``/``first_row`` name the split and the row numbers in error messages."""
        if len(columns) != len(self.text_fields):
            raise ValueError(f"{len(columns)} columns for text fields {self.text_fields}")
        encs = self._encode(self._cut, columns, where, first_row)
        out = Encoded([e.ids for e in encs])
        if self.segments:
            out.token_type_ids = [e.type_ids for e in encs]
        if self.task != "token":
            return out
        out.labels = []
        for r, (enc, words) in enumerate(zip(encs, columns[0], strict=True)):
            ids = [IGNORE_INDEX if w is None else w for w in enc.word_ids]
            seen = {w for w in ids if w != IGNORE_INDEX}
            beyond = {w for o in enc.overflowing for w in o.word_ids if w is not None} - seen
            n_words = len(words)
            out.word_ids.append([-1 if w == IGNORE_INDEX else w for w in ids])
            out.empty_words.append([w for w in range(n_words) if w not in seen | beyond])
            out.truncated_words.append(len(beyond))
            if labels is not None:
                word_labels = labels[r]
                if len(word_labels) != n_words:
                    raise UserError(
                        f"{where or 'input'} row {first_row + r}: {n_words} words but "
                        f"{len(word_labels)} labels; rerun the preprocess stage"
                    )
                out.labels.append(_first_subtoken_labels(ids, word_labels))
        if labels is None:
            out.labels = None
        return out

    def encode_rows(self, rows: Sequence[dict[str, Any]]) -> Encoded:
        """Encode a list of ``{text field: value}`` rows (the behavioural tests' inputs)."""
        return self.encode([[row[f] for row in rows] for f in self.text_fields])

    def lengths(
        self, columns: Sequence[Sequence[Any]], where: str = "", first_row: int = 0
    ) -> np.ndarray:
        """Untruncated lengths in tokens (special tokens included), ``(n,)`` int64."""
        encs = self._encode(self._full, columns, where, first_row)
        return np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))


def _first_subtoken_labels(word_ids: Sequence[int], word_labels: Sequence[int]) -> list[int]:
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORE_INDEX if w in (IGNORE_INDEX, previous) else int(word_labels[w]))
        previous = w
    return out


def word_starts(word_ids: Sequence[int], n_words: int) -> list[int]:
    """Per word, the position of its first sub-token, or -1 when it has none (an empty word, or
    one cut off by truncation)."""
    starts = [-1] * n_words
    for pos, w in enumerate(word_ids):
        if 0 <= w < n_words and starts[w] < 0:
            starts[w] = pos
    return starts
