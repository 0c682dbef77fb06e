"""Multi-label classification, training side: a 0/1 vector of labels per example, binary
cross-entropy per label (:class:`~nlpflow.families.multilabel.loss.BCECriterion`), and
validation micro-/macro-F1 and subset accuracy at threshold 0.5 (the tuned thresholds are
the evaluate stage's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.train import TrainFamily
from nlpflow.training.data import PaddedSplit

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from nlpflow.training.distributed import Distributed

EXTRA_METRICS = ("f1_micro", "subset_accuracy")


@dataclass
class MultilabelSplit(PaddedSplit):
    """A :class:`PaddedSplit` whose ``labels`` are ``(N, k)`` float32 0/1 vectors."""

    @classmethod
    def from_label_ids(cls, split: Dataset, pad_id: int) -> MultilabelSplit:
        """From a tokenized split whose ``labels`` are lists of class ids (``Sequence(ClassLabel)``)."""
        import torch

        k = split.features["labels"].feature.num_classes
        ids = split["labels"]
        plain = split.remove_columns(["labels"]).add_column("labels", [0] * len(split))
        base = PaddedSplit.from_dataset(plain, pad_id)
        labels = torch.zeros((len(split), k), dtype=torch.float32)
        for i, row in enumerate(ids):
            labels[i, list(row)] = 1.0
        return cls(base.input_ids, base.token_type_ids, base.lengths, labels)

    @property
    def token_task(self) -> bool:
        return False

    def subset(self, index: torch.Tensor) -> MultilabelSplit:
        return MultilabelSplit(
            self.input_ids[index],
            None if self.token_type_ids is None else self.token_type_ids[index],
            self.lengths[index],
            self.labels[index],
        )


class MultilabelTrain(TrainFamily):
    name: ClassVar[str] = "multilabel"

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        return MultilabelSplit.from_label_ids(split, pad_id)

    def criterion(
        self, train: Any, label_names: Sequence[str], train_set: PaddedSplit, overfit: bool
    ) -> Any:
        """BCE; ``train.class_weights: balanced`` weighs each label's positives by its
        negatives / positives in train (``pos_weight``, 1 for a label without positives), a
        mapping gives a label's ``pos_weight`` by name."""
        import torch

        from nlpflow.families.multilabel.loss import BCECriterion

        self.check_loss(getattr(train, "loss", "auto"))
        if getattr(train, "label_smoothing", 0.0) and not overfit:
            raise UserError(
                "params.yaml: train.label_smoothing applies to single-label tasks; set it to 0 "
                "for a multilabel task"
            )
        setting = train.class_weights
        if setting == "none":
            return BCECriterion()
        if setting == "balanced":
            y = train_set.labels.double()
            pos = y.sum(dim=0)
            neg = y.shape[0] - pos
            weight = torch.where(pos > 0, neg / pos.clamp(min=1), torch.ones_like(pos))
            return BCECriterion(weight.float())
        if isinstance(setting, dict):
            unknown = sorted(set(setting) - set(label_names))
            if unknown:
                raise UserError(
                    f"params.yaml: train.class_weights names unknown label(s) {unknown}; the "
                    f"labels are {list(label_names)}"
                )
            return BCECriterion(torch.tensor([float(setting.get(n, 1.0)) for n in label_names]))
        raise UserError(
            f"params.yaml: train.class_weights '{setting}' is not none, balanced or a mapping"
        )

    def check_loss(self, loss: str) -> None:
        if loss not in ("auto", "binary_cross_entropy"):
            raise UserError(
                f"params.yaml: train.loss '{loss}' does not apply to a multilabel task; use "
                "auto or binary_cross_entropy"
            )

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        # accuracy: the share of label decisions right (1 - Hamming loss), as train_accuracy
        return ("loss", "accuracy", "f1_macro", *EXTRA_METRICS)

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        from nlpflow.training.tracking import eval_columns

        return eval_columns(EXTRA_METRICS)

    def uniform_classes(self, label_names: Sequence[str]) -> int | None:
        return 2  # a logit of 0 for every label: ln 2 per decision

    def validate(
        self,
        model: torch.nn.Module,
        split: PaddedSplit,
        batch_size: int,
        device: torch.device,
        criterion: Any,
        dist: Distributed | None,
        label_names: Sequence[str],
        precision: torch.dtype | None,
    ) -> dict[str, float]:
        """Mean BCE and the metrics at threshold 0.5; each process scores every
        ``world``-th row and the results are gathered (the same numbers everywhere)."""
        import numpy as np
        import torch

        from nlpflow.families.train import validation_batches, validation_order

        order = validation_order(split, dist)
        total = torch.zeros((), dtype=torch.float64, device=device)
        preds: list[torch.Tensor] = []
        for output, labels in validation_batches(
            model, split, order, batch_size, device, precision
        ):
            total += criterion.sum(output, labels).double()
            preds.append((output.logits >= 0).to(torch.int8).cpu())
        k = split.labels.shape[1]
        mine = (
            order,
            torch.cat(preds) if preds else torch.zeros((0, k), dtype=torch.int8),
            float(total.item()),
        )
        parts = dist.gather(mine) if dist is not None else [mine]
        n = len(split)
        if n == 0:
            return {name: float("nan") for name in self.metric_names(label_names)}
        predicted = torch.empty((n, k), dtype=torch.int8)
        predicted[torch.cat([p[0] for p in parts])] = torch.cat([p[1] for p in parts])
        y = split.labels.numpy() > 0.5
        p = predicted.numpy() > 0
        tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)  # (k,) each
        f1 = np.divide(2.0 * tp, 2 * tp + fp + fn, out=np.zeros(k), where=(2 * tp + fp + fn) > 0)
        micro_den = float(2 * tp.sum() + fp.sum() + fn.sum())
        return {
            "loss": sum(p_[2] for p_ in parts) / criterion.denominator(split.labels),
            "accuracy": float((y == p).mean()),
            "f1_macro": float(f1.mean()),
            "f1_micro": 2.0 * float(tp.sum()) / micro_den if micro_den else 0.0,
            "subset_accuracy": float((y == p).all(axis=1).mean()),
        }

    def probe_criterion(self) -> Any:
        from nlpflow.families.multilabel.loss import BCECriterion

        return BCECriterion()

    def probe_labels(self, size: int, sequence_length: int, num_labels: int) -> torch.Tensor:
        import torch

        return (torch.arange(size * num_labels).reshape(size, num_labels) % 2).float()
