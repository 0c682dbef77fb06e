"""The multi-label training loss: binary cross-entropy on each label's logit, as a sum.

As ``training/loss.py`` does for cross-entropy, each micro-batch contributes ``sum of its
terms / the whole step's denominator``, and the denominator is the step's number of label
decisions (examples times labels), so a step's loss is exactly the mean that transformers'
``problem_type="multi_label_classification"`` head computes (``BCEWithLogitsLoss``, mean over
every example and label), however the step is split into micro-batches and processes.
``pos_weight`` (one per label) scales the positive terms, as ``BCEWithLogitsLoss`` does; the
denominator stays the number of decisions, as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class BCECriterion:
    """Binary cross-entropy with logits, summed over a micro-batch's ``(B, k)`` decisions."""

    pos_weight: torch.Tensor | None = None  # (k,) on the model's device

    def to(self, device: torch.device) -> BCECriterion:
        return BCECriterion(None if self.pos_weight is None else self.pos_weight.to(device))

    def sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The summed terms of ``logits`` ``(B, k)`` against 0/1 ``labels`` ``(B, k)``."""
        import torch

        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(), labels.float(), pos_weight=self.pos_weight, reduction="sum"
        )

    def denominator(self, targets: torch.Tensor) -> float:
        """The step's number of label decisions: every entry of its ``(n, k)`` targets."""
        total = float(targets.numel())
        return total if total > 0 else 1.0


def correct_decisions(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """Label decisions right at threshold 0.5 (logit >= 0), and decisions counted."""
    predicted = logits >= 0
    return int((predicted == (labels > 0.5)).sum()), int(labels.numel())
