"""The training loop: one function that reads top to bottom, helpers in sibling modules.

``train()`` is a library function: the train stage only parses arguments, loads params,
calls it and writes the metrics and plot files it returns. What it does, in order:

1. set-up: threads, processes, seed, device, precision, data, model, loss;
2. optimizer, schedule, early stopping; resume from a checkpoint of this exact run;
3. the loop: epochs of optimizer steps (length-grouped by default), each step one or more
   micro-batches per process, then the gradient sum across processes, clipping (the
   pre-clip norm is logged) and the optimizer step; validation every epoch or every N
   steps; checkpoints every N steps and at each epoch end;
4. the end: ``models/last``, ``models/best``, the loss-curve diagnosis, the summary.

A run killed at any moment and started again resumes from its newest checkpoint and ends
with the same weights, bit for bit on the CPU, as a run that was never interrupted: the
checkpoint holds the epoch's data order (the shuffle state at the epoch start and the steps
taken), every RNG state, and the running sums of the current evaluation period.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nlpflow.errors import UserError
from nlpflow.io import atomic_dir
from nlpflow.training.tracking import STEP_COLUMNS, finite

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from nlpflow.params import Params
    from nlpflow.training.probe import BatchPlan

OVERFIT_NEAR_ZERO = 0.05  # the overfit check passes when the loss on its batches gets below


class Pruning(Protocol):
    """What the loop needs of a tuning trial (``nlpflow.tuning.reporter.TrialReporter``)."""

    metric: str
    detail: str

    def report(self, epoch: int, value: float, ask: bool = True) -> bool: ...


@dataclass
class TrainResult:
    summary: dict[str, Any]  # the content of metrics/train.json
    epochs: list[dict[str, Any]]  # one row per evaluation (eval_columns)
    steps: list[dict[str, Any]]  # one row per optimizer step (STEP_COLUMNS)
    eval_columns: tuple[str, ...] = ()
    is_main: bool = True  # rank 0 (the only process that writes files)


@dataclass
class LoopState:
    """Where the loop is; together with weights, optimizer, scheduler and RNG states it is
    everything a checkpoint must restore for a resumed run to continue exactly."""

    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # optimizer steps taken in the current epoch
    step: int = 0  # optimizer steps taken in all
    evaluations: int = 0
    last_eval_step: int = -1
    epoch_rng: Any = None  # the shuffle state at the start of the current epoch
    # Training loss and accuracy since the last evaluation (sums and their denominators).
    loss_sum: float = 0.0
    loss_weight: float = 0.0
    correct: int = 0
    counted: int = 0
    # Tokens of all micro-batches so far, real and with padding (padding efficiency).
    real_tokens: int = 0
    padded_tokens: int = 0
    stop_reason: str | None = None
    stop_detail: str | None = None
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    step_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        import torch

        steps = torch.tensor(
            [
                [r[c] if r[c] is not None else math.nan for c in STEP_COLUMNS]
                for r in self.step_rows
            ],
            dtype=torch.float64,
        ).reshape(-1, len(STEP_COLUMNS))
        return {
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "step": self.step,
            "evaluations": self.evaluations,
            "last_eval_step": self.last_eval_step,
            "epoch_rng": self.epoch_rng,
            "loss_sum": self.loss_sum,
            "loss_weight": self.loss_weight,
            "correct": self.correct,
            "counted": self.counted,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "eval_rows": self.eval_rows,
            "step_rows": steps,  # a tensor: compact, and loads with weights_only
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LoopState:
        rows = []
        for values in state["step_rows"].tolist():
            row = dict(zip(STEP_COLUMNS, values, strict=True))
            row["step"] = int(row["step"])
            rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in row.items()})  # fmt: skip
        return cls(
            epoch=int(state["epoch"]),
            epoch_step=int(state["epoch_step"]),
            step=int(state["step"]),
            evaluations=int(state["evaluations"]),
            last_eval_step=int(state["last_eval_step"]),
            epoch_rng=state["epoch_rng"],
            loss_sum=float(state["loss_sum"]),
            loss_weight=float(state["loss_weight"]),
            correct=int(state["correct"]),
            counted=int(state["counted"]),
            real_tokens=int(state["real_tokens"]),
            padded_tokens=int(state["padded_tokens"]),
            stop_reason=state["stop_reason"],
            stop_detail=state["stop_detail"],
            eval_rows=list(state["eval_rows"]),
            step_rows=rows,
        )


def _print(line: str) -> None:
    print(line, flush=True)


def _whole(value: float) -> float | int:
    """3.0 -> 3 (an epoch label); fractional epochs keep 3 decimals."""
    return int(value) if float(value).is_integer() else round(value, 3)


def train(
    params: Params,
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
    size and the device come from the probe (``plan``). ``on_checkpoint(step)`` runs after
    each checkpoint is written (tests use it to interrupt a run). ``pruning``: a tuning trial
    asked after each validation whether to stop (``stop_reason: pruned``). Under ``torchrun``
    every process calls this; only rank 0 writes files and logs.
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
    params: Params,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    models_dir: Path,
    checkpoints_dir: Path,
    device: torch.device,
    dist: Any,
    log: Callable[[str], None],
    on_checkpoint: Callable[[int], None] | None,
    pruning: Pruning | None,
    tensorboard_dir: str | Path | None,
) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    from nlpflow.logs import on_terminal
    from nlpflow.modeling.build import build_model, without_regularisation
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.seeding import seed_everything
    from nlpflow.training.checkpoint import CheckpointDir, capture_rng, restore_rng, run_sections
    from nlpflow.training.data import (
        PaddedSplit,
        data_info,
        fingerprint_split,
        load_tokenized,
        max_sequence_length,
    )
    from nlpflow.training.device import autocast, resolve_precision
    from nlpflow.training.early_stopping import EarlyStopping
    from nlpflow.training.health import diagnose, health_summary
    from nlpflow.training.loss import Criterion, class_weights
    from nlpflow.training.metrics import evaluate, is_bio
    from nlpflow.training.optim import build_optimizer
    from nlpflow.training.sampling import epoch_steps, micro_batches, shard
    from nlpflow.training.schedules import build_scheduler, warmup_steps
    from nlpflow.training.tracking import TensorBoard, eval_columns

    started = time.perf_counter()
    tp = params.train
    es = tp.early_stopping
    overfit = tp.overfit_batches > 0

    # ---- set-up: seed, data, model, precision, loss --------------------------------------
    seed_everything(params.seed)
    data = load_tokenized(data_dir)
    if "validation" not in data and not overfit:
        raise UserError(f"{data_dir} has no 'validation' split to evaluate and stop early on")
    info = data_info(data, data_dir)
    if es.metric == "entity_f1" and (info.task != "token" or not is_bio(info.label_names)):
        raise UserError(
            "params.yaml: train.early_stopping.metric entity_f1 needs a token task with BIO "
            f"tags; this is a {info.task} task with labels {info.label_names[:6]}"
        )
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=params.model.trust_remote_code)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = PaddedSplit.from_dataset(data["train"], pad_id)
    val_set = train_set if overfit else PaddedSplit.from_dataset(data["validation"], pad_id)
    if len(train_set) == 0 or len(val_set) == 0:
        raise UserError(f"{data_dir}: the train and validation splits must not be empty")

    effective = plan.batch_size * plan.accumulation_steps
    if overfit:
        # N fixed batches of a seeded draw, validated on themselves; regularisation off.
        draw = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(params.seed))
        train_set = val_set = train_set.subset(draw[: tp.overfit_batches * effective])
    model_params = without_regularisation(params.model) if overfit else params.model
    model = build_model(
        model_params, tokenizer, info.label_names, max_sequence_length(data), info.task
    )
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
    dist.broadcast_parameters(model)
    if dist.active:
        torch.manual_seed(params.seed + 1 + dist.rank)  # each process its own dropout masks
    precision, precision_note = resolve_precision(tp.precision, device)
    scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None
    forward = model
    if tp.compile:
        forward = torch.compile(model, dynamic=True)  # type: ignore[assignment]

    weights = class_weights(tp.class_weights, info.label_names, train_set.labels.reshape(-1))
    smoothing = 0.0 if overfit else tp.label_smoothing
    criterion = Criterion(weights, smoothing).to(device)
    extra_metrics = ("entity_f1",) if info.task == "token" and is_bio(info.label_names) else ()
    columns = eval_columns(extra_metrics)

    # ---- optimizer, schedule, shuffling, early stopping ----------------------------------
    steps_per_epoch = math.ceil(len(train_set) / effective)
    total_steps = tp.epochs * steps_per_epoch
    if tp.max_steps > 0:
        total_steps = min(total_steps, tp.max_steps)
    optimizer = build_optimizer(
        model, tp.lr, 0.0 if overfit else tp.weight_decay, tp.optimizer, tp.momentum
    )
    scheduler = build_scheduler(
        optimizer, total_steps, tp.warmup_ratio, tp.schedule, tp.warmup_steps
    )
    shuffle = torch.Generator().manual_seed(params.seed)  # its own generator: resumable
    if overfit:
        stopper = EarlyStopping("loss", "min", 0, target=OVERFIT_NEAR_ZERO)
    else:
        stopper = EarlyStopping(
            es.metric, es.mode, es.patience, es.min_delta, es.target, es.divergence
        )
    state = LoopState()
    trainable = [p for p in model.parameters() if p.requires_grad]

    # ---- resume: only from a checkpoint of this exact run --------------------------------
    runtime = {"processes": dist.world, "threads": torch.get_num_threads()}
    sections = run_sections(params, plan, fingerprint_split(data["train"]), runtime)
    ckpts = CheckpointDir(checkpoints_dir, sections, log, keep=tp.keep_checkpoints)
    resume_path = ckpts.find_resumable() if dist.is_main else None
    dist.barrier()  # stale checkpoints are gone before any process looks
    resume_path = dist.broadcast(resume_path)
    resumed_from: int | None = None
    if resume_path is not None:
        saved = ckpts.load(resume_path, model, device)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if scaler is not None and "scaler" in saved:
            scaler.load_state_dict(saved["scaler"])
        stopper.load_state_dict(saved["early_stopping"])
        state = LoopState.from_state(saved["loop"])
        restore_rng(saved["rng"][dist.rank], shuffle)  # last: building the model drew from it
        resumed_from = state.step
        if state.stop_reason == "pruned":
            # Pruning is the tuner's decision about one trial, not a property of the params:
            # this run (a plain rerun, or another trial) trains on.
            state.stop_reason = state.stop_detail = None
            log("the checkpoint's run was pruned by tuning; this run trains on")
        where = f"step {state.step}, epoch {state.epoch}"
        if state.epoch_step:
            where += f" + {state.epoch_step}/{steps_per_epoch} steps"
        log(f"resuming from {where} ({resume_path})")

    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in trainable)
    warm = warmup_steps(total_steps, tp.warmup_ratio, tp.warmup_steps)
    micro_per_process = math.ceil(math.ceil(effective / dist.world) / plan.batch_size)
    log(
        f"train: {info.task} task, {len(info.label_names)} labels; {len(train_set)} examples, "
        f"{len(val_set)} validation; {n_params:,} parameters ({n_trainable:,} trained) on "
        f"{device.type} x {dist.world} process(es), {torch.get_num_threads()} thread(s), "
        f"{precision_note}; batch {plan.batch_size} x {micro_per_process} micro-batches"
        f"{f' x {dist.world} processes' if dist.active else ''} = {effective}, "
        f"{steps_per_epoch} steps/epoch x {tp.epochs} epochs"
        f"{f' (max {tp.max_steps} steps)' if tp.max_steps else ''}; {tp.optimizer} lr "
        f"{tp.lr:g} ({tp.schedule}, warm-up {warm} steps); {tp.batching} batches"
    )
    if overfit:
        log(
            f"overfit check: {tp.overfit_batches} fixed batch(es), {len(train_set)} examples, "
            "dropout, weight decay and label smoothing off; validating on the same examples"
        )

    # ---- helpers of the loop: evaluate, checkpoint ----------------------------------------
    board = TensorBoard(Path(tensorboard_dir) if tensorboard_dir and tp.tensorboard else None, log)
    if not dist.is_main:
        board = TensorBoard(None, log)
    for row in state.step_rows:  # a resumed run's event files start with its history
        board.step(row)
    for row in state.eval_rows:
        board.evaluation(row)

    def epoch_label() -> float | int:
        return _whole(state.epoch + state.epoch_step / steps_per_epoch)

    def run_evaluation() -> dict[str, Any]:
        val = evaluate(
            forward, val_set, plan.max_fitting_batch_size, device, criterion, dist,
            info.label_names, precision,
        )  # fmt: skip
        state.evaluations += 1
        state.last_eval_step = state.step
        row: dict[str, Any] = {
            "epoch": epoch_label(),
            "step": state.step,
            "train_loss": state.loss_sum / state.loss_weight if state.loss_weight else None,
            "train_accuracy": state.correct / state.counted if state.counted else None,
            **{f"val_{k}": v for k, v in val.items()},
        }
        state.eval_rows.append(row)
        board.evaluation(row)
        state.loss_sum = state.loss_weight = 0.0
        state.correct = state.counted = 0

        monitored = val[stopper.metric]
        improved = stopper.update(monitored, row["epoch"], state.step)
        if improved and dist.is_main:
            ckpts.save_best(
                model, step=state.step, epoch=row["epoch"], evaluation=state.evaluations,
                metric=stopper.metric, value=monitored,
            )  # fmt: skip
        if state.stop_reason is None:
            verdict = stopper.stop_reason()
            if verdict is not None:
                state.stop_reason, state.stop_detail = verdict
        # Rank 0 reports every evaluation to the tuner, the last one too (the study's curves and
        # the median rule for later trials need it), and asks about pruning only while the
        # run would go on; every process learns the answer (one broadcast).
        going_on = state.stop_reason is None
        pruned: str | None = None
        if dist.is_main and pruning is not None:
            value = val.get(getattr(pruning, "metric", stopper.metric), monitored)
            if pruning.report(state.evaluations, value, ask=going_on) and going_on:
                pruned = getattr(pruning, "detail", "") or "pruned by tuning"
        if going_on:
            pruned = dist.broadcast(pruned)
            if pruned is not None:
                state.stop_reason, state.stop_detail = "pruned", pruned
        metrics = "  ".join(
            f"{k} {row[k]:.4f}" for k in columns[2:] if finite(row.get(k)) is not None
        )
        log(
            f"epoch {row['epoch']:>5}/{tp.epochs}  step {state.step:>6}  {metrics}  "
            f"lr {scheduler.get_last_lr()[0]:.2e}{'  *best' if improved else ''}"
        )
        return row

    def save_checkpoint() -> None:
        rng = dist.gather(capture_rng(shuffle))
        if dist.is_main:
            saved = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "early_stopping": stopper.state_dict(),
                "loop": state.to_state(),
                "rng": rng,
            }
            if scaler is not None:
                saved["scaler"] = scaler.state_dict()
            ckpts.save(state.step, model, saved, epoch=epoch_label())
        dist.barrier()
        if on_checkpoint is not None:
            on_checkpoint(state.step)

    # ---- the loop: epochs of optimizer steps, each over accumulated micro-batches --------
    train_seconds, trained_examples = 0.0, 0
    show_bar = on_terminal() and dist.is_main
    rank, world = dist.rank, dist.world
    while state.stop_reason is None:
        if overfit:
            steps = list(torch.arange(len(train_set)).split(effective))  # fixed batches
        elif state.epoch_step == 0:
            state.epoch_rng = shuffle.get_state()
            steps = epoch_steps(train_set.lengths, effective, shuffle, tp.batching)
        else:  # resumed mid-epoch: the same order again, from the epoch's shuffle state
            shuffle.set_state(state.epoch_rng)
            steps = epoch_steps(train_set.lengths, effective, shuffle, tp.batching)
        model.train()
        bar = tqdm(
            total=len(steps), initial=state.epoch_step, desc=f"epoch {state.epoch + 1}",
            leave=False, disable=not show_bar,
        )  # fmt: skip
        period_start = time.perf_counter()
        for chunk in steps[state.epoch_step :]:
            # -- forward and backward, micro-batch by micro-batch; each adds its share of the
            #    step's mean loss, whatever the split into micro-batches and processes
            targets = train_set.targets(chunk)  # the step's counted labels, all processes
            denominator = criterion.denominator(targets)
            step_loss = torch.zeros((), device=device, dtype=torch.float64)
            correct = torch.zeros((), device=device, dtype=torch.float64)
            real = padded = 0  # tokens of this process's micro-batches, without and with padding
            mine = shard(chunk, rank, world)
            for micro in micro_batches(mine, plan.batch_size, train_set.lengths):
                batch = train_set.batch(micro, device)
                labels = batch.pop("labels")
                with autocast(device, precision):
                    logits = forward(**batch).logits
                loss = criterion.sum(logits, labels) / denominator
                (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += loss.detach().double()
                correct += (logits.detach().argmax(-1) == labels).sum().double()
                lengths = train_set.lengths[micro]
                real += int(lengths.sum())
                padded += int(lengths.max()) * len(micro)

            # -- sum over processes, gradient norm (before clipping), the one host sync
            tokens = torch.tensor([real, padded], device=device, dtype=torch.float64)
            summed = dist.sum_gradients(
                trainable, torch.cat([step_loss[None], correct[None], tokens])
            )
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in trainable if p.grad is not None]
            )
            loss_value, correct_value, real_value, padded_value, norm_value = torch.cat(
                [summed.double(), grad_norm.double().reshape(1)]
            ).tolist()
            if not math.isfinite(loss_value) or (scaler is None and not math.isfinite(norm_value)):
                # Stop at once: a step on non-finite gradients would ruin the weights.
                what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                advice = "lower train.lr" + (
                    "" if tp.max_grad_norm > 0 else " or set train.max_grad_norm (clipping)"
                )
                state.stop_reason = "non_finite_loss"
                state.stop_detail = (
                    f"non-finite {what} ({loss_value if what == 'loss' else norm_value}) at "
                    f"step {state.step + 1} (epoch {state.epoch + 1}); {advice}"
                )
                optimizer.zero_grad(set_to_none=True)
                log(f"stopping: {state.stop_detail}")
                break
            if tp.max_grad_norm > 0:
                torch.nn.utils.clip_grads_with_norm_(trainable, tp.max_grad_norm, grad_norm)

            # -- optimizer and schedule step
            lr = scheduler.get_last_lr()[0]
            if scaler is not None:
                scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.epoch_step += 1
            counted = int(targets.numel())
            state.loss_sum += loss_value * denominator
            state.loss_weight += denominator
            state.correct += int(correct_value)
            state.real_tokens += int(real_value)
            state.padded_tokens += int(padded_value)
            state.counted += counted
            trained_examples += len(chunk)
            row = {
                "step": state.step,
                "epoch": round(state.epoch + state.epoch_step / steps_per_epoch, 4),
                "loss": loss_value,
                "lr": lr,
                "grad_norm": norm_value,
            }
            state.step_rows.append(row)
            board.step(row)
            if show_bar:
                took = time.perf_counter() - period_start
                bar.set_postfix(
                    loss=f"{loss_value:.4f}", ex_s=f"{trained_examples / max(took, 1e-9):.0f}",
                    refresh=False,
                )  # fmt: skip
                bar.update(1)

            # -- what is due after this step: epoch end, stop, evaluation, checkpoint
            epoch_end = state.epoch_step == len(steps)
            if epoch_end:
                state.epoch += 1
                state.epoch_step = 0
            if tp.max_steps and state.step >= tp.max_steps:
                state.stop_reason = "max_steps"
                state.stop_detail = f"completed train.max_steps = {tp.max_steps} steps"
            elif epoch_end and state.epoch >= tp.epochs:
                state.stop_reason = "max_epochs"
                state.stop_detail = f"completed all {tp.epochs} epochs"
            due = (
                (tp.eval_every_steps > 0 and state.step % tp.eval_every_steps == 0)
                or (tp.eval_every_steps == 0 and epoch_end)
                or state.stop_reason is not None
            )
            if due:
                train_seconds += time.perf_counter() - period_start
                run_evaluation()
                period_start = time.perf_counter()
            every = tp.checkpoint_every_steps
            if epoch_end or state.stop_reason is not None or (every and state.step % every == 0):
                train_seconds += time.perf_counter() - period_start
                save_checkpoint()
                period_start = time.perf_counter()
            if state.stop_reason is not None or epoch_end:
                break
        train_seconds += time.perf_counter() - period_start
        bar.close()

    # A stop inside a step (non-finite loss): evaluate what there is, so metrics exist.
    if state.last_eval_step != state.step or not state.eval_rows:
        run_evaluation()
        save_checkpoint()
    if state.stop_reason in ("early_stopping", "target_reached", "diverged", "pruned"):
        log(f"{state.stop_reason.replace('_', ' ')}: {state.stop_detail}")

    # ---- the end: models, diagnosis, summary ---------------------------------------------
    if dist.is_main:
        save_pretrained(model, tokenizer, models_dir / "last")
    final = {k: state.eval_rows[-1].get(k) for k in columns[2:]}
    best_meta = ckpts.load_best(model, device) if dist.is_main else None
    if best_meta is not None:
        best_row = next(
            (r for r in state.eval_rows if r["step"] == best_meta["step"]), state.eval_rows[-1]
        )
    else:
        best_row = state.eval_rows[-1]  # no finite value of the metric: the last weights
    if dist.is_main:
        save_pretrained(model, tokenizer, models_dir / "best")
    board.close()

    findings = diagnose(
        [r["loss"] for r in state.step_rows], state.eval_rows, overfit_check=overfit
    )
    for finding in findings:
        for line in finding.lines():
            log(line)
    if not findings:
        log("health: the loss curves show none of the known failure shapes")

    summary: dict[str, Any] = {
        "epochs_run": epoch_label(),
        "steps": state.step,
        "evaluations": state.evaluations,
        "best_epoch": best_row["epoch"] if best_meta is not None else None,
        "best_step": best_row["step"] if best_meta is not None else None,
        "monitor": {"metric": stopper.metric, "mode": stopper.mode, "best": stopper.best},
        "stop_reason": state.stop_reason,
        "stop_detail": state.stop_detail,
        "pruned": int(state.stop_reason == "pruned"),
        "final": final,
        "best": {k: best_row.get(k) for k in columns[2:]},
        "health": health_summary(findings),
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "examples_per_second": (
            round(trained_examples / train_seconds, 1) if train_seconds > 0 else None
        ),
        "padding_efficiency": (
            round(state.real_tokens / state.padded_tokens, 4) if state.padded_tokens else None
        ),
        "resumed_from_step": resumed_from,
        "setup": {
            "device": device.type,
            "processes": dist.world,
            "threads": torch.get_num_threads(),
            "precision": precision_note.split(" ")[0],
            "batch_size": plan.batch_size,
            "micro_batches_per_step": micro_per_process,
            "effective_batch_size": effective,
        },
    }
    if overfit:
        summary["overfit_batches"] = overfit_report(tp.overfit_batches, len(train_set), state)
        for line in overfit_lines(summary["overfit_batches"]):
            log(line)
    log(
        f"train: {state.stop_reason} ({state.stop_detail}); best epoch "
        f"{summary['best_epoch']}, {summary['seconds']}s"
    )
    return TrainResult(
        finite(summary), finite(state.eval_rows), finite(state.step_rows), columns, dist.is_main
    )


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


def save_pretrained(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> None:
    """``save_pretrained`` of model and tokenizer into ``path``, atomically."""
    from transformers.utils import logging as hf_logging

    # transformers draws its own "Writing model shards" bar; keep logs quiet off a terminal.
    was_enabled = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    try:
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
