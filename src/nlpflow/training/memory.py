"""Memory: detect out-of-memory errors, free memory between trials, measure a step's peak.

On CUDA a batch "fits" unless the allocator raises; on the CPU nothing raises until the
kernel kills the process, so the probe measures each step's real peak resident memory and
compares it with a budget instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The messages torch raises when an allocation fails (as in accelerate's utils/memory.py).
_OOM_MESSAGES = (
    " out of memory.",  # CUDA and ROCm
    "CUDNN_STATUS_NOT_SUPPORTED.",  # cuDNN reports a failed workspace allocation this way
    "DefaultCPUAllocator: can't allocate memory",  # CPU
    "CUDA error: out of memory",
)

_MB = 1024 * 1024


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` says an allocation failed (so a smaller batch may succeed)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(exc, RuntimeError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return any(msg in exc.args[0] for msg in _OOM_MESSAGES)
    return False


_libc: ctypes.CDLL | None = None


def malloc_trim() -> None:
    """Ask glibc to hand freed heap pages back to the OS, so RSS reflects live memory only."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl and others have no malloc_trim: nothing to do
        pass


def release_memory(device: torch.device | None = None, collect: bool = True) -> None:
    """Collect garbage and return cached memory (CUDA cache, glibc heap) between trials.

    ``collect=False`` skips ``gc.collect()``: tensors are freed by reference counting, and
    a full collection costs ~0.2 s once transformers is imported; only cycles (such as a
    caught exception's traceback) need it.
    """
    if collect:
        gc.collect()
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    malloc_trim()


def _proc_kb(path: str, field: str) -> int | None:
    """A ``kB`` field of a /proc file (VmRSS in /proc/self/status, MemTotal in /proc/meminfo),
    or None where there is none."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _status_kb(field: str) -> int | None:
    return _proc_kb("/proc/self/status", field)


def _statm_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def available_memory_mb() -> float:
    """Memory the system can give without swapping (MemAvailable), in MB."""
    kb = _proc_kb("/proc/meminfo", "MemAvailable")
    if kb is not None:
        return kb / 1024
    try:
        import psutil

        return float(psutil.virtual_memory().available) / _MB
    except ImportError:  # pragma: no cover - psutil comes with the dependencies
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) / _MB


def total_memory_mb() -> float:
    """Physical memory of the machine (MemTotal), in MB."""
    kb = _proc_kb("/proc/meminfo", "MemTotal")
    if kb is not None:
        return kb / 1024
    return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) / _MB


def memory_budget_mb(memory_budget: float) -> float:
    """``probe.memory_budget``: MB when > 1, else a fraction of the memory available now."""
    if memory_budget > 1:
        return float(memory_budget)
    return memory_budget * available_memory_mb()


@dataclass
class PeakMeasurement:
    """Filled in when the measured block ends: its peak memory beyond what was resident."""

    peak_mb: float | None = None
    method: str = "none"


@contextlib.contextmanager
def measure_peak(device: torch.device) -> Iterator[PeakMeasurement]:
    """Measure the peak memory the block adds on ``device`` (CUDA allocator or process RSS)."""
    result = PeakMeasurement()
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.peak_mb = (torch.cuda.max_memory_allocated(device) - before) / _MB
        result.method = "cuda_allocator"
        return

    malloc_trim()  # freed heap pages back to the OS, so RSS counts live memory only
    before_kb = _status_kb("VmRSS")
    if before_kb is not None and _reset_peak_rss():
        # The kernel tracks the high-water mark for us: exact, and free while the step runs.
        yield result
        peak_kb = _status_kb("VmHWM")
        if peak_kb is not None:
            result.peak_mb = max(0, peak_kb - before_kb) / 1024
            result.method = "vmhwm"
        return

    start = _statm_rss_bytes()
    if start is None:  # no /proc at all: nothing to measure with
        yield result
        return
    baseline: int = start
    # Fallback: sample RSS in a thread. It can miss a short spike between samples, so the
    # interval is short; the step itself runs in C++ and does not hold the GIL for long.
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            now = _statm_rss_bytes() or 0
            peak = max(peak, now)
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
    peak = max(peak, _statm_rss_bytes() or 0)
    result.peak_mb = max(0, peak - baseline) / _MB
    result.method = "statm_sampling"
