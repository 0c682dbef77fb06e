"""Tokenizers: train a small one on the train split, or load a pretrained fast tokenizer.

Training is deterministic: the same texts and settings give the same vocabulary, ids
included, in every process. ``tokenizers``' BPE trainer (which the WordPiece trainer wraps)
numbers the continuation pieces (``##e``) in the order it meets them in a Rust ``HashMap``
of word counts, whose hash seed is random per process, and breaks ties between equally
frequent merges by those numbers; no setting of the library fixes the seed (nor does
``TOKENIZERS_PARALLELISM``: the order is the map's, not the threads'). So the alphabet and
the continuation pieces are found here first (one pass over the texts, vectorised) and
handed to the trainer as leading special tokens, sorted, which numbers them before it starts
as it would (alphabet, then pieces) but in a fixed order; they are then removed from the
added tokens, so they stay ordinary vocabulary entries. The vocabulary holds the tokens of
the library's own training (ties between equally frequent merges now always go the same way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlpflow.errors import UserError
from nlpflow.logs import on_terminal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while chunk := list(islice(it, size)):
        yield chunk


def sample_positions(n: int, k: int, seed: int) -> np.ndarray | None:
    """``k`` of ``n`` positions drawn without replacement by ``seed``, sorted, ``(k,)`` int64;
    None when ``k`` is 0 (no limit) or ``k >= n`` (every position)."""
    if k <= 0 or k >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


class _Characters:
    """The characters of texts as a tokenizer's trainer sees them (normalised, split into
    words by its pre-tokenizer): every character of a word (the alphabet) and those that
    follow another inside a word (which become continuation pieces, ``##e``). Fed chunk by
    chunk through NumPy tables over all code points (about 1 MB each)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        size = 0x110000
        self.known = np.zeros(size, dtype=bool)  # classified yet
        self.word = np.zeros(size, dtype=bool)  # joins a word (neither space nor split off)
        self.seen = np.zeros(size, dtype=bool)  # met, and not whitespace (the alphabet)
        self.inner = np.zeros(size, dtype=bool)  # follows a character of its word
        # What the normaliser makes of each ASCII character alone; None when one becomes
        # other than one character. NFKC leaves ASCII as it is and lowercasing maps
        # character by character, so an ASCII text is normalised through this table.
        self.ascii: np.ndarray | None = np.arange(128, dtype=np.uint32)
        if tok.normalizer is not None:
            mapped = [tok.normalizer.normalize_str(chr(c)) for c in range(128)]
            if all(len(m) == 1 for m in mapped):
                self.ascii = np.array([ord(m) for m in mapped], dtype=np.uint32)
            else:
                self.ascii = None

    def _classify(self, codes: np.ndarray) -> None:
        pre = self.tok.pre_tokenizer
        for code in np.unique(codes).tolist():
            c = chr(code)
            # The pre-tokenizers here decide per character (whitespace splits, punctuation
            # stands alone, the rest joins), so a character that joins itself joins any
            # other that does.
            parts = [p for p, _ in pre.pre_tokenize_str(c + c)]
            self.known[code] = True
            self.word[code] = parts == [c + c]
            self.seen[code] = bool(parts)

    def _count(self, codes: np.ndarray) -> None:
        """Normalised characters, ``(n,)`` code points."""
        new = codes[~self.known[codes]]
        if len(new):
            self._classify(new)
        word = self.word[codes]
        self.inner[codes[1:][word[1:] & word[:-1]]] = True

    def add(self, texts: Sequence[str]) -> None:
        # a space between texts: every pre-tokenizer here splits there, and NFKC and
        # lowercasing act on each text alike joined or not (a space composes with nothing)
        text = " ".join(texts)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if self.tok.normalizer is None:
            self._count(codes)
            return
        if self.ascii is None:
            self._count(self._normalised(text))
            return
        wide = codes >= 128
        if wide.any():
            # the space-separated pieces holding other characters go through the
            # normaliser (few in most text); the rest through the table
            piece = np.cumsum(codes == 32)
            odd = np.isin(piece, np.unique(piece[wide]))
            bounds = np.flatnonzero(np.diff(np.concatenate([[0], odd.view(np.int8), [0]])))
            starts, ends = bounds[::2].tolist(), bounds[1::2].tolist()
            self._count(
                self._normalised(" ".join(text[a:b] for a, b in zip(starts, ends, strict=True)))
            )
            codes = np.where(odd, np.uint32(32), codes)
        self._count(self.ascii[codes])

    def _normalised(self, text: str) -> np.ndarray:
        out = self.tok.normalizer.normalize_str(text)
        return np.frombuffer(out.encode("utf-32-le"), dtype=np.uint32)

    def alphabet(self) -> list[str]:
        return [chr(c) for c in np.flatnonzero(self.seen).tolist()]

    def continuations(self, prefix: str) -> list[str]:
        return [prefix + chr(c) for c in np.flatnonzero(self.inner).tolist()]


def _unpin(tok: Any, pinned: set[str]) -> Any:
    """``tok`` without ``pinned`` among its added tokens (they stay in the model's vocabulary
    with the ids they got)."""
    from tokenizers import Tokenizer

    raw = json.loads(tok.to_str())
    raw["added_tokens"] = [t for t in raw["added_tokens"] if t["content"] not in pinned]
    return Tokenizer.from_str(json.dumps(raw))


def train_deterministic(
    tok: Any,
    make_trainer: Any,
    specials: list[str],
    texts: Iterable[str],
    prefix: str | None,
    sample: np.ndarray | None = None,
    alphabet: bool = True,
) -> Any:
    """Train ``tok`` (a ``tokenizers.Tokenizer`` with its normalizer and pre-tokenizer set) on
    ``texts`` with the same vocabulary, ids included, in every process (see the module doc),
    and return it. ``make_trainer(special_tokens, initial_alphabet)`` builds the trainer;
    ``prefix``: its continuation prefix (``##``), None when it has none.

    ``sample``: sorted positions in ``texts`` to learn merges from (None: all). The texts are
    read once; the characters of all of them stay in the alphabet (and as continuation
    pieces), so a character outside the sample does not turn its words into ``[UNK]``;
    ``alphabet`` False: neither (a trainer that takes no alphabet)."""
    chars = _Characters(tok) if alphabet else None
    kept: list[str] = []
    done = 0
    for chunk in _chunks(texts, 1000):
        if chars is not None:
            chars.add(chunk)
        if sample is None:
            kept.extend(chunk)
        else:
            lo, hi = np.searchsorted(sample, [done, done + len(chunk)])
            kept.extend(chunk[i - done] for i in sample[lo:hi].tolist())
        done += len(chunk)
    letters = chars.alphabet() if chars is not None else []
    # numbered as the library numbers them (the alphabet sorted, then the continuation
    # pieces), but the pieces sorted rather than in hash order
    pinned = [*letters, *chars.continuations(prefix)] if chars is not None and prefix else []
    trainer = make_trainer([*specials, *pinned], letters)
    # Lists of texts, not one text a call: a quarter less time training on 80,000 texts.
    tok.train_from_iterator(_chunks(kept, 1000), trainer=trainer)
    return _unpin(tok, set(pinned) - set(specials)) if pinned else tok


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "wordpiece",
    vocab_size: int = 512,
    lowercase: bool = True,
    model_max_length: int = 512,
    sample: np.ndarray | None = None,
) -> PreTrainedTokenizerFast:
    """Train a BERT-style tokenizer (``[CLS] a [SEP] b [SEP]``) on ``texts``, the same in
    every process (see the module doc).

    ``kind`` is ``wordpiece``, ``bpe`` or ``char`` (every character a token). ``sample``:
    sorted positions in ``texts`` (:func:`sample_positions`) the vocabulary is learned from
    (None: all texts); for ``wordpiece`` and ``bpe`` the characters of every text stay in it.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    unk = SPECIAL_TOKENS["unk_token"]
    show = on_terminal()
    prefix: str | None = None
    if kind in ("wordpiece", "bpe"):
        if kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token=unk))
            prefix = "##"  # the WordPiece trainer's continuation prefix
            tok.decoder = decoders.WordPiece()
            trainer_class: Any = trainers.WordPieceTrainer
        else:
            tok = Tokenizer(models.BPE(unk_token=unk))
            trainer_class = trainers.BpeTrainer

        def make_trainer(special: list[str], alphabet: list[str]) -> trainers.Trainer:
            return trainer_class(
                vocab_size=vocab_size,
                special_tokens=special,
                initial_alphabet=alphabet,
                show_progress=show,
            )

    elif kind == "char":
        # A word-level model over single characters: every character is one token.
        tok = Tokenizer(models.WordLevel(unk_token=unk))

        def make_trainer(special: list[str], alphabet: list[str]) -> trainers.Trainer:
            return trainers.WordLevelTrainer(
                vocab_size=vocab_size, special_tokens=special, show_progress=show
            )

    else:
        raise UserError(f"params.yaml: tokenizer.kind '{kind}' is not one of wordpiece, bpe, char")

    norm: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if lowercase:
        norm.append(normalizers.Lowercase())
    tok.normalizer = normalizers.Sequence(norm)
    if kind == "char":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("", behavior="isolated")]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # (the char kind's word-level trainer numbers tokens by count, then by token: no hash
    # order; its alphabet is what it keeps, so it gets none from outside the sample)
    tok = train_deterministic(
        tok, make_trainer, specials, texts, prefix, sample, alphabet=kind != "char"
    )

    cls_id = tok.token_to_id(SPECIAL_TOKENS["cls_token"])
    sep_id = tok.token_to_id(SPECIAL_TOKENS["sep_token"])
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        # Segment ids tell a BERT-style model which text of a pair a token belongs to.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        **SPECIAL_TOKENS,
    )


def load_tokenizer(
    name_or_path: str | Path, trust_remote_code: bool = False
) -> PreTrainedTokenizerFast:
    """Load a fast tokenizer from a directory or hub id, with a clear error when it is missing."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            str(name_or_path), use_fast=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot load a tokenizer from '{name_or_path}': {str(err).splitlines()[0]} "
            "(check model.name_or_path; offline, only local directories work)"
        ) from None
    if not tok.is_fast:
        raise UserError(
            f"'{name_or_path}' has no fast tokenizer; nlpflow needs one (tokenizer.json)"
        )
    return tok  # type: ignore[return-value]


def ensure_pad_token(tokenizer: PreTrainedTokenizerFast) -> str | None:
    """Give a tokenizer without a padding token (GPT-2) one it already has: its end-of-text
    token, else its unknown or separator token. Batches are padded on the right and the
    attention mask hides the padding, so the choice changes no result. Returns the token set,
    or None when the tokenizer had a padding token."""
    if tokenizer.pad_token is not None:
        return None
    for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.sep_token):
        if candidate is not None:
            tokenizer.pad_token = candidate
            return str(candidate)
    raise UserError(
        "the tokenizer of model.name_or_path has no padding, end-of-text, unknown or separator "
        "token to pad batches with; add a pad_token to its tokenizer_config.json"
    )
