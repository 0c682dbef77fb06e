"""Training a tokenizer: the same vocabulary, ids included, in every process; the sample."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlpflow.modeling.tokenizers import sample_positions, train_tokenizer

ROOT = Path(__file__).resolve().parents[2]

# Words of a few letters over a small alphabet: many merges tie on their counts, which is
# where tokenizers' hash order decided the ids (three processes gave three vocabularies).
TRAIN = """
import random, sys
from nlpflow.modeling.tokenizers import train_tokenizer
from nlpflow.families.text2text.encoding import train_text2text_tokenizer
rng = random.Random(0)
letters = "etaoinshrdlucmfwypvbgk"
words = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(800)})
texts = [" ".join(rng.choices(words, k=12)) + " Ünï-cödé!" for _ in range(600)]
kind, out = sys.argv[1], sys.argv[2]
if kind.startswith("t2t-"):
    train_text2text_tokenizer(texts, kind[4:], 300).backend_tokenizer.save(out)
else:
    train_tokenizer(texts, kind, 300).backend_tokenizer.save(out)
"""


def _texts(n: int = 600) -> list[str]:
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return [" ".join(rng.choices(words, k=8)) for _ in range(n)]


@pytest.mark.parametrize("kind", ["wordpiece", "t2t-bpe"])
def test_training_gives_the_same_vocabulary_in_two_processes(tmp_path: Path, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": "random"}
    files = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.json"
        subprocess.run([sys.executable, "-c", TRAIN, kind, str(out)], env=env, check=True)
        files.append(json.loads(out.read_text(encoding="utf-8")))
    first, second = (f["model"]["vocab"] for f in files)
    assert len(first) == 300
    assert first == second  # tokens and ids
    # the pinned alphabet and pieces are ordinary vocabulary, not added (special) tokens
    added = {t["content"] for t in files[0]["added_tokens"]}
    assert not any(t.startswith("##") or len(t) == 1 for t in added)


def test_pinned_pieces_stay_ordinary_vocabulary() -> None:
    from nlpflow.modeling.tokenizers import SPECIAL_TOKENS

    texts = [*_texts(), "Straße café naïve x-ray (re)entry"]
    tok = train_tokenizer(texts, "wordpiece", 90)
    vocab = tok.get_vocab()
    assert len(vocab) == 90
    assert [vocab[t] for t in SPECIAL_TOKENS.values()] == [0, 1, 2, 3, 4]
    # numbered as the library does: the alphabet sorted, then the continuation pieces
    assert vocab["("] < vocab["a"] < vocab["ï"] < vocab["##a"] < vocab["##ï"]
    assert set(tok.all_special_tokens) == set(SPECIAL_TOKENS.values())
    # "##a" in a text is text (split by the pre-tokenizer), not a token of its own
    assert tok.tokenize("x ##a") == ["x", "[UNK]", "[UNK]", "a"]  # "#" is not in the texts
    assert tok.unk_token_id not in tok(texts)["input_ids"][-1]


def test_a_sample_learns_merges_from_its_texts_and_keeps_every_character() -> None:
    texts = [*_texts(), "zzqq"]  # the last text alone holds z and q
    # a seed whose sample leaves that text out
    seed = next(s for s in range(20) if 600 not in sample_positions(601, 100, s).tolist())
    sample = sample_positions(len(texts), 100, seed)
    assert sample is not None and len(sample) == 100 and np.all(np.diff(sample) > 0)
    tok = train_tokenizer(texts, "wordpiece", 120, sample=sample)
    assert tok.tokenize("zzqq") == ["z", "##z", "##q", "##q"]  # not [UNK]
    again = train_tokenizer(texts, "wordpiece", 120, sample=sample_positions(601, 100, seed))
    assert again.get_vocab() == tok.get_vocab()
    assert sample_positions(10, 0, 1) is None and sample_positions(10, 10, 1) is None


def test_characters_found_are_those_the_trainer_sees() -> None:
    """The vectorised pass against the trainer's own view: normalise, pre-tokenize, words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from nlpflow.modeling.tokenizers import _Characters

    texts = [
        "ﬁne ＡＢc straße",  # NFKC: a ligature and full-width letters become ASCII
        "e\u0301t\u00e9 x¨y ΣΑΣ",  # composed; ¨ becomes a space and a combining mark
        "a\x1fb (re)entry x-ray",  # a control character inside a word; punctuation
        "Plain ASCII only, Twice.",
    ]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    chars = _Characters(tok)
    chars.add(texts[:2])
    chars.add(texts[2:])
    words = [
        w
        for t in texts
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t))
    ]
    assert chars.alphabet() == sorted({c for w in words for c in w})
    assert chars.continuations("##") == sorted({"##" + c for w in words for c in w[1:]})
