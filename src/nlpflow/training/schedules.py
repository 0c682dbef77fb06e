"""Learning-rate schedules as pure functions of the optimizer step.

``lr_factor(step, ...)`` is the multiplier of the base learning rate used by optimizer
step ``step`` (0-based). Warm-up rises linearly to 1.0 at step ``warmup - 1`` (the first
step already learns: no wasted step at lr 0); the decay then runs from 1.0 at step
``warmup`` to 0.0 at step ``total`` (one past the last step, so the last step learns too).

``one_cycle`` (Smith's 1cycle policy, as ``torch.optim.lr_scheduler.OneCycleLR`` with
cosine annealing): the warm-up rises by a half cosine from ``1 / ONE_CYCLE_DIV`` to 1.0,
then a half cosine anneals to ``1 / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

ScheduleKind = Literal["linear", "cosine", "constant", "one_cycle"]
ONE_CYCLE_DIV = 25.0  # OneCycleLR's div_factor: the start is lr / 25
ONE_CYCLE_FINAL_DIV = 1e4  # OneCycleLR's final_div_factor: the end is lr / 25 / 1e4


def warmup_steps(total_steps: int, warmup_ratio: float, steps: int = 0) -> int:
    """Warm-up length: ``steps`` when > 0, else ``warmup_ratio`` of all steps, rounded up."""
    if steps > 0:
        return min(total_steps, steps)
    return min(total_steps, math.ceil(warmup_ratio * total_steps))


def _cos_between(start: float, end: float, progress: float) -> float:
    """From ``start`` at progress 0 to ``end`` at progress 1 along a half cosine."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_factor(step: int, total_steps: int, warmup: int, kind: ScheduleKind) -> float:
    """The multiplier of the base lr at optimizer step ``step`` (see the module docstring)."""
    if kind == "one_cycle":
        low = 1.0 / ONE_CYCLE_DIV
        if step < warmup:
            # Reaches 1.0 at step warmup - 1, like the linear warm-up.
            return _cos_between(low, 1.0, (step + 1) / warmup)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return _cos_between(1.0, low / ONE_CYCLE_FINAL_DIV, progress)
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
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_ratio: float,
    kind: ScheduleKind,
    warmup: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` of :func:`lr_factor`; ``warmup`` (steps) overrides ``warmup_ratio``."""
    import torch

    schedule = Schedule(total_steps, warmup_steps(total_steps, warmup_ratio, warmup), kind)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
