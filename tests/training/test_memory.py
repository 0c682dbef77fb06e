"""Peak-memory measurement and the CPU memory budget."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from nlpflow.training import memory
from nlpflow.training.memory import available_memory_mb, measure_peak, memory_budget_mb

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CPU = torch.device("cpu")


def allocate_mb(size_mb: int) -> None:
    block = torch.ones(size_mb * 1024 * 1024 // 4)  # float32: 4 bytes each
    time.sleep(0.05)  # long enough for the sampling fallback to see it
    del block


def test_peak_of_a_64_mb_allocation_via_vmhwm() -> None:
    with measure_peak(CPU) as peak:
        allocate_mb(64)
    assert peak.method == "vmhwm"
    assert peak.peak_mb is not None
    assert 60 <= peak.peak_mb < 120


def test_peak_is_reset_between_measurements() -> None:
    with measure_peak(CPU):
        allocate_mb(128)
    with measure_peak(CPU) as small:
        allocate_mb(8)
    assert small.peak_mb is not None and small.peak_mb < 40


def test_sampling_fallback_when_clear_refs_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_reset_peak_rss", lambda: False)
    with measure_peak(CPU) as peak:
        allocate_mb(64)
    assert peak.method == "statm_sampling"
    assert peak.peak_mb is not None
    assert 60 <= peak.peak_mb < 120


def test_budget_in_mb_or_as_a_fraction_of_available() -> None:
    assert memory_budget_mb(512) == 512
    available = available_memory_mb()
    assert available > 0
    assert memory_budget_mb(0.5) == pytest.approx(available / 2, rel=0.2)


def test_malloc_trim_is_safe_to_call() -> None:
    memory.malloc_trim()
    memory.release_memory(CPU)
    if sys.platform.startswith("linux"):  # glibc's malloc_trim was found and called
        assert memory._libc is not None and hasattr(memory._libc, "malloc_trim")
