"""Which device a stage runs on, the precision it computes in there, and its CPU threads."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is there and the CPU otherwise; ``cuda`` insists on it."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device 'cuda' was asked for (probe.device, or data/probe/plan.json) but no CUDA "
            "device is available here; set probe.device to 'auto' or 'cpu' and rerun the probe"
        )
    if choice not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{choice}'; use auto, cpu or cuda")
    return torch.device(choice)


def device_name(device: torch.device) -> str:
    """What the device is, for a probe result to know where it was measured."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"{props.name} ({props.total_memory // 2**20} MiB)"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name


def resolve_precision(choice: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """``(autocast dtype or None for fp32, a note for the log)`` for ``train.precision``.

    Mixed precision is for CUDA: ``auto`` is bf16 where the GPU supports it, else fp16 (with
    loss scaling); on the CPU everything runs in fp32, where bf16 is slow on most processors
    and would change results.
    """
    import torch

    if choice == "fp32":
        return None, "fp32"
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            return None, f"fp32 (train.precision {choice} is for CUDA; the CPU computes in fp32)"
        return None, "fp32"
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise UserError("train.precision bf16: this GPU has no bf16; use fp16 or auto")
        return torch.bfloat16, "bf16 mixed precision"
    if choice == "fp16":
        return torch.float16, "fp16 mixed precision with loss scaling"
    raise UserError(f"unknown precision '{choice}'; use auto, fp32, bf16 or fp16")


def autocast(
    device: torch.device, dtype: torch.dtype | None = None
) -> contextlib.AbstractContextManager[object]:
    """Autocast to ``dtype`` on CUDA; nothing (fp32) when ``dtype`` is None or on the CPU."""
    import torch

    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a timer measures the work and not just its launch."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run with ``threads`` CPU threads (0: leave torch's setting), then restore it.

    Why a parameter: torch uses one thread per core by default, and when another job shares
    the cores its threads spin-wait for each other; small models then train many times
    slower than on one thread. Results are bit-identical run to run at a fixed thread count
    (not across thread counts: reductions split differently).
    """
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
