"""Stage probe: the largest training batch that fits this device, and the batch split.

    python -m stages.probe --data data/tokenized --tokenizer models/tokenizer \\
        --out metrics/probe.json --plot plots/probe/candidates.json \\
        --plan data/probe/plan.json --cache data/probe/measurements.json

Reads params (``nlpflow.contracts.ProbeInputs``): model (all but dropout), probe, and
train's effective_batch_size (the search stops there), optimizer, momentum and precision (the inputs that change what one step holds
in memory; ``auto`` on the CPU is decided here by measuring bf16 against fp32) and threads
(the speeds are measured with the CPU threads training will use; one thread is also timed
against all cores). Timer readings go under ``timings`` in ``--timing``'s file, with every
candidate's peak memory and speed: never into the metrics or the plan.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nlpflow.contracts import ProbeInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params
from stages import stage_parser

# What the probe measured on this machine (memory, speed, the budget from free memory, every
# timer reading): kept out of metrics/probe.json, which holds the outcome (which sizes fit,
# the batch split, the precision), in metrics/probe_timing.json.
MEASURED_KEYS = ("budget_mb", "timings")
MEASURED_CANDIDATE_KEYS = ("peak_memory_mb", "examples_per_second")


def split_measurements(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``ProbeResult.to_json()`` as (outcome, measurements of this machine)."""
    outcome = {k: v for k, v in result.items() if k not in MEASURED_KEYS}
    outcome["candidates"] = [
        {k: v for k, v in c.items() if k not in MEASURED_CANDIDATE_KEYS}
        for c in result["candidates"]
    ]
    measured: dict[str, Any] = {k: result[k] for k in MEASURED_KEYS if k in result}
    measured["candidates"] = [
        {"batch_size": c["batch_size"], **{k: c[k] for k in MEASURED_CANDIDATE_KEYS if k in c}}
        for c in result["candidates"]
    ]
    return outcome, measured


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser("probe", __doc__)
    parser.add_argument("--data", required=True, help="tokenized DatasetDict (data/tokenized)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (models/tokenizer)")
    parser.add_argument("--out", required=True, help="metrics JSON (metrics/probe.json)")
    parser.add_argument(
        "--timing",
        help="what this machine measured: each candidate's peak memory and speed, and the "
        "CPU memory budget (metrics/probe_timing.json), kept apart so that the metrics file "
        "holds only the outcome",
    )
    parser.add_argument("--plot", required=True, help="plot data (plots/probe/candidates.json)")
    parser.add_argument(
        "--image",
        help="a PNG of peak memory and speed against batch size (plots/probe/candidates.png)",
    )
    parser.add_argument(
        "--plan",
        help="the batch plan alone (device, batch size, accumulation) for the train stage: "
        "unlike the metrics it holds no timings, so a rerun probe that picks the same plan "
        "does not make DVC rerun train",
    )
    parser.add_argument(
        "--cache",
        help="where the measurement is kept with its inputs (model shape, sequence length, "
        "device, budget); a rerun with the same inputs reuses it (data/probe/measurements.json)",
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = ProbeInputs.from_params(load_params(args.params))

    from nlpflow.logs import quiet_libraries
    from nlpflow.training.probe import plot_candidates, run_probe

    quiet_libraries()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_probe(inputs, args.data, args.tokenizer, log=log, cache=args.cache)
    outcome, measured = split_measurements(result.to_json())
    write_json(args.out, outcome)
    if args.timing:
        write_json(args.timing, measured)
    write_json(args.plot, result.plot_rows())
    if args.image:
        plot_candidates(result, args.image)
    if args.plan:
        write_json(args.plan, result.plan.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
