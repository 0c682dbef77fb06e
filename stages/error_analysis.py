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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpflow.contracts import ErrorAnalysisInputs
from nlpflow.errors import UserError, exit_on_user_error
from nlpflow.params import load_params
from stages import stage_parser

SPLIT = "test"


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


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = ErrorAnalysisInputs.from_params(load_params(args.params))

    from nlpflow.data.saved import read_meta
    from nlpflow.evaluation.error_analysis import read_evaluate_metrics
    from nlpflow.evaluation.metrics import round_floats
    from nlpflow.families.evaluate import ErrorAnalysisJob, eval_family
    from nlpflow.io import write_json, write_text

    start = time.perf_counter()
    meta = read_meta(args.processed)
    family = eval_family(meta.task)
    evaluate: dict[str, Any] | None = None
    threshold = None
    if args.evaluate_metrics:
        data = read_evaluate_metrics(args.evaluate_metrics)
        if not isinstance(data.get(SPLIT), dict):
            raise UserError(f"{args.evaluate_metrics}: no '{SPLIT}' metrics; rerun evaluate")
        evaluate = data[SPLIT]
        threshold = data.get("threshold")
    rows = family.load_predictions(Path(args.predictions) / f"{SPLIT}.jsonl", meta)
    result = family.error_analysis(
        ErrorAnalysisJob(
            meta=meta,
            rows=rows,
            split=SPLIT,
            params=params,
            evaluate=evaluate,
            threshold=threshold,
            model=args.model,
            tokenized=args.tokenized,
            figures=args.figures,
            plots=args.plots,
            report=Path(args.report),
        )
    )
    write_text(args.report, result.report)
    write_json(args.metrics, round_floats({SPLIT: result.metrics}))
    print(f"{result.summary} ({time.perf_counter() - start:.1f}s) -> {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
