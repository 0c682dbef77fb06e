"""Which device a stage runs on, and the precision it computes in there."""

from __future__ import annotations

import contextlib
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
            "device 'cuda' was asked for (probe.device, or metrics/probe.json) but no CUDA "
            "device is available here; set probe.device to 'auto' or 'cpu' and rerun the probe"
        )
    if choice not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{choice}'; use auto, cpu or cuda")
    return torch.device(choice)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA; full precision on the CPU, where bf16 is slow and changes results."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a timer measures the work and not just its launch."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
