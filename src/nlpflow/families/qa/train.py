"""Extractive QA, training side: windows as padded tensors with their ``[start, end]`` token
positions, the span loss (mean of the start and end cross-entropies, BERT's SQuAD loss),
"correct" when both positions are right, validation loss and span accuracy (the share of
windows whose start and end are both right; a window without the answer must point at the
classifier token), and the probe's worst-case batch of full-length windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.train import TrainFamily
from nlpflow.training.data import PaddedSplit
from nlpflow.training.loss import Criterion

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from nlpflow.training.distributed import Distributed

METRICS = ("accuracy",)  # span accuracy: start and end both right


@dataclass
class QaSplit(PaddedSplit):
    """Windows as padded tensors; ``labels`` (N, 2) int64 start and end token positions."""

    @classmethod
    def from_windows(cls, split: Dataset, pad_id: int) -> QaSplit:
        import numpy as np
        import torch

        if "labels" not in split.column_names or "cls_index" not in split.column_names:
            raise UserError(
                "the tokenized data is not QA windows (no labels/cls_index); rerun tokenize"
            )
        inputs = [c for c in ("input_ids", "token_type_ids") if c in split.column_names]
        base = PaddedSplit.from_dataset(
            split.select_columns(["cls_index", *inputs]).rename_column("cls_index", "labels"),
            pad_id,
        )
        labels = np.asarray(split["labels"], dtype=np.int64).reshape(len(split), 2)
        return cls(base.input_ids, base.token_type_ids, base.lengths, torch.from_numpy(labels))

    @property
    def token_task(self) -> bool:
        return False

    def subset(self, index: torch.Tensor) -> QaSplit:
        return QaSplit(
            self.input_ids[index],
            None if self.token_type_ids is None else self.token_type_ids[index],
            self.lengths[index],
            self.labels[index],
        )

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        """One counted target per window (its start position): the step divides by rows."""
        return self.labels[index, 0]


@dataclass
class QaCriterion(Criterion):
    """The span loss summed over a micro-batch: per window the mean of the start and end
    cross-entropies over its tokens (``output.start_logits``/``end_logits`` (B, T));
    ``labels`` (B, 2). A step divides by its windows."""

    measures_accuracy: ClassVar[bool] = True

    def to(self, device: torch.device) -> QaCriterion:
        return self

    def sum(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        start, end = output.start_logits.float(), output.end_logits.float()
        width = start.shape[1]
        starts = labels[:, 0].clamp(0, width)
        ends = labels[:, 1].clamp(0, width)
        loss_start = F.cross_entropy(start, starts, ignore_index=width, reduction="sum")
        loss_end = F.cross_entropy(end, ends, ignore_index=width, reduction="sum")
        return (loss_start + loss_end) / 2

    def correct(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        start = output.start_logits.detach().argmax(-1)
        end = output.end_logits.detach().argmax(-1)
        return ((start == labels[:, 0]) & (end == labels[:, 1])).sum()

    def denominator(self, targets: torch.Tensor) -> float:
        return float(targets.shape[0]) or 1.0


class QaTrain(TrainFamily):
    name: ClassVar[str] = "qa"

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        return QaSplit.from_windows(split, pad_id)

    def check_loss(self, loss: str) -> None:
        if loss not in ("auto", "cross_entropy"):
            raise UserError(
                f"params.yaml: train.loss '{loss}' does not apply to a qa task (the span "
                "loss is a cross-entropy over tokens); use auto or cross_entropy"
            )

    def criterion(
        self, train: Any, label_names: Sequence[str], train_set: PaddedSplit, overfit: bool
    ) -> Criterion:
        self.check_loss(getattr(train, "loss", "auto"))
        if train.class_weights != "none" or train.label_smoothing:
            raise UserError(
                "params.yaml: train.class_weights and train.label_smoothing apply to classes; "
                "set them to none and 0 for a qa task"
            )
        return QaCriterion()

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        return ("loss", *METRICS)

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        return ("epoch", "step", "train_loss", "val_loss", "val_accuracy")

    def uniform_classes(self, label_names: Sequence[str]) -> int | None:
        return None  # the loss is over a window's tokens, not over classes

    def validate(
        self,
        model: torch.nn.Module,
        split: PaddedSplit,
        batch_size: int,
        device: torch.device,
        criterion: Criterion,
        dist: Distributed | None,
        label_names: Sequence[str],
        precision: torch.dtype | None,
    ) -> dict[str, float]:
        """Mean span loss per window and span accuracy, the same on every process."""
        import torch

        from nlpflow.families.train import validation_batches, validation_order

        order = validation_order(split, dist)
        total = torch.zeros((), dtype=torch.float64, device=device)
        right = torch.zeros((), dtype=torch.float64, device=device)
        for output, labels in validation_batches(
            model, split, order, batch_size, device, precision
        ):
            total += criterion.sum(output, labels).double()
            right += criterion.correct(output, labels).double()
        mine = (float(total.item()), float(right.item()))
        parts = dist.gather(mine) if dist is not None else [mine]
        n = len(split)
        if n == 0:
            return {"loss": float("nan"), "accuracy": float("nan")}
        return {"loss": sum(p[0] for p in parts) / n, "accuracy": sum(p[1] for p in parts) / n}

    def probe_labels(self, size: int, sequence_length: int, num_labels: int) -> torch.Tensor:
        import torch

        positions = torch.arange(size) % sequence_length
        return torch.stack([positions, positions], dim=1)  # (B, 2)

    def probe_criterion(self) -> Criterion:
        return QaCriterion()
