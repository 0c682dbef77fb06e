"""The loss-curve diagnosis: each rule fires on a synthetic curve of its shape, and a
healthy curve fires none."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from nlpflow.training.health import diagnose, health_summary

STEPS = 300


def noisy(values: list[float], sigma: float, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.gauss(0, sigma) for v in values]


def healthy_steps() -> list[float]:
    return noisy([0.1 + 0.6 * math.exp(-t / 50) for t in range(STEPS)], 0.02)


def evals(train: list[float], val: list[float]) -> list[dict[str, Any]]:
    return [
        {"epoch": i + 1, "step": (i + 1) * 50, "train_loss": t, "val_loss": v}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]


HEALTHY_EVALS = evals([0.5, 0.3, 0.2, 0.15, 0.12, 0.11], [0.45, 0.3, 0.24, 0.22, 0.215, 0.214])


def staircase() -> list[float]:
    levels = [0.7] * 100 + [0.45] * 100 + [0.2] * 100
    return noisy(levels, 0.003)


CURVES: dict[str, tuple[list[float], list[dict[str, Any]]]] = {
    "not_decreasing": (noisy([0.69] * STEPS, 0.02), HEALTHY_EVALS),
    "oscillating": (
        [0.6 - 0.0005 * t + (0.5 if t % 2 else -0.3) for t in range(STEPS)],
        HEALTHY_EVALS,
    ),
    "exploding": (
        [0.7 - 0.003 * t if t < 100 else 0.4 * math.exp((t - 100) / 40) for t in range(STEPS)],
        HEALTHY_EVALS,
    ),
    "collapsing_to_zero": ([0.7 * math.exp(-t / 4) for t in range(STEPS)], HEALTHY_EVALS),
    "negative_loss": ([v - 0.15 for v in healthy_steps()], HEALTHY_EVALS),
    "overfitting": (
        healthy_steps(),
        evals([0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [0.6, 0.45, 0.42, 0.47, 0.55, 0.7]),
    ),
    "plateaus": (staircase(), HEALTHY_EVALS),
}


def test_a_healthy_curve_fires_nothing() -> None:
    assert diagnose(healthy_steps(), HEALTHY_EVALS) == []
    assert health_summary([]) == {"status": "ok", "findings": 0, "rules": {}}


@pytest.mark.parametrize("rule", sorted(CURVES))
def test_each_rule_fires_on_its_shape(rule: str) -> None:
    steps, rows = CURVES[rule]
    findings = diagnose(steps, rows)
    assert rule in [f.rule for f in findings], [f.rule for f in findings]
    finding = next(f for f in findings if f.rule == rule)
    assert finding.message and finding.causes and finding.remedies
    summary = health_summary(findings)
    entry = summary["rules"][rule]
    assert isinstance(entry["likely_causes"], str) and isinstance(entry["try"], str)
    assert summary["status"] in ("warning", "error")


def test_overfitting_says_from_which_epoch() -> None:
    steps, rows = CURVES["overfitting"]
    (finding,) = [f for f in diagnose(steps, rows) if f.rule == "overfitting"]
    assert finding.details["from_epoch"] == 4
    assert finding.details["best_val_loss_epoch"] == 3
    assert "overfitting from epoch 4" in finding.message


def test_exploding_says_where_and_is_not_also_not_decreasing() -> None:
    steps, rows = CURVES["exploding"]
    findings = diagnose(steps, rows)
    rules = [f.rule for f in findings]
    assert "not_decreasing" not in rules
    (finding,) = [f for f in findings if f.rule == "exploding"]
    assert 100 < finding.details["from_step"] < 200
    assert findings[0].severity == "error"


def test_plateaus_are_located() -> None:
    (finding,) = [f for f in diagnose(*CURVES["plateaus"]) if f.rule == "plateaus"]
    assert finding.details["plateaus"] == 2
    assert "steps 1-" in finding.message


def test_a_converged_noisy_loss_is_not_oscillating() -> None:
    # Near 0 with the odd hard batch: big swings relative to the level, small in absolute.
    steps = [0.7 * math.exp(-t / 30) + (0.05 if t % 7 == 0 else 0.0) for t in range(STEPS)]
    assert "oscillating" not in [f.rule for f in diagnose(steps, HEALTHY_EVALS)]


def test_the_overfit_check_mutes_collapse_and_overfitting() -> None:
    steps, rows = CURVES["collapsing_to_zero"]
    assert diagnose(steps, rows, overfit_check=True) == []


def test_short_and_long_runs() -> None:
    assert diagnose([0.7, 0.6, 0.65], []) == []  # too short to judge
    long = noisy([0.1 + 0.6 * math.exp(-t / 5000) for t in range(50_000)], 0.02)
    assert diagnose(long, HEALTHY_EVALS) == []
