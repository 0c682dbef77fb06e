"""Token classification: predictions are aligned to words by ``word_ids``, never by position.

A word with no sub-token (a zero-width space standing as a word in a CoNLL file: BERT's
normaliser deletes it) used to shift every later prediction one word to the left, so a
perfect model scored 0.889 entity F1 and its last word counted as truncated. Here the model
is a real, saved ``BertForTokenClassification`` whose weights make it an exact word -> tag
lookup (no layers; one-hot embeddings; the classifier sums the embeddings of each tag's
words), so its predictions are exactly the gold tags of every word it sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from nlpflow.params import EvaluateParams

TAGS = ["B-LOC", "B-PER", "I-PER", "O"]
ZWSP = "\u200b"
# Every word has one tag everywhere, so a word -> tag lookup is a perfect model.
WORD_TAG = {
    "Ada": "B-PER", "Lovelace": "I-PER", "Alan": "B-PER", "Turing": "I-PER",
    "Paris": "B-LOC", "Oslo": "B-LOC", "Lima": "B-LOC",
    "lives": "O", "in": "O", "met": "O", "and": "O", "visited": "O", ".": "O", ZWSP: "O",
}  # fmt: skip
SENTENCES = [
    ["Ada", "Lovelace", "lives", "in", "Paris", "."],
    ["Alan", "Turing", ZWSP, "visited", "Oslo", "and", "Lima", "."],
    ["Ada", "Lovelace", "met", "Alan", "Turing", "in", "Lima", "."],
    ["Alan", "Turing", "lives", "in", "Oslo", "."],
    [ZWSP, "Ada", "Lovelace", "visited", "Paris", "."],
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def _tokenizer() -> Any:
    """A word-level BERT-style tokenizer: BERT's normaliser (which deletes U+200B), one id
    per word, ``[CLS] ... [SEP]``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIALS, *(w for w in WORD_TAG if w != ZWSP)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _oracle_model(tokenizer: Any) -> Any:
    """A BertForTokenClassification that tags each word id with its word's tag."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    vocab = tokenizer.get_vocab()
    size = len(vocab)
    config = BertConfig(
        vocab_size=size, hidden_size=size, num_hidden_layers=0, num_attention_heads=1,
        intermediate_size=4, max_position_embeddings=64, pad_token_id=vocab["[PAD]"],
        num_labels=len(TAGS), id2label=dict(enumerate(TAGS)),
        label2id={t: i for i, t in enumerate(TAGS)},
    )  # fmt: skip
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.copy_(torch.eye(size) * 10)
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        for word, i in vocab.items():
            if word in WORD_TAG:
                model.classifier.weight[TAGS.index(WORD_TAG[word]), i] = 1.0
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Processed and tokenized splits with zero-width-space words, the oracle model, and the
    evaluate stage's result on them."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    from nlpflow.data.saved import DataMeta, write_saved
    from nlpflow.data.tokenize import tokenize_with_stats
    from nlpflow.evaluation.evaluate import evaluate_model
    from nlpflow.modeling.encoder import Encoder

    root = tmp_path_factory.mktemp("zwsp")
    features = Features(
        {
            "id": Value("string"),
            "tokens": Sequence(Value("string")),
            "label": Sequence(ClassLabel(names=TAGS)),
        }
    )
    rows = [
        {"id": f"s{i}", "tokens": s, "label": [TAGS.index(WORD_TAG[w]) for w in s]}
        for i, s in enumerate(SENTENCES)
    ]
    data = DatasetDict(
        {
            split: Dataset.from_list(rows, features=features)
            for split in ("train", "validation", "test")
        }
    )
    processed = root / "processed"
    meta = DataMeta(["tokens"], list(TAGS), task="token", label_field="tags")
    write_saved(processed, data, meta)  # as the stages write it

    tokenizer = _tokenizer()
    encoder = Encoder(tokenizer, ["tokens"], 32, task="token")
    tokenized, stats = tokenize_with_stats(data, encoder, tokenizer)
    write_saved(root / "tokenized", tokenized, meta.tokenized(32, "longest_first"))
    model_dir = root / "model"
    _oracle_model(tokenizer).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    params = EvaluateParams(bootstrap_resamples=20, baselines=[])
    evaluation = evaluate_model(model_dir, processed, root / "tokenized", params)
    return {"stats": stats, "evaluation": evaluation, "tokenized": tokenized}


def test_a_perfect_model_scores_one_despite_words_without_sub_tokens(run: dict[str, Any]) -> None:
    test = next(s for s in run["evaluation"].splits if s.name == "test")
    assert test.metrics["f1"] == 1.0  # 0.889 when predictions were aligned by position
    assert test.metrics["token_accuracy"] == 1.0
    assert test.metrics["entities"] == 12
    assert test.metrics["empty_words"] == 2
    assert test.metrics["truncated_words"] == 0
    by_id = {r["id"]: r for r in test.rows}
    zwsp_row = by_id["s1"]
    assert zwsp_row["prediction"] == [WORD_TAG[w] for w in SENTENCES[1]]
    assert zwsp_row["empty_words"] == 1 and zwsp_row["truncated"] == 0
    assert zwsp_row["confidence"][2] is None  # the empty word: no model output
    assert zwsp_row["probabilities"][3]["O"] > 0.9  # "visited" keeps its own output


def test_a_word_without_sub_tokens_inside_an_entity_is_scored_as_a_miss() -> None:
    # "Ada <zwsp> Lovelace" tagged as one person: the empty word has no prediction ("O"),
    # so the person is missed rather than the next words shifted onto it.
    import numpy as np
    from datasets import Dataset

    from nlpflow.evaluation.predict import TokenPredictions, token_prediction_rows
    from nlpflow.evaluation.scoring import token_counts, token_metrics

    words = ["Ada", ZWSP, "Lovelace", "lives"]
    gold = ["B-PER", "I-PER", "I-PER", "O"]
    processed = Dataset.from_list(
        [{"id": "a", "tokens": words, "label": [TAGS.index(t) for t in gold]}]
    )
    probs = np.full((4, len(TAGS)), 0.0)
    for w, tag in enumerate(gold):
        probs[w, TAGS.index(tag)] = 1.0
    probs[1] = np.nan
    rows = token_prediction_rows(
        processed, TokenPredictions([probs], [[1]], [0]), "tokens", [], TAGS, TAGS.index("O")
    )
    assert rows[0]["prediction"] == ["B-PER", "O", "I-PER", "O"]
    metrics = token_metrics(token_counts([gold], [rows[0]["prediction"]], "default", "IOB2"))
    assert metrics["recall"] == 0.0 and metrics["entities"] == 1


def test_tokenize_counts_the_empty_words_and_keeps_labels_on_their_words(
    run: dict[str, Any],
) -> None:
    assert run["stats"]["test"]["empty_words"] == 2
    assert run["stats"]["test"]["truncated_words"] == 0
    labels = run["tokenized"]["test"][1]["labels"]
    # [CLS] Alan Turing visited Oslo and Lima . [SEP]: the zero-width space has no position.
    assert labels == [-100, *(TAGS.index(WORD_TAG[w]) for w in SENTENCES[1] if w != ZWSP), -100]


def test_stored_ids_from_another_tokenizer_are_refused(run: dict[str, Any]) -> None:
    from datasets import Dataset

    from nlpflow.errors import UserError
    from nlpflow.evaluation.predict import predict_token_split

    tokenizer = _tokenizer()
    model = _oracle_model(tokenizer)
    other = Dataset.from_dict({"input_ids": [[2, 5, 3]], "labels": [[-100, 1, -100]]})
    with pytest.raises(UserError) as err:
        predict_token_split(model, other, [["Paris"]], tokenizer, 4, 0, "tok/test")
    assert str(err.value).startswith("tok/test row 0: the stored ids differ")
    assert "rerun the tokenize stage" in str(err.value)
