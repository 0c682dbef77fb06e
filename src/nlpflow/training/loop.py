"""The training loop: one readable function, top to bottom, helpers in sibling modules.

``train()`` is a library function: the train stage only parses arguments, loads params,
calls it and writes the metrics and plot files it returns.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.io import atomic_dir, atomic_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from nlpflow.params import Params
    from nlpflow.training.probe import BatchPlan

EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro")
STEP_COLUMNS = ("step", "loss", "lr", "grad_norm")
METRIC_KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1_macro")


@dataclass
class TrainResult:
    summary: dict[str, Any]  # the content of metrics/train.json
    epochs: list[dict[str, Any]]  # one row per evaluated epoch (EPOCH_COLUMNS)
    steps: list[dict[str, Any]]  # one row per optimizer step (STEP_COLUMNS)


def _print(line: str) -> None:
    print(line, flush=True)


def train(
    params: Params,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    models_dir: str | Path,
    checkpoints_dir: str | Path,
    *,
    log: Callable[[str], None] = _print,
    on_epoch_end: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``params.model`` on ``data_dir``; write ``models_dir/{best,last}`` and checkpoints.

    Reads the ``seed``, ``model`` and ``train`` sections of ``params``; the batch split and
    device come from the probe (``plan``). ``on_epoch_end(epoch)`` runs after each epoch's
    checkpoint is written (tests use it to interrupt a run).
    """
    import torch
    from tqdm.auto import tqdm

    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.seeding import seed_everything
    from nlpflow.training.checkpoint import CheckpointDir, capture_rng, restore_rng, run_sections
    from nlpflow.training.data import (
        PaddedSplit,
        fingerprint_split,
        label_names,
        load_tokenized,
        max_sequence_length,
    )
    from nlpflow.training.device import autocast, resolve_device
    from nlpflow.training.early_stopping import EarlyStopping
    from nlpflow.training.metrics import evaluate
    from nlpflow.training.optim import build_optimizer
    from nlpflow.training.schedules import build_scheduler

    started = time.perf_counter()
    tp = params.train
    es = tp.early_stopping

    # ---- setup: seed, device, data, model ------------------------------------------------
    seed_everything(params.seed)
    device = resolve_device(plan.device)
    data = load_tokenized(data_dir)
    if "validation" not in data:
        raise UserError(f"{data_dir} has no 'validation' split to evaluate and stop early on")
    labels = label_names(data)
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=params.model.trust_remote_code)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = PaddedSplit.from_dataset(data["train"], pad_id)
    val_set = PaddedSplit.from_dataset(data["validation"], pad_id)
    if len(train_set) == 0 or len(val_set) == 0:
        raise UserError(f"{data_dir}: the train and validation splits must not be empty")
    model = build_model(params.model, tokenizer, labels, max_sequence_length(data))
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtypes only

    # ---- optimizer, schedule, shuffling, early stopping ----------------------------------
    effective = plan.batch_size * plan.accumulation_steps
    steps_per_epoch = math.ceil(len(train_set) / effective)
    total_steps = tp.epochs * steps_per_epoch
    optimizer = build_optimizer(model, tp.lr, tp.weight_decay)
    scheduler = build_scheduler(optimizer, total_steps, tp.warmup_ratio, tp.schedule)
    shuffle = torch.Generator().manual_seed(params.seed)  # its own generator: resumable
    stopper = EarlyStopping(es.metric, es.mode, es.patience, es.min_delta)
    epoch_rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    epoch, global_step = 0, 0
    stop_reason: str | None = None
    stop_detail: str | None = None

    # ---- resume: only from a checkpoint of this exact run --------------------------------
    ckpts = CheckpointDir(
        checkpoints_dir, run_sections(params, plan, fingerprint_split(data["train"])), log
    )
    resumed_from: int | None = None
    resume_path = ckpts.find_resumable()
    if resume_path is not None:
        state = ckpts.load(resume_path, model, device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        epoch_rows, step_rows = state["history"]["epochs"], state["history"]["steps"]
        epoch, global_step = int(state["epoch"]), int(state["global_step"])
        stop_reason, stop_detail = state["stop_reason"], state["stop_detail"]
        restore_rng(state["rng"], shuffle)  # last: building the model above drew from the RNG
        resumed_from = epoch
        log(f"resuming from epoch {epoch} ({resume_path})")

    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"train: {len(train_set)} examples, {len(val_set)} validation, {n_params:,} parameters "
        f"on {device.type}; batch {plan.batch_size} x {plan.accumulation_steps} accumulation "
        f"= {effective}, {steps_per_epoch} steps/epoch x {tp.epochs} epochs, "
        f"lr {tp.lr:g} ({tp.schedule}, warm-up {tp.warmup_ratio:g})"
    )

    # ---- the loop: epochs of optimizer steps, each over accumulated micro-batches --------
    trainable = [p for p in model.parameters() if p.requires_grad]
    train_seconds, trained_examples = 0.0, 0
    show_bar = sys.stderr.isatty()  # progress on a terminal; quiet in CI, DVC logs, tests
    while stop_reason is None and epoch < tp.epochs:
        epoch += 1
        model.train()
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train_set), generator=shuffle)
        loss_sum, seen = 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", leave=False, disable=not show_bar)
        for chunk in order.split(effective):
            # -- forward and backward, micro-batch by micro-batch
            step_loss = torch.zeros((), device=device)
            for micro in chunk.split(plan.batch_size):
                batch = train_set.batch(micro, device)
                with autocast(device):
                    loss = model(**batch).loss
                # Weighted by its share of the step, so the gradient is the mean over the
                # whole effective batch however the probe split it (and for a short last step).
                loss = loss * (len(micro) / len(chunk))
                loss.backward()
                step_loss += loss.detach().float()

            # -- gradient norm (logged before clipping) and the one host sync of the step
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in trainable if p.grad is not None]
            )
            loss_value, norm_value = torch.stack([step_loss, grad_norm.float()]).tolist()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                # Stop at once: a step on non-finite gradients would ruin the weights.
                what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                stop_reason = "non_finite_loss"
                advice = "lower train.lr" + (
                    "" if tp.max_grad_norm > 0 else " or set train.max_grad_norm (clipping)"
                )
                stop_detail = (
                    f"non-finite {what} ({loss_value if what == 'loss' else norm_value}) at "
                    f"step {global_step + 1} (epoch {epoch}); {advice}"
                )
                optimizer.zero_grad(set_to_none=True)
                break
            if tp.max_grad_norm > 0:
                torch.nn.utils.clip_grads_with_norm_(trainable, tp.max_grad_norm, grad_norm)

            # -- optimizer and schedule step
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            step_rows.append(
                {"step": global_step, "loss": loss_value, "lr": lr, "grad_norm": norm_value}
            )
            loss_sum += loss_value * len(chunk)
            seen += len(chunk)
            if show_bar:
                bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
                bar.update(1)
        bar.close()
        train_seconds += time.perf_counter() - epoch_start
        trained_examples += seen
        if stop_reason is not None:
            epoch -= 1  # the interrupted epoch was not completed (nor evaluated)
            log(f"stopping: {stop_detail}")
            break

        # -- evaluate on validation
        val = evaluate(model, val_set, plan.max_fitting_batch_size, device)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_f1_macro": val["f1_macro"],
        }
        epoch_rows.append(row)

        # -- best model and early stopping
        monitored = val[es.metric]
        improved = stopper.update(monitored, epoch)
        if improved:
            ckpts.save_best(epoch, model, {"metric": es.metric, "value": monitored})
        if stopper.should_stop:
            stop_reason, stop_detail = "early_stopping", stopper.reason()
        elif epoch >= tp.epochs:
            stop_reason, stop_detail = "max_epochs", f"completed all {tp.epochs} epochs"
        log(
            f"epoch {epoch:>3}/{tp.epochs}  train_loss {row['train_loss']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}  "
            f"val_f1 {row['val_f1_macro']:.4f}  lr {scheduler.get_last_lr()[0]:.2e}  "
            f"{time.perf_counter() - epoch_start:.1f}s{'  *best' if improved else ''}"
        )
        if stop_reason == "early_stopping":
            log(f"early stopping: {stop_detail}")

        # -- checkpoint (atomic), then the hook
        ckpts.save(
            epoch,
            model,
            {
                "epoch": epoch,
                "global_step": global_step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "early_stopping": stopper.state_dict(),
                "history": {"epochs": epoch_rows, "steps": step_rows},
                "stop_reason": stop_reason,
                "stop_detail": stop_detail,
                "rng": capture_rng(shuffle),
            },
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    # ---- final models: "last" as trained, "best" by the monitored metric -----------------
    models_dir = Path(models_dir)
    save_pretrained(model, tokenizer, models_dir / "last")
    if not epoch_rows:
        # Stopped before the first evaluation: evaluate what there is, so metrics exist.
        val = evaluate(model, val_set, plan.max_fitting_batch_size, device)
        final = {
            "train_loss": None,
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_f1_macro": val["f1_macro"],
        }
    else:
        final = {k: epoch_rows[-1][k] for k in METRIC_KEYS}
    best_epoch = ckpts.load_best(model, device)
    save_pretrained(model, tokenizer, models_dir / "best")  # the last weights if no best
    best_row = next((r for r in epoch_rows if r["epoch"] == best_epoch), None)
    best = {k: best_row[k] for k in METRIC_KEYS} if best_row else dict(final)

    summary = {
        "epochs_run": epoch,
        "steps": global_step,
        "best_epoch": best_epoch,
        "monitor": {"metric": es.metric, "mode": es.mode, "best": stopper.best},
        "stop_reason": stop_reason,
        "stop_detail": stop_detail,
        "final": final,
        "best": best,
        "seconds": round(time.perf_counter() - started, 2),
        "examples_per_second": (
            round(trained_examples / train_seconds, 1) if train_seconds else None
        ),
        "resumed_from_epoch": resumed_from,
    }
    log(f"train: {stop_reason} ({stop_detail}); best epoch {best_epoch}, {summary['seconds']}s")
    return TrainResult(_finite(summary), _finite(epoch_rows), _finite(step_rows))


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


def _finite(value: Any) -> Any:
    """NaN and inf become None: JSON has no such numbers, and DVC reads None as missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_tsv(path: str | Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """A tab-separated plot file for ``dvc plots``, written atomically."""
    with atomic_file(path) as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
