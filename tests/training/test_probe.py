"""The batch-size search, the batch split, the OOM handling, reuse of a kept measurement and
the timing helpers (no GPU needed)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from nlpflow.training.memory import is_oom
from nlpflow.training.probe import (
    Candidate,
    batch_size_effect,
    catch_oom,
    choose_batch_size,
    compare_steps,
    covered_limit,
    search_batch_size,
)


def fake_device(limit: int) -> tuple[list[int], Callable[[int], Candidate]]:
    """A ``run(size)`` that raises CUDA's OOM above ``limit``.

    Faked because no GPU is here: it raises what torch raises when CUDA runs out of memory.
    """
    calls: list[int] = []

    def run(size: int) -> Candidate:
        calls.append(size)
        if size > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return Candidate(size, fits=True, peak_memory_mb=float(size), examples_per_second=1.0)

    return calls, run


def test_exact_sequence_when_everything_above_40_runs_out_of_memory() -> None:
    calls, run = fake_device(limit=40)
    safe = catch_oom(run)
    best, tried = search_batch_size(lambda n: safe(n).fits, max_batch_size=256, max_candidates=20)
    assert best == 40
    assert tried == [1, 2, 4, 8, 16, 32, 64, 48, 40, 44, 42, 41]
    assert calls == tried
    assert len(tried) <= 2 * math.log2(256) + 2


def test_search_finds_the_limit_within_the_bound_for_every_cap_and_limit() -> None:
    # Exhaustive over small caps: the bound, 2 * log2(cap) + 2 candidates, exactly.
    for cap in range(1, 300):
        for limit in range(0, cap + 2):
            best, tried = search_batch_size(
                lambda n, limit=limit: n <= limit, max_batch_size=cap, max_candidates=100
            )
            assert best == min(limit, cap)
            assert len(tried) <= 2 * math.log2(cap) + 2, (cap, limit, tried)
            assert len(tried) == len(set(tried)), "no size is tried twice"
            assert max(tried) <= cap


@pytest.mark.parametrize("cap", [512, 1000, 4096])
@pytest.mark.parametrize("limit", [0, 1, 3, 33, 255, 257, 511, 999, 5000])
def test_search_bound_for_large_caps(cap: int, limit: int) -> None:
    best, tried = search_batch_size(lambda n: n <= limit, max_batch_size=cap, max_candidates=100)
    assert best == min(limit, cap)
    assert len(tried) <= 2 * math.log2(cap) + 2


def test_cap_that_is_no_power_of_two_is_tried_itself() -> None:
    best, tried = search_batch_size(lambda n: True, max_batch_size=100, max_candidates=20)
    assert (best, tried) == (100, [1, 2, 4, 8, 16, 32, 64, 100])


def test_nothing_fits() -> None:
    assert search_batch_size(lambda n: False, 256, 20) == (0, [1])


def test_max_candidates_stops_the_search_at_the_last_fit() -> None:
    best, tried = search_batch_size(lambda n: n <= 40, max_batch_size=256, max_candidates=8)
    assert tried == [1, 2, 4, 8, 16, 32, 64, 48]
    assert best == 32


@pytest.mark.parametrize(
    ("effective", "max_fit", "expected"),
    [
        (32, 256, (32, 1)),
        (32, 32, (32, 1)),
        (32, 20, (16, 2)),
        (96, 40, (32, 3)),
        (12, 5, (4, 3)),
        (37, 20, (1, 37)),  # a prime: only batch 1 keeps the effective batch exact
        (1, 1, (1, 1)),
    ],
)
def test_batch_size_is_the_largest_fitting_divisor(
    effective: int, max_fit: int, expected: tuple[int, int]
) -> None:
    assert choose_batch_size(effective, max_fit) == expected


def test_divisor_rule_exhaustively() -> None:
    for effective in range(1, 65):
        for max_fit in range(1, 70):
            batch, accumulation = choose_batch_size(effective, max_fit)
            assert batch * accumulation == effective
            assert batch <= max_fit
            larger = [d for d in range(batch + 1, max_fit + 1) if effective % d == 0]
            assert not larger, (effective, max_fit, batch)


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        MemoryError(),
    ],
)
def test_is_oom_recognises_allocation_failures(exc: BaseException) -> None:
    assert is_oom(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
        RuntimeError("out of memory", "second arg"),  # not the shape torch raises
        ValueError("CUDA out of memory."),
        KeyboardInterrupt(),
    ],
)
def test_is_oom_ignores_other_errors(exc: BaseException) -> None:
    assert not is_oom(exc)


def test_other_errors_are_not_swallowed() -> None:
    def broken(size: int) -> Candidate:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        catch_oom(broken)(4)


# --------------------------------------------------------------------------- reuse and timings


def measured(limit: int, cap: int) -> list[Candidate]:
    """The candidates a search up to ``cap`` records on a device that fits up to ``limit``."""
    cands: list[Candidate] = []

    def try_batch(size: int) -> bool:
        cands.append(Candidate(size, fits=size <= limit))
        return size <= limit

    search_batch_size(try_batch, cap, 20)
    return cands


@pytest.mark.parametrize("limit", [1, 5, 24, 40, 64, 1000])
def test_a_kept_measurement_answers_every_cap_it_covers_exactly(limit: int) -> None:
    kept = measured(limit, 64)
    for cap in range(1, 129):
        answer = covered_limit(kept, cap)
        fresh = search_batch_size(lambda n: n <= limit, cap, 20)[0]
        if answer is not None:
            assert answer == fresh, (limit, cap)  # what a new search would find
        else:  # unknown only where the kept search stopped below the cap, without a failure
            assert cap > 64 and limit >= 64, (limit, cap)


def test_a_measurement_cut_short_is_not_reused() -> None:
    # max_candidates stopped the bisection between 16 (fits) and 32 (does not).
    kept = [Candidate(n, True) for n in (1, 2, 4, 8, 16)] + [Candidate(32, False)]
    assert covered_limit(kept, 16) == 16
    assert covered_limit(kept, 24) is None
    assert covered_limit([Candidate(1, False)], 8) is None


def test_batch_size_effect_says_when_throughput_is_flat() -> None:
    flat = [Candidate(1, True, 1.0, 100.0), Candidate(8, True, 2.0, 140.0),
            Candidate(32, True, 8.0, 105.0), Candidate(64, False)]  # fmt: skip
    effect = batch_size_effect(flat)
    assert effect is not None
    assert (effect["smallest_batch"], effect["largest_batch"]) == (1, 32)
    assert effect["gain"] == 0.05 and effect["flat"]
    assert "barely changes" in effect["note"] and "+5%" in effect["note"]
    steep = batch_size_effect([Candidate(1, True, 1.0, 100.0), Candidate(2, True, 1.0, 130.0)])
    assert steep is not None and steep["gain"] == 0.3 and not steep["flat"]
    assert "barely" not in steep["note"]
    assert batch_size_effect([Candidate(1, True, 1.0, 100.0), Candidate(2, False)]) is None


def test_compare_steps_interleaves_and_keeps_the_fastest(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: each call of a variant advances it by that variant's next duration.
    clock = [0.0]
    calls: list[str] = []
    durations = {"a": iter([9.0, 0.5, 0.3, 0.4]), "b": iter([9.0, 0.2, 0.6, 0.1])}

    def variant(name: str) -> Callable[[], None]:
        def run() -> None:
            calls.append(name)
            clock[0] += next(durations[name])

        return run

    monkeypatch.setattr("nlpflow.training.probe.time.perf_counter", lambda: clock[0])
    best = compare_steps({"a": variant("a"), "b": variant("b")}, min_repeats=2, seconds=2.0)
    # One untimed warm-up each, then turns until 2 repeats and 2 s were spent (1.6 s after two).
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert best == pytest.approx({"a": 0.3, "b": 0.1})
