"""Text-to-text, model side: the encoder-decoder or decoder-only model of
``model.text2text.kind``, built whole (:func:`~.modeling.build_text2text_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from nlpflow.families.model import ModelFamily


class Text2TextModel(ModelFamily):
    name: ClassVar[str] = "text2text"

    def build(self, params: Any, tokenizer: Any, max_length: int) -> Any | None:
        from nlpflow.families.text2text.modeling import build_text2text_model

        return build_text2text_model(params, params.text2text, tokenizer)

    def check_config(self, config: Any, label_names: Any, model_dir: Path) -> None:
        """Nothing to check against the data: a text-to-text model has no label head (its
        outputs are the tokenizer's vocabulary, saved beside it)."""
