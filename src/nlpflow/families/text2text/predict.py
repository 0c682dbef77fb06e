"""Text-to-text, prediction side: ``nlpflow predict`` generates an output per row.

The prompt is made as in training (the saved ``model.text2text`` settings in the model's
config: template, input limit, kind) and generated greedily with at most
``GenerationParams().max_new_tokens`` new tokens; each record gets ``prediction`` (the
text), ``generated_tokens`` and ``ended`` (whether the end-of-text token came).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily


class Text2TextPredict(PredictFamily):
    name: ClassVar[str] = "text2text"
    output_keys: ClassVar[tuple[str, ...]] = ("prediction", "generated_tokens", "ended")
    _tokenizer: Any = None

    def check(self, loaded: LoadedModel) -> None:
        if self.threshold is not None or self.positive:
            raise UserError("--threshold and --positive apply to binary sequence tasks")
        if not isinstance(getattr(loaded.model.config, "text2text", None), dict):
            raise UserError(
                "the model's config.json lacks its text2text settings (prompt template, input "
                "limit); retrain it with this version (dvc repro train)"
            )

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        from nlpflow.families.text2text.encoding import Text2TextEncoder
        from nlpflow.families.text2text.modeling import generate
        from nlpflow.families.text2text.params import GenerationParams, Text2TextModelParams
        from nlpflow.modeling.tokenizers import load_tokenizer

        t2t = Text2TextModelParams(**loaded.model.config.text2text)
        if self._tokenizer is None:  # the one saved beside the model (in its directory)
            self._tokenizer = loaded.tokenizer or load_tokenizer(loaded.model.name_or_path)
        tokenizer = self._tokenizer
        encoder = Text2TextEncoder(tokenizer, t2t)
        prompts = [encoder.prompt_ids(it.inputs[0], count=True) for it in items]
        cut = [n > t2t.max_input_length for n in encoder.stats.input_lengths]
        out = generate(
            loaded.model, tokenizer, prompts, GenerationParams(batch_size=loaded.batch_size)
        )
        records = [
            {"prediction": g.text, "generated_tokens": g.tokens, "ended": g.ended} for g in out
        ]
        return records, cut
