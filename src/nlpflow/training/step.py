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
    counted: int  # counted targets (labels other than -100), all processes
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

    def __call__(self, chunk: torch.Tensor) -> StepResult:
        import torch

        from nlpflow.training.device import autocast
        from nlpflow.training.sampling import micro_batches, shard

        data, dist = self.data, self.dist
        # -- forward and backward, micro-batch by micro-batch; each adds its share of the
        #    step's mean loss, whatever the split into micro-batches and processes
        targets = data.targets(chunk)  # the step's counted labels, all processes
        denominator = self.criterion.denominator(targets)
        step_loss = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        real = padded = 0  # tokens of this process's micro-batches, without and with padding
        for micro in micro_batches(shard(chunk, dist.rank, dist.world), self.batch_size,
                                   data.lengths):  # fmt: skip
            batch = data.batch(micro, self.device)
            labels = batch.pop("labels")
            with autocast(self.device, self.precision):
                logits = self.forward(**batch).logits  # (B, k) or (B, T, k)
            loss = self.criterion.sum(logits, labels) / denominator
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            step_loss += loss.detach().double()
            correct += (logits.detach().argmax(-1) == labels).sum().double()
            lengths = data.lengths[micro]
            real += int(lengths.sum())
            padded += int(lengths.max()) * len(micro)

        # -- sum over processes, gradient norm (before clipping), the one host sync
        tokens = torch.tensor([real, padded], device=self.device, dtype=torch.float64)
        summed = dist.sum_gradients(
            self.trainable, torch.cat([step_loss[None], correct[None], tokens])
        )
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.get_total_norm(
            [p.grad for p in self.trainable if p.grad is not None]
        )
        loss_value, correct_value, real_value, padded_value, norm_value = torch.cat(
            [summed.double(), grad_norm.double().reshape(1)]
        ).tolist()
        lr = self.scheduler.get_last_lr()[0]
        # A step on non-finite gradients would ruin the weights (fp16: the scaler skips it).
        taken = math.isfinite(loss_value) and (self.scaler is not None or math.isfinite(norm_value))
        if taken:
            if self.max_grad_norm > 0:
                torch.nn.utils.clip_grads_with_norm_(self.trainable, self.max_grad_norm, grad_norm)
            # -- optimizer and schedule step
            if self.scaler is not None:
                self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(
            taken=taken,
            loss=loss_value,
            grad_norm=norm_value,
            lr=lr,
            denominator=denominator,
            correct=int(correct_value),
            counted=int(targets.numel()),
            examples=len(chunk),
            real_tokens=int(real_value),
            padded_tokens=int(padded_value),
        )
