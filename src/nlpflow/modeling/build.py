"""Model construction: a small BERT from a config, or a pretrained encoder with a fresh head.

The head follows the task's family (:mod:`nlpflow.families.model`): ``sequence`` (one label
per example, binary or multi-class), ``token`` (one label per sub-token, ``-100`` where
ignored), ... The config carries the family's ``id2label``/``label2id``, so
``transformers.pipeline`` shows label names.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.params import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Task = str  # a task family's name (nlpflow.families.names.TASKS)

# Config attributes that hold dropout probabilities, across the common encoder families
# (BERT/RoBERTa/ELECTRA: hidden_dropout_prob...; DistilBERT: dropout, attention_dropout...).
DROPOUT_ATTRIBUTES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "seq_classif_dropout",
    "hidden_dropout",
    "classifier_dropout",
)


def build_model(
    params: ModelParams,
    tokenizer: PreTrainedTokenizerBase,
    label_names: list[str],
    max_length: int,
    task: Task = "sequence",
) -> PreTrainedModel:
    """A model with the head of ``task``'s family whose config carries its ``id2label``.

    With ``params.name_or_path`` empty the model is a small BERT built from ``params`` and
    sized to ``tokenizer``; otherwise the pretrained encoder is loaded and its head is new.
    ``params.dropout`` (when not None) sets every dropout probability of the config;
    ``params.freeze_embeddings`` turns off gradients of the embedding layer;
    ``params.lora.enabled`` wraps the model with LoRA adapters
    (:func:`nlpflow.modeling.lora.apply_lora`).
    """
    from transformers import AutoConfig

    from nlpflow.families.model import model_family

    family = model_family(task)
    own = family.build(params, tokenizer, max_length)
    if own is not None:
        if params.freeze_embeddings:
            freeze_embeddings(own)
        return _with_lora(own, params, task)
    head = family.config_kwargs(label_names)
    if not params.name_or_path:
        model: PreTrainedModel = family.from_scratch(params, tokenizer, head, max_length)
    else:
        auto = family.auto_class()
        try:
            config = AutoConfig.from_pretrained(
                params.name_or_path, **head, trust_remote_code=params.trust_remote_code
            )
            if getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
                # GPT-2 has no pad token: sequence classification reads the last token that is
                # not padding, so the model must know the id the tokenizer pads with.
                config.pad_token_id = tokenizer.pad_token_id
            if params.dropout is not None:
                # Only probabilities the config sets (classifier_dropout None means
                # "as the hidden dropout" in BERT and stays so).
                for name in DROPOUT_ATTRIBUTES:
                    if isinstance(getattr(config, name, None), float):
                        setattr(config, name, params.dropout)
            model = auto.from_pretrained(
                params.name_or_path,
                config=config,
                # A pretrained head for other labels (or none) is replaced by a fresh one.
                ignore_mismatched_sizes=True,
                trust_remote_code=params.trust_remote_code,
            )
        except (OSError, ValueError) as err:
            raise UserError(
                f"cannot load model.name_or_path '{params.name_or_path}': "
                f"{str(err).splitlines()[0]} (offline, only local directories work)"
            ) from None
    if params.freeze_embeddings:
        freeze_embeddings(model)
    return _with_lora(model, params, task)


def _with_lora(model: PreTrainedModel, params: ModelParams, task: Task) -> PreTrainedModel:
    """``model`` with LoRA adapters when ``params.lora.enabled`` (a peft model whose only
    trainable parameters are the adapters and a classification head), else ``model``."""
    if not params.lora.enabled:
        return model
    from nlpflow.modeling.lora import CONFIG_KEY, apply_lora, lora_record

    adapted = apply_lora(model, params.lora, task)
    # Saved with the model (config.json): the base and the adapter's settings.
    setattr(model.config, CONFIG_KEY, lora_record(adapted, params.lora, params.name_or_path))
    return adapted


def freeze_embeddings(model: PreTrainedModel) -> int:
    """Turn off gradients of the embedding layer (token, position, segment embeddings and
    their LayerNorm when the model groups them, as BERT does); returns the parameters frozen."""
    base = getattr(model, "base_model", model)
    module = getattr(base, "embeddings", None)
    if module is None:
        module = model.get_input_embeddings()
    frozen = 0
    for param in module.parameters():
        param.requires_grad_(False)
        frozen += param.numel()
    return frozen


def without_regularisation(params: ModelParams) -> ModelParams:
    """``params`` with dropout off (the overfit-batches check)."""
    return dataclasses.replace(params, dropout=0.0)


def load_config(name_or_path: str, trust_remote_code: bool = False) -> Any:
    """The config of a pretrained model; one clear line when it cannot be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot load model.name_or_path '{name_or_path}': {str(err).splitlines()[0]} "
            "(offline, only local directories work)"
        ) from None


def position_limit(config: Any) -> int | None:
    """The most positions the model's position embeddings index, found from the model itself.

    The model is built on the ``meta`` device (no memory, no weights read) and its position
    embedding table inspected: RoBERTa-like models number positions from ``padding_idx + 1``
    (514 rows hold 512 tokens), BERT-like ones from 0, GPT-2 has ``wpe``. Models without a
    position table (relative positions: DeBERTa-v2) give their config's
    ``max_position_embeddings``, or None when they have none.
    """
    import torch
    from torch import nn
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except (ValueError, KeyError, TypeError):
        model = None
    if model is not None:
        for name, module in model.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if isinstance(module, nn.Embedding) and (
                leaf in ("position_embeddings", "wpe", "embed_positions")
            ):
                # Rows before position 0: RoBERTa's padding_idx + 1; BART's and OPT's
                # learned tables keep theirs in `offset` (2) with no padding_idx.
                offset = getattr(module, "offset", None)
                if not isinstance(offset, int):
                    offset = 0 if module.padding_idx is None else module.padding_idx + 1
                return int(module.num_embeddings - offset)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def pretrained_limit(tokenizer: Any, config: Any) -> int:
    """The longest input a pretrained model reads: its position table (:func:`position_limit`),
    and no more than its tokenizer's ``model_max_length``."""
    limit = int(min(getattr(tokenizer, "model_max_length", 10**6) or 10**6, 10**6))
    positions = position_limit(config)
    return min(limit, positions) if positions else limit
