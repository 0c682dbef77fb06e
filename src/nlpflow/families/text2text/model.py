"""Text-to-text, model side: the encoder-decoder or decoder-only model of
``model.text2text.kind``, built whole (:func:`~.modeling.build_text2text_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from nlpflow.families.model import ModelFamily


class Text2TextModel(ModelFamily):
    name: ClassVar[str] = "text2text"

    def build(self, params: Any, tokenizer: Any, max_length: int) -> Any | None:
        import dataclasses

        from nlpflow.families.text2text.modeling import build_text2text_model

        model = build_text2text_model(params, params.text2text, tokenizer)
        # What prediction needs to make prompts as training did, saved with the model.
        model.config.text2text = dataclasses.asdict(params.text2text)
        return model

    def auto_class(self) -> Any:
        """A loader of a saved text-to-text model: ``AutoModelForSeq2SeqLM`` for an
        encoder-decoder config, ``AutoModelForCausalLM`` otherwise."""
        return _AutoText2Text

    def check_config(self, config: Any, label_names: Any, model_dir: Path) -> None:
        """Nothing to check against the data: a text-to-text model has no label head (its
        outputs are the tokenizer's vocabulary, saved beside it)."""


class _AutoText2Text:
    """``from_pretrained`` of the Auto class that fits the saved config's architecture (or
    of ``config`` when given: a LoRA adapter's base loaded with the trained model's config)."""

    @staticmethod
    def from_pretrained(path: str, **kwargs: Any) -> Any:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        config = kwargs.pop("config", None) or AutoConfig.from_pretrained(path, **kwargs)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        return auto.from_pretrained(path, config=config, **kwargs)
