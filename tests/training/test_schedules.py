"""Learning-rate schedules: warm-up peak, linear end at 0, cosine and one-cycle shapes,
warm-up as a ratio or a step count, LambdaLR wiring."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from nlpflow.training.schedules import (
    ONE_CYCLE_DIV,
    ONE_CYCLE_FINAL_DIV,
    build_scheduler,
    lr_factor,
    warmup_steps,
)

TOTAL, WARMUP = 110, 10  # 100 decay steps: quarter and half points are exact


def factors(kind: str, total: int = TOTAL, warmup: int = WARMUP) -> list[float]:
    return [lr_factor(s, total, warmup, kind) for s in range(total + 1)]  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant", "one_cycle"])
def test_warmup_rises_to_the_peak(kind: str) -> None:
    f = factors(kind)
    if kind != "one_cycle":
        assert f[0] == pytest.approx(1 / WARMUP), "the first step already learns"
    assert all(a < b for a, b in pairwise(f[:WARMUP]))
    assert f[WARMUP - 1] == 1.0
    assert f[WARMUP] == 1.0
    assert max(f) == 1.0


def test_linear_decays_to_zero_at_the_end() -> None:
    f = factors("linear")
    decay = f[WARMUP:]
    assert all(a > b for a, b in pairwise(decay))
    assert f[TOTAL] == 0.0
    assert f[TOTAL - 1] == pytest.approx(1 / (TOTAL - WARMUP)), "the last step still learns"
    mid = WARMUP + (TOTAL - WARMUP) // 2
    assert f[mid] == pytest.approx(0.5)
    assert lr_factor(TOTAL + 5, TOTAL, WARMUP, "linear") == 0.0


def test_cosine_shape() -> None:
    f = factors("cosine")
    decay = f[WARMUP:]
    assert all(a >= b for a, b in pairwise(decay))
    mid = WARMUP + (TOTAL - WARMUP) // 2
    assert f[mid] == pytest.approx(0.5)
    quarter = WARMUP + (TOTAL - WARMUP) // 4  # cosine stays above linear in the first half
    assert f[quarter] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert f[quarter] > factors("linear")[quarter]
    assert f[TOTAL] == pytest.approx(0.0, abs=1e-12)


def test_constant_after_warmup() -> None:
    assert factors("constant")[WARMUP:] == [1.0] * (TOTAL - WARMUP + 1)


def test_no_warmup_starts_at_the_peak() -> None:
    assert lr_factor(0, TOTAL, 0, "linear") == 1.0
    assert warmup_steps(TOTAL, 0.0) == 0


def test_warmup_steps_round_up() -> None:
    assert warmup_steps(100, 0.1) == 10
    assert warmup_steps(95, 0.1) == 10
    assert warmup_steps(3, 0.99) == 3


def test_scheduler_applies_the_factor_to_each_optimizer_step() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    sched = build_scheduler(opt, total_steps=20, warmup_ratio=0.1, kind="linear")
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5 * lr_factor(s, 20, 2, "linear") for s in range(20)])
    assert opt.param_groups[0]["lr"] == 0.0


def test_one_cycle_shape() -> None:
    f = factors("one_cycle")
    low = 1 / ONE_CYCLE_DIV
    assert low < f[0] < 0.1, "starts near lr / 25, already above it"
    assert all(a < b for a, b in pairwise(f[:WARMUP]))
    assert f[WARMUP - 1] == 1.0 == f[WARMUP]
    assert all(a >= b for a, b in pairwise(f[WARMUP:]))
    assert f[TOTAL] == pytest.approx(low / ONE_CYCLE_FINAL_DIV)
    mid = WARMUP + (TOTAL - WARMUP) // 2
    assert f[mid] == pytest.approx((1 + low / ONE_CYCLE_FINAL_DIV) / 2)


def test_warmup_as_a_step_count_overrides_the_ratio() -> None:
    assert warmup_steps(100, 0.1, steps=25) == 25
    assert warmup_steps(100, 0.0, steps=250) == 100
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = build_scheduler(opt, total_steps=50, warmup_ratio=0.5, kind="linear", warmup=5)
    assert sched.lr_lambdas[0].warmup == 5  # type: ignore[attr-defined]
