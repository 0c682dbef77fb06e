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


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of bf16 matrix units


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The bf16 matrix units this CPU reports (``amx_bf16``, ``avx512_bf16`` among the
    ``flags`` of /proc/cpuinfo); empty where it has none or there is no /proc/cpuinfo.

    Without them torch emulates bf16 arithmetic and autocast is slower than fp32.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in BF16_CPU_FLAGS if f in flags]
    except OSError:
        pass
    return []


def resolve_precision(choice: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """``(autocast dtype or None for fp32, a note for the log)`` for a precision name.

    ``choice`` is ``train.precision`` or the probe's decision in the plan (``fp32``,
    ``bf16``, ``fp16``). On CUDA ``auto`` is bf16 where the GPU supports it, else fp16 (with
    loss scaling). On the CPU ``bf16`` is bf16 autocast (weights and optimizer stay fp32),
    ``fp16`` falls back to fp32, and ``auto`` here is fp32: the probe decides ``auto`` on
    the CPU by measuring (:func:`nlpflow.training.probe.decide_cpu_precision`).

    Raises UserError for an unknown name or bf16 on a GPU without it.
    """
    import torch

    if choice == "fp32":
        return None, "fp32"
    if choice not in ("auto", "bf16", "fp16"):
        raise UserError(f"unknown precision '{choice}'; use auto, fp32, bf16 or fp16")
    if device.type != "cuda":
        if choice == "bf16":
            units = cpu_bf16_units()
            how = f"with {', '.join(units)}" if units else "emulated: this CPU has no bf16 units"
            return torch.bfloat16, f"bf16 autocast on the CPU ({how})"
        if choice == "fp16":
            return None, "fp32 (train.precision fp16 is for CUDA; the CPU computes in fp32)"
        return None, "fp32"
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise UserError("train.precision bf16: this GPU has no bf16; use fp16 or auto")
        return torch.bfloat16, "bf16 mixed precision"
    return torch.float16, "fp16 mixed precision with loss scaling"


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for an autocast dtype (None: fp32)."""
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(
    device: torch.device, dtype: torch.dtype | None = None
) -> contextlib.AbstractContextManager[object]:
    """Autocast to ``dtype`` (CUDA: bf16 or fp16; CPU: bf16); nothing (fp32) when None."""
    import torch

    if dtype is None or (device.type != "cuda" and dtype != torch.bfloat16):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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
