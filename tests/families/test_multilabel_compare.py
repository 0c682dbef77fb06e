"""``nlpflow compare`` on two multi-label predictions files: the multi-label metrics, paired."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.evaluation.compare import Side, compare, render
from nlpflow.families.multilabel.metrics import multilabel_metrics
from nlpflow.families.multilabel.predictions import prediction_records

NAMES = ["a", "b", "c"]


def _side(name: str, y: np.ndarray, p: np.ndarray, s: np.ndarray) -> Side:
    base = [{"id": f"x{i}", "text": f"t{i}"} for i in range(len(y))]
    return Side(name, name, prediction_records(base, y, p, s, NAMES))


def test_compare_scores_both_sides_with_the_multilabel_metrics() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(int)
    s_a = np.clip(y * 0.3 + rng.random((60, 3)) * 0.7, 0, 1)  # about 3 decisions in 10 wrong
    s_b = np.clip(y * 0.8 + rng.random((60, 3)) * 0.2, 0, 1)
    p_a, p_b = (s_a >= 0.5).astype(int), (s_b >= 0.5).astype(int)
    c = compare(_side("A", y, p_a, s_a), _side("B", y, p_b, s_b), resamples=200, seed=1)
    assert c.task == "multilabel"
    m_a = multilabel_metrics(y, p_a, s_a, NAMES)
    m_b = multilabel_metrics(y, p_b, s_b, NAMES)
    for key in ("f1_micro", "hamming_loss", "subset_accuracy", "lrap"):
        assert c.metrics[key]["a"] == pytest.approx(m_a[key])
        assert c.metrics[key]["b"] == pytest.approx(m_b[key])
    # B is better: fewer wrong decisions, so B rarely "not better" on Hamming loss either
    assert c.metrics["hamming_loss"]["diff"] < 0
    assert c.intervals["hamming_loss"]["p_not_better"] < 0.05
    assert c.intervals["f1_micro"]["p_not_better"] < 0.05
    exact_a = (p_a == y).all(axis=1)
    exact_b = (p_b == y).all(axis=1)
    assert len(c.regressions) == int((exact_a & ~exact_b).sum())
    assert c.fixes == int((~exact_a & exact_b).sum())
    text = render(c)
    assert "| hamming_loss |" in text
