"""Stage `error_analysis`: what the model gets wrong on the test split, and why.

    python -m stages.error_analysis --predictions data/predictions --processed data/processed \
        --evaluate-metrics metrics/evaluate.json --model models/best --tokenized data/tokenized \
        --figures plots/evaluate --plots plots/error_analysis --report reports/errors.md \
        --metrics metrics/error_analysis.json

Reads params (``nlpflow.contracts.ErrorAnalysisInputs``): ``seed``, ``error_analysis`` and
``evaluate.confidence_level`` (the level of every interval the report shows). Perturbed
inputs are encoded as the tokenize stage encoded the data: with the ``max_length`` and
``truncation`` that data/tokenized's meta.json records. Without ``--model`` the behavioural
tests are left out.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpflow.contracts import ErrorAnalysisInputs
from nlpflow.errors import UserError, exit_on_user_error
from nlpflow.params import load_params
from stages import stage_parser

SPLIT = "test"
FIGURES = [
    ("Confusion matrix", "confusion"),
    ("Confusion matrix, share of each true label", "confusion_normalized"),
    ("ROC", "roc"),
    ("Precision-recall", "precision_recall"),
    ("Calibration", "calibration"),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("error_analysis", __doc__)
    parser.add_argument("--predictions", required=True, help="directory with <split>.jsonl")
    parser.add_argument("--processed", required=True, help="processed data (its meta.json)")
    parser.add_argument(
        "--evaluate-metrics",
        default=None,
        help="metrics/evaluate.json, for intervals and baselines in the summary (optional)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="the saved model (models/best), for the behavioural tests (optional)",
    )
    parser.add_argument(
        "--tokenized",
        default=None,
        help="tokenized data (its meta.json's max_length and truncation), to encode perturbed "
        "inputs as the tokenize stage did (optional: else the model's limit, longest_first)",
    )
    parser.add_argument(
        "--figures",
        default=None,
        help="the evaluate stage's plot directory; its PNGs are linked from the report",
    )
    parser.add_argument(
        "--plots", default=None, help="output directory for the slice chart (optional)"
    )
    parser.add_argument("--report", required=True, help="output markdown report")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    return parser.parse_args(argv)


def slug(name: str) -> str:
    """``invariance: whitespace`` -> ``invariance_whitespace``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _relative(target: Path, report: Path) -> str:
    return Path(os.path.relpath(target.resolve(), report.resolve().parent)).as_posix()


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = ErrorAnalysisInputs.from_params(load_params(args.params))
    ea = params.error_analysis

    from nlpflow.data.saved import read_meta
    from nlpflow.evaluation.error_analysis import (
        auto_length_edges,
        compute_slices,
        error_metrics,
        input_length,
        load_predictions,
        read_evaluate_metrics,
        weakest_slice,
    )
    from nlpflow.evaluation.metrics import round_floats
    from nlpflow.evaluation.report import ReportInputs, render_report
    from nlpflow.io import write_json, write_text

    start = time.perf_counter()
    meta = read_meta(args.processed)
    evaluate: dict[str, Any] | None = None
    threshold = None
    if args.evaluate_metrics:
        data = read_evaluate_metrics(args.evaluate_metrics)
        if not isinstance(data.get(SPLIT), dict):
            raise UserError(f"{args.evaluate_metrics}: no '{SPLIT}' metrics; rerun evaluate")
        evaluate = data[SPLIT]
        threshold = data.get("threshold")
    rows = load_predictions(
        Path(args.predictions) / f"{SPLIT}.jsonl",
        [*meta.text_fields, *meta.metadata_fields],
        meta.label_names,
        meta.task,
    )
    if ea.length_buckets == "auto":
        edges = auto_length_edges([input_length(r, meta.text_fields) for r in rows])
    else:
        edges = list(ea.length_buckets)
    slices = compute_slices(rows, meta.text_fields, meta.metadata_fields, meta.label_names, edges)
    level = params.evaluate.confidence_level  # the evaluate stage's intervals were computed at it

    behaviour = None
    note = ""
    if meta.task == "token":
        note = "not run: behavioural tests are implemented for sequence classification."
    elif not args.model:
        note = "not run: no --model given."
    else:
        from nlpflow.evaluation.behaviour import ModelPredictor, run_behaviour
        from nlpflow.logs import quiet_libraries

        quiet_libraries()
        # As the tokenize stage encoded the data; without --tokenized, the model's limit.
        encoded = read_meta(args.tokenized, tokenized=True) if args.tokenized else None
        predictor = ModelPredictor(
            args.model,
            meta.label_names,
            meta.text_fields,
            encoded.max_length if encoded else None,
            encoded.truncation if encoded and encoded.truncation else "longest_first",
        )
        behaviour = run_behaviour(
            ea.behaviour, rows, meta.text_fields, meta.label_names, predictor, params.seed
        )

    report_path = Path(args.report)
    figures: list[tuple[str, str]] = []
    if args.plots:
        from nlpflow.evaluation.plots import save_slices_png
        from nlpflow.io import atomic_dir

        with atomic_dir(args.plots) as tmp:
            save_slices_png(
                tmp / f"slices_{SPLIT}.png", slices, f"Accuracy by slice ({SPLIT})", level
            )
        figures.append(
            ("Accuracy by slice", _relative(Path(args.plots) / f"slices_{SPLIT}.png", report_path))
        )
    if args.figures:
        for title, stem in FIGURES:
            png = Path(args.figures) / f"{stem}_{SPLIT}.png"
            if png.is_file():
                figures.append((title, _relative(png, report_path)))
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
            split=SPLIT,
            evaluate=evaluate,
            threshold=threshold,
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
        # Keys without spaces or dots: dvc metrics and exp show flatten them into column names.
        metrics["behaviour"] = {slug(r.name): r.metrics() for r in behaviour if not r.skipped}
    write_text(report_path, report)
    write_json(args.metrics, round_floats({SPLIT: metrics}))

    summary = f"error_analysis: {metrics['errors']} errors of {metrics['n']} on {SPLIT}"
    weakest = weakest_slice(slices)
    if weakest is not None:
        family, value, stats = weakest
        summary += f"; weakest slice {family}={value} ({stats.accuracy:.4f}, n={stats.n})"
    if behaviour:
        ran = [r for r in behaviour if not r.skipped]
        summary += f"; {len(ran)} behavioural tests, {sum(r.failed for r in ran)} failures"
    print(f"{summary} ({time.perf_counter() - start:.1f}s) -> {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
