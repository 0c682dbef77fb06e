"""Stage lr_range: the learning-rate range test (fastai's and Lightning's ``lr_find``).

    python -m stages.lr_range --data data/tokenized --tokenizer models/tokenizer \\
        --probe data/probe/plan.json --metrics metrics/lr_range.json \\
        --plot plots/lr_range/curve.tsv --image plots/lr_range/curve.png

Reads params: seed, model, lr_range, and train's optimizer, momentum, weight_decay,
max_grad_norm, label_smoothing, class_weights, batching, precision and threads (what one
training step does), not train.lr or the schedule: changing those reruns train, not this.
Nothing depends on this stage; ``nlpflow tune --lr-from-range`` reads its suggestion.
With ``lr_range.enabled: false`` it trains nothing and writes outputs that say so.
"""

from __future__ import annotations

import argparse
import sys

from nlpflow.contracts import LrRangeInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params
from stages import stage_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser("lr_range", __doc__)
    parser.add_argument("--data", required=True, help="tokenized DatasetDict (data/tokenized)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (models/tokenizer)")
    parser.add_argument(
        "--probe", required=True, help="the probe's batch plan (data/probe/plan.json)"
    )
    parser.add_argument(
        "--metrics",
        required=True,
        help="the suggestion and the curve's summary (metrics/lr_range.json)",
    )
    parser.add_argument(
        "--plot", required=True, help="loss against learning rate, one row per step (TSV)"
    )
    parser.add_argument("--image", required=True, help="the same curve as a PNG, log-scale lr")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = LrRangeInputs.from_params(load_params(args.params))

    from nlpflow.logs import quiet_libraries
    from nlpflow.training.lr_range import PLOT_COLUMNS, RangeResult, plot_curve, run_range_test
    from nlpflow.training.probe import BatchPlan
    from nlpflow.training.tracking import write_tsv

    quiet_libraries()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rp = params.lr_range
    if rp.enabled:
        plan = BatchPlan.read(args.probe, params.train.effective_batch_size)
        plan.check_device(log)
        result = run_range_test(params, args.data, args.tokenizer, plan, log=log)
    else:
        log("lr_range: disabled (lr_range.enabled: false); writing empty outputs")
        result = RangeResult(
            lrs=[], losses=[], smoothed=[], min_lr=rp.min_lr, max_lr=rp.max_lr, steps=rp.steps,
            stop_reason="disabled", rule=rp.suggestion,
            reason="disabled by lr_range.enabled: false",
        )  # fmt: skip
    write_json(args.metrics, result.summary())
    write_tsv(args.plot, PLOT_COLUMNS, result.plot_rows())
    plot_curve(result, args.image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
