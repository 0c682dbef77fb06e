"""Where the training loop is: counters, the running sums of the current evaluation period,
the history of steps and evaluations, and the stop decision.

Together with the weights, optimizer, schedule, early-stopping and RNG states, this is
everything a checkpoint must restore for a resumed run to continue exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpflow.training.early_stopping import Stop, StopReason
from nlpflow.training.tracking import STEP_COLUMNS

if TYPE_CHECKING:
    from nlpflow.training.step import StepResult


def epoch_label(value: float) -> float | int:
    """An epoch as people read it: 3.0 -> 3; a fractional epoch keeps 3 decimals (2.667)."""
    return int(value) if float(value).is_integer() else round(value, 3)


@dataclass
class LoopState:
    """The loop's position and history; ``state_dict()`` holds only tensors and plain values,
    so a checkpoint loads with ``torch.load(..., weights_only=True)``."""

    steps_per_epoch: int  # optimizer steps of a full epoch
    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # optimizer steps taken in the current epoch
    step: int = 0  # optimizer steps taken in all
    evaluations: int = 0
    last_eval_step: int = -1
    epoch_rng: Any = None  # (torch ByteTensor) the shuffle state at the current epoch's start
    # Training loss and accuracy since the last evaluation: sums and their denominators.
    loss_sum: float = 0.0  # sum of step losses (nats) times each step's denominator
    loss_weight: float = 0.0  # sum of the steps' denominators (counted targets or weights)
    correct: int = 0  # correctly predicted counted targets
    counted: int = 0  # counted targets
    # Tokens of all micro-batches so far, without and with padding (padding efficiency).
    real_tokens: int = 0
    padded_tokens: int = 0
    stop: Stop | None = None
    eval_rows: list[dict[str, Any]] = field(default_factory=list)  # one per evaluation
    step_rows: list[dict[str, Any]] = field(default_factory=list)  # one per step: STEP_COLUMNS

    @property
    def epochs_done(self) -> float | int:
        """Epochs run so far, fractional mid-epoch (``metrics/train.json``: ``epochs_run``)."""
        return epoch_label(self.epoch + self.epoch_step / self.steps_per_epoch)

    def record_step(self, result: StepResult, steps_in_epoch: int) -> dict[str, Any]:
        """Count one optimizer step taken; returns its row (``STEP_COLUMNS``).

        At the epoch's last step (``steps_in_epoch``) the epoch counter moves on.
        """
        self.step += 1
        self.epoch_step += 1
        self.loss_sum += result.loss * result.denominator
        self.loss_weight += result.denominator
        self.correct += result.correct
        self.counted += result.counted
        self.real_tokens += result.real_tokens
        self.padded_tokens += result.padded_tokens
        row = {
            "step": self.step,
            "epoch": round(self.epoch + self.epoch_step / self.steps_per_epoch, 4),
            "loss": result.loss,
            "lr": result.lr,
            "grad_norm": result.grad_norm,
        }
        self.step_rows.append(row)
        if self.epoch_step == steps_in_epoch:
            self.epoch += 1
            self.epoch_step = 0
        return row

    def close_period(self) -> dict[str, float | None]:
        """The training loss and accuracy since the last evaluation; the sums start again."""
        out = {
            "train_loss": self.loss_sum / self.loss_weight if self.loss_weight else None,
            "train_accuracy": self.correct / self.counted if self.counted else None,
        }
        self.loss_sum = self.loss_weight = 0.0
        self.correct = self.counted = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        import torch

        steps = torch.tensor(
            [
                [r[c] if r[c] is not None else math.nan for c in STEP_COLUMNS]
                for r in self.step_rows
            ],
            dtype=torch.float64,
        ).reshape(-1, len(STEP_COLUMNS))
        return {
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "step": self.step,
            "evaluations": self.evaluations,
            "last_eval_step": self.last_eval_step,
            "epoch_rng": self.epoch_rng,
            "loss_sum": self.loss_sum,
            "loss_weight": self.loss_weight,
            "correct": self.correct,
            "counted": self.counted,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "stop_reason": None if self.stop is None else self.stop.reason.value,
            "stop_detail": None if self.stop is None else self.stop.detail,
            "eval_rows": self.eval_rows,
            "step_rows": steps,  # a tensor: compact, and loads with weights_only
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows = []
        for values in state["step_rows"].tolist():
            row = dict(zip(STEP_COLUMNS, values, strict=True))
            row["step"] = int(row["step"])
            rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in row.items()})  # fmt: skip
        self.epoch = int(state["epoch"])
        self.epoch_step = int(state["epoch_step"])
        self.step = int(state["step"])
        self.evaluations = int(state["evaluations"])
        self.last_eval_step = int(state["last_eval_step"])
        self.epoch_rng = state["epoch_rng"]
        self.loss_sum = float(state["loss_sum"])
        self.loss_weight = float(state["loss_weight"])
        self.correct = int(state["correct"])
        self.counted = int(state["counted"])
        self.real_tokens = int(state["real_tokens"])
        self.padded_tokens = int(state["padded_tokens"])
        reason = state["stop_reason"]
        self.stop = None if reason is None else Stop(StopReason(reason), state["stop_detail"])
        self.eval_rows = list(state["eval_rows"])
        self.step_rows = rows
