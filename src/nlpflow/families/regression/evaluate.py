"""Regression, evaluation side: predictions in the target's units, MSE/RMSE/MAE/R²/Pearson/
Spearman with bootstrap intervals, the train-mean and TF-IDF + ridge baselines, plots of
predicted against true and of residuals, and an error report (largest residuals, slices by
input length, target range and metadata)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlpflow.errors import UserError
from nlpflow.families.evaluate import (
    ErrorAnalysisJob,
    ErrorAnalysisResult,
    EvalFamily,
    EvaluateJob,
)
from nlpflow.families.regression.metrics import (
    METRICS,
    FloatArray,
    batch_regression_metrics,
    regression_metrics,
)

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation

BASELINES = ("mean", "tfidf_ridge")
LOWER_IS_BETTER = ("mse", "rmse", "mae")
RANGE_SLICES = 4  # target-range slices: quartiles of the true values
MIN_SLICE = 5  # slices smaller than this are shown but never called the weakest


def finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN (undefined: R² or a correlation of a constant) becomes None (JSON null)."""
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _targets(data: Any) -> FloatArray:
    return np.asarray(list(data["label"]), dtype=np.float64)


def _predict(job: EvaluateJob, split: str) -> FloatArray:
    """The model's predictions on one tokenized split, ``(n,)`` in the target's units."""
    from nlpflow.evaluation.predict import forward_batches
    from nlpflow.families.regression.model import restore

    tokenized = job.tokenized[split]
    ids = list(tokenized["input_ids"])
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    out = np.empty(len(ids), dtype=np.float64)
    batches = forward_batches(
        job.model, ids, job.params.batch_size, job.pad_id, types, None, softmax=False
    )
    for idx, logits in batches:
        out[idx] = logits.reshape(len(idx), -1)[:, 0]
    return np.asarray(restore(job.model.config, out), dtype=np.float64)


def _baselines(job: EvaluateJob) -> tuple[dict[str, dict[str, FloatArray]], dict[str, str]]:
    """``{baseline: {split: (n,) predictions}}`` of the baselines ``evaluate.baselines``
    names that fit regression, fitted on train only; and those skipped with why."""
    from nlpflow.evaluation import baselines as base

    train = job.processed["train"]
    y_train = _targets(train)
    out: dict[str, dict[str, FloatArray]] = {}
    skipped: dict[str, str] = {}
    for name in job.params.baselines:
        if name == "mean":
            out[name] = {
                s: np.full(len(job.processed[s]), float(y_train.mean())) for s in job.splits
            }
        elif name == "tfidf_ridge":
            tf = job.params.tfidf
            preds = base.tfidf_ridge_predictions(
                [list(train[f]) for f in job.meta.text_fields],
                y_train,
                {s: [list(job.processed[s][f]) for f in job.meta.text_fields] for s in job.splits},
                base.TfidfSettings(tf.analyzer, tf.ngram_max, tf.max_features, tf.c),
            )
            if not preds:
                skipped[name] = "no usable train text"
                continue
            out[name] = preds
    return out, skipped


def prediction_rows(processed: Any, predicted: FloatArray, meta: DataMeta) -> list[dict[str, Any]]:
    """One record per example: ``id``, text fields, metadata, ``label`` and ``prediction``
    (the target's units) and ``residual`` (prediction - label)."""
    fields = ["id", *meta.text_fields, *meta.metadata_fields, "label"]
    columns = {c: list(processed[c]) for c in fields}
    rows = []
    for i, p in enumerate(predicted):
        row: dict[str, Any] = {"id": str(columns["id"][i])}
        for f in [*meta.text_fields, *meta.metadata_fields]:
            row[f] = columns[f][i]
        label = float(columns["label"][i])
        row.update(label=label, prediction=float(p), residual=float(p) - label)
        rows.append(row)
    return rows


class RegressionEval(EvalFamily):
    name: ClassVar[str] = "regression"
    summary_keys: ClassVar[tuple[str, ...]] = ("rmse", "mae", "r2", "pearson", "spearman")
    higher_is_better: ClassVar[bool] = False  # rmse

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.bootstrap import bootstrap_intervals
        from nlpflow.evaluation.evaluate import Evaluation, SplitEvaluation

        p = job.params
        base_preds, skipped = _baselines(job)
        results = []
        for i, split in enumerate(job.splits):
            y = _targets(job.processed[split])
            stored = np.asarray(list(job.tokenized[split]["labels"]), dtype=np.float64)
            if len(stored) != len(y) or not np.allclose(stored, y, rtol=0, atol=1e-6):
                raise UserError(
                    f"{job.tokenized_dir}/{split} does not line up with "
                    f"{job.processed_dir}/{split} ({len(stored)} vs {len(y)} rows, or targets "
                    "differ); rerun the tokenize stage"
                )
            pred = _predict(job, split)
            metrics: dict[str, Any] = {"n": len(y), **finite_or_none(regression_metrics(y, pred))}
            metrics["ci"] = bootstrap_intervals(
                batch_regression_metrics(y, pred), len(y), p.bootstrap_resamples,
                job.seed + 1000 * i, p.confidence_level,
            )  # fmt: skip
            metrics["baselines"] = {}
            for name, per_split in base_preds.items():
                b = finite_or_none(regression_metrics(y, per_split[split]))
                b["margin"] = {  # type: ignore[assignment]
                    k: metrics[k] - b[k]  # model - baseline: below 0 is better for errors
                    for k in METRICS
                    if metrics[k] is not None and b[k] is not None
                }
                metrics["baselines"][name] = b
            rows = prediction_rows(job.processed[split], pred, job.meta)
            # Float targets and predictions where a classifier's arrays hold class ids.
            results.append(
                SplitEvaluation(split, y, pred[:, None], pred, rows, metrics)  # type: ignore[arg-type]
            )
        return Evaluation(job.meta, results, None, {}, skipped)

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        """``predicted_vs_true_<split>.json`` (``true``, ``predicted``) and
        ``residuals_<split>.json`` (``predicted``, ``residual``) for ``dvc plots`` (scatter
        template), and a PNG of both per split."""
        from nlpflow.evaluation.metrics import round_floats
        from nlpflow.evaluation.plots import _figure, _save_png
        from nlpflow.io import write_json

        for r in evaluation.splits:
            y, p = np.asarray(r.y_true, dtype=np.float64), np.asarray(r.predicted, np.float64)
            write_json(
                directory / f"predicted_vs_true_{r.name}.json",
                round_floats([{"true": a, "predicted": b} for a, b in zip(y, p, strict=True)]),
            )
            write_json(
                directory / f"residuals_{r.name}.json",
                round_floats(
                    [{"predicted": b, "residual": b - a} for a, b in zip(y, p, strict=True)]
                ),
            )
            fig = _figure(10, 4.2)
            left, right = fig.subplots(1, 2)
            low = float(min(y.min(initial=0), p.min(initial=0)))
            high = float(max(y.max(initial=1), p.max(initial=1)))
            left.scatter(y, p, s=8, alpha=0.5)
            left.plot([low, high], [low, high], color="grey", linewidth=1)
            left.set(title=f"Predicted against true ({r.name})", xlabel="true", ylabel="predicted")
            right.scatter(p, p - y, s=8, alpha=0.5)
            right.axhline(0, color="grey", linewidth=1)
            right.set(title=f"Residuals ({r.name})", xlabel="predicted", ylabel="predicted - true")
            _save_png(fig, directory / f"predicted_vs_true_{r.name}.png")

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        if not path.is_file():
            raise UserError(f"{path} not found; run the evaluate stage first (dvc repro evaluate)")
        rows = []
        needed = ["id", *meta.text_fields, *meta.metadata_fields, "label", "prediction"]
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
                missing = [k for k in needed if not isinstance(row, dict) or k not in row]
                if missing:
                    raise UserError(f"{path}, line {lineno}: missing key(s) {missing}")
                for key in ("label", "prediction"):
                    value = row[key]
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise UserError(
                            f"{path}, line {lineno}: {key} {value!r} is not a number; rerun "
                            "the evaluate stage"
                        )
                rows.append(row)
        if not rows:
            raise UserError(f"{path} holds no predictions")
        return rows

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.evaluation.error_analysis import auto_length_edges, input_length

        meta, rows = job.meta, job.rows
        ea = job.params.error_analysis
        level = job.params.evaluate.confidence_level
        y = np.asarray([float(r["label"]) for r in rows])
        p = np.asarray([float(r["prediction"]) for r in rows])
        lengths = [input_length(r, meta.text_fields) for r in rows]
        if ea.length_buckets == "auto":
            edges = auto_length_edges(lengths)
        else:
            edges = list(ea.length_buckets)
        slices = {
            "length": _length_slices(y, p, lengths, edges),
            "target": _range_slices(y, p),
            **{f: _value_slices(y, p, [r.get(f) for r in rows]) for f in meta.metadata_fields},
        }
        overall = finite_or_none(regression_metrics(y, p))
        metrics: dict[str, Any] = {"n": len(rows), **overall, "slices": slices}
        weakest = _weakest(slices)
        if weakest is not None:
            metrics["weakest_slice"] = {"family": weakest[0], "value": weakest[1]}
        report = _report(job, y, p, slices, weakest, level)
        if job.plots:
            from nlpflow.io import atomic_dir

            with atomic_dir(job.plots) as tmp:
                _save_slices_png(tmp / f"slices_{job.split}.png", slices, job.split)
        summary = (
            f"error_analysis: rmse {overall['rmse']:.4f}, mae {overall['mae']:.4f} on "
            f"{len(rows)} {job.split} examples"
        )
        if weakest is not None:
            family, value = weakest
            stats = slices[family][value]
            summary += f"; weakest slice {family}={_slice_name(value, stats)} (rmse {stats['rmse']:.4f}, n={stats['n']})"
        return ErrorAnalysisResult(report, metrics, summary)


# --------------------------------------------------------------------------- slices


def _slice_stats(y: FloatArray, p: FloatArray) -> dict[str, Any]:
    err = p - y
    return {
        "n": len(y),
        "rmse": float(np.sqrt(np.mean(err**2))) if len(y) else None,
        "mae": float(np.mean(np.abs(err))) if len(y) else None,
        "bias": float(np.mean(err)) if len(y) else None,  # mean of prediction - true
    }


def _length_slices(
    y: FloatArray, p: FloatArray, lengths: Sequence[int], edges: Sequence[int]
) -> dict[str, Any]:
    from nlpflow.evaluation.error_analysis import length_bucket, length_bucket_names

    names = [length_bucket(n, edges) for n in lengths]
    out = {}
    for name in length_bucket_names(edges):
        mask = np.asarray([n == name for n in names], dtype=bool)
        if mask.any():
            out[name] = _slice_stats(y[mask], p[mask])
    return out


def _range_slices(y: FloatArray, p: FloatArray) -> dict[str, Any]:
    """Quartiles of the true target, ``q1``..``q4`` (keys without dots or spaces: DVC
    flattens them into column names), each with its ``low`` and ``high`` bound: where in
    its range the model errs."""
    edges = np.unique(np.quantile(y, np.linspace(0, 1, RANGE_SLICES + 1)))
    if len(edges) == 1:
        edges = np.repeat(edges, 2)
    out = {}
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        mask = (y >= edges[i]) & ((y <= edges[i + 1]) if last else (y < edges[i + 1]))
        if mask.any():
            stats = _slice_stats(y[mask], p[mask])
            out[f"q{i + 1}"] = {**stats, "low": float(edges[i]), "high": float(edges[i + 1])}
    return out


def _value_slices(y: FloatArray, p: FloatArray, values: Sequence[Any]) -> dict[str, Any]:
    names = ["(none)" if v is None else str(v) for v in values]
    out = {}
    for name in sorted(set(names)):
        mask = np.asarray([n == name for n in names], dtype=bool)
        out[name] = _slice_stats(y[mask], p[mask])
    return out


def _weakest(slices: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """The slice with the largest RMSE among those with at least MIN_SLICE examples."""
    best: tuple[float, str, str] | None = None
    for family, values in slices.items():
        if len(values) < 2:
            continue
        for value, stats in values.items():
            big = stats["n"] >= MIN_SLICE and stats["rmse"] is not None
            if big and (best is None or stats["rmse"] > best[0]):
                best = (stats["rmse"], family, value)
    return None if best is None else (best[1], best[2])


def _save_slices_png(path: Path, slices: dict[str, dict[str, Any]], split: str) -> None:
    from nlpflow.evaluation.plots import _figure, _save_png

    families = [f for f in slices if slices[f]]
    fig = _figure(5 * max(1, len(families)), 3.6)
    axes = fig.subplots(1, max(1, len(families)), squeeze=False)[0]
    for ax, family in zip(axes, families, strict=False):
        names = list(slices[family])
        ax.barh(range(len(names)), [slices[family][n]["rmse"] or 0.0 for n in names])
        ax.set_yticks(range(len(names)), names, parse_math=False)
        ax.set(title=f"RMSE by {family} ({split})", xlabel="rmse")
    _save_png(fig, path)


# --------------------------------------------------------------------------- report


def _report(
    job: ErrorAnalysisJob,
    y: FloatArray,
    p: FloatArray,
    slices: dict[str, dict[str, Any]],
    weakest: tuple[str, str] | None,
    level: float,
) -> str:
    from nlpflow.markdown import table, with_interval

    meta, rows, split = job.meta, job.rows, job.split
    overall = finite_or_none(regression_metrics(y, p))
    lines = [f"# Error analysis ({split}, regression)", ""]
    m = job.evaluate or {}
    ci = m.get("ci", {})
    cells = []
    for k in METRICS:
        value = overall[k]
        text = "undefined" if value is None else f"{value:.4f}"
        if value is not None and k in ci:
            text = with_interval(text, ci[k]["low"], ci[k]["high"], level)
        cells.append([k, text])
    lines += [
        f"{len(rows)} examples; target `{meta.label_field}` mean {y.mean():.4g}, "
        f"std {y.std():.4g}. MSE, RMSE and MAE are in the target's units (lower is better); "
        "R², Pearson and Spearman: higher is better.",
        "",
        *table(["metric", "value"], cells),
        "",
    ]
    base = m.get("baselines", {})
    if base:
        lines += ["## Baselines (fitted on train)", ""]
        lines += table(
            ["baseline", "rmse", "mae", "r2", "model rmse - baseline rmse"],
            [
                [
                    name,
                    _fmt(b.get("rmse")),
                    _fmt(b.get("mae")),
                    _fmt(b.get("r2")),
                    _fmt(b.get("margin", {}).get("rmse")),
                ]
                for name, b in base.items()
            ],
            align="lrrrr",
        )
        lines.append("")
    lines += [
        "## Largest residuals",
        "",
        "The examples the model is furthest off on (residual = prediction - true).",
        "",
    ]
    order = np.argsort(-np.abs(p - y), kind="stable")[: job.params.error_analysis.max_examples]
    lines += table(
        ["id", *meta.text_fields, "true", "predicted", "residual"],
        [
            [
                rows[i]["id"],
                *(rows[i][f] for f in meta.text_fields),
                f"{y[i]:.4g}",
                f"{p[i]:.4g}",
                f"{p[i] - y[i]:+.4g}",
            ]
            for i in order
        ],
    )
    lines += ["", "## Slices", ""]
    titles = {
        "length": "Input length (characters, all text fields)",
        "target": f"True target range (quartiles of `{meta.label_field}`)",
    }
    for family, values in slices.items():
        lines += [f"### {titles.get(family, f'`{family}`')}", ""]
        lines += table(
            ["slice", "n", "rmse", "mae", "bias (mean residual)"],
            [
                [
                    _slice_name(name, s),
                    s["n"],
                    _fmt(s["rmse"]),
                    _fmt(s["mae"]),
                    _fmt(s["bias"], signed=True),
                ]
                for name, s in values.items()
            ],
            align="lrrrr",
        )
        lines.append("")
    if weakest is not None:
        family, name = weakest
        lines.append(
            f"Weakest slice (largest RMSE, n >= {MIN_SLICE}): {family} = "
            f"{_slice_name(name, slices[family][name])} "
            f"(rmse {slices[family][name]['rmse']:.4f}, n = {slices[family][name]['n']})."
        )
        lines.append("")
    if job.figures:
        from nlpflow.families.sequence.evaluate import relative

        png = Path(job.figures) / f"predicted_vs_true_{split}.png"
        if png.is_file():
            lines += [f"![Predicted against true, residuals]({relative(png, job.report)})", ""]
    if job.plots:
        from nlpflow.families.sequence.evaluate import relative

        png = Path(job.plots) / f"slices_{split}.png"
        lines += [f"![RMSE by slice]({relative(png, job.report)})", ""]
    return "\n".join(lines)


def _slice_name(name: str, stats: dict[str, Any]) -> str:
    """``q2 (-0.15 to 0.12)`` for a target-range slice; other slices by their name."""
    if "low" in stats:
        return f"{name} ({stats['low']:.4g} to {stats['high']:.4g})"
    return name


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "undefined"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
