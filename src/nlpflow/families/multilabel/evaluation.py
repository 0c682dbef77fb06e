"""Scoring a multi-label model and its baselines on validation and test, from arrays.

The decision thresholds are chosen once, on the validation split (fixed, global or per
label, see :mod:`thresholds`), and applied to every split. A baseline with scores of its own
(TF-IDF + logistic regression) gets its thresholds chosen by the same rule on its own
validation scores, so model and baseline are compared under one rule; the frequency
baselines predict their own label sets. Every model metric comes with a bootstrap interval
and every baseline with its margin (how much the model beats it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.evaluation.baselines import TfidfSettings
from nlpflow.evaluation.metrics import FloatArray
from nlpflow.families.multilabel import baselines as base
from nlpflow.families.multilabel.metrics import (
    MAIN,
    margins,
    metrics_with_intervals,
    multilabel_metrics,
)
from nlpflow.families.multilabel.thresholds import ThresholdChoice, choose_thresholds, predict

Int8Array = npt.NDArray[np.int8]
Outputs = dict[str, tuple[FloatArray, Int8Array]]  # split -> (scores, predicted)


@dataclass(frozen=True)
class Rule:
    """How decisions are made: ``mode`` (fixed, global, per_label) and ``default``, the
    fixed threshold (and the fallback where validation cannot tune one)."""

    mode: str = "fixed"
    default: float = 0.5

    def choose(
        self, validation_truth: npt.ArrayLike, validation_scores: FloatArray, names: Sequence[str]
    ) -> ThresholdChoice:
        return choose_thresholds(
            validation_truth, validation_scores, names, self.mode, self.default
        )


@dataclass
class SplitResult:
    """One split's arrays and metrics."""

    name: str
    truth: Int8Array  # (n, k)
    scores: FloatArray  # (n, k)
    predicted: Int8Array  # (n, k)
    metrics: dict[str, Any]


def baseline_outputs(
    wanted: Sequence[str],
    train_truth: npt.ArrayLike,
    train_columns: Sequence[Sequence[str]],
    columns: Mapping[str, Sequence[Sequence[str]]],
    validation_truth: npt.ArrayLike,
    rule: Rule,
    label_names: Sequence[str],
    tfidf: TfidfSettings,
    seed: int,
) -> tuple[dict[str, Outputs], list[str]]:
    """Per baseline in ``wanted``, per split of ``columns`` (the text columns, one sequence
    per text field; it must hold ``validation``): ``(scores, predicted)``. Also the
    baselines that could not be fitted (TF-IDF on text without a usable token).

    Raises ValueError for a name that is not a multi-label baseline.
    """
    out: dict[str, Outputs] = {}
    skipped = []
    sizes = {split: len(cols[0]) for split, cols in columns.items()}
    for name in wanted:
        if name == "label_frequency":
            out[name] = {
                s: base.label_frequency(train_truth, n, seed + j)
                for j, (s, n) in enumerate(sizes.items())
            }
        elif name == "most_frequent_set":
            out[name] = {s: base.most_frequent_set(train_truth, n) for s, n in sizes.items()}
        elif name == "tfidf_logreg":
            scores = base.tfidf_logreg_scores(train_columns, train_truth, columns, tfidf, seed)
            if not scores:
                skipped.append(name)
                continue
            chosen = rule.choose(validation_truth, scores["validation"], label_names)
            out[name] = {s: (v, predict(v, chosen.thresholds)) for s, v in scores.items()}
        else:
            raise ValueError(
                f"'{name}' is not a multi-label baseline ({base.MULTILABEL_BASELINES})"
            )
    return out, skipped


def score_splits(
    truth: Mapping[str, npt.ArrayLike],
    scores: Mapping[str, FloatArray],
    label_names: Sequence[str],
    rule: Rule,
    baselines: Mapping[str, Outputs],
    resamples: int,
    level: float,
    seed: int,
) -> tuple[ThresholdChoice, list[SplitResult]]:
    """The thresholds (chosen on ``validation``) and, per split of ``scores``, predictions
    and metrics: :func:`metrics_with_intervals` plus ``baselines`` (each baseline's main
    metrics and ``margin``). Split ``i`` bootstraps with seed ``seed + 1000 * i``."""
    chosen = rule.choose(truth["validation"], scores["validation"], label_names)
    results = []
    for i, (split, s) in enumerate(scores.items()):
        y = np.asarray(truth[split]).astype(np.int8)
        predicted = predict(s, chosen.thresholds)
        m = metrics_with_intervals(y, predicted, s, label_names, resamples, seed + 1000 * i, level)
        m["baselines"] = {}
        for name, outputs in baselines.items():
            b_scores, b_pred = outputs[split]
            b = multilabel_metrics(y, b_pred, b_scores, label_names)
            entry: dict[str, Any] = {key: b[key] for key in MAIN}
            entry["margin"] = margins(m, b)
            m["baselines"][name] = entry
        results.append(SplitResult(split, y, np.asarray(s, dtype=np.float64), predicted, m))
    return chosen, results
