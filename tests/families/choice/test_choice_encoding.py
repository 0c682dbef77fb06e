"""(context, option) pairs to (N, T) ids and (B, N, T) batches."""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.errors import UserError
from nlpflow.families.choice.encoding import encode_choices, pad_choices, worst_case_batch
from nlpflow.modeling.encoder import Encoder
from nlpflow.modeling.tokenizers import train_tokenizer

CONTEXTS = ["the cat sat on the mat", "she opened a very old and dusty book slowly"]
OPTIONS = [["and slept", "in orbit", "a dog barked loudly"], ["then read", "x", "and closed it"]]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer([*CONTEXTS, *(o for row in OPTIONS for o in row)], vocab_size=200)


def test_each_option_is_the_tokenizers_own_pair_with_its_context(tokenizer: Any) -> None:
    enc = encode_choices(Encoder(tokenizer, ["context", "option"], 64), CONTEXTS, OPTIONS)
    assert len(enc) == 2 and [len(r) for r in enc.input_ids] == [3, 3]
    assert enc.token_type_ids is not None
    for i, context in enumerate(CONTEXTS):
        for j, option in enumerate(OPTIONS[i]):
            ref = tokenizer(context, option)
            assert enc.input_ids[i][j] == ref["input_ids"]
            assert enc.token_type_ids[i][j] == ref["token_type_ids"]
            assert enc.lengths[i, j] == len(ref["input_ids"])
    assert enc.truncated(64).tolist() == [0, 0]


def test_only_first_cuts_the_context_and_counts_the_cut_pairs(tokenizer: Any) -> None:
    encoder = Encoder(tokenizer, ["context", "option"], 8, truncation="only_first")
    enc = encode_choices(encoder, CONTEXTS, OPTIONS)
    for i, context in enumerate(CONTEXTS):
        for j, option in enumerate(OPTIONS[i]):
            ref = tokenizer(context, option, truncation="only_first", max_length=8)
            assert enc.input_ids[i][j] == ref["input_ids"]
            # the option is kept whole
            whole = tokenizer(option, add_special_tokens=False)["input_ids"]
            assert enc.input_ids[i][j][-1 - len(whole) : -1] == whole
    assert (enc.lengths > 8).sum(axis=1).tolist() == enc.truncated(8).tolist()
    assert enc.truncated(8).tolist() == [3, 3]


def test_a_pair_that_cannot_fit_names_split_row_and_option(tokenizer: Any) -> None:
    encoder = Encoder(tokenizer, ["context", "option"], 6, truncation="only_second")
    with pytest.raises(UserError) as err:
        encode_choices(encoder, CONTEXTS, OPTIONS, where="validation", first_row=10)
    assert str(err.value).startswith("validation option 1, row 10: tokenizer.truncation ")


def test_padding_gives_b_n_t_with_a_mask() -> None:
    ids = [[[1, 2, 3], [4, 5]], [[6], [7, 8, 9, 10]]]
    types = [[[0, 0, 1], [0, 1]], [[0], [0, 0, 1, 1]]]
    batch = pad_choices(ids, pad_id=0, token_type_ids=types)
    assert batch["input_ids"].shape == (2, 2, 4)
    assert batch["input_ids"].tolist() == [
        [[1, 2, 3, 0], [4, 5, 0, 0]],
        [[6, 0, 0, 0], [7, 8, 9, 10]],
    ]
    assert batch["attention_mask"].tolist() == [
        [[1, 1, 1, 0], [1, 1, 0, 0]],
        [[1, 0, 0, 0], [1, 1, 1, 1]],
    ]
    assert batch["token_type_ids"].tolist() == [
        [[0, 0, 1, 0], [0, 1, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 1, 1]],
    ]
    assert "token_type_ids" not in pad_choices(ids, pad_id=0)
    with pytest.raises(ValueError) as err:
        pad_choices([[[1], [2]], [[3]]], pad_id=0)
    assert str(err.value) == "rows with different numbers of options: [1, 2]"


def test_the_worst_case_batch_is_n_options_of_the_longest_sequence() -> None:
    batch = worst_case_batch(3, 4, 16, vocab_size=100, segments=True, seed=0)
    assert batch["input_ids"].shape == (3, 4, 16)
    assert batch["attention_mask"].all() and batch["attention_mask"].shape == (3, 4, 16)
    assert batch["token_type_ids"].shape == (3, 4, 16)
    assert batch["labels"].tolist() == [0, 1, 2]
    assert batch["input_ids"].max() < 100
    assert "token_type_ids" not in worst_case_batch(1, 2, 4, 100, segments=False, seed=0)


def test_a_real_multiple_choice_model_takes_the_batch(tokenizer: Any) -> None:
    import torch
    from transformers import BertConfig, BertForMultipleChoice

    enc = encode_choices(Encoder(tokenizer, ["context", "option"], 32), CONTEXTS, OPTIONS)
    batch = pad_choices(enc.input_ids, tokenizer.pad_token_id, enc.token_type_ids)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = BertForMultipleChoice(config).eval()
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        logits = model(**tensors).logits  # (B, N)
        # padding changes nothing: row 0 alone, padded to its own longest option only
        alone = model(
            **{
                k: v[:1, :, : int(batch["attention_mask"][0].sum(-1).max())]
                for k, v in tensors.items()
            }
        ).logits
    assert logits.shape == (2, 3)
    assert torch.allclose(logits[0], alone[0], atol=1e-5)
