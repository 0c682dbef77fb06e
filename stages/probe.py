"""Stage probe: the largest training batch that fits this device, and the batch split.

    python -m stages.probe --data data/tokenized --tokenizer models/tokenizer \\
        --out metrics/probe.json --plot plots/probe/candidates.json

Reads params: seed, model, probe, train.effective_batch_size.
"""

from __future__ import annotations

import argparse
import sys

from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    parser.add_argument("--data", required=True, help="tokenized DatasetDict (data/tokenized)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (models/tokenizer)")
    parser.add_argument("--out", required=True, help="metrics JSON (metrics/probe.json)")
    parser.add_argument("--plot", required=True, help="plot data (plots/probe/candidates.json)")
    parser.add_argument(
        "--plan",
        help="the batch plan alone (device, batch size, accumulation) for the train stage: "
        "unlike the metrics it holds no timings, so a rerun probe that picks the same plan "
        "does not make DVC rerun train",
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(args.params)

    from nlpflow.training.probe import run_probe

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_probe(params, args.data, args.tokenizer, log=log)
    write_json(args.out, result.to_json())
    write_json(args.plot, result.plot_rows())
    if args.plan:
        write_json(args.plan, result.plan.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
