"""Regression metrics: MSE, RMSE, MAE, R², Pearson and Spearman correlation, each also under
bootstrap weights (a resample as multinomial counts, :mod:`nlpflow.evaluation.bootstrap`).

One implementation serves validation during training, test metrics and their intervals: the
weighted forms with all weights 1 are the plain ones (checked against scikit-learn and
scipy in the tests). Spearman under weights ranks the resample as it would be expanded
(an example drawn ``w`` times is ``w`` tied values: average ranks), then correlates the
ranks with the same weights. Undefined values (R² or a correlation of a constant) are NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
METRICS = ("mse", "rmse", "mae", "r2", "pearson", "spearman")


def weighted_ranks(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Average ranks (1-based) of ``values`` (n,) in the sample each row of ``weights``
    (B, n) expands to; ``(B, n)``. With all weights 1: ``scipy.stats.rankdata(values)``."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    group_of = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1  # (n,)
    group_w = np.add.reduceat(weights[:, order], starts, axis=1)  # (B, G)
    before = np.cumsum(group_w, axis=1) - group_w
    rank_sorted = (before + (group_w + 1.0) / 2.0)[:, group_of]  # (B, n) in sorted order
    ranks = np.empty_like(rank_sorted)
    ranks[:, order] = rank_sorted
    return ranks


def _weighted_pearson(a: FloatArray, b: FloatArray, w: FloatArray) -> FloatArray:
    """Weighted Pearson correlation of rows of ``a`` and ``b`` (each (B, n) or (n,))."""
    sw = w.sum(axis=1)
    ma = (w * a).sum(axis=1) / sw
    mb = (w * b).sum(axis=1) / sw
    da = a - ma[:, None]
    db = b - mb[:, None]
    cov = (w * da * db).sum(axis=1)
    va = (w * da * da).sum(axis=1)
    vb = (w * db * db).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.sqrt(va * vb)
    # A constant side (zero variance, up to rounding) has no correlation.
    scale = np.maximum(np.abs(ma), np.abs(mb)) + 1.0
    out[(va <= 1e-24 * scale**2 * sw) | (vb <= 1e-24 * scale**2 * sw)] = np.nan
    return np.clip(out, -1.0, 1.0)


def batch_regression_metrics(
    y_true: FloatArray, y_pred: FloatArray
) -> Callable[[FloatArray], dict[str, FloatArray]]:
    """The metrics of ``y_pred`` against ``y_true`` ((n,) each, the target's units) under
    each row of a weight batch ``(B, n)``: ``{name: (B,)}`` for every name in METRICS."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    err = p - y

    def metrics(w: FloatArray) -> dict[str, FloatArray]:
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        sw = w.sum(axis=1)
        mse = (w @ (err * err)) / sw
        ybar = (w @ y) / sw
        sst = (w * (y[None, :] - ybar[:, None]) ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = np.where(sst > 0, 1.0 - (w @ (err * err)) / sst, np.nan)
        return {
            "mse": mse,
            "rmse": np.sqrt(mse),
            "mae": (w @ np.abs(err)) / sw,
            "r2": r2,
            "pearson": _weighted_pearson(y[None, :], p[None, :], w),
            "spearman": _weighted_pearson(weighted_ranks(y, w), weighted_ranks(p, w), w),
        }

    return metrics


def regression_metrics(y_true: FloatArray, y_pred: FloatArray) -> dict[str, float]:
    """MSE, RMSE, MAE (the target's units, squared for MSE), R², Pearson's r and Spearman's
    rho of ``y_pred`` against ``y_true`` ((n,) each). NaN where undefined (R² of a constant
    target, a correlation with a constant); all NaN for n = 0."""
    n = len(y_true)
    if n == 0:
        return dict.fromkeys(METRICS, float("nan"))
    values = batch_regression_metrics(y_true, y_pred)(np.ones((1, n)))
    return {k: float(v[0]) for k, v in values.items()}
