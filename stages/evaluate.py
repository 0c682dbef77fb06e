"""Stage `evaluate`: the best model on validation and test, with baselines, predictions, plots.

    python -m stages.evaluate --model models/best --processed data/processed \
        --tokenized data/tokenized --predictions data/predictions \
        --metrics metrics/evaluate.json --plots plots/evaluate

Reads params (``nlpflow.contracts.EvaluateInputs``): ``seed`` (bootstrap, the stratified
baseline, text2text's untrained base model), ``evaluate`` and ``model.name_or_path`` /
``model.trust_remote_code`` (the pretrained base model text2text prompts).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from nlpflow.contracts import EvaluateInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.params import load_params
from stages import stage_parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("evaluate", __doc__)
    parser.add_argument(
        "--model", required=True, help="saved model directory (save_pretrained layout)"
    )
    parser.add_argument("--processed", required=True, help="processed splits (data/processed)")
    parser.add_argument("--tokenized", required=True, help="tokenized splits, same row order")
    parser.add_argument("--predictions", required=True, help="output directory: <split>.jsonl")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    parser.add_argument("--plots", required=True, help="output directory for plot data and PNGs")
    parser.add_argument(
        "--latency",
        help="output JSON of inference latency and throughput on validation inputs "
        "(metrics/latency.json; evaluate.latency_examples of them)",
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Params first: a bad value fails in a second, before the model is loaded.
    params = EvaluateInputs.from_params(load_params(args.params))

    from nlpflow.evaluation.evaluate import evaluate_model, write_evaluation
    from nlpflow.families.evaluate import eval_family
    from nlpflow.logs import quiet_libraries

    quiet_libraries()
    start = time.perf_counter()
    evaluation = evaluate_model(
        args.model,
        args.processed,
        args.tokenized,
        params.evaluate,
        seed=params.seed,
        latency=args.latency is not None,
        base_model=params.model,
    )
    write_evaluation(evaluation, args.predictions, args.metrics, args.plots, args.latency)
    family = eval_family(evaluation.meta.task)
    for r in evaluation.splits:
        print(family.summary_line(r.name, r.metrics))
    if evaluation.threshold:
        t = evaluation.threshold
        print(
            f"threshold: fixed {t['fixed']:.4f}, tuned on validation {t['tuned']:.4f}, used {t['used']:.4f}"
        )
    if evaluation.latency:
        lat = evaluation.latency
        print(
            f"latency: {lat['ms_per_example']:.2f} ms per example at batch size 1 (p90 "
            f"{lat['p90_ms_per_example']:.2f}), {lat['examples_per_second']:.0f} examples/s at "
            f"batch size {lat['batch_size']} ({lat['examples']} validation inputs, "
            f"{lat['device']}, {lat['threads']} thread(s))"
        )
    for name, why in evaluation.baselines_skipped.items():
        print(f"baseline {name} skipped: {why}")
    print(f"evaluate: done in {time.perf_counter() - start:.1f}s -> {args.metrics}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
