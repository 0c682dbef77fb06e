"""Stage train: the training loop, with checkpoints, resume, early stopping and diagnosis.

    python -m stages.train --data data/tokenized --tokenizer models/tokenizer \\
        --probe data/probe/plan.json --models models --checkpoints checkpoints \\
        --metrics metrics/train.json --plots plots/train --logs logs/train

Reads params (``nlpflow.contracts.TrainInputs``): seed, model, train. The per-device batch size and the device come from the
probe. With ``train.processes: N`` (N > 1) the stage starts itself N times under
``torchrun`` (data-parallel: gloo on the CPU, NCCL on GPUs); started by ``torchrun``
directly (``torchrun --nproc_per_node=N -m stages.train -- <arguments>``; the ``--`` keeps
torchrun from reading ``--logs`` as its own ``--logs-specs``) it joins that process group
instead. Only rank 0 writes files.

Inside a tuning trial (``nlpflow tune``) each validation is reported to the trial, and a
trial the pruner gives up stops with ``stop_reason: pruned`` (``pruned: 1``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlpflow.contracts import TrainInputs
from nlpflow.data.saved import read_meta
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json, write_text
from nlpflow.modelinfo import check_model_files, write_model_info
from nlpflow.params import load_params
from stages import stage_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser("train", __doc__)
    parser.add_argument("--data", required=True, help="tokenized DatasetDict (data/tokenized)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (models/tokenizer)")
    parser.add_argument(
        "--probe", required=True, help="the probe's batch plan (data/probe/plan.json)"
    )
    parser.add_argument(
        "--models",
        required=True,
        help="where models/best, models/last and models/adapter (LoRA) go",
    )
    parser.add_argument(
        "--checkpoints",
        required=True,
        help="checkpoint directory; a run with the same params resumes from it",
    )
    parser.add_argument("--metrics", required=True, help="metrics JSON (metrics/train.json)")
    parser.add_argument(
        "--timing",
        help="wall times, speed and resume step of this run (metrics/train_timing.json), kept apart so "
        "that the metrics file is identical whenever the same params run again",
    )
    parser.add_argument(
        "--plots", required=True, help="directory for epochs.tsv and steps.tsv (plots/train)"
    )
    parser.add_argument(
        "--logs",
        help="directory for train.log (the console lines) and, with train.tensorboard, "
        "TensorBoard event files in tensorboard/",
    )
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:  # torchrun ... -m stages.train -- <args>, where passed through
        args = args[1:]
    return parser.parse_args(args)


# Keys of the loop's summary that describe this run on this machine, not the training's
# result: wall times, speed, and the checkpoint step it resumed from (a resumed run ends
# bit-identical to an uninterrupted one, so its results file must be identical too).
TIMING_KEYS = ("seconds", "train_seconds", "examples_per_second", "resumed_from_step")


def split_timing(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``summary`` as (results, timings): wall times, speed and resume step apart from the rest."""
    results = {k: v for k, v in summary.items() if k not in TIMING_KEYS}
    return results, {k: summary[k] for k in TIMING_KEYS if k in summary}


def pruning_reporter(log: Callable[[str], None]) -> Any:
    """The tuning trial this run belongs to (``nlpflow tune``), or None outside one."""
    from nlpflow.tuning.reporter import TrialReporter

    return TrialReporter.from_env(log=log)


def relaunch_under_torchrun(processes: int, argv: list[str]) -> int:
    """Run this stage as ``processes`` data-parallel processes; their exit status."""
    import subprocess

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "stages.train", "--", *argv,
    ]  # fmt: skip
    # "--": torchrun's own options would otherwise swallow ours by prefix (--logs).
    print(f"train: starting {processes} processes: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = TrainInputs.from_params(load_params(args.params))

    from nlpflow.training.distributed import is_main_process, launched_by_torchrun

    if params.train.processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(
            params.train.processes, sys.argv[1:] if argv is None else argv
        )

    from nlpflow.logs import quiet_libraries
    from nlpflow.training.loop import ADAPTER_DIR, train
    from nlpflow.training.probe import BatchPlan
    from nlpflow.training.tracking import STEP_COLUMNS, write_tsv

    quiet_libraries()
    is_main = is_main_process()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    plan = BatchPlan.read(args.probe, params.train.effective_batch_size)
    plan.check_device(log)
    reporter = pruning_reporter(log) if is_main else None
    logs = Path(args.logs) if args.logs else None
    result = train(
        params,
        args.data,
        args.tokenizer,
        plan,
        args.models,
        args.checkpoints,
        log=log,
        pruning=reporter,
        tensorboard_dir=logs / "tensorboard" if logs is not None else None,
    )
    if not result.is_main:
        return 0
    # What prediction and the model card need beside the weights (task, labels, fields,
    # encoding, cleaning): the tokenized data's meta, saved with both models.
    meta = read_meta(args.data, tokenized=True)
    for kind in ("best", "last"):
        write_model_info(Path(args.models) / kind, meta)
    adapter = Path(args.models) / ADAPTER_DIR
    if (adapter / "adapter_config.json").is_file():  # model.lora with merge: false
        write_model_info(adapter, meta)
    check_model_files(Path(args.models) / "best")
    summary = result.summary
    if reporter is not None:
        summary.update(reporter.summary())
    results, timing = split_timing(summary)
    write_json(args.metrics, results)
    if args.timing:
        write_json(args.timing, timing)
    plots = Path(args.plots)
    write_tsv(plots / "epochs.tsv", result.eval_columns, result.epochs)
    write_tsv(plots / "steps.tsv", STEP_COLUMNS, result.steps)
    if logs is not None:
        write_text(logs / "train.log", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
