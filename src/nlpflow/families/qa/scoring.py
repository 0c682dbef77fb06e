"""One split's QA scores as ``metrics/evaluate.json`` holds a split, and the tuned threshold.

:func:`split_metrics` gives the official keys (fractions), ``n``, bootstrap intervals
(``ci``) of :data:`~nlpflow.families.qa.metrics.MAIN` and, for each baseline, its scores
and its ``margin`` (model - baseline) on the same questions. :func:`tune_null_threshold`
picks the no-answer threshold on the validation split's answers (F1, as the official
script's ``best_f1_thresh``); the test split is then answered with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nlpflow.families.qa.baselines import BASELINES, baseline_predictions
from nlpflow.families.qa.metrics import (
    MAIN,
    best_null_threshold,
    question_scores,
    squad_intervals,
    squad_metrics,
)
from nlpflow.families.qa.postprocess import Answer

Row = dict[str, Any]


def _golds(rows: Sequence[Row]) -> list[list[str]]:
    return [list(r["answers"]["text"]) for r in rows]


def tune_null_threshold(rows: Sequence[Row], answers: Sequence[Answer]) -> dict[str, float]:
    """The no-answer threshold that maximises mean F1 on ``rows`` (validation) given each
    question's best span and margin; ``{"null_threshold", "f1"}`` (the F1 it gives there).
    """
    best_spans = [a.best.text if a.best is not None else "" for a in answers]
    spans = question_scores(_golds(rows), best_spans)
    margins = [a.margin for a in answers]
    threshold, f1 = best_null_threshold(margins, spans.f1, spans.has_answer)
    return {"null_threshold": threshold, "f1": f1}


def split_metrics(
    rows: Sequence[Row],
    predictions: Sequence[str],
    resamples: int,
    seed: int,
    level: float,
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """Scores of ``predictions`` (one answer text per row, ``""`` = no answer) on ``rows``
    (reader layout), with intervals and baselines. Raises ValueError when the lengths
    differ or a baseline name is unknown."""
    golds = _golds(rows)
    scores = question_scores(golds, predictions)
    out: dict[str, Any] = {"n": len(rows), **squad_metrics(scores)}
    if resamples > 0:
        out["ci"] = squad_intervals(scores, resamples, seed, level)
    out["baselines"] = {}
    for name in baselines:
        base = squad_metrics(question_scores(golds, baseline_predictions(name, rows)))
        base["margin"] = {k: out[k] - base[k] for k in MAIN if k in out and k in base}
        out["baselines"][name] = base
    return out
