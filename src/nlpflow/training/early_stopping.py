"""Early stopping on a validation metric, with state that survives a resume."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class EarlyStopping:
    """Stop after ``patience`` evaluations in a row without an improvement > ``min_delta``.

    An improvement means ``value > best + min_delta`` (mode ``max``) or
    ``value < best - min_delta`` (mode ``min``). A non-finite value never improves.
    """

    metric: str
    mode: Literal["max", "min"]
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    bad_evaluations: int = 0

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record one evaluation; True when it is a new best."""
        if self.is_improvement(value):
            self.best, self.best_epoch, self.bad_evaluations = value, epoch, 0
            return True
        self.bad_evaluations += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_evaluations >= self.patience

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
            "bad_evaluations": self.bad_evaluations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_evaluations = int(state["bad_evaluations"])
