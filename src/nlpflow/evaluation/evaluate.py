"""The evaluate stage's work: predict on validation and test, score, write every output.

Sequence classification: every metric of :mod:`scoring`, bootstrap intervals, baselines beside
the model with the margin, and for binary tasks the decision threshold (fixed, and tuned on
validation to maximise F1, both reported; ``evaluate.tune_threshold`` says which one the
predictions use). Token classification: seqeval's entity scores, token accuracy, intervals and
baselines. Nothing is written until everything is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.data.saved import (
    LABEL_COLUMN,
    DataMeta,
    class_label_names,
    read_processed,
    read_tokenized,
)
from nlpflow.errors import UserError
from nlpflow.evaluation import baselines as base
from nlpflow.evaluation.bootstrap import bootstrap_intervals
from nlpflow.evaluation.entities import detect_scheme
from nlpflow.evaluation.metrics import (
    FloatArray,
    IntArray,
    best_f1_threshold,
    classification_metrics,
    expected_calibration_error,
    log_loss,
    round_floats,
    threshold_predictions,
)
from nlpflow.evaluation.predict import (
    load_classifier,
    predict_split,
    predict_token_split,
    prediction_rows,
    token_prediction_rows,
)
from nlpflow.evaluation.scoring import (
    SEQUENCE_BASELINE_KEYS,
    SEQUENCE_MAIN,
    TOKEN_BASELINE_KEYS,
    TOKEN_MAIN,
    confidence_bins,
    margins,
    sequence_batch_metrics,
    sequence_metrics,
    summary,
    token_batch_metrics,
    token_counts,
    token_metrics,
)
from nlpflow.io import atomic_dir, write_json, write_jsonl
from nlpflow.params import EvaluateParams

EVAL_SPLITS = ("validation", "test")


@dataclass
class SplitEvaluation:
    """Everything computed for one split: records, metrics, and the arrays the plots need.

    For token tasks ``y_true``/``predicted``/``probabilities`` are per word (the words the
    model saw), so confusion, curves and calibration are word-level.
    """

    name: str
    y_true: IntArray
    probabilities: FloatArray
    predicted: IntArray
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    calibration: list[dict[str, float | int]] = field(default_factory=list)


@dataclass
class Evaluation:
    meta: DataMeta
    splits: list[SplitEvaluation]
    positive: int | None = None  # binary tasks: the positive class id
    threshold: dict[str, float] = field(default_factory=dict)  # fixed, tuned, used
    baselines_skipped: dict[str, str] = field(default_factory=dict)  # name -> why
    latency: dict[str, Any] = field(default_factory=dict)  # see evaluation.latency; own file

    def metrics_file(self) -> dict[str, Any]:
        out: dict[str, Any] = {s.name: s.metrics for s in self.splits}
        if self.threshold:
            out["threshold"] = dict(self.threshold)
        return out  # no latency: this file is a pure function of the inputs, timings are not


def positive_index(label_names: Sequence[str], positive_label: str) -> int:
    """The positive class of a binary task: ``positive_label``, or the second label."""
    if not positive_label:
        return 1
    if positive_label not in label_names:
        raise UserError(
            f"params.yaml: evaluate.positive_label '{positive_label}' is not one of the "
            f"labels {list(label_names)}"
        )
    return list(label_names).index(positive_label)


def _threshold_scores(
    y_true: IntArray, probs: FloatArray, names: Sequence[str], positive: int, t: float
) -> dict[str, float]:
    pred = threshold_predictions(probs, positive, t)
    m = classification_metrics(y_true, pred, names)
    pc = m["per_class"][names[positive]]
    return {
        "threshold": t,
        "accuracy": m["accuracy"],
        "precision": pc["precision"],
        "recall": pc["recall"],
        "f1": pc["f1"],
        "f1_macro": m["f1_macro"],
    }


# --------------------------------------------------------------------------- loading


def _load(
    processed_dir: str | Path, tokenized_dir: str | Path, splits: Sequence[str]
) -> tuple[DataMeta, Any, Any]:
    from nlpflow.families.evaluate import eval_family

    processed, meta = read_processed(processed_dir, ["train", *splits], with_metadata=True)
    tokenized, _ = read_tokenized(tokenized_dir, list(splits))
    names = class_label_names(processed, "train", processed_dir)
    if names is not None and names != meta.label_names:
        raise UserError(
            f"{processed_dir}: meta.json label_names {meta.label_names} differ from the "
            f"'{LABEL_COLUMN}' column's names {names}; rerun the preprocess stage"
        )
    for split in splits:
        if len(processed[split]) == 0:
            raise UserError(f"{processed_dir}/{split} is empty: nothing to evaluate")
        # One tokenized row per example, unless the family encodes an example in several
        # (QA windows over a long context) and joins them itself.
        one_row = eval_family(meta.task).one_row_per_example
        if one_row and len(tokenized[split]) != len(processed[split]):
            raise UserError(
                f"{tokenized_dir}/{split} does not line up with {processed_dir}/{split} "
                f"({len(tokenized[split])} vs {len(processed[split])} rows); "
                "rerun the tokenize stage"
            )
    return meta, processed, tokenized


def _check_sequence_labels(
    y_true: IntArray, token_labels: IntArray, k: int, names: list[str], where: str, tok: str
) -> None:
    # Predictions are joined to the processed rows by position: the two must line up.
    if len(token_labels) != len(y_true) or not np.array_equal(token_labels, y_true):
        raise UserError(
            f"{tok} does not line up with {where} ({len(token_labels)} vs {len(y_true)} rows, "
            "or labels differ); rerun the tokenize stage"
        )
    if y_true.min() < 0 or y_true.max() >= k:
        raise UserError(
            f"{where}: a '{LABEL_COLUMN}' id is outside 0..{k - 1} (labels {names}); "
            "rerun the preprocess stage"
        )


# --------------------------------------------------------------------------- sequence


def _sequence_baselines(
    params: EvaluateParams,
    meta: DataMeta,
    processed: Any,
    splits: Sequence[str],
    seed: int,
) -> tuple[dict[str, dict[str, tuple[FloatArray, IntArray]]], dict[str, str]]:
    """``{baseline: {split: (probabilities, predictions)}}`` and the baselines skipped."""
    k = len(meta.label_names)
    train_labels = np.asarray(list(processed["train"][LABEL_COLUMN]), dtype=np.int64)
    out: dict[str, dict[str, tuple[FloatArray, IntArray]]] = {}
    skipped: dict[str, str] = {}
    for name in params.baselines:
        if name == "majority":
            out[name] = {
                s: base.majority_probabilities(train_labels, k, len(processed[s])) for s in splits
            }
        elif name == "stratified":
            out[name] = {
                s: base.stratified_probabilities(train_labels, k, len(processed[s]), seed + i)
                for i, s in enumerate(splits)
            }
        elif name == "tfidf_logreg":
            settings = base.TfidfSettings(
                params.tfidf.analyzer, params.tfidf.ngram_max, params.tfidf.max_features,
                params.tfidf.c,
            )  # fmt: skip
            probs = base.tfidf_logreg_probabilities(
                [list(processed["train"][f]) for f in meta.text_fields],
                train_labels,
                {s: [list(processed[s][f]) for f in meta.text_fields] for s in splits},
                k,
                settings,
                seed,
            )
            if not probs:
                skipped[name] = "no usable train text or a single train class"
                continue
            out[name] = {s: (p, p.argmax(axis=1).astype(np.int64)) for s, p in probs.items()}
        # Token-classification baselines (word_majority) do not apply here.
    return out, skipped


def evaluate_sequence(
    model: Any,
    pad_id: int,
    meta: DataMeta,
    processed: Any,
    tokenized: Any,
    params: EvaluateParams,
    seed: int,
    splits: Sequence[str],
    processed_dir: str | Path,
    tokenized_dir: str | Path,
) -> Evaluation:
    names = meta.label_names
    k = len(names)
    probs_by_split: dict[str, FloatArray] = {}
    true_by_split: dict[str, IntArray] = {}
    for split in splits:
        y_true = np.asarray(list(processed[split][LABEL_COLUMN]), dtype=np.int64)
        token_labels = np.asarray(list(tokenized[split]["labels"]), dtype=np.int64)
        _check_sequence_labels(
            y_true, token_labels, k, names, f"{processed_dir}/{split}", f"{tokenized_dir}/{split}"
        )
        true_by_split[split] = y_true
        probs_by_split[split] = predict_split(model, tokenized[split], params.batch_size, pad_id)

    positive: int | None = None
    threshold: dict[str, float] = {}
    if k == 2:
        positive = positive_index(names, params.positive_label)
        tune_on = "validation" if "validation" in splits else splits[0]
        tuned = best_f1_threshold(
            (true_by_split[tune_on] == positive).astype(np.int64),
            probs_by_split[tune_on][:, positive],
        )
        used = tuned if params.tune_threshold else params.threshold
        threshold = {"fixed": params.threshold, "tuned": tuned, "used": used}
    elif params.positive_label not in ("", False):
        raise UserError(
            "params.yaml: evaluate.positive_label is set but the task has "
            f"{k} labels; it applies to binary tasks only"
        )

    base_preds, skipped = _sequence_baselines(params, meta, processed, splits, seed)
    results = []
    for i, split in enumerate(splits):
        y_true, probs = true_by_split[split], probs_by_split[split]
        if positive is not None:
            predicted = threshold_predictions(probs, positive, threshold["used"])
        else:
            predicted = probs.argmax(axis=1).astype(np.int64)
        metrics = sequence_metrics(
            y_true, probs, predicted, names, positive, params.calibration_bins
        )
        # A split without some class (a small imbalanced file): ranking metrics are undefined
        # there, and the report says so instead of recommending them.
        metrics["classes_missing"] = int(k - len(np.unique(y_true)))
        metrics["ci"] = bootstrap_intervals(
            sequence_batch_metrics(y_true, probs, predicted, k, positive),
            len(y_true),
            params.bootstrap_resamples,
            seed + 1000 * i,
            params.confidence_level,
        )
        if positive is not None:
            metrics["at_threshold"] = {
                which: _threshold_scores(y_true, probs, names, positive, threshold[which])
                for which in ("fixed", "tuned")
            }
        metrics["baselines"] = {}
        for b_name, per_split in base_preds.items():
            b_probs, b_pred = per_split[split]
            b_metrics = summary(
                sequence_metrics(y_true, b_probs, b_pred, names, positive, params.calibration_bins),
                SEQUENCE_BASELINE_KEYS,
            )
            b_metrics["margin"] = margins(metrics, b_metrics, SEQUENCE_MAIN)
            metrics["baselines"][b_name] = b_metrics
        rows = prediction_rows(
            processed[split], probs, meta.text_fields, meta.metadata_fields, names, predicted
        )
        bins = confidence_bins(y_true, probs, predicted, params.calibration_bins)
        results.append(SplitEvaluation(split, y_true, probs, predicted, rows, metrics, bins))
    return Evaluation(meta, results, positive, threshold, skipped)


# --------------------------------------------------------------------------- token


def _fallback_tag(names: Sequence[str]) -> int:
    return list(names).index("O") if "O" in names else 0


def evaluate_token(
    model: Any,
    pad_id: int,
    meta: DataMeta,
    processed: Any,
    tokenized: Any,
    params: EvaluateParams,
    seed: int,
    splits: Sequence[str],
    processed_dir: str | Path,
    tokenized_dir: str | Path,
    tokenizer: Any = None,
) -> Evaluation:
    names = meta.label_names
    field_ = meta.text_fields[0]
    train_tags = [[names[int(t)] for t in tags] for tags in processed["train"][LABEL_COLUMN]]
    mode = params.entity_mode
    scheme = detect_scheme(train_tags) if params.entity_scheme == "auto" else params.entity_scheme
    wanted = [b for b in params.baselines if b in base.TOKEN_BASELINES]
    skipped: dict[str, str] = {}
    table, fallback_tag = base.word_majority_tagger(list(processed["train"][field_]), train_tags)
    majority_tag = base.tag_majority(train_tags)

    results = []
    for i, split in enumerate(splits):
        gold_ids = list(processed[split][LABEL_COLUMN])
        tokens = list(processed[split][field_])
        word_preds = predict_token_split(
            model, tokenized[split], tokens, tokenizer, params.batch_size, pad_id,
            f"{tokenized_dir}/{split}",
        )  # fmt: skip
        word_probs = word_preds.probabilities
        rows = token_prediction_rows(
            processed[split], word_preds, field_, meta.metadata_fields, names,
            _fallback_tag(names),
        )  # fmt: skip
        gold = [r["label"] for r in rows]
        pred = [r["prediction"] for r in rows]
        counts = token_counts(gold, pred, mode, scheme)
        metrics = token_metrics(counts)
        # Word-level arrays (words the model saw) for calibration, curves and the confusion.
        seen = [~np.isnan(p).any(axis=1) for p in word_probs]
        seen_true = np.asarray(
            [int(t) for g, m in zip(gold_ids, seen, strict=True) for t in np.asarray(g)[m]],
            dtype=np.int64,
        )
        probs = (
            np.concatenate([p[m] for p, m in zip(word_probs, seen, strict=True)])
            if word_probs
            else np.zeros((0, len(names)))
        )
        predicted = probs.argmax(axis=1).astype(np.int64)
        bins = confidence_bins(seen_true, probs, predicted, params.calibration_bins)
        metrics["log_loss"] = log_loss(seen_true, probs)
        metrics["ece"] = expected_calibration_error(bins)
        metrics["truncated_words"] = sum(r["truncated"] for r in rows)
        # Words with no sub-token (a zero-width space standing as a word): no prediction,
        # scored as misses, counted here and in metrics/tokenize.json.
        metrics["empty_words"] = sum(r["empty_words"] for r in rows)
        metrics["ci"] = bootstrap_intervals(
            token_batch_metrics(counts), len(counts), params.bootstrap_resamples,
            seed + 1000 * i, params.confidence_level,
        )  # fmt: skip
        metrics["baselines"] = {}
        for b_name in wanted:
            if b_name == "majority":
                b_pred = [[majority_tag] * len(t) for t in tokens]
            else:
                b_pred = base.tag_with(table, fallback_tag, tokens)
            b_metrics = summary(
                token_metrics(token_counts(gold, b_pred, mode, scheme)), TOKEN_BASELINE_KEYS
            )
            b_metrics["margin"] = margins(metrics, b_metrics, TOKEN_MAIN)
            metrics["baselines"][b_name] = b_metrics
        results.append(SplitEvaluation(split, seen_true, probs, predicted, rows, metrics, bins))
    return Evaluation(meta, results, None, {}, skipped)


# --------------------------------------------------------------------------- entry points


def evaluate_model(
    model_dir: str | Path,
    processed_dir: str | Path,
    tokenized_dir: str | Path,
    params: EvaluateParams,
    seed: int = 0,
    splits: Sequence[str] = EVAL_SPLITS,
    latency: bool = False,
    base_model: Any = None,
) -> Evaluation:
    """Run the saved model on ``splits`` and score it; nothing is written here. ``latency``:
    also time it on validation inputs (:attr:`Evaluation.latency`); ``base_model``: the
    model params' ``name_or_path``/``trust_remote_code`` (EvaluateJob.base_model)."""
    from nlpflow.families.evaluate import EvaluateJob, eval_family

    meta, processed, tokenized = _load(processed_dir, tokenized_dir, splits)
    model, pad_id = load_classifier(model_dir, meta.label_names, meta.task)
    family = eval_family(meta.task)
    evaluation = family.evaluate(
        EvaluateJob(
            model, pad_id, Path(model_dir), meta, processed, tokenized, params, seed,
            tuple(splits), Path(processed_dir), Path(tokenized_dir), base_model,
        )
    )  # fmt: skip
    if latency and "validation" in splits and family.measures_latency:
        # validation: a study may use it as an objective
        from nlpflow.evaluation.latency import measure_latency

        evaluation.latency = measure_latency(
            model, tokenized["validation"], pad_id, params.batch_size, params.latency_examples
        )
    return evaluation


def write_evaluation(
    evaluation: Evaluation,
    predictions_dir: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
    latency_path: str | Path | None = None,
) -> None:
    """Write predictions, plot data and images, then metrics; each directory as a whole.

    The latency figures go to ``latency_path`` apart from the metrics: wall times differ on
    every run, and the metrics file must stay byte-identical for identical inputs (so that a
    rerun shows no metric change in ``dvc metrics diff``)."""
    from nlpflow.families.evaluate import eval_family

    with atomic_dir(predictions_dir) as tmp:
        for result in evaluation.splits:
            write_jsonl(tmp / f"{result.name}.jsonl", result.rows)

    with atomic_dir(plots_dir) as tmp:
        eval_family(evaluation.meta.task).write_plots(evaluation, tmp)

    if latency_path is not None:
        write_json(latency_path, round_floats(evaluation.latency))
    write_json(metrics_path, round_floats(evaluation.metrics_file()))
