"""Multi-label metrics from 0/1 label matrices and scores, computed with NumPy.

Inputs: ``y_true`` and ``y_pred`` of shape ``(n, k)`` (0/1, one column per label) and
``scores`` ``(n, k)`` (sigmoid outputs, or any score where higher means more likely). As in
the sequence metrics, every score is a function of counts under example weights, so the same
code gives the point estimate (unit weights) and each bootstrap resample (weights ``(B, n)``)
without a Python loop per resample.

Definitions (scikit-learn's, with ``zero_division=0``; the tests check each against it):

- per label: precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, F1
  ``2tp / (2tp + fp + fn)``, support ``tp + fn``;
- micro: the same on the counts summed over labels; macro: the mean over *all* labels, present
  in the split or not (two splits average over the same labels); weighted: the mean weighted
  by support;
- Hamming loss: the share of the ``n * k`` decisions that are wrong;
- subset accuracy: the share of examples whose predicted set equals the true set exactly;
- label-ranking average precision (LRAP): per example, the mean over its true labels ``l`` of
  (true labels scored ``>=`` ``l``) / (labels scored ``>=`` ``l``), ties counted as ranked
  above; an example with no true label, or with every label true, scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from nlpflow.evaluation.bootstrap import BatchMetrics, bootstrap_intervals
from nlpflow.evaluation.metrics import FloatArray

AVERAGES = ("micro", "macro", "weighted")
# The scalar metrics, in the order the metrics file lists them.
SCALARS = (
    *(f"{m}_{a}" for a in AVERAGES for m in ("precision", "recall", "f1")),
    "hamming_loss",
    "subset_accuracy",
    "lrap",
)
# The ones with bootstrap intervals (and margins over the baselines).
MAIN = ("f1_micro", "f1_macro", "f1_weighted", "hamming_loss", "subset_accuracy", "lrap")
LOWER_IS_BETTER = frozenset({"hamming_loss"})


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _matrices(*arrays: npt.ArrayLike) -> list[FloatArray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    shape = out[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in out):
        raise ValueError(f"expected arrays of one shape (n, k), got {[a.shape for a in out]}")
    return out


def lrap_per_example(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> FloatArray:
    """Each example's label-ranking average precision, ``(n,)`` (see the module docstring)."""
    y, s = _matrices(y_true, scores)
    truth = y > 0
    n, k = y.shape
    out = np.ones(n, dtype=np.float64)
    for i in range(n):
        relevant = np.flatnonzero(truth[i])
        if relevant.size in (0, k):
            continue
        # (true labels scored >= s_l) / (labels scored >= s_l), for each true label l
        at_least = s[i][None, :] >= s[i][relevant][:, None]  # (r, k)
        out[i] = float(np.mean(at_least[:, truth[i]].sum(axis=1) / at_least.sum(axis=1)))
    return out


def weighted_scores(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, lrap: FloatArray, weights: FloatArray
) -> dict[str, FloatArray]:
    """Every metric under each row of ``weights`` ``(B, n)``: scalars ``(B,)``, and
    ``per_label_precision``/``recall``/``f1``/``support`` ``(B, k)``."""
    y, p = _matrices(y_true, y_pred)
    w = np.asarray(weights, dtype=np.float64)
    k = y.shape[1]
    tp = w @ (y * p)  # (B, k)
    fp = w @ ((1 - y) * p)
    fn = w @ (y * (1 - p))
    support = tp + fn
    n = w.sum(axis=1)
    precision, recall, f1 = (
        _ratio(tp, tp + fp),
        _ratio(tp, support),
        _ratio(2 * tp, 2 * tp + fp + fn),
    )
    share = _ratio(support, support.sum(axis=1, keepdims=True))
    tp_all, fp_all, fn_all = tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)
    wrong = (y != p).sum(axis=1)  # (n,) wrong decisions per example
    return {
        "precision_micro": _ratio(tp_all, tp_all + fp_all),
        "recall_micro": _ratio(tp_all, tp_all + fn_all),
        "f1_micro": _ratio(2 * tp_all, 2 * tp_all + fp_all + fn_all),
        "precision_macro": precision.mean(axis=1),
        "recall_macro": recall.mean(axis=1),
        "f1_macro": f1.mean(axis=1),
        "precision_weighted": (precision * share).sum(axis=1),
        "recall_weighted": (recall * share).sum(axis=1),
        "f1_weighted": (f1 * share).sum(axis=1),
        "hamming_loss": _ratio(w @ wrong, n * k),
        "subset_accuracy": _ratio(w @ (wrong == 0).astype(np.float64), n),
        "lrap": _ratio(w @ lrap, n),
        "per_label_precision": precision,
        "per_label_recall": recall,
        "per_label_f1": f1,
        "per_label_support": support,
    }


def batch_metrics(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, scores: npt.ArrayLike
) -> BatchMetrics:
    """The :data:`MAIN` metrics as a function of bootstrap weights, for ``bootstrap.py``."""
    lrap = lrap_per_example(y_true, scores)

    def metrics(weights: FloatArray) -> dict[str, FloatArray]:
        scores_ = weighted_scores(y_true, y_pred, lrap, weights)
        return {name: scores_[name] for name in MAIN}

    return metrics


def multilabel_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
) -> dict[str, Any]:
    """Point estimates: ``n``, the :data:`SCALARS`, and ``per_class`` (P/R/F1/support per label).

    Plain floats and ints, in the metrics files' layout (``f1_micro``,
    ``per_class.<label>.f1``). Raises ValueError when the shapes disagree with each other or
    with ``label_names``.
    """
    y, p, s = _matrices(y_true, y_pred, scores)
    if y.shape[1] != len(label_names):
        raise ValueError(f"{y.shape[1]} label columns but {len(label_names)} label names")
    values = weighted_scores(y, p, lrap_per_example(y, s), np.ones((1, y.shape[0])))
    out: dict[str, Any] = {"n": int(y.shape[0])}
    out.update({name: float(values[name][0]) for name in SCALARS})
    out["per_class"] = {
        name: {
            "precision": float(values["per_label_precision"][0, j]),
            "recall": float(values["per_label_recall"][0, j]),
            "f1": float(values["per_label_f1"][0, j]),
            "support": int(values["per_label_support"][0, j]),
        }
        for j, name in enumerate(label_names)
    }
    return out


def metrics_with_intervals(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    scores: npt.ArrayLike,
    label_names: Sequence[str],
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """:func:`multilabel_metrics` plus ``ci``: seeded bootstrap intervals of the :data:`MAIN`
    metrics (``{"low", "high"}`` each; none when ``resamples`` is 0)."""
    out = multilabel_metrics(y_true, y_pred, scores, label_names)
    out["ci"] = bootstrap_intervals(
        batch_metrics(y_true, y_pred, scores), out["n"], resamples, seed, level
    )
    return out


def margins(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """How much the model beats a baseline on each :data:`MAIN` metric (positive: better;
    Hamming loss is turned round so that positive means fewer wrong decisions)."""
    out = {}
    for name in MAIN:
        if name in model and name in baseline:
            diff = float(model[name]) - float(baseline[name])
            out[name] = -diff if name in LOWER_IS_BETTER else diff
    return out
