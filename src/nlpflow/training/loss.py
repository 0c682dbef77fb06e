"""The training loss: cross-entropy with optional class weights and label smoothing.

The loop computes the loss itself rather than taking ``model(...).loss``: transformers'
heads know neither class weights nor label smoothing, and an exact mean over an optimizer
step needs sums. Each micro-batch contributes ``sum of its terms / denominator of the whole
step``, where the denominator is the step's number of counted targets (or the sum of their
class weights, as ``torch.nn.functional.cross_entropy`` divides a weighted mean). However the
step is split (micro-batches, processes), the gradients add up to the gradient of the mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.data.saved import IGNORE_INDEX
from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch


def class_weights(
    setting: str | Mapping[str, float], label_names: list[str], targets: torch.Tensor
) -> torch.Tensor | None:
    """Per-class weights from ``train.class_weights``, or None for plain cross-entropy.

    ``balanced``: ``n / (k * count_c)`` over the counted train targets, as scikit-learn's
    ``class_weight="balanced"``; a class absent from train gets 1. A mapping gives a weight per
    label name (unnamed labels get 1).
    """
    import torch

    k = len(label_names)
    if setting == "none":
        return None
    if setting == "balanced":
        counts = torch.bincount(targets[targets != IGNORE_INDEX], minlength=k).double()
        n = counts.sum()
        weights = torch.where(counts > 0, n / (k * counts.clamp(min=1)), torch.ones_like(counts))
        return weights.float()
    if isinstance(setting, Mapping):
        unknown = sorted(set(setting) - set(label_names))
        if unknown:
            raise UserError(
                f"params.yaml: train.class_weights names unknown label(s) {unknown}; "
                f"the labels are {label_names}"
            )
        return torch.tensor([float(setting.get(name, 1.0)) for name in label_names])
    raise UserError(
        f"params.yaml: train.class_weights '{setting}' is not none, balanced or a mapping"
    )


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output (a ``ModelOutput`` with ``.logits``), or ``output``
    itself when it is already a tensor."""
    return getattr(output, "logits", output)


@dataclass
class Criterion:
    """Cross-entropy as a sum over a micro-batch, with the denominator of a whole step.

    The interface every task family's loss has (:meth:`nlpflow.families.train.TrainFamily.
    criterion`): ``sum``, ``denominator``, ``correct``, ``measures_accuracy``, ``to``.
    """

    weights: torch.Tensor | None = None  # (k,) on the model's device
    label_smoothing: float = 0.0
    _host_weights: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # Whether ``correct`` counts something (train_accuracy in the curves); False: None there.
    measures_accuracy: ClassVar[bool] = True

    def to(self, device: torch.device) -> Criterion:
        return Criterion(
            None if self.weights is None else self.weights.to(device), self.label_smoothing
        )

    def sum(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        """The summed loss terms of the logits (B, k) or (B, T, k) of ``output`` (a model
        output or the logits) against ``labels`` (B,) or (B, T), -100 ignored."""
        import torch

        logits = logits_of(output)
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            weight=self.weights,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
            reduction="sum",
        )

    def correct(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        """How many counted targets the arg-max predicts right: a 0-dim tensor on the
        labels' device (no host sync)."""
        return (logits_of(output).detach().argmax(-1) == labels).sum()

    def denominator(self, targets: torch.Tensor) -> float:
        """What a step's summed loss is divided by: counted targets, or their weights' sum."""
        targets = targets[targets != IGNORE_INDEX]
        if self.weights is None:
            total = float(targets.numel())
        else:
            if self._host_weights is None:  # once: no device-to-host copy per step
                self._host_weights = self.weights.detach().cpu().double()
            total = float(self._host_weights[targets].sum())
        return total if total > 0 else 1.0  # nothing counted: the sum is 0 as well
