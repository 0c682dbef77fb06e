"""Text-to-text, prediction side: ``nlpflow predict`` generates an output per row.

The prompt is made as in training (the saved ``model.text2text`` settings in the model's
config: template, input limit, kind) and generated as ``evaluate.generation``'s defaults
generate (greedy, at most 32 new tokens), or with the ``max_new_tokens`` and ``num_beams``
given (``nlpflow predict --max-new-tokens N --num-beams N``: the values evaluate used, to
predict as it scored); each record gets ``prediction`` (the text), ``generated_tokens`` and
``ended`` (whether the end-of-text token came).

A label task's model (``data.text2text.label_task``; ``nlpflow.json`` records its
``label_task_fields`` and ``target_labels``) reads the classification file's own text fields,
joined as preprocess joined them (:data:`~nlpflow.families.text2text.data.LABEL_TASK_JOIN`,
then cleaned as the training inputs were), and each record also gets ``parsed_label`` (the
class the output is read back to, null when unparseable) and ``parsed_as`` (``exact``,
``normalised`` or ``unparseable``: :class:`~nlpflow.families.text2text.outputs.LabelParser`,
as evaluate parses).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily, Reject, Row

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta

LABEL_KEYS = ("parsed_label", "parsed_as")
# evaluate.generation keys predict takes (nlpflow predict --max-new-tokens, --num-beams)
GENERATION_OPTIONS = ("max_new_tokens", "num_beams")


class Text2TextPredict(PredictFamily):
    name: ClassVar[str] = "text2text"
    output_keys: ClassVar[tuple[str, ...]] = ("prediction", "generated_tokens", "ended")
    _tokenizer: Any = None

    def __init__(
        self,
        top_k: int = 5,
        threshold: float | None = None,
        positive: str = "",
        generation: dict[str, Any] | None = None,
    ) -> None:
        from nlpflow.families.text2text.params import GenerationParams

        super().__init__(top_k, threshold, positive)
        self.parsed: Counter[str] = Counter()  # a label task's outputs by how they were read
        given = dict(generation or {})
        for key, value in given.items():
            flag = "--" + key.replace("_", "-")
            if key not in GENERATION_OPTIONS:
                raise UserError(f"{flag}: predict takes {', '.join(GENERATION_OPTIONS)} only")
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{flag} must be an integer >= 1, not {value!r}")
        self.generation = GenerationParams(**given)

    def check(self, loaded: LoadedModel) -> None:
        if self.threshold is not None or self.positive:
            raise UserError("--threshold and --positive apply to binary sequence tasks")
        if not isinstance(getattr(loaded.model.config, "text2text", None), dict):
            raise UserError(
                "the model's config.json lacks its text2text settings (prompt template, input "
                "limit); retrain it with this version (dvc repro train)"
            )

    def read_fields(self, meta: DataMeta) -> list[str]:
        return list(meta.label_task_fields or meta.text_fields)

    def output_names(self, meta: DataMeta) -> tuple[str, ...]:
        return (*self.output_keys, *LABEL_KEYS) if meta.target_labels else self.output_keys

    def inputs(self, row: Row, loaded: LoadedModel) -> list[Any] | Reject:
        """A label task's input: its source text fields joined as preprocess joined them,
        then cleaned as the training inputs were (a Reject naming a missing field)."""
        fields = loaded.meta.label_task_fields
        if not fields:
            return super().inputs(row, loaded)
        from nlpflow.families.predict import text_value
        from nlpflow.families.text2text import INPUT_FIELD
        from nlpflow.families.text2text.data import LABEL_TASK_JOIN

        texts = []
        for name in fields:
            text = text_value(row.get(name), name)
            if isinstance(text, Reject):
                return text
            texts.append(text)
        return super().inputs({INPUT_FIELD: LABEL_TASK_JOIN.join(texts)}, loaded)

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        from nlpflow.families.text2text.encoding import Text2TextEncoder
        from nlpflow.families.text2text.modeling import generate
        from nlpflow.families.text2text.params import Text2TextModelParams
        from nlpflow.modeling.tokenizers import load_tokenizer

        t2t = Text2TextModelParams(**loaded.model.config.text2text)
        if self._tokenizer is None:  # the one saved beside the model (in its directory)
            self._tokenizer = loaded.tokenizer or load_tokenizer(loaded.model.name_or_path)
        tokenizer = self._tokenizer
        encoder = Text2TextEncoder(tokenizer, t2t)
        prompts = [encoder.prompt_ids(it.inputs[0], count=True) for it in items]
        cut = [n > t2t.max_input_length for n in encoder.stats.input_lengths]
        settings = dataclasses.replace(self.generation, batch_size=loaded.batch_size)
        out = generate(loaded.model, tokenizer, prompts, settings)
        records: list[dict[str, Any]] = [
            {"prediction": g.text, "generated_tokens": g.tokens, "ended": g.ended} for g in out
        ]
        if loaded.meta.target_labels:  # a label task: the output read back to a class
            from nlpflow.families.text2text.outputs import LabelParser

            parser = LabelParser(loaded.meta.target_labels)
            for record in records:
                record["parsed_label"], record["parsed_as"] = parser.parse(record["prediction"])
                self.parsed[record["parsed_as"]] += 1
        return records, cut

    def notes(self) -> list[str]:
        """The base class's notes and, for a label task, how the outputs were read back."""
        from nlpflow.families.text2text.outputs import EXACT, NORMALISED, UNPARSEABLE

        out = super().notes()
        if self.parsed:
            counts = ", ".join(f"{k} {self.parsed[k]}" for k in (EXACT, NORMALISED, UNPARSEABLE))
            out.append(f"outputs read back as labels: {counts}")
        return out
