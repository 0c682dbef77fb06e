"""Multiple choice, prediction side: ``nlpflow predict`` on rows of ``context`` (text) and
``options`` (a list of the model's N option texts), as the processed data holds them (JSONL,
JSON or Parquet; a CSV cell holds one text). Each record gets ``prediction`` (the chosen
option's position, ``"0"`` .. ``"N-1"``, as evaluate's records name it), ``score`` (its
probability) and ``top_k`` (positions with probabilities, most probable first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.choice import CONTEXT, OPTIONS
from nlpflow.families.predict import Item, LoadedModel, PredictFamily, Reject, Row, text_value


class ChoicePredict(PredictFamily):
    name: ClassVar[str] = "choice"

    def check(self, loaded: LoadedModel) -> None:
        if self.threshold is not None or self.positive:
            raise UserError("--threshold and --positive apply to binary sequence tasks")

    def inputs(self, row: Row, loaded: LoadedModel) -> list[Any] | Reject:
        """``[context, options]``, cleaned as in training, or a Reject: the context not
        text, the options not a list of N texts, or one empty after cleaning."""
        from nlpflow.data.clean import clean_text

        width = len(loaded.meta.label_names)
        context = text_value(row.get(CONTEXT), CONTEXT)
        if isinstance(context, Reject):
            return context
        options = row.get(OPTIONS)
        if not isinstance(options, list) or len(options) != width:
            got = f"{len(options)} options" if isinstance(options, list) else repr(options)[:40]
            return Reject(-1, OPTIONS, f"expected a list of {width} option texts, got {got}")
        if not all(isinstance(o, str) for o in options):
            return Reject(-1, OPTIONS, "every option must be a text")
        self.inputs_cleaning(loaded)
        assert self._cleaning is not None
        context = clean_text(context, self._cleaning, self.cleaned)
        cleaned = [clean_text(o, self._cleaning, self.cleaned) for o in options]
        if not context.strip():
            return Reject(-1, CONTEXT, "the text is empty (after cleaning)")
        for j, option in enumerate(cleaned):
            if not option.strip():
                return Reject(-1, OPTIONS, f"option {j} is empty (after cleaning)")
        return [context, cleaned]

    def inputs_cleaning(self, loaded: LoadedModel) -> None:
        """The training's cleaning params (``nlpflow.json``), built once."""
        import dataclasses

        from nlpflow.params import CleaningParams

        if self._cleaning is None:
            known = {f.name for f in dataclasses.fields(CleaningParams)}
            saved = loaded.meta.cleaning or {"unicode": "none", "whitespace": False}
            self._cleaning = CleaningParams(**{k: v for k, v in saved.items() if k in known})

    def encode(self, loaded: LoadedModel, columns: list[list[Any]]) -> Any:
        from nlpflow.families.choice.encoding import encode_choices

        return encode_choices(loaded.encoder, columns[0], columns[1])

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        import numpy as np

        from nlpflow.evaluation.predict import forward_batches

        lm = loaded
        enc = self.encode(lm, [[it.inputs[0] for it in items], [it.inputs[1] for it in items]])
        names = lm.meta.label_names
        probs = np.zeros((len(items), len(names)), dtype=np.float64)
        for idx, p in forward_batches(
            lm.model, enc.input_ids, lm.batch_size, lm.pad_id, enc.token_type_ids, False
        ):
            probs[idx] = p
        top_k = max(1, min(self.top_k, len(names)))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        out = []
        for i in range(len(items)):
            j = int(probs[i].argmax())
            top = [{"label": names[k], "score": float(probs[i, k])} for k in order[i]]
            out.append({"prediction": names[j], "score": float(probs[i, j]), "top_k": top})
        truncated = enc.truncated(lm.encoder.max_length)
        return out, [bool(t > 0) for t in truncated]
