"""Token classification, prediction side: a tag per word."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily, Reject, Row


class TokenPredict(PredictFamily):
    """A tag per word: ``prediction`` (list of tags) and ``score`` (list of their
    probabilities), and ``entities``: ``[{type, start, end, text, score}]`` read from the tags
    as evaluate reads them (seqeval's default rules), ``start``/``end`` word indices (end
    exclusive), ``score`` the mean of its words' scores. A word the model gets no output for
    (past ``max_length``, or with no sub-token at all) has tag and score ``null`` and ends any
    entity. Words are the text field's list of strings; a string is split on whitespace, and
    the words then go to ``words``. Not cleaned, as in training (a word list keeps its
    length)."""

    name: ClassVar[str] = "token"
    output_keys: ClassVar[tuple[str, ...]] = ("words", "prediction", "score", "entities")

    def __init__(self, top_k: int = 5, threshold: float | None = None, positive: str = "") -> None:
        super().__init__(top_k, threshold, positive)
        self.split_strings = 0

    def check(self, loaded: LoadedModel) -> None:
        if self.threshold is not None or self.positive:
            raise UserError("--threshold and --positive apply to binary sequence tasks, not tags")

    def inputs(self, row: Row, loaded: LoadedModel) -> list[Any] | Reject:
        (name,) = loaded.meta.text_fields
        value = row.get(name)
        if value is None:
            return Reject(-1, name, "the words field is missing or null")
        if isinstance(value, str):
            words = value.split()
            self.split_strings += 1
        elif isinstance(value, list | tuple) and all(isinstance(w, str) for w in value):
            words = list(value)
        else:
            return Reject(-1, name, f"expected a list of words or a text, got {str(value)[:40]!r}")
        if not words or not any(w.strip() for w in words):
            return Reject(-1, name, "no words (empty)")
        return [words]

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        import numpy as np

        from nlpflow.evaluation.entities import get_entities
        from nlpflow.evaluation.predict import predict_token_probabilities
        from nlpflow.modeling.encoder import word_starts

        lm = loaded
        words = [it.inputs[0] for it in items]
        encoded = lm.encoder.encode([words])
        starts = [word_starts(ids, len(w)) for ids, w in zip(encoded.word_ids, words, strict=True)]
        probs = predict_token_probabilities(
            lm.model, encoded.input_ids, starts, lm.batch_size, lm.pad_id,
            token_type_ids=encoded.token_type_ids, progress=False,
        )  # fmt: skip
        names = lm.meta.label_names
        out = []
        for it, p in zip(items, probs, strict=True):
            tags: list[str | None] = []
            scores: list[float | None] = []
            for word_probs in p:
                if np.isnan(word_probs).any():
                    tags.append(None)
                    scores.append(None)
                else:
                    j = int(word_probs.argmax())
                    tags.append(names[j])
                    scores.append(float(word_probs[j]))
            entities = []
            for kind, start, last in get_entities([t or "O" for t in tags]):
                word_scores = [float(x) for x in scores[start : last + 1] if x is not None]
                entities.append(
                    {
                        "type": kind,
                        "start": start,
                        "end": last + 1,
                        "text": " ".join(it.inputs[0][start : last + 1]),
                        "score": sum(word_scores) / len(word_scores),
                    }
                )
            record: dict[str, Any] = {"prediction": tags, "score": scores, "entities": entities}
            if isinstance(it.raw.get(lm.meta.text_fields[0]), str):
                record = {"words": it.inputs[0], **record}
            out.append(record)
        return out, [n > 0 for n in encoded.truncated_words]

    def notes(self) -> list[str]:
        if not self.split_strings:
            return []
        return [
            f"{self.split_strings} row(s) held a text, not a list of words: split on "
            "whitespace (their words are in 'words')"
        ]
