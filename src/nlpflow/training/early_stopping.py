"""Early stopping on a validation metric, with state that survives a resume.

Three reasons to stop, checked after every evaluation (a non-finite training loss is the
loop's own, immediate reason):

- ``early_stopping``: ``patience`` evaluations in a row without an improvement by more than
  ``min_delta`` (patience 0: never);
- ``target_reached``: the metric reached ``target`` (``>=`` in mode max, ``<=`` in mode min);
- ``diverged``: the metric is worse than ``divergence`` (``<`` in mode max, ``>`` in mode min),
  or not finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class EarlyStopping:
    """Tracks the best value of the monitored metric and decides when to stop.

    An improvement means ``value > best + min_delta`` (mode ``max``) or
    ``value < best - min_delta`` (mode ``min``). A non-finite value never improves.
    ``best_epoch`` holds the evaluation's label (its epoch, or its number when validation
    runs every N steps); ``best_step`` the optimizer step it came after.
    """

    metric: str
    mode: Literal["max", "min"]
    patience: int
    min_delta: float = 0.0
    target: float | None = None
    divergence: float | None = None
    best: float | None = None
    best_epoch: int | None = None
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

    def update(self, value: float, epoch: int, step: int | None = None) -> bool:
        """Record one evaluation; True when it is a new best."""
        self.last = value
        if self.is_improvement(value):
            self.best, self.best_epoch, self.best_step = value, epoch, step
            self.bad_evaluations = 0
            return True
        self.bad_evaluations += 1
        return False

    def _better_or_equal(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.mode == "max" else value <= threshold

    def stop_reason(self) -> tuple[str, str] | None:
        """``(reason, detail)`` when the last evaluation says stop, else None."""
        value = self.last
        if value is None:
            return None
        name = f"val {self.metric}"
        if not math.isfinite(value):
            return "diverged", f"{name} is {value} (not finite)"
        if self.divergence is not None and not self._better_or_equal(value, self.divergence):
            side = "below" if self.mode == "max" else "above"
            return "diverged", (
                f"{name} {value:.4g} is {side} the divergence threshold {self.divergence:g} "
                "(train.early_stopping.divergence)"
            )
        if self.target is not None and self._better_or_equal(value, self.target):
            return "target_reached", (
                f"{name} {value:.4g} reached the target {self.target:g} "
                "(train.early_stopping.target)"
            )
        if self.patience > 0 and self.bad_evaluations >= self.patience:
            return "early_stopping", self.reason()
        return None

    @property
    def should_stop(self) -> bool:
        return self.stop_reason() is not None

    def reason(self) -> str:
        best = "none" if self.best is None else f"{self.best:.4g} at epoch {self.best_epoch}"
        return (
            f"val {self.metric} did not improve by more than {self.min_delta:g} for "
            f"{self.bad_evaluations} evaluations (patience {self.patience}; best {best})"
        )

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
        self.best_step = state.get("best_step")
        self.bad_evaluations = int(state["bad_evaluations"])
        self.last = state.get("last")
