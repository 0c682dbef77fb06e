"""Multi-label classification, evaluation side: sigmoid scores, thresholds chosen on
validation, every metric of :mod:`~nlpflow.families.multilabel.metrics` with intervals, the
label-frequency and TF-IDF baselines, per-label/PR/co-occurrence plots, and the error report
(missed and spurious labels, swaps, worst examples, co-occurrence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.evaluation.evaluate import Evaluation
from nlpflow.families.evaluate import (
    ErrorAnalysisJob,
    ErrorAnalysisResult,
    EvalFamily,
    EvaluateJob,
)

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta


@dataclass
class MultilabelEvaluation(Evaluation):
    """An :class:`Evaluation` whose metrics file also says which thresholds were applied."""

    thresholds: dict[str, Any] = field(default_factory=dict)

    def metrics_file(self) -> dict[str, Any]:
        out = super().metrics_file()
        out["thresholds"] = self.thresholds
        return out


def sigmoid_scores(job: EvaluateJob, split: str) -> Any:
    """The model's sigmoid scores on one tokenized split, ``(n, k)`` float64."""
    import numpy as np
    from scipy.special import expit

    from nlpflow.evaluation.predict import forward_batches

    tokenized = job.tokenized[split]
    ids = list(tokenized["input_ids"])
    types = (
        list(tokenized["token_type_ids"]) if "token_type_ids" in tokenized.column_names else None
    )
    out = np.empty((len(ids), len(job.meta.label_names)), dtype=np.float64)
    batches = forward_batches(
        job.model, ids, job.params.batch_size, job.pad_id, types, None, softmax=False
    )
    for idx, logits in batches:
        out[idx] = expit(logits)
    return out


def threshold_rule(params: Any) -> Any:
    from nlpflow.families.multilabel.evaluation import Rule

    mode = params.threshold_scope if params.tune_threshold else "fixed"
    return Rule(mode, params.threshold)


class MultilabelEval(EvalFamily):
    name: ClassVar[str] = "multilabel"
    summary_keys: ClassVar[tuple[str, ...]] = ("f1_micro", "f1_macro", "subset_accuracy", "lrap")

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        import numpy as np

        from nlpflow.evaluation.baselines import TfidfSettings
        from nlpflow.evaluation.evaluate import SplitEvaluation
        from nlpflow.families.multilabel.baselines import MULTILABEL_BASELINES
        from nlpflow.families.multilabel.evaluation import baseline_outputs, score_splits
        from nlpflow.families.multilabel.predictions import prediction_records

        meta, params = job.meta, job.params
        names = meta.label_names
        k = len(names)

        def truth(split: str) -> Any:
            y = np.zeros((len(job.processed[split]), k), dtype=np.int8)
            for i, ids in enumerate(job.processed[split]["label"]):
                y[i, list(ids)] = 1
            return y

        def columns(split: str) -> list[list[str]]:
            return [list(job.processed[split][f]) for f in meta.text_fields]

        splits = list(job.splits)
        scored = ["validation", *[s for s in splits if s != "validation"]]  # tune first
        y = {s: truth(s) for s in scored}
        scores = {s: sigmoid_scores(job, s) for s in scored}
        rule = threshold_rule(params)
        wanted = [b for b in params.baselines if b in MULTILABEL_BASELINES]
        tf = params.tfidf
        outputs, skipped = baseline_outputs(
            wanted,
            truth("train"),
            columns("train"),
            {s: columns(s) for s in scored},
            y["validation"],
            rule,
            names,
            TfidfSettings(tf.analyzer, tf.ngram_max, tf.max_features, tf.c),
            job.seed,
        )
        chosen, results = score_splits(
            y, scores, names, rule, outputs, params.bootstrap_resamples,
            params.confidence_level, job.seed,
        )  # fmt: skip
        out = []
        keep = [*meta.text_fields, *meta.metadata_fields]
        for r in results:
            if r.name not in splits:
                continue
            processed = job.processed[r.name]
            cols = {c: list(processed[c]) for c in ["id", *keep]}
            base = [
                {"id": str(cols["id"][i]), **{c: cols[c][i] for c in keep}}
                for i in range(len(processed))
            ]
            rows = prediction_records(base, r.truth, r.predicted, r.scores, names)
            truth_, predicted_ = r.truth.astype(np.int64), r.predicted.astype(np.int64)
            out.append(SplitEvaluation(r.name, truth_, r.scores, predicted_, rows, r.metrics))
        out.sort(key=lambda s: splits.index(s.name))
        return MultilabelEvaluation(
            meta,
            out,
            baselines_skipped={b: "the train text has no usable token" for b in skipped},
            thresholds=chosen.as_dict(names),
        )

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        from nlpflow.families.multilabel.plots import write_split_plots

        thresholds = getattr(evaluation, "thresholds", {})
        names = evaluation.meta.label_names
        if "per_label" in thresholds:
            applied = [thresholds["per_label"][n] for n in names]
        else:
            applied = [thresholds.get("threshold", 0.5)] * len(names)
        for r in evaluation.splits:
            write_split_plots(
                directory, r.name, r.y_true, r.predicted, r.probabilities, r.metrics, applied, names
            )

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        from nlpflow.families.multilabel.predictions import load_records, records_to_arrays

        rows = load_records(path)
        records_to_arrays(rows, meta.label_names, path)  # checks every record
        return rows

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.families.multilabel.error_report import error_summary, report_lines
        from nlpflow.families.multilabel.predictions import records_to_arrays

        meta, rows = job.meta, job.rows
        truth, predicted, scores = records_to_arrays(rows, meta.label_names)
        texts = [" / ".join(str(r.get(f, "")) for f in meta.text_fields) for r in rows]
        summary = error_summary(
            truth, predicted, scores, meta.label_names, texts, [str(r.get("id", "")) for r in rows],
            job.params.error_analysis.max_examples,
        )  # fmt: skip
        lines = ["# Error analysis", ""]
        if job.evaluate:
            m = job.evaluate
            lines += [
                f"On {job.split}: micro-F1 {m['f1_micro']:.4f}, macro-F1 {m['f1_macro']:.4f}, "
                f"subset accuracy {m['subset_accuracy']:.4f}, Hamming loss "
                f"{m['hamming_loss']:.4f} (metrics/evaluate.json has the intervals and "
                "baselines).",
                "",
            ]
        lines += report_lines(summary, job.split)
        if job.plots:
            from nlpflow.families.multilabel.plots import save_label_errors_png
            from nlpflow.families.sequence.evaluate import relative
            from nlpflow.io import atomic_dir

            with atomic_dir(job.plots) as tmp:
                save_label_errors_png(
                    tmp / f"label_errors_{job.split}.png",
                    summary["per_label"],
                    f"Missed and spurious labels ({job.split})",
                )
            png = Path(job.plots) / f"label_errors_{job.split}.png"
            lines += ["", f"![missed and spurious labels]({relative(png, job.report)})"]
        if job.figures:
            from nlpflow.families.sequence.evaluate import relative

            for title, stem in (("Per label", "per_label"), ("Labels together", "cooccurrence")):
                png = Path(job.figures) / f"{stem}_{job.split}.png"
                if png.is_file():
                    lines += ["", f"![{title}]({relative(png, job.report)})"]
        metrics = {k: v for k, v in summary.items() if k not in ("worst", "cooccurrence", "swaps")}
        per_label = summary["per_label"]
        line = (
            f"error_analysis: {summary['examples_with_errors']} of {summary['n']} examples with a "
            f"wrong label on {job.split}; {summary['missed']} missed, {summary['spurious']} "
            "spurious"
        )
        if summary["missed"] + summary["spurious"]:
            worst = max(per_label, key=lambda n: per_label[n]["missed"] + per_label[n]["spurious"])
            line += f"; most errors on '{worst}'"
        return ErrorAnalysisResult("\n".join(lines) + "\n", metrics, line)
