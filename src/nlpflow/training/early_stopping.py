"""Why a run stops (one enum), and early stopping on a validation metric.

Every run ends with one :class:`StopReason`, written to ``metrics/train.json`` as
``stop_reason`` (its value) with a sentence in ``stop_detail``:

===================  ===================================================================
``max_epochs``       completed ``train.epochs``
``max_steps``        completed ``train.max_steps`` optimizer steps
``early_stopping``   ``patience`` evaluations in a row without an improvement by more
                     than ``min_delta`` (patience 0: never)
``target_reached``   the metric reached ``target`` (``>=`` in mode max, ``<=`` in mode min)
``diverged``         the metric is worse than ``divergence`` (``<`` in mode max, ``>`` in
                     mode min), or not finite
``non_finite_loss``  a NaN or infinite training loss or gradient norm: the step is not taken
``pruned``           a tuning trial's pruner gave up on the run (``nlpflow tune``)
===================  ===================================================================

:class:`EarlyStopping` decides the three in the middle, after every evaluation; the loop
decides the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal


class StopReason(str, Enum):
    """Why a run stopped; the value is what ``metrics/train.json`` says (``stop_reason``)."""

    MAX_EPOCHS = "max_epochs"
    MAX_STEPS = "max_steps"
    EARLY_STOPPING = "early_stopping"
    TARGET_REACHED = "target_reached"
    DIVERGED = "diverged"
    NON_FINITE_LOSS = "non_finite_loss"
    PRUNED = "pruned"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Stop:
    """A decision to stop: the reason and a sentence for a person (``stop_detail``)."""

    reason: StopReason
    detail: str


@dataclass
class EarlyStopping:
    """Tracks the best value of the monitored metric and decides when to stop.

    An improvement means ``value > best + min_delta`` (mode ``max``) or
    ``value < best - min_delta`` (mode ``min``). A non-finite value never improves.
    ``best_epoch`` holds the evaluation's label (its epoch, fractional when validation runs
    every N steps); ``best_step`` the optimizer step it came after.
    """

    metric: str
    mode: Literal["max", "min"]
    patience: int
    min_delta: float = 0.0
    target: float | None = None
    divergence: float | None = None
    best: float | None = None
    best_epoch: float | None = None
    best_step: int | None = None
    bad_evaluations: int = 0
    last: float | None = None

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: float, step: int | None = None) -> bool:
        """Record one evaluation's value of the metric; True when it is a new best."""
        self.last = value
        if self.is_improvement(value):
            self.best, self.best_epoch, self.best_step = value, epoch, step
            self.bad_evaluations = 0
            return True
        self.bad_evaluations += 1
        return False

    def _better_or_equal(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.mode == "max" else value <= threshold

    def check(self) -> Stop | None:
        """The stop the last evaluation calls for (diverged, target, patience), else None."""
        value = self.last
        if value is None:
            return None
        name = f"val {self.metric}"
        if not math.isfinite(value):
            return Stop(StopReason.DIVERGED, f"{name} is {value} (not finite)")
        if self.divergence is not None and not self._better_or_equal(value, self.divergence):
            side = "below" if self.mode == "max" else "above"
            return Stop(
                StopReason.DIVERGED,
                f"{name} {value:.4g} is {side} the divergence threshold {self.divergence:g} "
                "(train.early_stopping.divergence)",
            )
        if self.target is not None and self._better_or_equal(value, self.target):
            return Stop(
                StopReason.TARGET_REACHED,
                f"{name} {value:.4g} reached the target {self.target:g} "
                "(train.early_stopping.target)",
            )
        if self.patience > 0 and self.bad_evaluations >= self.patience:
            best = "none" if self.best is None else f"{self.best:.4g} at epoch {self.best_epoch}"
            return Stop(
                StopReason.EARLY_STOPPING,
                f"val {self.metric} did not improve by more than {self.min_delta:g} for "
                f"{self.bad_evaluations} evaluations (patience {self.patience}; best {best})",
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "bad_evaluations": self.bad_evaluations,
            "last": self.last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.best_step = state["best_step"]
        self.bad_evaluations = int(state["bad_evaluations"])
        self.last = state["last"]
