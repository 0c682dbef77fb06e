"""The training loop: set-up, resume, epochs of optimizer steps, the end. It reads top to bottom.

``train()`` is a library function: the train stage only parses arguments, loads params,
calls it and writes the metrics and plot files it returns. The parts live in sibling
modules, each small and each with ``state_dict()`` where it holds state:

====================  ===============================================================
``setup.py``          seed, data, model, precision, loss, optimizer, schedule (``Run``)
``state.py``          where the loop is, the running sums, the history (``LoopState``)
``step.py``           one optimizer step over accumulated micro-batches (``TrainStep``)
``validation.py``     an evaluation and what follows: best checkpoint, early stopping,
                      pruning, TensorBoard, the console line (``Validation``)
``early_stopping.py`` ``StopReason`` (why a run stopped) and ``EarlyStopping``
``checkpoint.py``     checkpoints of this exact run: save, find, resume (``Checkpointer``)
``progress.py``       a bar on a terminal, plain progress lines in logs and CI
``health.py``         the diagnosis of the loss curves, the initial-loss check
====================  ===============================================================

A run killed at any moment and started again resumes from its newest checkpoint and ends
with the same weights, bit for bit on the CPU, as a run that was never interrupted: the
checkpoint holds the epoch's data order (the shuffle state at the epoch start and the steps
taken), every RNG state, and the running sums of the current evaluation period.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.io import atomic_dir
from nlpflow.training.early_stopping import EarlyStopping, Stop, StopReason
from nlpflow.training.tracking import finite
from nlpflow.training.validation import Pruning

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from nlpflow.contracts import TrainInputs
    from nlpflow.params import LoraParams, TrainParams
    from nlpflow.training.checkpoint import Checkpointer
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.probe import BatchPlan
    from nlpflow.training.sampling import Batching
    from nlpflow.training.setup import Run
    from nlpflow.training.state import LoopState
    from nlpflow.training.step import StepResult

OVERFIT_NEAR_ZERO = 0.05  # the overfit check passes when the loss on its batches gets below
ADAPTER_DIR = "adapter"  # models/adapter: the LoRA adapter (empty without one)

__all__ = ["OVERFIT_NEAR_ZERO", "Pruning", "TrainResult", "save_pretrained", "train"]


@dataclass
class TrainResult:
    """What a run returns for the stage to write; NaN and inf already turned into None."""

    summary: dict[str, Any]  # the content of metrics/train.json
    epochs: list[dict[str, Any]]  # one row per evaluation (eval_columns)
    steps: list[dict[str, Any]]  # one row per optimizer step (STEP_COLUMNS)
    eval_columns: tuple[str, ...] = ()
    is_main: bool = True  # rank 0 (the only process that writes files)


def _print(line: str) -> None:
    print(line, flush=True)


def train(
    params: TrainInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    models_dir: str | Path,
    checkpoints_dir: str | Path,
    *,
    log: Callable[[str], None] = _print,
    on_checkpoint: Callable[[int], None] | None = None,
    pruning: Pruning | None = None,
    tensorboard_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``params.model`` on ``data_dir``; write ``models_dir/{best,last}`` and checkpoints.

    Reads the ``seed``, ``model`` and ``train`` sections of ``params``; the per-device batch
    size and the device come from the probe (``plan``). ``log`` receives every console line
    (progress lines too when stderr is not a terminal). ``on_checkpoint(step)`` runs after
    each checkpoint is written (tests use it to interrupt a run). ``pruning``: a tuning trial
    asked after each validation whether to stop (``stop_reason: pruned``). Under ``torchrun``
    every process calls this; only rank 0 writes files and logs.

    Raises :class:`nlpflow.errors.UserError` for data the run cannot use and for a
    checkpoint of this run that cannot be read.
    """
    from nlpflow.training.device import resolve_device, torch_threads
    from nlpflow.training.distributed import Distributed

    device = resolve_device(plan.device)
    dist = Distributed.start(device.type)
    try:
        with torch_threads(params.train.threads):
            return _train(
                params, data_dir, tokenizer_dir, plan, Path(models_dir), Path(checkpoints_dir),
                dist.device(device), dist, log if dist.is_main else (lambda _: None),
                on_checkpoint, pruning, tensorboard_dir,
            )  # fmt: skip
    finally:
        dist.stop()


def _train(
    params: TrainInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    models_dir: Path,
    checkpoints_dir: Path,
    device: torch.device,
    dist: Distributed,
    log: Callable[[str], None],
    on_checkpoint: Callable[[int], None] | None,
    pruning: Pruning | None,
    tensorboard_dir: str | Path | None,
) -> TrainResult:
    from nlpflow.logs import on_terminal
    from nlpflow.training.progress import Progress, TrainClock
    from nlpflow.training.setup import build_run, describe
    from nlpflow.training.state import LoopState
    from nlpflow.training.step import TrainStep
    from nlpflow.training.tracking import TensorBoard
    from nlpflow.training.validation import PruningCheck, Validation

    started = time.perf_counter()
    tp = params.train

    # ---- set-up: seed, data, model, loss, optimizer, schedule, early stopping -------------
    run = build_run(params, data_dir, tokenizer_dir, plan, device, dist)
    stopper = _early_stopping(tp, run.overfit)
    state = LoopState(run.steps_per_epoch)

    # ---- resume: only from a checkpoint of this exact run --------------------------------
    checkpoints = _checkpointer(
        params, plan, run, stopper, state, checkpoints_dir, dist, log, on_checkpoint
    )
    resumed_from = _resume(checkpoints, state, device, log)
    for line in describe(run, params, plan, dist):
        log(line)

    # ---- what runs beside the loop: TensorBoard, progress, validation --------------------
    tensorboard = tensorboard_dir if tp.tensorboard and dist.is_main else None
    board = TensorBoard(Path(tensorboard) if tensorboard else None, log)
    board.replay(state.step_rows, state.eval_rows)  # a resumed run's history first
    clock = TrainClock()
    progress = Progress(log, run.total_steps, tp.epochs, clock, on_terminal() and dist.is_main)
    validate = Validation(
        run, plan.max_fitting_batch_size, device, dist, stopper, checkpoints,
        PruningCheck(pruning, dist, log), board, log, tp.epochs,
    )  # fmt: skip
    train_step = TrainStep.of(run, plan.batch_size, tp.max_grad_norm, device, dist)

    # ---- the loop: epochs of optimizer steps, each over accumulated micro-batches --------
    while state.stop is None:
        order = _epoch_order(run, state, tp.batching)  # rows of each step of this epoch
        # Training mode each epoch: `from_pretrained` returns a model in eval mode (dropout
        # off), and validation restores whatever mode it found.
        run.model.train()
        progress.start_epoch(state.epoch + 1, len(order), done=state.epoch_step)
        clock.start()
        for chunk in order[state.epoch_step :]:
            result = train_step(chunk)
            if not result.taken:  # a non-finite loss: stop at once, the step was not taken
                state.stop = _non_finite(result, state, tp.max_grad_norm)
                log(f"stopping: {state.stop.detail}")
                break
            row = state.record_step(result, steps_in_epoch=len(order))
            clock.examples += result.examples
            board.step(row)
            progress.step(row)

            # -- what is due after this step: stop at a limit, evaluation, checkpoint
            epoch_end = state.epoch_step == 0  # record_step began the next epoch
            state.stop = _limit_reached(tp, state, epoch_end)
            every = tp.eval_every_steps
            if state.stop is not None or (state.step % every == 0 if every else epoch_end):
                with clock.paused():
                    validate(state)  # may stop: early stopping, target, divergence, pruning
            every = tp.checkpoint_every_steps
            if state.stop is not None or epoch_end or (every and state.step % every == 0):
                with clock.paused():
                    checkpoints.save(state.step, state.epochs_done)
            if state.stop is not None or epoch_end:
                break
        clock.stop()
        progress.end_epoch()

    # A stop inside a step (non-finite loss): evaluate what there is, so metrics exist.
    if state.last_eval_step != state.step or not state.eval_rows:
        validate(state)
        checkpoints.save(state.step, state.epochs_done)
    stop = state.stop
    assert stop is not None  # the loop above ends only with a stop
    if stop.reason not in (StopReason.MAX_EPOCHS, StopReason.MAX_STEPS, StopReason.NON_FINITE_LOSS):
        log(f"{stop.reason.value.replace('_', ' ')}: {stop.detail}")

    # ---- the end: models, diagnosis, summary ---------------------------------------------
    best = _save_models(run, checkpoints, state, models_dir, device, dist, params.model.lora)
    board.close()
    health = _diagnose(run, state, log)
    timings = clock.timings(time.perf_counter() - started)
    summary = _summary(run, state, stopper, best, health, timings, resumed_from, plan, dist)
    if run.overfit:
        summary["overfit_batches"] = overfit_report(tp.overfit_batches, len(run.train_set), state)
        for line in overfit_lines(summary["overfit_batches"]):
            log(line)
    log(
        f"train: {stop.reason.value} ({stop.detail}); best epoch {summary['best_epoch']}, "
        f"{summary['seconds']}s"
    )
    return TrainResult(
        finite(summary), finite(state.eval_rows), finite(state.step_rows), run.columns,
        dist.is_main,
    )  # fmt: skip


# --------------------------------------------------------------------------- the loop's parts


def _early_stopping(tp: TrainParams, overfit: bool) -> EarlyStopping:
    """``train.early_stopping``; in the overfit check, stop once the loss is near zero."""
    if overfit:
        return EarlyStopping("loss", "min", 0, target=OVERFIT_NEAR_ZERO)
    es = tp.early_stopping
    return EarlyStopping(es.metric, es.mode, es.patience, es.min_delta, es.target, es.divergence)


def _checkpointer(
    params: TrainInputs,
    plan: BatchPlan,
    run: Run,
    stopper: EarlyStopping,
    state: LoopState,
    root: Path,
    dist: Distributed,
    log: Callable[[str], None],
    on_saved: Callable[[int], None] | None,
) -> Checkpointer:
    """Checkpoints of this run: identified by everything that shapes its result (params,
    the probe's batch split, the train data, processes and threads), holding every part
    with a state."""
    import torch

    from nlpflow.training.checkpoint import CheckpointDir, Checkpointer, Stateful, run_sections

    runtime = {"processes": dist.world, "threads": torch.get_num_threads()}
    sections = run_sections(params, plan, run.train_fingerprint, runtime)
    parts: dict[str, Stateful] = {
        "optimizer": run.optimizer, "scheduler": run.scheduler,
        "early_stopping": stopper, "loop": state,
    }  # fmt: skip
    if run.scaler is not None:
        parts["scaler"] = run.scaler
    directory = CheckpointDir(root, sections, log, keep=params.train.keep_checkpoints)
    return Checkpointer(directory, run.model, parts, run.shuffle, dist, on_saved)


def _resume(
    checkpoints: Checkpointer, state: LoopState, device: torch.device, log: Callable[[str], None]
) -> int | None:
    """Load this run's newest checkpoint, if any; the step it resumes from, or None."""
    path = checkpoints.resume(device)
    if path is None:
        return None
    if state.stop is not None and state.stop.reason is StopReason.PRUNED:
        # Pruning is the tuner's decision about one trial, not a property of the params:
        # this run (a plain rerun, or another trial) trains on.
        state.stop = None
        log("the checkpoint's run was pruned by tuning; this run trains on")
    where = f"step {state.step}, epoch {state.epoch}"
    if state.epoch_step:
        where += f" + {state.epoch_step}/{state.steps_per_epoch} steps"
    log(f"resuming from {where} ({path})")
    return state.step


def _epoch_order(run: Run, state: LoopState, batching: Batching) -> list[torch.Tensor]:
    """The row indices of each optimizer step of the current epoch (``effective`` rows
    each, the last maybe fewer). A run resumed mid-epoch gets the same order again."""
    import torch

    from nlpflow.training.sampling import epoch_steps

    if run.overfit:
        return list(torch.arange(len(run.train_set)).split(run.effective))  # fixed batches
    if state.epoch_step == 0:
        state.epoch_rng = run.shuffle.get_state()
    else:  # resumed mid-epoch: from the epoch's shuffle state
        run.shuffle.set_state(state.epoch_rng)
    return epoch_steps(run.train_set.lengths, run.effective, run.shuffle, batching)


def _non_finite(result: StepResult, state: LoopState, max_grad_norm: float) -> Stop:
    """The stop for a step whose loss or gradient norm is NaN or infinite."""
    import math

    what, value = ("loss", result.loss)
    if math.isfinite(result.loss):
        what, value = ("gradient norm", result.grad_norm)
    advice = "lower train.lr" + (
        "" if max_grad_norm > 0 else " or set train.max_grad_norm (clipping)"
    )
    return Stop(
        StopReason.NON_FINITE_LOSS,
        f"non-finite {what} ({value}) at step {state.step + 1} (epoch {state.epoch + 1}); {advice}",
    )


def _limit_reached(tp: TrainParams, state: LoopState, epoch_end: bool) -> Stop | None:
    """``max_steps`` or ``max_epochs``, when the step just taken completed them."""
    if tp.max_steps and state.step >= tp.max_steps:
        return Stop(StopReason.MAX_STEPS, f"completed train.max_steps = {tp.max_steps} steps")
    if epoch_end and state.epoch >= tp.epochs:
        return Stop(StopReason.MAX_EPOCHS, f"completed all {tp.epochs} epochs")
    return None


def _save_models(
    run: Run,
    checkpoints: Checkpointer,
    state: LoopState,
    models_dir: Path,
    device: torch.device,
    dist: Distributed,
    lora: LoraParams,
) -> dict[str, Any] | None:
    """``models/last``, then ``models/best`` (rank 0), whole models (LoRA adapters merged
    in), and ``models/adapter``: the best model's LoRA adapter with ``model.lora.merge``
    false, else empty (DVC tracks it either way); the best evaluation's row, or None when
    no evaluation had a finite value of the monitored metric (best = last weights)."""
    if dist.is_main:
        save_pretrained(run.model, run.tokenizer, models_dir / "last")
    meta = checkpoints.load_best(device)
    if dist.is_main:
        save_pretrained(run.model, run.tokenizer, models_dir / "best")
        save_adapter_dir(run.model, run.tokenizer, models_dir / ADAPTER_DIR, lora)
    if meta is None:
        return None
    return next((r for r in state.eval_rows if r["step"] == meta["step"]), state.eval_rows[-1])


def _diagnose(run: Run, state: LoopState, log: Callable[[str], None]) -> dict[str, Any]:
    """The health check of the loss curves and of the initial loss: console lines and the
    ``health`` entry of metrics/train.json."""
    from nlpflow.training.health import diagnose, health_summary, initial_loss

    losses = [r["loss"] for r in state.step_rows]
    classes = run.family.uniform_classes(run.label_names)  # None: no ln(K) check (regression)
    initial = initial_loss(losses, classes)
    if initial is not None:
        log(initial.line())
    findings = diagnose(losses, state.eval_rows, overfit_check=run.overfit, num_classes=classes)
    for finding in findings:
        for line in finding.lines():
            log(line)
    if not findings:
        log("health: the loss curves show none of the known failure shapes")
    return health_summary(findings, initial)


def _summary(
    run: Run,
    state: LoopState,
    stopper: EarlyStopping,
    best: dict[str, Any] | None,
    health: dict[str, Any],
    timings: dict[str, float | None],
    resumed_from: int | None,
    plan: BatchPlan,
    dist: Distributed,
) -> dict[str, Any]:
    """The content of metrics/train.json. ``timings``: ``seconds`` (the whole call),
    ``train_seconds`` (optimizer steps only), ``examples_per_second`` (rows over those)."""
    import torch

    from nlpflow.modeling.lora import CONFIG_KEY as LORA_KEY
    from nlpflow.modeling.lora import parameter_counts
    from nlpflow.training.setup import micro_batches_per_process

    assert state.stop is not None
    metrics = run.columns[2:]
    best_row = best if best is not None else state.eval_rows[-1]
    return {
        "epochs_run": state.epochs_done,
        "steps": state.step,
        "evaluations": state.evaluations,
        "best_epoch": best["epoch"] if best is not None else None,
        "best_step": best["step"] if best is not None else None,
        "monitor": {"metric": stopper.metric, "mode": stopper.mode, "best": stopper.best},
        "stop_reason": state.stop.reason.value,
        "stop_detail": state.stop.detail,
        "pruned": int(state.stop.reason is StopReason.PRUNED),
        "final": {k: state.eval_rows[-1].get(k) for k in metrics},
        "best": {k: best_row.get(k) for k in metrics},
        "health": health,
        **timings,
        # Of the trained model: a LoRA model's total counts the base and the adapters.
        "parameters": parameter_counts(run.model),
        "lora": getattr(run.model.config, LORA_KEY, None),
        "padding_efficiency": (
            round(state.real_tokens / state.padded_tokens, 4) if state.padded_tokens else None
        ),
        "resumed_from_step": resumed_from,
        "setup": {
            "device": run.model.device.type,
            "processes": dist.world,
            "threads": torch.get_num_threads(),
            "precision": run.precision_note.split(" ")[0],
            "batch_size": plan.batch_size,
            "micro_batches_per_step": micro_batches_per_process(plan, dist),
            "effective_batch_size": run.effective,
        },
    }


# --------------------------------------------------------------------------- reports, models


def overfit_report(batches: int, examples: int, state: LoopState) -> dict[str, Any]:
    """Whether training on a few fixed batches drove their loss to ~0."""
    first = state.step_rows[0]["loss"] if state.step_rows else None
    losses = [r["val_loss"] for r in state.eval_rows if finite(r.get("val_loss")) is not None]
    best = min(losses) if losses else None
    return {
        "batches": batches,
        "examples": examples,
        "first_loss": first,
        "best_loss": best,
        "final_loss": losses[-1] if losses else None,
        "threshold": OVERFIT_NEAR_ZERO,
        "reached_near_zero": best is not None and best < OVERFIT_NEAR_ZERO,
        "steps": state.step,
    }


def overfit_lines(report: dict[str, Any]) -> list[str]:
    what = f"{report['batches']} fixed batch(es) ({report['examples']} examples)"
    first = "?" if report["first_loss"] is None else f"{report['first_loss']:.4f}"
    best = "?" if report["best_loss"] is None else f"{report['best_loss']:.4f}"
    if report["reached_near_zero"]:
        return [
            f"overfit check passed: the loss on {what} fell from {first} to {best} "
            f"(below {report['threshold']}) in {report['steps']} steps; the model can learn"
        ]
    return [
        f"overfit check FAILED: the loss on {what} went from {first} to {best} in "
        f"{report['steps']} steps, not below {report['threshold']}",
        "  likely causes: learning rate too low or too high; labels not matching the inputs; "
        "frozen layers; too few steps",
        "  try: more epochs (each is one pass over the fixed batches), train.lr 10x up or "
        "down, look at reports/tokenization.md",
    ]


def save_adapter_dir(
    model: Any, tokenizer: PreTrainedTokenizerBase, path: str | Path, lora: LoraParams
) -> None:
    """``path`` (``models/adapter``), atomically: a LoRA model's adapter (``adapter_config.json``
    naming the base, ``adapter_model.safetensors``) with the model's config.json (what
    prediction reads beside the weights) and tokenizer, when ``lora`` is on and not merged;
    else an empty directory."""
    from nlpflow.modeling.lora import is_lora, save_adapter

    with atomic_dir(path) as tmp:
        if lora.enabled and not lora.merge and is_lora(model):
            save_adapter(model, tmp)
            # The trained model's class (as save_pretrained records it), not the base's as
            # loaded: a BertModel base under a QA head is a BertForQuestionAnswering.
            base = model.get_base_model()
            config = copy.deepcopy(base.config)
            config.architectures = [type(base).__name__]
            config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)


def save_pretrained(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> None:
    """``save_pretrained`` of model and tokenizer into ``path``, atomically; a LoRA model
    with its adapters merged into the base weights (a whole transformers model)."""
    from transformers.utils import logging as hf_logging

    from nlpflow.modeling.lora import is_lora, merged_copy

    if is_lora(model):
        model = merged_copy(model)

    # transformers draws its own "Writing model shards" bar; keep logs quiet off a terminal.
    was_enabled = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    try:
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            # A generating model (text2text) also writes generation_config.json. Its ids
            # (padding, end, decoder start) are in config.json too, from which transformers
            # rebuilds it on loading; generation itself follows evaluate.generation. Left
            # here, it would be a file dvc.yaml does not track, outliving the model it
            # belonged to.
            (Path(tmp) / "generation_config.json").unlink(missing_ok=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
