"""Model construction: a small BERT from a config, or a pretrained encoder with a fresh head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nlpflow.errors import UserError
from nlpflow.params import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def build_model(
    params: ModelParams,
    tokenizer: PreTrainedTokenizerBase,
    label_names: list[str],
    max_length: int,
) -> PreTrainedModel:
    """A sequence-classification model whose config carries ``id2label``/``label2id``.

    With ``params.name_or_path`` empty the model is a small BERT built from ``params`` and
    sized to ``tokenizer``; otherwise the pretrained encoder is loaded and its head is new.
    """
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in enumerate(label_names)}
    if not params.name_or_path:
        config = BertConfig(  # type: ignore[call-arg]
            vocab_size=len(tokenizer),
            hidden_size=params.hidden_size,
            num_hidden_layers=params.num_layers,
            num_attention_heads=params.num_heads,
            intermediate_size=params.intermediate_size,
            hidden_dropout_prob=params.dropout,
            attention_probs_dropout_prob=params.dropout,
            max_position_embeddings=max(max_length, 8),
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=len(label_names),
            id2label=id2label,
            label2id=label2id,
        )
        return BertForSequenceClassification(config)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            params.name_or_path,
            num_labels=len(label_names),
            id2label=id2label,
            label2id=label2id,
            # A pretrained head for other labels (or none) is replaced by a fresh one.
            ignore_mismatched_sizes=True,
            trust_remote_code=params.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot load model.name_or_path '{params.name_or_path}': "
            f"{str(err).splitlines()[0]} (offline, only local directories work)"
        ) from None
    return model


def model_max_positions(model: PreTrainedModel) -> int:
    """The longest input the model accepts (its position embeddings)."""
    return int(getattr(model.config, "max_position_embeddings", 512))
