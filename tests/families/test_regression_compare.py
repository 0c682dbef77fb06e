"""``nlpflow compare`` on a regression task's predictions: paired bootstrap of the squared
errors (and the other metrics), a sign test, the examples whose error grew."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlpflow.evaluation.compare import compare, read_side, render


def _write(path: Path, y: np.ndarray, p: np.ndarray) -> Path:
    rows = [
        {"id": f"r{i}", "text": f"t{i}", "label": float(a), "prediction": float(b),
         "residual": float(b - a)}
        for i, (a, b) in enumerate(zip(y, p, strict=True))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_closer_model_wins_on_every_metric(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 200)
    worse = y + rng.normal(0, 0.8, 200)
    better = y + rng.normal(0, 0.3, 200)
    a = read_side(str(_write(tmp_path / "a.jsonl", y, worse)), "test")
    b = read_side(str(_write(tmp_path / "b.jsonl", y, better)), "test")
    c = compare(a, b, resamples=300, seed=1)
    assert c.task == "regression" and c.n == 200
    mse_a, mse_b = np.mean((worse - y) ** 2), np.mean((better - y) ** 2)
    assert c.metrics["mse"]["diff"] == pytest.approx(mse_b - mse_a)
    # Errors: B - A below 0 is better, and B was better on (almost) every resample.
    assert c.intervals["rmse"]["high"] < 0 and c.intervals["rmse"]["p_not_better"] < 0.01
    assert c.intervals["r2"]["low"] > 0 and c.intervals["r2"]["p_not_better"] < 0.01
    closer = int((np.abs(better - y) < np.abs(worse - y)).sum())
    assert c.fixes == closer and len(c.regressions) == 200 - closer
    assert c.mcnemar["test"] == "sign" and c.mcnemar["p_value"] < 1e-6
    grown = [float(rb["prediction"]) - float(rb["label"]) for _, rb in c.regressions]
    growth = [
        abs(g) - abs(float(ra["residual"])) for g, (ra, _) in zip(grown, c.regressions, strict=True)
    ]
    assert growth == sorted(growth, reverse=True)  # largest growth first
    text = render(c)
    assert "## Sign test" in text and "## Absolute error grew" in text


def test_the_same_predictions_differ_nowhere(tmp_path: Path) -> None:
    y = np.linspace(0, 1, 30)
    path = _write(tmp_path / "a.jsonl", y, y + 0.1)
    c = compare(read_side(str(path), "test"), read_side(str(path), "test"), resamples=50)
    assert all(v["diff"] == 0 for v in c.metrics.values())
    assert c.regressions == [] and c.fixes == 0
    assert "None: B is at least as close as A on every example." in render(c)
