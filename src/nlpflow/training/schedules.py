"""Learning-rate schedules as pure functions of the optimizer step.

``lr_factor(step, ...)`` is the multiplier of the base learning rate used by optimizer
step ``step`` (0-based). Warm-up rises linearly to 1.0 at step ``warmup - 1`` (the first
step already learns: no wasted step at lr 0); the decay then runs from 1.0 at step
``warmup`` to 0.0 at step ``total`` (one past the last step, so the last step learns too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

ScheduleKind = Literal["linear", "cosine", "constant"]


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length: ``warmup_ratio`` of all optimizer steps, rounded up."""
    return min(total_steps, math.ceil(warmup_ratio * total_steps))


def lr_factor(step: int, total_steps: int, warmup: int, kind: ScheduleKind) -> float:
    """The multiplier of the base lr at optimizer step ``step`` (see the module docstring)."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)  # 0 at the peak, 1 at the end
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}")


@dataclass
class Schedule:
    """``lr_factor`` bound to one run, as a ``LambdaLR`` callable.

    A callable object rather than a lambda, so ``LambdaLR.state_dict`` saves its fields and
    the checkpoint stays loadable with ``weights_only=True``.
    """

    total_steps: int
    warmup: int
    kind: ScheduleKind

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total_steps, self.warmup, self.kind)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, kind: ScheduleKind
) -> torch.optim.lr_scheduler.LambdaLR:
    import torch

    schedule = Schedule(total_steps, warmup_steps(total_steps, warmup_ratio), kind)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
