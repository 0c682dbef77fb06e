"""Token classification, training side: labels per sub-token (-100 ignored), entity F1
as a validation metric when the tags are BIO."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from nlpflow.families.train import TrainFamily

if TYPE_CHECKING:
    import torch


class TokenTrain(TrainFamily):
    name: ClassVar[str] = "token"

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        from nlpflow.training.metrics import is_bio

        bio = ("entity_f1",) if is_bio(label_names) else ()
        return ("loss", "accuracy", "f1_macro", *bio)

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        from nlpflow.training.tracking import eval_columns

        return eval_columns(tuple(self.metric_names(label_names)[3:]))

    def probe_labels(self, size: int, sequence_length: int, num_labels: int) -> torch.Tensor:
        import torch

        return torch.arange(size * sequence_length).reshape(size, sequence_length) % num_labels
