"""Everything a training run is built from: data, model, precision, loss, optimizer, schedule.

:func:`build_run` reads the ``seed``, ``model`` and ``train`` params and the probe's batch
plan and returns a :class:`Run`; it draws from the global RNGs in a fixed order (the seed,
then the model's initial weights), so the same params build the same run, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from nlpflow.contracts import TrainInputs
    from nlpflow.families.train import TrainFamily
    from nlpflow.training.data import PaddedSplit
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.loss import Criterion
    from nlpflow.training.probe import BatchPlan

Task = str  # the task family's name (DataMeta.task): "sequence", "token", ...


@dataclass
class Run:
    """The parts of one training run, built once, before the loop starts."""

    task: Task
    family: TrainFamily  # the task's training hooks (batches, loss, validation metrics)
    label_names: list[str]  # K names, in the order of the label ids
    tokenizer: PreTrainedTokenizerBase
    train_set: PaddedSplit
    val_set: PaddedSplit  # the train batches themselves in the overfit check
    train_fingerprint: str  # of the tokenized train and validation splits: checkpoint identity
    model: PreTrainedModel
    forward: Any  # the model, or its torch.compile wrapper
    trainable: list[torch.nn.Parameter]
    precision: torch.dtype | None  # autocast dtype; None for fp32
    precision_note: str  # "fp32", "bf16 autocast", ...
    scaler: torch.amp.GradScaler | None  # fp16 only
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LambdaLR
    shuffle: torch.Generator  # the data order's own generator (resumable)
    columns: tuple[str, ...]  # of each evaluation row (tracking.eval_columns)
    effective: int  # rows per optimizer step, all processes and micro-batches
    steps_per_epoch: int
    total_steps: int  # for the schedule: epochs x steps per epoch, capped by max_steps
    overfit: bool  # train.overfit_batches > 0


def build_run(
    params: TrainInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    device: torch.device,
    dist: Distributed,
) -> Run:
    """Seed, load the data, build the model and everything that trains it.

    Raises :class:`UserError` for data the run cannot use (see :func:`load_splits`).
    """
    import torch

    from nlpflow.modeling.build import build_model, without_regularisation
    from nlpflow.seeding import seed_everything
    from nlpflow.training.device import resolve_precision
    from nlpflow.training.optim import build_optimizer
    from nlpflow.training.schedules import build_scheduler

    tp = params.train
    overfit = tp.overfit_batches > 0
    effective = plan.batch_size * plan.accumulation_steps
    seed_everything(params.seed)
    splits = load_splits(params, data_dir, tokenizer_dir, effective)
    train_set, label_names = splits.train, splits.label_names
    family = splits.family

    # ---- model, precision, loss (regularisation off in the overfit check)
    model_params = without_regularisation(params.model) if overfit else params.model
    model = build_model(model_params, splits.tokenizer, label_names, splits.max_length, splits.task)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
    dist.broadcast_parameters(model)
    if dist.active:
        torch.manual_seed(params.seed + 1 + dist.rank)  # each process its own dropout masks
    # The probe decides (train.precision auto on the CPU is measured); older plans have none.
    precision, precision_note = resolve_precision(plan.precision or tp.precision, device)
    criterion = family.criterion(tp, label_names, train_set, overfit)
    family.prepare_model(model, criterion)

    # ---- optimizer and schedule over the run's optimizer steps
    steps_per_epoch = math.ceil(len(train_set) / effective)
    total_steps = tp.epochs * steps_per_epoch
    if tp.max_steps > 0:
        total_steps = min(total_steps, tp.max_steps)
    optimizer = build_optimizer(
        model, tp.lr, 0.0 if overfit else tp.weight_decay, tp.optimizer, tp.momentum
    )
    return Run(
        task=splits.task,
        family=family,
        label_names=label_names,
        tokenizer=splits.tokenizer,
        train_set=train_set,
        val_set=splits.validation,
        train_fingerprint=splits.train_fingerprint,
        model=model,
        forward=torch.compile(model, dynamic=True) if tp.compile else model,
        trainable=[p for p in model.parameters() if p.requires_grad],
        precision=precision,
        precision_note=precision_note,
        scaler=torch.amp.GradScaler("cuda") if precision == torch.float16 else None,
        criterion=criterion.to(device),
        optimizer=optimizer,
        scheduler=build_scheduler(
            optimizer, total_steps, tp.warmup_ratio, tp.schedule, tp.warmup_steps
        ),
        shuffle=torch.Generator().manual_seed(params.seed),
        columns=family.eval_columns(label_names),
        effective=effective,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        overfit=overfit,
    )


@dataclass
class Splits:
    """The tokenized data a run trains and validates on, as padded tensors."""

    task: Task
    family: TrainFamily
    label_names: list[str]
    tokenizer: PreTrainedTokenizerBase
    train: PaddedSplit
    validation: PaddedSplit  # the train batches themselves in the overfit check
    train_fingerprint: str  # of the tokenized train and validation splits (checkpoint identity)
    max_length: int  # longest sequence of any split, tokens


def load_splits(
    params: TrainInputs, data_dir: str | Path, tokenizer_dir: str | Path, effective: int
) -> Splits:
    """The train and validation splits of ``data_dir``; in the overfit check
    (``train.overfit_batches: N``) N fixed batches of ``effective`` rows, a seeded draw,
    as both.

    Raises :class:`UserError`: no validation split (outside the overfit check), an empty
    split, a monitored metric the task does not measure (``entity_f1`` without BIO tags).
    """
    import torch

    from nlpflow.families.train import train_family
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.training.data import (
        data_info,
        fingerprint_split,
        load_tokenized,
        max_sequence_length,
    )

    tp = params.train
    overfit = tp.overfit_batches > 0
    data = load_tokenized(data_dir)
    if "validation" not in data and not overfit:
        raise UserError(f"{data_dir} has no 'validation' split to evaluate and stop early on")
    info = data_info(data, data_dir)
    family = train_family(info.task)
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=params.model.trust_remote_code)
    family.configure(tp, tokenizer)
    family.check_monitor(tp.early_stopping.metric, info.label_names)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = family.padded_split(data["train"], pad_id)
    val_set = train_set if overfit else family.padded_split(data["validation"], pad_id)
    if len(train_set) == 0 or len(val_set) == 0:
        raise UserError(f"{data_dir}: the train and validation splits must not be empty")
    if overfit:  # its own generator: the global RNGs draw the model's weights next
        draw = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(params.seed))
        train_set = val_set = train_set.subset(draw[: tp.overfit_batches * effective])
    return Splits(
        info.task, family, list(info.label_names), tokenizer, train_set, val_set,
        # Validation too: early stopping, the best checkpoint and the evaluation rows a
        # checkpoint holds depend on it, so new validation data must not resume.
        fingerprint_split(data["train"]) + ("" if overfit else fingerprint_split(data["validation"])),
        max_sequence_length(data),
    )  # fmt: skip


def describe(run: Run, params: TrainInputs, plan: BatchPlan, dist: Distributed) -> list[str]:
    """The run's set-up for the console: task, data, model size, device, batches, recipe;
    in the overfit check a second line says what it does."""
    import torch

    from nlpflow.training.schedules import warmup_steps

    tp = params.train
    n_params = sum(p.numel() for p in run.model.parameters())
    n_trainable = sum(p.numel() for p in run.trainable)
    share = f"{n_trainable / n_params:.2%} = " if n_params and n_trainable < n_params else ""
    lora = getattr(run.model.config, "nlpflow_lora", None)
    adapted = ""
    if lora is not None:
        adapted = (
            f", LoRA rank {lora['rank']} alpha {lora['alpha']} on "
            f"{'/'.join(lora['target_modules'])} of {lora['base_model']}"
        )
    warm = warmup_steps(run.total_steps, tp.warmup_ratio, tp.warmup_steps)
    lines = [
        f"train: {run.task} task, {len(run.label_names)} labels; "
        f"{len(run.train_set)} examples, {len(run.val_set)} validation; {n_params:,} parameters "
        f"({share}{n_trainable:,} trained){adapted} on {run.model.device.type} x "
        f"{dist.world} process(es), "
        f"{torch.get_num_threads()} thread(s), {run.precision_note}; batch {plan.batch_size} x "
        f"{micro_batches_per_process(plan, dist)} micro-batches"
        f"{f' x {dist.world} processes' if dist.active else ''} = {run.effective}, "
        f"{run.steps_per_epoch} steps/epoch x {tp.epochs} epochs"
        f"{f' (max {tp.max_steps} steps)' if tp.max_steps else ''}; {tp.optimizer} lr "
        f"{tp.lr:g} ({tp.schedule}, warm-up {warm} steps); {tp.batching} batches"
    ]
    if run.overfit:
        lines.append(
            f"overfit check: {tp.overfit_batches} fixed batch(es), {len(run.train_set)} "
            "examples, dropout, weight decay and label smoothing off; validating on the same "
            "examples"
        )
    return lines


def micro_batches_per_process(plan: BatchPlan, dist: Distributed) -> int:
    """Forward/backward passes per optimizer step on each process (at most)."""
    effective = plan.batch_size * plan.accumulation_steps
    return math.ceil(math.ceil(effective / dist.world) / plan.batch_size)
