"""Data parallelism under ``torchrun``: process group, rank, and the few collectives used.

``torchrun --nproc_per_node=N -m stages.train ...`` (or ``train.processes: N``, which makes
the stage launch torchrun itself) starts N copies of the stage. Each builds the same model
from the same seed, takes its share of every optimizer step's rows (see ``sampling.py``),
and the gradients are summed across processes before the step, so every process takes the
same step: the result is one process's up to float rounding (with dropout on, the dropout
masks differ, as they would with any other split of the batch). The backend is gloo on the
CPU and NCCL on GPUs. Only rank 0 writes files.

The gradient sum is done by hand (one flat all-reduce per optimizer step) rather than with
``DistributedDataParallel``: the loss is normalised by the whole step's denominator, the
processes may hold different numbers of micro-batches, and one all-reduce after the last
micro-batch is what gradient accumulation needs anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return int(env.get("WORLD_SIZE", "1")) > 1 and "RANK" in env


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """Rank 0 of a torchrun group, or a process on its own (a stray RANK alone counts not):
    the same rule as :meth:`Distributed.start`, before the group is joined."""
    env = os.environ if environ is None else environ
    return not launched_by_torchrun(env) or int(env["RANK"]) == 0


@dataclass
class Distributed:
    """This process's place in the group; a group of one when not launched by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def start(cls, device_type: str) -> Distributed:
        """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA), if any."""
        if not launched_by_torchrun():
            return cls()
        import torch
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(rank, world, local_rank, initialised=True)

    def stop(self) -> None:
        if self.initialised:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialised = False

    def device(self, device: torch.device) -> torch.device:
        """This process's device: ``cuda:<local rank>`` on GPUs."""
        import torch

        if device.type == "cuda" and self.active:
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place (a no-op alone)."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_gradients(self, params: list[torch.nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
        """Sum every gradient and ``extra`` (a 1-d tensor) over all processes in one call.

        Returns the summed ``extra``. A parameter without a gradient on this process (it got
        no rows) takes part with zeros, so every process sends the same layout; one without a
        gradient on every process keeps none, as it would in a single process (an optimizer
        skips it rather than decaying it).
        """
        if not self.active:
            return extra
        import torch

        dtype = params[0].dtype if params else extra.dtype
        has_grad = torch.tensor(
            [p.grad is not None for p in params], dtype=dtype, device=extra.device
        )
        flats = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
        ]
        buffer = torch.cat([*flats, has_grad.to(dtype), extra.to(dtype)])
        self.sum_(buffer)
        offset = 0
        seen = buffer[sum(f.numel() for f in flats) :][: len(params)].tolist()  # one sync
        for i, (p, flat) in enumerate(zip(params, flats, strict=True)):
            n = flat.numel()
            if seen[i] == 0:
                p.grad = None
            else:
                summed = buffer[offset : offset + n].view_as(p)
                if p.grad is None:
                    p.grad = summed.clone()
                else:
                    p.grad.copy_(summed)
            offset += n
        return buffer[offset + len(params) :].to(extra.dtype)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (pickled; for small objects)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Rank 0's weights everywhere (the same seed builds the same model; this makes sure)."""
        if not self.active:
            return
        import torch.distributed as dist

        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
