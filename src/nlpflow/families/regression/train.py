"""Regression, training side: float targets, MSE (or Huber, ``train.loss: huber``) on the
target standardised with the train split's mean and standard deviation, validation metrics
in the target's own units (:mod:`nlpflow.families.regression.metrics`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.errors import UserError
from nlpflow.families.regression.metrics import METRICS, regression_metrics
from nlpflow.families.train import TrainFamily
from nlpflow.training.loss import Criterion, logits_of

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from nlpflow.training.data import PaddedSplit
    from nlpflow.training.distributed import Distributed

LOSSES = ("mse", "huber")


@dataclass
class RegressionCriterion(Criterion):
    """Squared error (or Huber) of the model's output against the standardised target
    ``(y - mean) / std``, summed over a micro-batch; a step divides by its rows.

    The output of a model with one output is its logits ``(B, 1)``; ``labels`` are the raw
    targets ``(B,)`` float32. The loss is in squared standard deviations (MSE 1.0 = the train
    mean's error on train).
    """

    mean: float = 0.0
    std: float = 1.0
    kind: str = "mse"  # mse or huber
    delta: float = 1.0  # huber: where the loss turns linear, standard deviations
    measures_accuracy: ClassVar[bool] = False

    def to(self, device: torch.device) -> RegressionCriterion:
        return self  # plain floats: nothing lives on a device

    def standardised(self, output: Any) -> torch.Tensor:
        """The model's prediction ``(B,)`` float32 in standard deviations."""
        return logits_of(output).float().reshape(-1)

    def restore(self, output: Any) -> torch.Tensor:
        """The model's prediction ``(B,)`` in the target's units."""
        return self.standardised(output) * self.std + self.mean

    def sum(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        import torch

        pred = self.standardised(output)
        target = (labels.float().reshape(-1) - self.mean) / self.std
        if self.kind == "huber":
            return torch.nn.functional.huber_loss(pred, target, reduction="sum", delta=self.delta)
        return torch.nn.functional.mse_loss(pred, target, reduction="sum")

    def correct(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.zeros((), device=labels.device)  # no accuracy for a number

    def denominator(self, targets: torch.Tensor) -> float:
        return float(targets.numel()) or 1.0


class RegressionTrain(TrainFamily):
    name: ClassVar[str] = "regression"

    def padded_split(self, split: Dataset, pad_id: int) -> PaddedSplit:
        from nlpflow.training.data import PaddedSplit

        return PaddedSplit.from_dataset(split, pad_id, numeric_labels=True)

    def check_loss(self, loss: str) -> None:
        if loss not in ("auto", *LOSSES):
            raise UserError(
                f"params.yaml: train.loss '{loss}' does not apply to a regression task; use "
                "auto (mse), mse or huber"
            )

    def criterion(
        self, train: Any, label_names: Sequence[str], train_set: PaddedSplit, overfit: bool
    ) -> Criterion:
        """Standardised on the train targets; ``train.class_weights`` and
        ``label_smoothing`` have no meaning here and must be left at none / 0."""
        loss = getattr(train, "loss", "auto")
        self.check_loss(loss)
        if train.class_weights != "none" or train.label_smoothing:
            raise UserError(
                "params.yaml: train.class_weights and train.label_smoothing apply to classes; "
                "set them to none and 0 for a regression task"
            )
        y = train_set.labels.double()
        std = float(y.std(unbiased=False)) if len(y) else 1.0
        return RegressionCriterion(
            mean=float(y.mean()) if len(y) else 0.0,
            std=std if std > 0 else 1.0,
            kind="huber" if loss == "huber" else "mse",
            delta=float(getattr(train, "huber_delta", 1.0)),
        )

    def prepare_model(self, model: Any, criterion: Criterion) -> None:
        """The standardisation goes into the config (saved with the model): prediction
        restores the target's units with it."""
        assert isinstance(criterion, RegressionCriterion)
        model.config.target_mean = criterion.mean
        model.config.target_std = criterion.std

    def metric_names(self, label_names: Sequence[str]) -> tuple[str, ...]:
        return ("loss", *METRICS)

    def eval_columns(self, label_names: Sequence[str]) -> tuple[str, ...]:
        return ("epoch", "step", "train_loss", "val_loss", *(f"val_{m}" for m in METRICS))

    def uniform_classes(self, label_names: Sequence[str]) -> int | None:
        return None  # no classes, no ln(K)

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
        """Mean loss (the criterion's, standardised) and METRICS in the target's units."""
        import torch

        from nlpflow.families.train import validation_batches, validation_order

        assert isinstance(criterion, RegressionCriterion)
        order = validation_order(split, dist)
        total = torch.zeros((), dtype=torch.float64, device=device)
        preds: list[torch.Tensor] = []
        for output, labels in validation_batches(
            model, split, order, batch_size, device, precision
        ):
            total += criterion.sum(output, labels).double()
            preds.append(criterion.restore(output).double().cpu())
        mine = (order, torch.cat(preds) if preds else torch.zeros(0), float(total.item()))
        parts = dist.gather(mine) if dist is not None else [mine]
        n = len(split)
        if n == 0:
            return {"loss": float("nan"), **dict.fromkeys(METRICS, float("nan"))}
        y_pred = torch.empty(n, dtype=torch.float64)
        y_pred[torch.cat([p[0] for p in parts])] = torch.cat([p[1] for p in parts])
        loss = sum(p[2] for p in parts) / n
        return {"loss": loss, **regression_metrics(split.labels.double().numpy(), y_pred.numpy())}

    def probe_labels(self, size: int, sequence_length: int, num_labels: int) -> torch.Tensor:
        import torch

        return torch.linspace(-1.0, 1.0, size)

    def probe_criterion(self) -> Criterion:
        return RegressionCriterion()
