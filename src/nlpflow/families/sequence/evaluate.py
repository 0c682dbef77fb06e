"""Sequence classification, evaluation side: every metric of
:mod:`nlpflow.evaluation.scoring` with intervals, baselines, the binary decision threshold,
ROC/PR/confusion/calibration plots, and the error report with slices and behavioural tests.
:class:`ClassificationEval` is shared with token classification."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpflow.families.evaluate import (
    ErrorAnalysisJob,
    ErrorAnalysisResult,
    EvalFamily,
    EvaluateJob,
)

if TYPE_CHECKING:
    from nlpflow.data.saved import DataMeta
    from nlpflow.evaluation.evaluate import Evaluation

# The evaluate stage's figures linked from the error report, when present.
FIGURES = [
    ("Confusion matrix", "confusion"),
    ("Confusion matrix, share of each true label", "confusion_normalized"),
    ("ROC", "roc"),
    ("Precision-recall", "precision_recall"),
    ("Calibration", "calibration"),
]


def relative(target: Path, report: Path) -> str:
    """``target`` as a link from the report's directory (POSIX separators)."""
    return Path(os.path.relpath(target.resolve(), report.resolve().parent)).as_posix()


class ClassificationEval(EvalFamily):
    """What sequence and token classification share: plots of class probabilities, the
    prediction records' checks, the error report."""

    def write_plots(self, evaluation: Evaluation, directory: Path) -> None:
        from nlpflow.evaluation.metrics import confusion_matrix, round_floats
        from nlpflow.evaluation.plots import save_split_pngs, split_plot_files
        from nlpflow.io import write_json

        names = evaluation.meta.label_names
        for r in evaluation.splits:
            files = split_plot_files(
                r.y_true, r.probabilities, names, r.calibration, r.predicted, evaluation.positive
            )
            for stem, records in files.items():
                write_json(directory / f"{stem}_{r.name}.json", round_floats(records))
            matrix = confusion_matrix(r.y_true, r.predicted, len(names))
            rate = None
            if evaluation.positive is not None and len(r.y_true):
                rate = float((r.y_true == evaluation.positive).mean())
            save_split_pngs(directory, r.name, matrix, names, files, rate)

    def load_predictions(self, path: Path, meta: DataMeta) -> list[dict[str, Any]]:
        from nlpflow.evaluation.error_analysis import load_predictions

        return load_predictions(
            path, [*meta.text_fields, *meta.metadata_fields], meta.label_names, meta.task
        )

    def error_analysis(self, job: ErrorAnalysisJob) -> ErrorAnalysisResult:
        from nlpflow.evaluation.error_analysis import (
            auto_length_edges,
            compute_slices,
            error_metrics,
            input_length,
            weakest_slice,
        )
        from nlpflow.evaluation.report import ReportInputs, render_report

        meta, rows, split = job.meta, job.rows, job.split
        ea = job.params.error_analysis
        if ea.length_buckets == "auto":
            edges = auto_length_edges([input_length(r, meta.text_fields) for r in rows])
        else:
            edges = list(ea.length_buckets)
        slices = compute_slices(
            rows, meta.text_fields, meta.metadata_fields, meta.label_names, edges
        )
        level = job.params.evaluate.confidence_level  # evaluate's intervals were at it

        behaviour = None
        note = ""
        if meta.task == "token":
            note = "not run: behavioural tests are implemented for sequence classification."
        elif not job.model:
            note = "not run: no --model given."
        else:
            from nlpflow.data.saved import read_meta
            from nlpflow.evaluation.behaviour import ModelPredictor, run_behaviour
            from nlpflow.logs import quiet_libraries

            quiet_libraries()
            # As the tokenize stage encoded the data; without --tokenized, the model's limit.
            encoded = read_meta(job.tokenized, tokenized=True) if job.tokenized else None
            predictor = ModelPredictor(
                job.model,
                meta.label_names,
                meta.text_fields,
                encoded.max_length if encoded else None,
                encoded.truncation if encoded and encoded.truncation else "longest_first",
            )
            behaviour = run_behaviour(
                ea.behaviour, rows, meta.text_fields, meta.label_names, predictor, job.params.seed
            )

        figures: list[tuple[str, str]] = []
        if job.plots:
            from nlpflow.evaluation.plots import save_slices_png
            from nlpflow.io import atomic_dir

            with atomic_dir(job.plots) as tmp:
                save_slices_png(
                    tmp / f"slices_{split}.png", slices, f"Accuracy by slice ({split})", level
                )
            png = Path(job.plots) / f"slices_{split}.png"
            figures.append(("Accuracy by slice", relative(png, job.report)))
        if job.figures:
            for title, stem in FIGURES:
                png = Path(job.figures) / f"{stem}_{split}.png"
                if png.is_file():
                    figures.append((title, relative(png, job.report)))
        length_unit = "words" if meta.task == "token" else "characters, all text fields"
        report = render_report(
            ReportInputs(
                rows=rows,
                slices=slices,
                text_fields=meta.text_fields,
                metadata_fields=meta.metadata_fields,
                label_names=meta.label_names,
                max_examples=ea.max_examples,
                task=meta.task,
                split=split,
                evaluate=job.evaluate,
                threshold=job.threshold,
                behaviour=behaviour,
                behaviour_note=note,
                figures=figures,
                label_error_confidence=ea.label_error_confidence,
                length_unit=length_unit,
                confidence_level=level,
            )
        )
        metrics = error_metrics(rows, slices)
        if behaviour is not None:
            # Keys without spaces or dots: dvc metrics and exp show flatten them to columns.
            metrics["behaviour"] = {slug(r.name): r.metrics() for r in behaviour if not r.skipped}

        summary = f"error_analysis: {metrics['errors']} errors of {metrics['n']} on {split}"
        weakest = weakest_slice(slices)
        if weakest is not None:
            family, value, stats = weakest
            summary += f"; weakest slice {family}={value} ({stats.accuracy:.4f}, n={stats.n})"
        if behaviour:
            ran = [r for r in behaviour if not r.skipped]
            summary += f"; {len(ran)} behavioural tests, {sum(r.failed for r in ran)} failures"
        return ErrorAnalysisResult(report, metrics, summary)


def slug(name: str) -> str:
    """``invariance: whitespace`` -> ``invariance_whitespace``."""
    import re

    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


class SequenceEval(ClassificationEval):
    name: ClassVar[str] = "sequence"
    summary_keys: ClassVar[tuple[str, ...]] = ("accuracy", "f1_macro", "pr_auc")

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        from nlpflow.evaluation.evaluate import evaluate_sequence

        return evaluate_sequence(
            job.model, job.pad_id, job.meta, job.processed, job.tokenized, job.params,
            job.seed, job.splits, job.processed_dir, job.tokenized_dir,
        )  # fmt: skip
