"""Stage train: the training loop, with checkpoints, resume and early stopping.

    python -m stages.train --data data/tokenized --tokenizer models/tokenizer \\
        --probe metrics/probe.json --models models --checkpoints checkpoints \\
        --metrics metrics/train.json --plots plots/train

Reads params: seed, model, train. The batch split and the device come from the probe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    parser.add_argument("--data", required=True, help="tokenized DatasetDict (data/tokenized)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (models/tokenizer)")
    parser.add_argument("--probe", required=True, help="the probe's result (metrics/probe.json)")
    parser.add_argument("--models", required=True, help="where models/best and models/last go")
    parser.add_argument(
        "--checkpoints",
        required=True,
        help="checkpoint directory; a run with the same params resumes from it",
    )
    parser.add_argument("--metrics", required=True, help="metrics JSON (metrics/train.json)")
    parser.add_argument(
        "--plots", required=True, help="directory for epochs.tsv and steps.tsv (plots/train)"
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(args.params)

    from nlpflow.training.loop import EPOCH_COLUMNS, STEP_COLUMNS, train, write_tsv
    from nlpflow.training.probe import BatchPlan

    plan = BatchPlan.read(args.probe, params.train.effective_batch_size)
    result = train(params, args.data, args.tokenizer, plan, args.models, args.checkpoints)
    write_json(args.metrics, result.summary)
    plots = Path(args.plots)
    write_tsv(plots / "epochs.tsv", EPOCH_COLUMNS, result.epochs)
    write_tsv(plots / "steps.tsv", STEP_COLUMNS, result.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
