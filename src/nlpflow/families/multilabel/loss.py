"""The multi-label training loss: binary cross-entropy on each label's logit, as a sum.

As ``training/loss.py`` does for cross-entropy, each micro-batch contributes ``sum of its
terms / the whole step's denominator``, and the denominator is the step's number of label
decisions (examples times labels), so a step's loss is exactly the mean that transformers'
``problem_type="multi_label_classification"`` head computes (``BCEWithLogitsLoss``, mean over
every example and label), however the step is split into micro-batches and processes.
``pos_weight`` (one per label) scales the positive terms, as ``BCEWithLogitsLoss`` does; the
denominator stays the number of decisions, as there.

The accuracy the training curves show is the share of label decisions right at threshold 0.5
(a logit >= 0): one minus the Hamming loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


def _logits(output: Any) -> torch.Tensor:
    return getattr(output, "logits", output)


@dataclass
class BCECriterion:
    """Binary cross-entropy with logits, summed over a micro-batch's ``(B, k)`` decisions."""

    pos_weight: torch.Tensor | None = None  # (k,) on the model's device
    measures_accuracy: ClassVar[bool] = True

    def to(self, device: torch.device) -> BCECriterion:
        return BCECriterion(None if self.pos_weight is None else self.pos_weight.to(device))

    def sum(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        """The summed terms of the logits ``(B, k)`` of ``output`` (a model output or the
        logits) against 0/1 ``labels`` ``(B, k)``."""
        import torch

        return torch.nn.functional.binary_cross_entropy_with_logits(
            _logits(output).float(), labels.float(), pos_weight=self.pos_weight, reduction="sum"
        )

    def correct(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        """Label decisions right at threshold 0.5 (logit >= 0): a 0-dim tensor, no host sync."""
        return ((_logits(output).detach() >= 0) == (labels > 0.5)).sum()

    def denominator(self, targets: torch.Tensor) -> float:
        """The step's number of label decisions: every entry of its ``(n, k)`` targets."""
        total = float(targets.numel())
        return total if total > 0 else 1.0
