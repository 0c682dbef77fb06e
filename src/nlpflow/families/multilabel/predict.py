"""Multi-label classification, prediction side: ``prediction``, the labels whose sigmoid
score reaches the threshold (``--threshold``, 0.5 by default; the card's command carries the
global threshold evaluate applied), and ``scores``, every label's score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily

DEFAULT_THRESHOLD = 0.5


class MultilabelPredict(PredictFamily):
    name: ClassVar[str] = "multilabel"
    output_keys: ClassVar[tuple[str, ...]] = ("prediction", "scores")

    def check(self, loaded: LoadedModel) -> None:
        if self.positive:
            raise UserError("--positive applies to binary sequence tasks, not multi-label ones")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"--threshold {self.threshold} must be between 0 and 1")

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        import numpy as np
        from scipy.special import expit

        from nlpflow.evaluation.predict import forward_batches

        lm = loaded
        names = lm.meta.label_names
        columns = [[it.inputs[f] for it in items] for f in range(len(lm.meta.text_fields))]
        encoded = lm.encoder.encode(columns)
        lengths = lm.encoder.lengths(columns)
        scores = np.empty((len(items), len(names)), dtype=np.float64)
        batches = forward_batches(
            lm.model, encoded.input_ids, lm.batch_size, lm.pad_id, encoded.token_type_ids,
            False, softmax=False,
        )  # fmt: skip
        for idx, logits in batches:
            scores[idx] = expit(logits)
        cut = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        records = [
            {
                "prediction": [n for n, s in zip(names, row, strict=True) if s >= cut],
                "scores": {n: float(s) for n, s in zip(names, row, strict=True)},
            }
            for row in scores
        ]
        return records, [bool(n > lm.encoder.max_length) for n in lengths]
