"""Stage `evaluate`: the best model on validation and test, with baselines, predictions, plots.

    python -m stages.evaluate --model models/best --processed data/processed \
        --tokenized data/tokenized --predictions data/predictions \
        --metrics metrics/evaluate.json --plots plots/evaluate

Reads params: ``evaluate`` (batch_size).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from nlpflow.errors import exit_on_user_error
from nlpflow.params import load_params


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--params", default="params.yaml", help="parameters file (default: %(default)s)"
    )
    parser.add_argument(
        "--model", required=True, help="saved model directory (save_pretrained layout)"
    )
    parser.add_argument("--processed", required=True, help="processed splits (data/processed)")
    parser.add_argument("--tokenized", required=True, help="tokenized splits, same row order")
    parser.add_argument("--predictions", required=True, help="output directory: <split>.jsonl")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    parser.add_argument("--plots", required=True, help="output directory for plot data and PNGs")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Params first: a bad value fails in a second, before the model is loaded.
    params = load_params(args.params).evaluate

    from nlpflow.evaluation.evaluate import evaluate_model, write_evaluation

    start = time.perf_counter()
    meta, results = evaluate_model(args.model, args.processed, args.tokenized, params.batch_size)
    write_evaluation(results, meta.label_names, args.predictions, args.metrics, args.plots)
    for r in results:
        m = r.metrics
        base = m["baselines"]["majority"]
        print(
            f"{r.name}: n={m['n']} accuracy={m['accuracy']:.4f} f1_macro={m['f1_macro']:.4f} "
            f"(majority baseline accuracy={base['accuracy']:.4f} f1_macro={base['f1_macro']:.4f})"
        )
    print(f"evaluate: done in {time.perf_counter() - start:.1f}s -> {args.metrics}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
