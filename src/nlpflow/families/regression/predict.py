"""Regression, prediction side: ``prediction``, a number in the target's units (the model's
standardised output restored with ``config.target_mean``/``target_std``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.predict import Item, LoadedModel, PredictFamily


class RegressionPredict(PredictFamily):
    name: ClassVar[str] = "regression"
    output_keys: ClassVar[tuple[str, ...]] = ("prediction",)

    def check(self, loaded: LoadedModel) -> None:
        if self.threshold is not None or self.positive:
            raise UserError("--threshold and --positive apply to binary sequence tasks")

    def predict(
        self, items: Sequence[Item], loaded: LoadedModel
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        import numpy as np

        from nlpflow.evaluation.predict import forward_batches
        from nlpflow.families.regression.model import restore

        lm = loaded
        columns = [[it.inputs[f] for it in items] for f in range(len(lm.meta.text_fields))]
        encoded = lm.encoder.encode(columns)
        lengths = lm.encoder.lengths(columns)
        out = np.empty(len(items), dtype=np.float64)
        batches = forward_batches(
            lm.model, encoded.input_ids, lm.batch_size, lm.pad_id, encoded.token_type_ids,
            False, softmax=False,
        )  # fmt: skip
        for idx, logits in batches:
            out[idx] = logits.reshape(len(idx), -1)[:, 0]
        values = np.asarray(restore(lm.model.config, out), dtype=np.float64)
        records = [{"prediction": float(v)} for v in values]
        return records, [bool(n > lm.encoder.max_length) for n in lengths]
