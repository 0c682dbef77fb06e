"""Stage `error_analysis`: the test split's most confident errors and accuracy per slice.

    python -m stages.error_analysis --predictions data/predictions --processed data/processed \
        --evaluate-metrics metrics/evaluate.json --report reports/errors.md \
        --metrics metrics/error_analysis.json

Reads params: ``error_analysis`` (max_examples, length_buckets).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nlpflow.errors import exit_on_user_error
from nlpflow.evaluation.data import read_meta
from nlpflow.evaluation.error_analysis import (
    baseline_accuracy_from,
    compute_slices,
    error_metrics,
    load_predictions,
    render_report,
    weakest_slice,
)
from nlpflow.io import write_json, write_text
from nlpflow.params import load_params

SPLIT = "test"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.error_analysis", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--params", default="params.yaml", help="parameters file (default: %(default)s)"
    )
    parser.add_argument("--predictions", required=True, help="directory with <split>.jsonl")
    parser.add_argument("--processed", required=True, help="processed data (its meta.json)")
    parser.add_argument(
        "--evaluate-metrics",
        default=None,
        help="metrics/evaluate.json, for the majority-baseline margin in the summary (optional)",
    )
    parser.add_argument("--report", required=True, help="output markdown report")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(args.params).error_analysis
    meta = read_meta(args.processed)
    baseline = (
        baseline_accuracy_from(args.evaluate_metrics, SPLIT) if args.evaluate_metrics else None
    )
    rows = load_predictions(
        Path(args.predictions) / f"{SPLIT}.jsonl",
        [*meta.text_fields, *meta.metadata_fields],
        meta.label_names,
    )
    slices = compute_slices(
        rows, meta.text_fields, meta.metadata_fields, meta.label_names, params.length_buckets
    )
    report = render_report(
        rows,
        slices,
        meta.text_fields,
        meta.metadata_fields,
        meta.label_names,
        params.max_examples,
        baseline_accuracy=baseline,
        split=SPLIT,
    )
    metrics = error_metrics(rows, slices)
    write_text(args.report, report)
    write_json(args.metrics, {SPLIT: metrics})

    summary = f"error_analysis: {metrics['errors']} errors of {metrics['n']} on {SPLIT}"
    weakest = weakest_slice(slices)
    if weakest is not None:
        family, value, stats = weakest
        summary += f"; weakest slice {family}={value} ({stats.accuracy:.4f}, n={stats.n})"
    print(f"{summary} -> {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
