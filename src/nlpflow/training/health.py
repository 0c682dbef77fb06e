"""Diagnosis of loss curves: the usual failure shapes, each with likely causes and what to try.

:func:`diagnose` reads the per-step training loss and the per-evaluation train and validation
losses and returns one :class:`Finding` per rule that fires:

============================  =====================================================
rule                          shape
============================  =====================================================
``initial_loss``              the first step's loss far from ln(K), the loss of a
                              uniform guess over K classes (tags, in token tasks)
``negative_loss``             a loss below zero (cross-entropy cannot be)
``exploding``                 the loss ends far above its best, or above its start
``not_decreasing``            the last tenth of the steps is no lower than the first
``oscillating``               large step-to-step swings around a flat trend
``collapsing_to_zero``        training loss at ~0 early on: too easy, or labels leak
``overfitting``               validation loss rising while training loss falls
``plateaus``                  long flat stretches ended by sudden drops (steps)
============================  =====================================================

The rules work on smoothed curves (a centred running median), so the noise of single
mini-batches does not fire them, and every threshold is a named constant below. The
initial-loss check reads the first step alone: its loss is computed on the initial weights,
before any update, where a model that knows nothing should be close to a uniform guess
(Karpathy, "A Recipe for Training Neural Networks", 2019: "verify loss @ init"; cross-entropy
of a uniform guess is ln K whatever the class weights or label smoothing).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_STEPS = 20  # fewer logged steps: too short to judge step-level shapes
MAX_POINTS = 1000  # long runs are judged on bin means of the steps
SMOOTH_FRACTION = 0.05  # running-median window: 5% of the steps (at least 3)
NOT_DECREASING_RATIO = 0.95  # last tenth must be below 95% of the first tenth
EXPLODE_FACTOR = 3.0  # smoothed loss ends above 3x its best (or 1.5x its start)
EXPLODE_START_FACTOR = 1.5
OSCILLATION_RATIO = 0.5  # mean |step-to-step change| above half the mean loss ...
# ... and above a fifth of the initial loss. At a low loss a batch's loss comes from the few
# examples still wrong in it, so batch-to-batch swings are about as large as the loss itself
# whatever the learning rate: the default run (batch 64, 2 classes) swung by 0.076-0.113 nats
# (11-16% of ln 2) at levels of 0.10-0.20 in its second half, on three seeds and two model
# sizes, with its smoothed loss falling throughout (tests/training/test_health.py).
OSCILLATION_START = 0.2
COLLAPSE_LEVEL = 0.01  # below 1% of the initial loss ...
COLLAPSE_ABSOLUTE = 0.01  # ... and below 0.01 ...
COLLAPSE_EARLY = 0.25  # ... within the first quarter of training
# Validation loss (each a median of it and its neighbouring evaluations, so one lucky or
# unlucky evaluation is not a trend) 5% above its level at its minimum, at the end ...
OVERFIT_RISE = 0.05
OVERFIT_MIN_EVALS = 2  # ... at least this many evaluations after the minimum
PLATEAU_FLAT = 0.02  # a window whose smoothed loss moves by less than 2% ...
PLATEAU_LENGTH = 0.1  # ... for at least 10% of the steps ...
PLATEAU_DROP = 0.2  # ... and then drops by 20% within as many steps: a step
INITIAL_ABOVE = 1.0  # nats: a first loss more than this above ln(K) is too high ...
INITIAL_BELOW = 0.5  # ... and one below half of ln(K) suspiciously low


@dataclass
class Finding:
    rule: str
    severity: str  # "error" (training is broken) or "warning" (worth a look)
    message: str
    causes: list[str]
    remedies: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """For metrics/train.json: strings, not lists, so ``dvc metrics show`` shows them."""
        return {
            "severity": self.severity,
            "message": self.message,
            "likely_causes": "; ".join(self.causes),
            "try": "; ".join(self.remedies),
            **self.details,
        }

    def lines(self) -> list[str]:
        return [
            f"health {self.severity}: {self.rule}: {self.message}",
            f"  likely causes: {'; '.join(self.causes)}",
            f"  try: {'; '.join(self.remedies)}",
        ]


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def running_median(values: Sequence[float], window: int) -> list[float]:
    """Centred running median (the window shrinks at the ends)."""
    half = max(1, window) // 2
    out = []
    for i in range(len(values)):
        chunk = sorted(values[max(0, i - half) : i + half + 1])
        out.append(chunk[len(chunk) // 2])
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@dataclass
class Curve:
    """A smoothed training-loss curve: at most ``MAX_POINTS`` bin means, then a running
    median; point ``i`` covers steps ``i * bin + 1`` to ``(i + 1) * bin``."""

    values: list[float]
    bin: int

    @classmethod
    def of(cls, steps: list[float]) -> Curve:
        size = max(1, math.ceil(len(steps) / MAX_POINTS))
        means = [_mean(steps[i : i + size]) for i in range(0, len(steps), size)]
        return cls(running_median(means, max(3, int(len(means) * SMOOTH_FRACTION))), size)

    def step(self, i: int) -> int:
        """The last step of point ``i`` (1-based)."""
        return (i + 1) * self.bin


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class InitialLoss:
    """The first optimizer step's training loss beside ln(K), a uniform guess's loss (nats)."""

    first: float  # mean loss of step 1, on the initial weights
    classes: int  # K: labels, or tags in a token task

    @property
    def uniform(self) -> float:
        return math.log(self.classes)

    @property
    def gap(self) -> float:
        """``first - ln(K)``: positive when the model starts worse than a uniform guess."""
        return self.first - self.uniform

    def to_json(self) -> dict[str, float]:
        """The ``health.initial_loss`` entry of metrics/train.json."""
        return {"first_step": self.first, "uniform": self.uniform, "gap": self.gap}

    def line(self) -> str:
        return (
            f"health: initial loss {self.first:.4f}, a uniform guess over {self.classes} "
            f"classes ln({self.classes}) = {self.uniform:.4f} (gap {self.gap:+.4f} nats)"
        )


def initial_loss(
    step_losses: Sequence[float | None], num_classes: int | None
) -> InitialLoss | None:
    """The first step's loss against ln(K); None when there is no finite first loss or
    fewer than 2 classes."""
    if not step_losses or num_classes is None or num_classes < 2:
        return None
    first = step_losses[0]
    if first is None or not math.isfinite(first):
        return None
    return InitialLoss(float(first), num_classes)


def initial_loss_gap(check: InitialLoss | None) -> Finding | None:
    if check is None:
        return None
    details = {"first_step_loss": check.first, "uniform_loss": check.uniform, "gap": check.gap}
    where = (
        f"the first step's loss {check.first:.4g} is {abs(check.gap):.3g} nats "
        f"{'above' if check.gap > 0 else 'below'} ln({check.classes}) = {check.uniform:.4g}, "
        "the loss of a uniform guess"
    )
    if check.gap > INITIAL_ABOVE:
        return Finding(
            "initial_loss",
            "warning",
            f"{where}: the untrained model is confidently wrong",
            [
                "bad initialisation: output weights or logits on too large a scale "
                "(a custom head, a large model.initializer_range)",
                "a pretrained head trained for other labels",
                "wrong loss or labels: label ids not matching the classes, a loss that sums "
                "where it should average",
            ],
            [
                "initialise the head with small weights so the first logits are near 0",
                "check that label ids run from 0 to K-1 in the order of the label names",
                "run the overfit check (train.overfit_batches: 1)",
            ],
            details,
        )
    if check.first < INITIAL_BELOW * check.uniform:
        return Finding(
            "initial_loss",
            "warning",
            f"{where}: the model predicts the labels before any training",
            [
                "label leakage: the label can be read from the inputs (a label column among "
                "the text fields, a marker token, duplicates of training rows)",
                "wrong loss or labels: a loss over ignored positions (padding), labels that "
                "are constant per batch",
                "a pretrained head already trained on this task (then it is expected)",
            ],
            [
                "check metrics/preprocess.json for leakage and that no text field holds the label",
                "look at a few tokenized examples with their labels (reports/tokenization.md)",
                "compare with the baselines in metrics/evaluate.json",
            ],
            details,
        )
    return None


def negative_loss(steps: list[float], evals: list[dict[str, Any]]) -> Finding | None:
    bad = [i for i, v in enumerate(steps) if v < 0]
    val_bad = [r for r in evals if r.get("val_loss") is not None and r["val_loss"] < 0]
    if not bad and not val_bad:
        return None
    where = f"at step {bad[0] + 1}" if bad else f"in validation at epoch {val_bad[0]['epoch']}"
    return Finding(
        "negative_loss",
        "error",
        f"the loss is negative ({min(steps + [r['val_loss'] for r in val_bad]):.4g}, first {where}); "
        "cross-entropy cannot be",
        [
            "a custom loss with a wrong sign",
            "negative class weights",
            "labels outside [0, num_labels)",
        ],
        ["check the loss function and train.class_weights", "check the label ids"],
        {"first_step": bad[0] + 1 if bad else None},
    )


def exploding(steps: list[float], curve: Curve) -> Finding | None:
    smooth = curve.values
    if len(steps) < MIN_STEPS:
        return None
    best = min(smooth)
    start, end = smooth[0], smooth[-1]
    if not (end > EXPLODE_FACTOR * max(best, 1e-12) or end > EXPLODE_START_FACTOR * start):
        return None
    # Where the smoothed loss first left its running best (or its start) by the factor.
    running = math.inf
    since = curve.step(len(smooth) - 1)
    for i, v in enumerate(smooth):
        running = min(running, v)
        if v > EXPLODE_FACTOR * max(running, 1e-12) or v > EXPLODE_START_FACTOR * start:
            since = curve.step(i)
            break
    return Finding(
        "exploding",
        "error",
        f"the training loss grew from {best:.4g} (its best) to {end:.4g}, from around step {since}",
        [
            "learning rate too high",
            "no or too loose gradient clipping",
            "no warm-up",
            "fp16 overflow",
        ],
        [
            "lower train.lr (3-10x)",
            "set train.max_grad_norm (e.g. 1.0)",
            "add warm-up (train.warmup_ratio 0.1)",
            "use bf16 or fp32 (train.precision)",
        ],
        {"from_step": since, "best_loss": best, "final_loss": end},
    )


def not_decreasing(steps: list[float]) -> Finding | None:
    if len(steps) < MIN_STEPS:
        return None
    tenth = max(1, len(steps) // 10)
    first, last = _mean(steps[:tenth]), _mean(steps[-tenth:])
    if last < NOT_DECREASING_RATIO * first:
        return None
    return Finding(
        "not_decreasing",
        "error",
        f"the training loss did not decrease (first tenth of the steps {first:.4g}, last "
        f"tenth {last:.4g})",
        [
            "learning rate far too low or far too high",
            "labels that do not depend on the inputs (shuffled, misaligned, all one class)",
            "frozen or disconnected layers",
            "too strong regularisation",
        ],
        [
            "run the overfit check (train.overfit_batches: 1, with more epochs): a model that "
            "cannot overfit one batch has a bug",
            "try train.lr 10x up and 10x down",
            "look at a few tokenized examples with their labels (reports/tokenization.md)",
        ],
        {"first_tenth_loss": first, "last_tenth_loss": last},
    )


def oscillating(steps: list[float], curve: Curve) -> Finding | None:
    smooth = curve.values
    if len(steps) < MIN_STEPS:
        return None
    half = steps[len(steps) // 2 :]
    swings = [abs(b - a) for a, b in itertools.pairwise(half)]
    level = _mean(half)
    swing = _mean(swings)
    # Large against the loss now and against where it started: a converged loss near 0 with
    # the odd hard batch swings a lot relative to its level, but that is no oscillation.
    if level <= 0 or swing <= OSCILLATION_RATIO * level or swing <= OSCILLATION_START * smooth[0]:
        return None
    trend = smooth[len(smooth) // 2 :]
    falling = trend[-1] < NOT_DECREASING_RATIO * trend[0]
    return Finding(
        "oscillating",
        "warning",
        f"the training loss swings by {swing:.3g} from step to step around a mean of "
        f"{level:.3g} in the second half of training"
        + ("" if not falling else " (while still falling)"),
        [
            "learning rate too high for this batch size",
            "a batch too small for a stable gradient",
            "batches that differ systematically (sorted data, length groups of one class)",
        ],
        [
            "lower train.lr",
            "raise train.effective_batch_size",
            "use a decaying schedule (linear, cosine)",
            "check that the training data is shuffled",
        ],
        {"mean_swing": swing, "mean_loss": level},
    )


def collapsing_to_zero(steps: list[float], curve: Curve) -> Finding | None:
    smooth = curve.values
    if len(steps) < MIN_STEPS:
        return None
    start = smooth[0]
    threshold = min(COLLAPSE_ABSOLUTE, COLLAPSE_LEVEL * start)
    early = max(1, int(len(smooth) * COLLAPSE_EARLY))
    hit = next((i for i, v in enumerate(smooth[:early]) if v < threshold), None)
    if hit is None:
        return None
    return Finding(
        "collapsing_to_zero",
        "warning",
        f"the training loss fell to ~0 (below {threshold:.2g}) by step {curve.step(hit)} of "
        f"{len(steps)}",
        [
            "the task is too easy for what it is meant to measure",
            "the labels leak into the inputs (a label column among the text fields, "
            "duplicates across splits)",
            "the model memorises a small training set",
        ],
        [
            "check metrics/preprocess.json for leakage between splits",
            "make sure the label is not derivable from a text field",
            "compare with the baselines in metrics/evaluate.json",
        ],
        {"at_step": curve.step(hit)},
    )


def _median3(values: Sequence[float]) -> list[float]:
    """Each value's median with its neighbours (two at the ends: their mean)."""
    return [statistics.median(values[max(0, i - 1) : i + 2]) for i in range(len(values))]


def overfitting(evals: list[dict[str, Any]]) -> Finding | None:
    rows = [
        r
        for r in evals
        if r.get("val_loss") is not None
        and r.get("train_loss") is not None
        and math.isfinite(r["val_loss"])
        and math.isfinite(r["train_loss"])
    ]
    if len(rows) < OVERFIT_MIN_EVALS + 1:
        return None
    best_i = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    after = rows[best_i + 1 :]
    if len(after) < OVERFIT_MIN_EVALS:
        return None
    # The validation loss jitters from one evaluation to the next (the default run: by up to
    # 15% once it has levelled off); a flat loss whose minimum is one low evaluation has not
    # risen. Compare levels: the medians around the minimum and at the end.
    level = _median3([r["val_loss"] for r in rows])
    best_val, end_val = level[best_i], level[-1]
    train_fell = rows[-1]["train_loss"] < rows[best_i]["train_loss"]
    if not (train_fell and end_val > best_val * (1 + OVERFIT_RISE)):
        return None
    since = after[0]["epoch"]
    return Finding(
        "overfitting",
        "warning",
        f"validation loss rose from {best_val:.4g} (around its minimum at epoch "
        f"{rows[best_i]['epoch']}) to {end_val:.4g} (at the end; medians of neighbouring "
        f"evaluations) while training loss kept falling: overfitting from epoch {since}",
        [
            "more capacity or epochs than the data supports",
            "too little regularisation",
        ],
        [
            "keep models/best (the best epoch, already saved) and train fewer epochs",
            "early stopping on val loss (train.early_stopping.metric: loss, mode: min)",
            "more dropout (model.dropout) or weight decay (train.weight_decay)",
            "more training data",
        ],
        {"from_epoch": since, "best_val_loss_epoch": rows[best_i]["epoch"]},
    )


def plateaus(steps: list[float], curve: Curve) -> Finding | None:
    smooth = curve.values
    n = len(smooth)
    if len(steps) < MIN_STEPS or n < MIN_STEPS:
        return None
    length = max(3, int(n * PLATEAU_LENGTH))
    found: list[tuple[int, int]] = []  # (start, end) of flat stretches ended by a drop
    i = 0
    while i + length < n:
        window = smooth[i : i + length]
        level = _mean(window)
        if level > 0 and (max(window) - min(window)) <= PLATEAU_FLAT * level:
            end = i + length
            while end < n and abs(smooth[end] - level) <= PLATEAU_FLAT * level:
                end += 1
            after = smooth[end : end + length]
            if after and min(after) <= (1 - PLATEAU_DROP) * level:
                found.append((i, end))
            i = end
        else:
            i += 1
    if not found:
        return None
    spans = ", ".join(
        f"steps {curve.step(a) - curve.bin + 1}-{curve.step(b - 1)}" for a, b in found[:5]
    )
    return Finding(
        "plateaus",
        "warning",
        f"the training loss is step-like: flat over {spans}, "
        + ("each ended by a sudden drop" if len(found) > 1 else "ended by a sudden drop"),
        [
            "learning rate too low to leave a saddle point quickly",
            "a stepwise learning-rate schedule",
            "data not shuffled (blocks of one class or length)",
            "a task learned in phases (one kind of example at a time)",
        ],
        [
            "raise train.lr or use a warm-up",
            "check that the training data is shuffled",
            "train longer: the next drop may come",
            "look at which examples the model fails on (reports/errors.md)",
        ],
        {"plateaus": len(found)},
    )


def diagnose(
    step_losses: Sequence[float | None],
    evals: Sequence[dict[str, Any]],
    *,
    overfit_check: bool = False,
    num_classes: int | None = None,
) -> list[Finding]:
    """Every rule that fires on these curves, most severe first.

    ``step_losses``: the training loss of each optimizer step from step 1 (nats).
    ``evals``: rows with ``epoch``, ``train_loss`` and ``val_loss``. ``num_classes``: K for
    the initial-loss check (labels, or tags in a token task; None: no check). With
    ``overfit_check`` (training on a few fixed batches, where a loss going to zero is the
    point) the collapse and overfitting rules stay quiet.
    """
    steps = _finite(step_losses)
    eval_rows = list(evals)
    curve = Curve.of(steps)
    findings = [
        initial_loss_gap(initial_loss(step_losses, num_classes)),
        negative_loss(steps, eval_rows),
        exploding(steps, curve),
        not_decreasing(steps),
        oscillating(steps, curve),
        None if overfit_check else collapsing_to_zero(steps, curve),
        None if overfit_check else overfitting(eval_rows),
        plateaus(steps, curve),
    ]
    out = [f for f in findings if f is not None]
    # An exploding loss also "does not decrease"; one finding says it better.
    if any(f.rule == "exploding" for f in out):
        out = [f for f in out if f.rule != "not_decreasing"]
    return sorted(out, key=lambda f: f.severity != "error")


def health_summary(findings: list[Finding], initial: InitialLoss | None = None) -> dict[str, Any]:
    """The ``health`` entry of metrics/train.json: status (``ok``, ``warning``, ``error``),
    the findings by rule, and the initial-loss figures when there are any."""
    status = "ok"
    if findings:
        status = "error" if any(f.severity == "error" for f in findings) else "warning"
    out: dict[str, Any] = {
        "status": status,
        "findings": len(findings),
        "rules": {f.rule: f.to_json() for f in findings},
    }
    if initial is not None:
        out["initial_loss"] = initial.to_json()
    return out
