"""Validation and what follows from it: the evaluation row, TensorBoard, the best
checkpoint, early stopping, pruning of a tuning trial, and the console line, in that order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nlpflow.training.early_stopping import Stop, StopReason
from nlpflow.training.tracking import finite

if TYPE_CHECKING:
    import torch

    from nlpflow.training.checkpoint import Checkpointer
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.early_stopping import EarlyStopping
    from nlpflow.training.setup import Run
    from nlpflow.training.state import LoopState
    from nlpflow.training.tracking import TensorBoard


class Pruning(Protocol):
    """What the loop needs of a tuning trial (``nlpflow.tuning.reporter.TrialReporter``)."""

    metric: str  # the validation metric the trial reports (without ``val_``)
    detail: str  # why it was pruned, once it was

    def report(self, epoch: int, value: float, ask: bool = True) -> bool: ...


@dataclass
class PruningCheck:
    """Reports every evaluation to a tuning trial (the last one too: the study's curves and
    the median rule of later trials need it) and asks about pruning while the run would go
    on. Rank 0 asks; every process learns the answer (one broadcast)."""

    trial: Pruning | None
    dist: Distributed
    log: Callable[[str], None] | None = None
    _said: bool = False  # the missing metric is said once per run

    def __call__(
        self, evaluation: int, val: dict[str, float], fallback: float, going_on: bool
    ) -> Stop | None:
        """``evaluation``: its number (1-based); ``val``: its metrics (``loss``,
        ``accuracy``...); ``fallback``: the value reported when the trial's metric is not
        among them. A :class:`Stop` when the trial is pruned."""
        pruned: str | None = None
        if self.dist.is_main and self.trial is not None:
            value = val.get(self.trial.metric, fallback)
            if self.trial.metric not in val and not self._said and self.log is not None:
                # `nlpflow tune` refuses such a pruner metric at its start; a trial's own
                # params (train.generation_sample in the space) can still lack it: said
                self._said = True
                self.log(
                    f"tune: this run does not measure val {self.trial.metric} (the study's "
                    f"pruner metric); it reports the early-stopping metric in its place"
                )
            if self.trial.report(evaluation, value, ask=going_on) and going_on:
                pruned = self.trial.detail or "pruned by tuning"
        if not going_on:
            return None
        pruned = self.dist.broadcast(pruned)
        return None if pruned is None else Stop(StopReason.PRUNED, pruned)


@dataclass
class Validation:
    """One evaluation on the validation split (the fixed batches in the overfit check),
    then the decisions that depend on it. ``batch_size``: rows per forward pass (the
    probe's largest that fits); ``epochs``: ``train.epochs``, for the console line."""

    run: Run
    batch_size: int
    device: torch.device
    dist: Distributed
    stopper: EarlyStopping
    checkpoints: Checkpointer
    pruning: PruningCheck
    board: TensorBoard
    log: Callable[[str], None]
    epochs: int

    def __call__(self, state: LoopState) -> dict[str, Any]:
        """Evaluate, append the row to ``state.eval_rows``, set ``state.stop`` when due."""
        run = self.run
        val = run.family.validate(
            run.forward, run.val_set, self.batch_size, self.device, run.criterion, self.dist,
            run.label_names, run.precision,
        )  # fmt: skip
        state.evaluations += 1
        state.last_eval_step = state.step
        row: dict[str, Any] = {
            "epoch": state.epochs_done,
            "step": state.step,
            **state.close_period(),
            **{f"val_{k}": v for k, v in val.items()},
        }
        state.eval_rows.append(row)
        self.board.evaluation(row)

        monitored = val[self.stopper.metric]
        improved = self.stopper.update(monitored, row["epoch"], state.step)
        if improved:
            self.checkpoints.save_best(
                step=state.step, epoch=row["epoch"], evaluation=state.evaluations,
                metric=self.stopper.metric, value=monitored,
            )  # fmt: skip
        if state.stop is None:
            state.stop = self.stopper.check()
        pruned = self.pruning(state.evaluations, val, monitored, going_on=state.stop is None)
        state.stop = pruned or state.stop

        metrics = "  ".join(
            f"{k} {row[k]:.4f}" for k in run.columns[2:] if finite(row.get(k)) is not None
        )
        self.log(
            f"epoch {row['epoch']:>5}/{self.epochs}  step {state.step:>6}  {metrics}  "
            f"lr {run.scheduler.get_last_lr()[0]:.2e}{'  *best' if improved else ''}"
        )
        return row
