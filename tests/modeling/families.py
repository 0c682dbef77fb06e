"""Tiny local 'pretrained' models of several families, each with a real tokenizer built here.

Each family's tokenizer is trained (no download) on the built-in data's text with that
family's own algorithm, normaliser, pre-tokenizer, special tokens and template: WordPiece for
BERT, DistilBERT and ELECTRA; byte-level BPE for RoBERTa and GPT-2 (GPT-2 without a padding
token and without special tokens around the text); SentencePiece-style Unigram for DeBERTa-v2.
The model is the family's base model from a tiny config (hidden 16, one layer), saved with
random weights in ``save_pretrained`` layout beside its tokenizer, so ``model.name_or_path``
can point at the directory exactly as at a downloaded model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

FAMILIES = ("bert", "roberta", "distilbert", "electra", "deberta-v2", "gpt2")
VOCAB = 300
POSITIONS = 64  # position-table rows of the tiny configs (RoBERTa: 64 + 2)
TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32}  # fmt: skip


def _wordpiece(texts: Iterable[str]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts,
        trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False),
    )
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    return tok


def _byte_level(texts: Iterable[str], specials: list[str], roberta: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=VOCAB, special_tokens=specials, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )  # fmt: skip
    if roberta:
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
            add_prefix_space=False,
        )  # fmt: skip
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _unigram(texts: Iterable[str]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()  # cased: the class rebuilds its normaliser on loading
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(
        texts,
        trainers.UnigramTrainer(
            vocab_size=VOCAB, special_tokens=specials, unk_token="[UNK]", show_progress=False
        ),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def make_family(family: str, root: Path, texts: list[str]) -> Path:
    """Build ``family``'s tokenizer on ``texts`` and a tiny random model; save both in
    ``root/family``; return the directory."""
    import torch
    import transformers as tf

    out = root / family
    if family in ("bert", "distilbert", "electra"):
        backend = _wordpiece(texts)
        cls = {"bert": tf.BertTokenizerFast, "distilbert": tf.DistilBertTokenizerFast,
               "electra": tf.ElectraTokenizerFast}[family]  # fmt: skip
        tokenizer = cls(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
    elif family == "roberta":
        backend = _byte_level(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], roberta=True)
        tokenizer = tf.RobertaTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        )  # fmt: skip
    elif family == "gpt2":
        backend = _byte_level(texts, ["<|endoftext|>"], roberta=False)
        tokenizer = tf.GPT2TokenizerFast(
            tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )  # fmt: skip
    elif family == "deberta-v2":
        backend = _unigram(texts)
        tokenizer = tf.DebertaV2TokenizerFast(
            tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]",
        )  # fmt: skip
    else:
        raise ValueError(family)
    tokenizer.model_max_length = 512
    size = len(tokenizer)
    if family == "bert":
        config: Any = tf.BertConfig(vocab_size=size, max_position_embeddings=POSITIONS, **TINY)
    elif family == "electra":
        config = tf.ElectraConfig(vocab_size=size, embedding_size=16,
                                  max_position_embeddings=POSITIONS, **TINY)  # fmt: skip
    elif family == "roberta":
        config = tf.RobertaConfig(
            vocab_size=size, max_position_embeddings=POSITIONS + 2, type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, **TINY,
        )  # fmt: skip
    elif family == "distilbert":
        config = tf.DistilBertConfig(vocab_size=size, dim=16, n_layers=1, n_heads=2,
                                     hidden_dim=32, max_position_embeddings=POSITIONS)  # fmt: skip
    elif family == "deberta-v2":
        config = tf.DebertaV2Config(
            vocab_size=size, max_position_embeddings=POSITIONS, relative_attention=True,
            position_buckets=16, pos_att_type=["p2c", "c2p"], position_biased_input=False,
            pad_token_id=tokenizer.pad_token_id, **TINY,
        )  # fmt: skip
    else:
        config = tf.GPT2Config(vocab_size=size, n_positions=POSITIONS, n_embd=16, n_layer=1,
                               n_head=2, n_inner=32, bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    tf.AutoModel.from_config(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
