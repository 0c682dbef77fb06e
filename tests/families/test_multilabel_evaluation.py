"""Scoring splits from arrays: thresholds from validation only, baselines under the same rule,
prediction records and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlpflow.errors import UserError
from nlpflow.evaluation.baselines import TfidfSettings
from nlpflow.families.multilabel.evaluation import Rule, baseline_outputs, score_splits
from nlpflow.families.multilabel.plots import micro_pr_points, write_split_plots
from nlpflow.families.multilabel.predictions import prediction_records, records_to_arrays

NAMES = ["cat", "sun"]


def _data(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, rows = [], []
    for _ in range(n):
        words = [w for w in ("cat", "dog", "sun", "rain") if rng.random() < 0.5] or ["tea"]
        texts.append(" ".join(words))
        rows.append([int("cat" in words), int("sun" in words)])
    return texts, np.array(rows, dtype=np.int8)


def test_thresholds_come_from_validation_and_baselines_get_margins() -> None:
    train_t, train_y = _data(120, 0)
    val_t, val_y = _data(40, 1)
    test_t, test_y = _data(40, 2)
    truth = {"validation": val_y, "test": test_y}
    # scores that rank perfectly but sit below 0.5: only a tuned threshold finds them
    scores = {s: np.where(y == 1, 0.4, 0.1).astype(np.float64) for s, y in truth.items()}
    rule = Rule("global", 0.5)
    outputs, skipped = baseline_outputs(
        ["label_frequency", "most_frequent_set", "tfidf_logreg"],
        train_y,
        [train_t],
        {"validation": [val_t], "test": [test_t]},
        val_y,
        rule,
        NAMES,
        TfidfSettings(),
        seed=0,
    )
    assert skipped == []
    chosen, results = score_splits(truth, scores, NAMES, rule, outputs, 100, 0.95, seed=0)
    assert chosen.thresholds == [pytest.approx(0.25)] * 2
    test = results[1]
    assert test.name == "test"
    assert test.metrics["f1_micro"] == 1.0
    assert np.array_equal(test.predicted, test_y)
    assert set(test.metrics["baselines"]) == {
        "label_frequency",
        "most_frequent_set",
        "tfidf_logreg",
    }
    for b in test.metrics["baselines"].values():
        assert b["margin"]["f1_micro"] == pytest.approx(1.0 - b["f1_micro"])
    # fixed at 0.5 the same scores predict nothing
    _, fixed = score_splits(truth, scores, NAMES, Rule("fixed", 0.5), {}, 0, 0.95, seed=0)
    assert fixed[1].metrics["f1_micro"] == 0.0
    with pytest.raises(ValueError) as err:
        baseline_outputs(
            ["majority"],
            train_y,
            [train_t],
            {"validation": [val_t]},
            val_y,
            rule,
            NAMES,
            TfidfSettings(),
            0,
        )
    assert "'majority' is not a multi-label baseline" in str(err.value)


def test_records_round_trip_and_bad_records(tmp_path: Path) -> None:
    y = np.array([[1, 0], [0, 0]])
    p = np.array([[1, 1], [0, 0]])
    s = np.array([[0.9, 0.6], [0.1, 0.2]])
    rows = prediction_records([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], y, p, s, NAMES)
    assert rows[0] == {
        "id": "a",
        "text": "x",
        "label": ["cat"],
        "prediction": ["cat", "sun"],
        "probabilities": {"cat": 0.9, "sun": 0.6},
    }
    back = records_to_arrays(json.loads(json.dumps(rows)), NAMES)
    assert [a.tolist() for a in back] == [y.tolist(), p.tolist(), s.tolist()]
    rows[1]["label"] = "cat"
    with pytest.raises(UserError) as err:
        records_to_arrays(rows, NAMES, "pred.jsonl")
    assert str(err.value).startswith("pred.jsonl, line 2: 'label' must be a list of the labels")


def test_plots_written(tmp_path: Path) -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.3, 0.7], [0.6, 0.4]])
    p = (s >= 0.5).astype(int)
    metrics = {
        "per_class": {n: {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 2} for n in NAMES}
    }
    write_split_plots(tmp_path, "test", y, p, s, metrics, [0.5, 0.5], NAMES)
    names = sorted(f.name for f in tmp_path.iterdir())
    assert names == [
        "cooccurrence_test.png",
        "per_label_test.json",
        "per_label_test.png",
        "precision_recall_test.json",
        "precision_recall_test.png",
    ]
    per_label = json.loads((tmp_path / "per_label_test.json").read_text())
    assert per_label[1] == {
        "label": "sun",
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6,
        "support": 2,
        "threshold": 0.5,
    }
    assert micro_pr_points([[0, 0]], [[0.1, 0.2]]) == []
    # the micro curve's best point: 4 decisions positive, ranked 0.9, 0.7, 0.6 (pos), 0.4 (pos)
    points = micro_pr_points(y, s)
    assert max(pt["recall"] for pt in points) == 1.0
