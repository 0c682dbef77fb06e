"""The learning-rate range test (Smith 2017; fastai's and Lightning's ``lr_find``).

Train briefly from the initial weights (the same seed, hence the same weights, as the train
stage) while the learning rate rises exponentially from ``min_lr`` to ``max_lr``, one value per
optimizer step, and record the training loss of every step. Read from left to right, the curve
is flat where the rate is too small to move the weights, falls where the rate is useful, and
shoots up where it is too large. The test stops early once the smoothed loss exceeds
``divergence`` times its best (or the loss is not finite): what follows carries no information.

The suggestion is one point of that curve, by ``rule``:

- ``minimum`` (the default): the rate of the lowest smoothed loss, divided by 10 (fastai's
  ``lr_min / 10``): at the minimum the rate is already on the edge of divergence, one decade
  below is safe. On the built-in task's default model it read 9.1e-4 off a curve whose lowest
  point was at 9.1e-3, next to the 1e-3 that trains it to 0.97 test accuracy.
- ``steepest``: the learning rate where the smoothed loss falls fastest against log(lr) (the
  steepest negative slope; Lightning's suggestion), a rate where one step still buys the most
  loss reduction. On the same curve it read 5.9e-3, close to the minimum: a model trained
  from scratch whose loss only dips late has no long descent to take a slope of.

Both are computed and written; ``rule`` says which is the suggestion. No suggestion is made
(``suggested_lr: null`` and a ``reason``) when the loss never fell below its start by more
than the noise, or when fewer than :data:`MIN_POINTS` steps ran before it diverged: a number
picked from a flat or broken curve would look right and mean nothing.

The smoothing is an exponential moving average with bias correction (fastai's, ``beta = 1 -
smoothing``), so the first points are not pulled towards 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from nlpflow.contracts import LrRangeInputs
    from nlpflow.training.probe import BatchPlan

MIN_POINTS = 8  # fewer steps than this before divergence: no suggestion
SKIP_START = 0.1  # the first tenth of the points is left out of the steepest slope (noisy)
MIN_DROP = 0.02  # the smoothed loss must fall by at least 2% of its start to suggest anything
PLOT_COLUMNS = ("step", "lr", "log10_lr", "loss", "smoothed_loss")


@dataclass
class RangeResult:
    """One range test: the curve and what is read from it."""

    lrs: list[float]  # the learning rate of each step, rising
    losses: list[float]  # the training loss of each step (the batch mean)
    smoothed: list[float]  # the bias-corrected exponential moving average of ``losses``
    min_lr: float
    max_lr: float
    steps: int  # steps asked for
    stop_reason: str  # completed, diverged or non_finite_loss
    rule: str
    steepest_lr: float | None = None
    minimum_lr: float | None = None  # the lr of the lowest smoothed loss (not divided)
    suggested_lr: float | None = None
    reason: str = ""  # why there is no suggestion
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The content of metrics/lr_range.json (results only: no wall times)."""
        best = min(range(len(self.smoothed)), key=self.smoothed.__getitem__, default=None)
        return {
            "suggested_lr": self.suggested_lr,
            "rule": self.rule,
            "reason": self.reason or None,
            "steepest_lr": self.steepest_lr,
            "minimum_lr": self.minimum_lr,
            "minimum_lr_over_10": self.minimum_lr / 10 if self.minimum_lr else None,
            "initial_loss": self.losses[0] if self.losses else None,
            "min_smoothed_loss": self.smoothed[best] if best is not None else None,
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "last_lr": self.lrs[-1] if self.lrs else None,
            "steps": self.steps,
            "steps_run": len(self.lrs),
            "stop_reason": self.stop_reason,
            **self.extra,
        }

    def plot_rows(self) -> list[dict[str, Any]]:
        return [
            {"step": i + 1, "lr": lr, "log10_lr": round(math.log10(lr), 6), "loss": loss,
             "smoothed_loss": smooth}
            for i, (lr, loss, smooth) in enumerate(
                zip(self.lrs, self.losses, self.smoothed, strict=True)
            )
        ]  # fmt: skip


def lr_at(step: int, steps: int, min_lr: float, max_lr: float) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps``: min_lr * (max/min)^(step/(steps-1))."""
    if steps <= 1:
        return min_lr
    return min_lr * (max_lr / min_lr) ** (step / (steps - 1))


class Smoother:
    """Bias-corrected exponential moving average: ``avg_i = beta*avg_{i-1} + (1-beta)*x_i``,
    reported as ``avg_i / (1 - beta^(i+1))`` with ``beta = 1 - smoothing`` (fastai's)."""

    def __init__(self, smoothing: float) -> None:
        self.beta = 1.0 - smoothing
        self.avg = 0.0
        self.count = 0

    def __call__(self, value: float) -> float:
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        self.count += 1
        return self.avg / (1 - self.beta**self.count) if self.beta > 0 else value


def suggest(
    lrs: list[float], smoothed: list[float], rule: str
) -> tuple[float | None, float | None, float | None, str]:
    """``(suggested, steepest, minimum, reason)`` from a finite, rising-lr curve.

    ``steepest``: the lr of the most negative slope of the smoothed loss against log10(lr),
    skipping the first tenth of the points and stopping at the minimum (past it the curve
    rises and its slopes mean divergence). ``minimum``: the lr of the lowest smoothed loss.
    """
    import numpy as np

    if len(lrs) < MIN_POINTS:
        return (
            None,
            None,
            None,
            (f"only {len(lrs)} step(s) ran before the loss diverged; lower lr_range.min_lr"),
        )
    loss = np.asarray(smoothed, dtype=np.float64)
    best = int(loss.argmin())
    minimum = float(lrs[best])
    start = loss[: max(1, len(loss) // 20)].mean()  # the flat start, a few points averaged
    if loss[best] > start * (1 - MIN_DROP):
        return (
            None,
            None,
            minimum,
            (
                f"the smoothed loss never fell more than {MIN_DROP:.0%} below its start "
                f"({start:.4g} -> {loss[best]:.4g}); raise lr_range.max_lr or lr_range.steps"
            ),
        )
    # Slopes over the whole curve (central differences), searched from the end of the noisy
    # start up to the minimum: past it the curve rises, and before it the descent is.
    slopes = np.gradient(loss, np.log10(np.asarray(lrs, dtype=np.float64)))
    skip = min(int(len(loss) * SKIP_START), best)
    steepest = float(lrs[skip + int(slopes[skip : best + 1].argmin())])
    chosen = steepest if rule == "steepest" else minimum / 10
    if chosen < lrs[0]:
        return (
            None,
            steepest,
            minimum,
            (
                f"the lowest loss lies within a decade of the first rate ({lrs[0]:.3g}), so "
                "minimum / 10 was never tried; lower lr_range.min_lr"
            ),
        )
    return chosen, steepest, minimum, ""


def run_range_test(
    params: LrRangeInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    *,
    log: Callable[[str], None] = print,
) -> RangeResult:
    """Run the test on the train split with the train stage's model, optimizer and batches.

    ``params`` holds what the stage reads (:class:`nlpflow.contracts.LrRangeInputs`): ``seed``,
    ``model``, ``lr_range`` and the ``train`` keys that shape one step (not lr, the schedule or
    epochs: the test sets the rate itself).
    The effective batch is the probe's plan (batch size x accumulation steps). One process.

    Raises UserError for data the train stage could not use either (an empty split, no
    validation split: see :func:`nlpflow.training.setup.load_splits`).
    """
    from nlpflow.training.device import resolve_device, torch_threads

    with torch_threads(params.train.threads):
        return _run(params, data_dir, tokenizer_dir, plan, resolve_device(plan.device), log)


def _run(
    params: LrRangeInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    plan: BatchPlan,
    device: Any,
    log: Callable[[str], None],
) -> RangeResult:
    import dataclasses

    import torch

    from nlpflow.contracts import TrainInputs
    from nlpflow.modeling.lora import parameter_counts
    from nlpflow.params import EarlyStoppingParams, TrainParams
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.sampling import epoch_steps
    from nlpflow.training.setup import build_run
    from nlpflow.training.step import TrainStep

    started = time.perf_counter()
    tp, rp = params.train, params.lr_range
    # The train stage's own run (seed, initial weights, data, precision, loss, optimizer) and
    # step (micro-batches, clipping, no step on a non-finite loss or gradient norm), with the
    # rate held at min_lr by a constant schedule; the test's schedule then raises it. It never
    # validates: the monitor is the loss, which every task family measures (the default
    # f1_macro is not a regression or text2text metric).
    train = TrainParams(
        **{f.name: getattr(tp, f.name) for f in dataclasses.fields(tp)},
        lr=rp.min_lr, schedule="constant", warmup_ratio=0.0, warmup_steps=0,
        early_stopping=EarlyStoppingParams(metric="loss", mode="min", patience=0),
    )  # fmt: skip
    one = Distributed()
    run = build_run(TrainInputs(params.seed, params.model, train), data_dir, tokenizer_dir, plan,
                    device, one)  # fmt: skip
    run.model.train()
    ratio = rp.max_lr / rp.min_lr
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(
        run.optimizer, lambda i: lr_at(min(i, rp.steps - 1), rp.steps, 1.0, ratio)
    )
    step = TrainStep.of(run, plan.batch_size, tp.max_grad_norm, device, one)
    log(
        f"lr_range: {rp.steps} steps, lr {rp.min_lr:g} -> {rp.max_lr:g} (exponential), "
        f"batch {plan.batch_size} x {plan.accumulation_steps} = {run.effective}, {tp.optimizer}, "
        f"{device.type} {run.precision_note}; stops when the smoothed loss exceeds "
        f"{rp.divergence:g}x its best"
    )

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    smoother, best = Smoother(rp.smoothing), math.inf
    stop_reason = "completed"
    queue: list[torch.Tensor] = []
    for i in range(rp.steps):
        if not queue:  # as many epochs as the steps need, each in a fresh order
            queue = epoch_steps(run.train_set.lengths, run.effective, run.shuffle, tp.batching)
        stepped = step(queue.pop(0))
        if not stepped.taken:
            stop_reason = "non_finite_loss"
            log(
                f"lr_range: non-finite loss or gradient norm at step {i + 1} (lr "
                f"{stepped.lr:.3g}, loss {stepped.loss:.4g}, gradient norm {stepped.grad_norm:.4g}): "
                "stopped, the step not taken"
            )
            break
        current = smoother(stepped.loss)
        lrs.append(stepped.lr)
        losses.append(stepped.loss)
        smoothed.append(current)
        best = min(best, current)
        if i + 1 >= MIN_POINTS // 2 and current > rp.divergence * best:
            stop_reason = "diverged"
            log(
                f"lr_range: the smoothed loss {current:.4g} exceeds {rp.divergence:g}x its best "
                f"{best:.4g} at step {i + 1} (lr {stepped.lr:.3g}): stopped"
            )
            break

    suggested, steepest, minimum, reason = suggest(lrs, smoothed, rp.suggestion)
    result = RangeResult(
        lrs=lrs, losses=losses, smoothed=smoothed, min_lr=rp.min_lr, max_lr=rp.max_lr,
        steps=rp.steps, stop_reason=stop_reason, rule=rp.suggestion, steepest_lr=steepest,
        minimum_lr=minimum, suggested_lr=suggested, reason=reason,
        # with model.lora the range is that of the adapters (build_run builds as train does)
        extra={"parameters": parameter_counts(run.model)},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if suggested is not None:
        log(
            f"lr_range: suggested lr {suggested:.3g} ({rp.suggestion}; steepest descent at "
            f"{steepest:.3g}, lowest loss at {minimum:.3g}); {len(lrs)} steps in {seconds:.1f}s"
        )
    else:
        log(f"lr_range: no suggestion: {reason}; {len(lrs)} steps in {seconds:.1f}s")
    return result


def plot_curve(result: RangeResult, path: str | Path) -> None:
    """A PNG of the loss (raw and smoothed) against the learning rate on a log axis, with
    the steepest-descent and lowest-loss points and the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlpflow.io import atomic_file

    fig, ax = plt.subplots(figsize=(6, 3.8))
    if result.lrs:
        ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, label="loss (per step)")
        ax.plot(result.lrs, result.smoothed, color="tab:blue", label="smoothed loss")
        ax.set_xscale("log")
        marks = [
            (result.steepest_lr, "steepest descent", "tab:green", ":"),
            (result.minimum_lr, "lowest loss", "tab:orange", ":"),
            (result.suggested_lr, "suggestion", "tab:red", "-"),
        ]
        for lr, label, color, style in marks:
            if lr is not None:
                ax.axvline(lr, color=color, linestyle=style, label=f"{label} {lr:.2g}")
        # The interesting part is below the start; the divergence above it is cut off.
        low, high = min(result.losses), max(result.losses)
        top = min(high, max(result.smoothed[0], min(result.smoothed)) * 1.5)
        ax.set_ylim(max(0.0, low - 0.05 * (top - low)), top + 0.05 * (top - low))
    title = (
        f"lr range test: suggested lr {result.suggested_lr:.2g} ({result.rule})"
        if result.suggested_lr is not None
        else f"lr range test: no suggestion ({result.reason or result.stop_reason})"
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    if result.lrs:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no steps ran", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def read_suggestion(path: str | Path) -> float:
    """The suggested learning rate in a range test's metrics file (metrics/lr_range.json).

    Raises UserError when the file is missing or holds no suggestion, saying why.
    """
    from nlpflow.io import read_json

    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{path} not found; run the range test first (dvc repro lr_range) and commit it"
        )
    data = read_json(path)
    value = data.get("suggested_lr") if isinstance(data, dict) else None
    if not isinstance(value, int | float) or not value > 0:
        why = data.get("reason") if isinstance(data, dict) else None
        raise UserError(
            f"{path} holds no suggested learning rate ({why or 'suggested_lr is missing'}); "
            "fix the range test's params (lr_range) and rerun it"
        )
    return float(value)


def centred_range(low: float, high: float, centre: float) -> tuple[float, float]:
    """``[low, high]`` moved on the log scale so that its geometric middle is ``centre``;
    the width (high / low) is kept. Values are rounded to 3 significant digits."""
    if not (0 < low < high) or not centre > 0:
        raise ValueError(f"need 0 < low < high and centre > 0, got {low}, {high}, {centre}")
    half = math.sqrt(high / low)
    return float(f"{centre / half:.3g}"), float(f"{centre * half:.3g}")
