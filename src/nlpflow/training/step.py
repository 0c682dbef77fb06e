"""One optimizer step: micro-batches forward and backward, the gradient sum across
processes, the gradient norm, clipping, the optimizer and schedule step.

The step's loss is the mean over its counted targets, however the step is split: each
micro-batch adds ``sum of its loss terms / the whole step's denominator`` (see ``loss.py``),
and the processes' gradients are summed before the optimizer steps. One host sync per step
reads the loss, accuracy, token counts and gradient norm together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nlpflow.training.data import PaddedSplit
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.loss import Criterion
    from nlpflow.training.setup import Run


@dataclass(frozen=True)
class StepResult:
    """What one step measured. With ``taken`` False (a non-finite loss or gradient norm)
    the gradients were dropped and neither the optimizer nor the schedule moved."""

    taken: bool
    loss: float  # mean loss over the step's counted targets, nats (before the update)
    grad_norm: float  # L2 norm of all gradients before clipping (after fp16 unscaling)
    lr: float  # the learning rate the step used
    denominator: float  # what the summed loss was divided by: counted targets or weights
    correct: int  # counted targets predicted right (argmax), all processes
    counted: int  # counted targets (labels other than -100), all processes; 0 when the
    # criterion measures no accuracy (regression), so train_accuracy is None
    examples: int  # rows of the step, all processes
    real_tokens: int  # tokens of this step's micro-batches without padding, all processes
    padded_tokens: int  # ... with padding to each micro-batch's longest row


@dataclass
class TrainStep:
    """Takes one optimizer step on the rows ``chunk`` of ``data`` (all processes' rows: each
    process computes its share, ``rows[rank::world]``, in micro-batches of ``batch_size``)."""

    forward: Any  # the model, or its torch.compile wrapper: (**batch) -> output with .logits
    trainable: list[torch.nn.Parameter]
    data: PaddedSplit
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 only
    precision: torch.dtype | None  # autocast dtype, None for fp32
    batch_size: int  # rows per micro-batch (the probe's)
    max_grad_norm: float  # 0 = no clipping
    device: torch.device
    dist: Distributed

    @classmethod
    def of(
        cls,
        run: Run,
        batch_size: int,
        max_grad_norm: float,
        device: torch.device,
        dist: Distributed,
    ) -> TrainStep:
        """The step of a :class:`~nlpflow.training.setup.Run` on its train split."""
        return cls(
            run.forward, run.trainable, run.train_set, run.criterion, run.optimizer,
            run.scheduler, run.scaler, run.precision, batch_size, max_grad_norm, device, dist,
        )  # fmt: skip

    def __call__(self, chunk: torch.Tensor) -> StepResult:
        """One optimizer step on the rows ``chunk`` ((n,) int64 indices into ``data``)."""
        import torch

        targets = self.data.targets(chunk)  # the step's counted labels, all processes
        denominator = self.criterion.denominator(targets)
        sums = self._backward(chunk, denominator)

        # -- sum over processes, gradient norm (before clipping), the one host sync
        summed = self.dist.sum_gradients(self.trainable, sums)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.get_total_norm(
            [p.grad for p in self.trainable if p.grad is not None]
        )
        loss, correct, real, padded, norm = torch.cat(
            [summed.double(), grad_norm.double().reshape(1)]
        ).tolist()
        lr = self.scheduler.get_last_lr()[0]

        # -- clipping, optimizer and schedule step; never on non-finite gradients, which
        #    would ruin the weights (fp16: the scaler checks and skips such a step itself)
        taken = math.isfinite(loss) and (self.scaler is not None or math.isfinite(norm))
        if taken:
            if self.max_grad_norm > 0:
                torch.nn.utils.clip_grads_with_norm_(self.trainable, self.max_grad_norm, grad_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(
            taken=taken, loss=loss, grad_norm=norm, lr=lr, denominator=denominator,
            correct=int(correct),
            counted=int(targets.numel()) if self.criterion.measures_accuracy else 0,
            examples=len(chunk),
            real_tokens=int(real), padded_tokens=int(padded),
        )  # fmt: skip

    def _backward(self, chunk: torch.Tensor, denominator: float) -> torch.Tensor:
        """Forward and backward over this process's micro-batches of ``chunk``; each adds
        its share of the step's mean loss to the gradients, whatever the split into
        micro-batches and processes. Returns this process's (4,) float64 sums: loss,
        correct predictions, tokens without and with padding."""
        import torch

        from nlpflow.training.device import autocast
        from nlpflow.training.sampling import micro_batches, shard

        data, dist = self.data, self.dist
        step_loss = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        real = padded = 0  # tokens of this process's micro-batches, without and with padding
        mine = shard(chunk, dist.rank, dist.world)
        for micro in micro_batches(mine, self.batch_size, data.lengths):
            batch = data.batch(micro, self.device)
            labels = batch.pop("labels")  # (B,) or (B, T)
            with autocast(self.device, self.precision):
                output = self.forward(**batch)  # .logits (B, k) or (B, T, k), or the family's
            loss = self.criterion.sum(output, labels) / denominator
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            step_loss += loss.detach().double()
            correct += self.criterion.correct(output, labels).double()
            lengths = data.lengths[micro]
            real += int(lengths.sum())
            padded += int(lengths.max()) * len(micro)
        tokens = torch.tensor([real, padded], device=self.device, dtype=torch.float64)
        return torch.cat([step_loss[None], correct[None], tokens])
