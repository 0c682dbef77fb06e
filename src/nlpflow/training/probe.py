"""Batch-size probe: the largest batch that fits this device, by doubling then bisection.

The search (:func:`search_batch_size`) is a pure function of a ``try_batch(size) -> bool``
callable, so tests can fake out-of-memory and check the exact sizes tried. The rest builds
the real model and runs one full training step (forward, the training loss, backward, the
configured optimizer's step, in the configured precision) per candidate on a worst-case
batch: ``size`` copies of the longest sequence in the data. On CUDA a candidate fits unless
it runs out of memory; on the CPU its measured peak must stay within ``probe.memory_budget``.

Only candidates the plan can use are measured: the search stops at
``train.effective_batch_size`` (or ``probe.max_batch_size`` when smaller), since training
never runs a larger batch. At the chosen batch the probe then times what the user may want
to change: one CPU thread against all cores (:func:`compare_steps`), and, for
``train.precision: auto`` on a CPU with bf16 matrix units, bf16 autocast against fp32
(:func:`decide_cpu_precision`); the decided precision goes into the plan that ``train``
reads. Every wall time and speed derived from a timer is kept in ``timings``, apart from
the results.

The measurements are kept (``data/probe/measurements.json``) with the inputs they depend on:
the model's shape, the sequence length, the device, the budget, the candidate count, the
optimizer, precision and threads. A rerun with the same inputs (new data of the same longest
length, another effective batch) reuses them when they cover its cap
(:func:`covered_limit`) instead of measuring again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.io import atomic_file, read_json, write_json

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from nlpflow.contracts import ProbeInputs
    from nlpflow.families.train import TrainFamily


# --------------------------------------------------------------------------- the search


def search_batch_size(
    try_batch: Callable[[int], bool], max_batch_size: int, max_candidates: int
) -> tuple[int, list[int]]:
    """The largest size in ``[1, max_batch_size]`` for which ``try_batch`` is True.

    Doubles from 1 (the last try is ``max_batch_size`` itself when it is no power of two),
    then bisects between the last size that fit and the first that did not. Assumes that
    what fails at ``n`` fails above ``n``. At most ``max_candidates`` calls; with no such
    cap it makes at most ``2 * ceil(log2(max_batch_size)) + 1``. Returns the largest size
    that fit (0 when even 1 did not) and the sizes tried, in order.
    """
    tried: list[int] = []

    def attempt(size: int) -> bool:
        tried.append(size)
        return try_batch(size)

    last_fit, first_fail = 0, 0
    size = 1
    while len(tried) < max_candidates:
        if not attempt(size):
            first_fail = size
            break
        last_fit = size
        if size >= max_batch_size:
            return last_fit, tried
        size = min(2 * size, max_batch_size)

    # Bisect the gap (last_fit, first_fail); empty when nothing failed or the cap was hit.
    while first_fail - last_fit > 1 and len(tried) < max_candidates:
        mid = (last_fit + first_fail) // 2
        if attempt(mid):
            last_fit = mid
        else:
            first_fail = mid
    return last_fit, tried


def choose_batch_size(effective_batch_size: int, max_fitting: int) -> tuple[int, int]:
    """``(batch_size, accumulation_steps)`` whose product is exactly ``effective_batch_size``.

    The batch size is the largest divisor of the effective batch that fits, so changing
    device changes only the split, never the optimisation.
    """
    if max_fitting < 1:
        raise ValueError("max_fitting must be >= 1")
    batch = max(
        d
        for d in range(1, min(effective_batch_size, max_fitting) + 1)
        if effective_batch_size % d == 0
    )
    return batch, effective_batch_size // batch


def covered_limit(candidates: list[Candidate], cap: int) -> int | None:
    """The largest fitting size up to ``cap`` that kept ``candidates`` prove; None if unknown.

    Memory grows with the batch, so a size fits when a larger one did, and does not when a
    smaller one did not. A measurement searched up to 64 answers a cap of 24 (24 fits:
    it is below a fitting 64); one that stopped at 16 cannot answer a cap of 32.
    """
    fitting = [c.batch_size for c in candidates if c.fits]
    failing = [c.batch_size for c in candidates if not c.fits]
    largest_fit = max(fitting, default=0)
    if largest_fit >= cap:
        return cap
    first_fail = min(failing, default=None)
    if first_fail is not None and first_fail <= cap and first_fail - largest_fit == 1:
        return largest_fit if largest_fit >= 1 else None
    return None


# --------------------------------------------------------------------------- one candidate


@dataclass
class Candidate:
    batch_size: int
    fits: bool
    peak_memory_mb: float | None = None
    examples_per_second: float | None = None


@dataclass
class ProbeResult:
    device: str
    sequence_length: int
    max_fitting_batch_size: int
    batch_size: int
    accumulation_steps: int
    effective_batch_size: int
    budget_mb: float | None
    candidates: list[Candidate] = field(default_factory=list)
    device_name: str = ""
    search_cap: int = 0  # the largest size the search may try: min(effective, max_batch_size)
    precision: str = "fp32"  # what train computes in: fp32, bf16 or fp16
    precision_reason: str = ""  # why, in words without measured numbers
    # Everything read off a timer (threads, precision, batch-size effect, probe seconds):
    # kept apart so the results above stay comparable across reruns.
    timings: dict[str, Any] = field(default_factory=dict)
    # The probed model's parameters: total, trainable (with ``model.lora``: the adapters and
    # a new head only), trainable_share (:func:`nlpflow.modeling.lora.parameter_counts`).
    parameters: dict[str, Any] = field(default_factory=dict)
    reused: bool = False  # taken from the kept measurement of the same inputs

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics/probe.json``."""
        out = asdict(self)
        out.pop("reused")
        for cand in out["candidates"]:
            for key in ("peak_memory_mb", "examples_per_second"):
                if cand[key] is not None:
                    cand[key] = round(cand[key], 2)
        if out["budget_mb"] is not None:
            out["budget_mb"] = round(out["budget_mb"], 1)
        return out

    @property
    def plan(self) -> BatchPlan:
        """What the train stage needs, without the timings."""
        return BatchPlan(
            self.device,
            self.batch_size,
            self.accumulation_steps,
            self.max_fitting_batch_size,
            self.device_name,
            self.precision,
            self.precision_reason,
        )

    def plot_rows(self) -> list[dict[str, Any]]:
        """Fitting candidates for ``dvc plots`` (``plots/probe/candidates.json``)."""
        return [
            {k: row[k] for k in ("batch_size", "peak_memory_mb", "examples_per_second")}
            for row in self.to_json()["candidates"]
            if row["fits"]
        ]


SLOW_STEP = 0.5  # seconds: a candidate's step this long is timed once, not again warm


class StepRunner:
    """Runs full training steps of ``model`` on worst-case batches of a given size."""

    def __init__(
        self,
        model: PreTrainedModel,
        device: torch.device,
        sequence_length: int,
        num_labels: int,
        with_token_type_ids: bool,
        seed: int,
        family: TrainFamily | None = None,
        make_optimizer: Callable[[], torch.optim.Optimizer] | None = None,
        precision: torch.dtype | None = None,
    ) -> None:
        import torch

        self.model = model
        self.device = device
        gen = torch.Generator().manual_seed(seed)
        vocab = int(model.config.vocab_size)
        # One random row, repeated: memory and time depend on the shape, not the tokens.
        self.row = torch.randint(0, vocab, (1, sequence_length), generator=gen)
        self.num_labels = num_labels
        self.with_token_type_ids = with_token_type_ids
        from nlpflow.families.train import TrainFamily

        self.family = family or TrainFamily()  # the task's worst-case batch and loss
        self.make_optimizer = make_optimizer or (
            lambda: torch.optim.AdamW(self.model.parameters(), lr=1e-6)
        )
        self.precision = precision
        self._steppers: dict[tuple[int, torch.dtype | None], Callable[[], None]] = {}

    def _batch(self, size: int) -> dict[str, torch.Tensor]:

        batch = self.family.probe_batch(self.row, size, self.num_labels, self.with_token_type_ids)
        return {k: v.to(self.device) for k, v in batch.items()}

    def stepper(
        self, size: int, precision: torch.dtype | None, fresh: bool = False
    ) -> tuple[Callable[[], None], bool]:
        """``(step, warm)``: a closure running one full training step on a batch of ``size``
        (its own optimizer, whose state counts from its first call on), and whether it was
        handed out before (so has run, when every caller runs what it gets).

        Steps of the latest size are kept, one per precision, so the comparisons at the
        chosen batch need no set-up steps; ``fresh`` makes a new one regardless.
        """
        key = (size, precision)
        if key in self._steppers and not fresh:
            return self._steppers[key], True
        if fresh or any(k[0] != size for k in self._steppers):
            self._steppers.clear()  # their optimizer states go before the new one is made
        from nlpflow.training.device import autocast

        self.model.train()
        batch = self._batch(size)
        labels = batch.pop("labels")
        optimizer = self.make_optimizer()
        criterion = self.family.probe_criterion()  # the task's loss, on the batch's labels

        def step() -> None:
            with autocast(self.device, precision):
                output = self.model(**batch)
            loss = criterion.sum(output, labels) / size
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        self._steppers[key] = step
        return step, False

    def forget_steps(self) -> None:
        """Drop the kept steps (and their optimizer states)."""
        self._steppers.clear()

    def run(self, size: int, budget_mb: float | None) -> Candidate:
        """One measured step (fresh optimizer, so its state counts), then timed steps."""
        from nlpflow.training.device import synchronize
        from nlpflow.training.memory import measure_peak, release_memory

        # What the previous candidate left behind must not count against this one. On the
        # CPU there are no cached blocks to drop and no cycles hold tensors: skip the slow gc.
        release_memory(self.device, collect=self.device.type == "cuda")
        step, _ = self.stepper(size, self.precision, fresh=True)
        try:
            synchronize(self.device)
            start = time.perf_counter()
            with measure_peak(self.device) as peak:
                step()
            synchronize(self.device)
            first = time.perf_counter() - start
            fits = budget_mb is None or peak.peak_mb is None or peak.peak_mb <= budget_mb
            # A step that took long is timed well enough by itself (its optimizer's set-up
            # is a small part of it); shorter ones are timed again, warm.
            speed = (
                (size / first if first > SLOW_STEP else self._speed(step, size)) if fits else None
            )
            return Candidate(size, fits, peak.peak_mb, speed)
        except BaseException:
            self.forget_steps()  # an out-of-memory step must not keep its optimizer state
            raise
        finally:
            # Gradients would otherwise count as resident memory for the next candidate.
            self.model.zero_grad(set_to_none=True)

    def _speed(self, step: Callable[[], None], size: int) -> float:
        """Examples per second of a warm step: the fastest of up to 3 (within ~SLOW_STEP s).

        The fastest, not the mean: on a shared machine the noise only ever adds time.
        """
        from nlpflow.training.device import synchronize

        best = math.inf
        spent = 0.0
        for _ in range(3):
            synchronize(self.device)
            start = time.perf_counter()
            step()
            synchronize(self.device)
            took = time.perf_counter() - start
            best, spent = min(best, took), spent + took
            if spent > SLOW_STEP:
                break
        return size / max(best, 1e-9)


def compare_steps(
    variants: dict[str, Callable[[], None]],
    device: torch.device | None = None,
    min_repeats: int = 2,
    max_repeats: int = 10,
    seconds: float = 1.0,
    warm_up: bool = True,
) -> dict[str, float]:
    """The fastest seconds per call of each variant, timed interleaved (A B A B ...).

    Each variant is called once untimed first (one-time set-up; ``warm_up=False`` when
    the caller has run them already), then in turns until each
    ran ``min_repeats`` times and ``seconds`` were spent, or ``max_repeats`` times, or once
    when that alone took ``3 * seconds``.
    Interleaving spreads a busy spell of a shared machine over every variant, and the
    fastest call counts because such noise only ever adds time.
    """
    from nlpflow.training.device import synchronize

    if warm_up:
        for run in variants.values():
            run()
    best = dict.fromkeys(variants, math.inf)
    spent = 0.0
    for repeat in range(max_repeats):
        if repeat >= min_repeats and spent >= seconds:
            break
        if repeat >= 1 and spent >= 3 * seconds:  # slow steps: one round says enough
            break
        for name, run in variants.items():
            if device is not None:
                synchronize(device)
            start = time.perf_counter()
            run()
            if device is not None:
                synchronize(device)
            took = time.perf_counter() - start
            best[name], spent = min(best[name], took), spent + took
    return best


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity), at least 1."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def catch_oom(
    run: Callable[[int], Candidate], device: torch.device | None = None
) -> Callable[[int], Candidate]:
    """Wrap ``run`` so an out-of-memory error becomes a candidate that does not fit."""
    from nlpflow.training.memory import is_oom, release_memory

    def wrapped(size: int) -> Candidate:
        try:
            return run(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
        # Outside the except block: the traceback (and the tensors its frames hold) is gone,
        # so collecting now really frees the failed step's memory.
        release_memory(device)
        return Candidate(size, fits=False)

    return wrapped


# --------------------------------------------------------------------------- the stage

CACHE_VERSION = 3
PROBE_SEED = 0
PROBE_DROPOUT = 0.1
# On the CPU, bf16 autocast must be at least this much faster than fp32 to be chosen: a
# margin, so that timer noise does not flip the plan (and retrain) between reruns.
BF16_MIN_SPEEDUP = 1.1
# On the CPU, a throughput gain below this from the smallest to the largest measured batch
# is reported as "batch size barely changes throughput".
FLAT_GAIN = 0.10


def search_cap(params: ProbeInputs) -> int:
    """The largest batch the search tries: training never runs a batch above the effective
    batch (``train.effective_batch_size``), nor above the user's ``probe.max_batch_size``."""
    return min(params.probe.max_batch_size, params.train.effective_batch_size)


def probe_inputs(
    params: ProbeInputs,
    device: torch.device,
    sequence_length: int,
    vocab_size: int,
    num_labels: int,
    task: str,
    with_token_type_ids: bool,
) -> dict[str, Any]:
    """Everything a measurement depends on (and nothing else: not the seed, lr, dropout, and
    not the search cap, which :func:`covered_limit` checks against the kept candidates):
    the probe's params (:class:`~nlpflow.contracts.ProbeInputs`, the same declaration
    dvc.yaml lists) and what this data and machine bring."""
    import torch

    from nlpflow.training.device import cpu_bf16_units, device_name
    from nlpflow.training.memory import total_memory_mb

    declared = params.as_dict()
    # The search cap: min(probe.max_batch_size, train.effective_batch_size).
    del declared["probe"]["max_batch_size"], declared["train"]["effective_batch_size"]
    return {
        "version": CACHE_VERSION,
        "params": declared,
        "vocab_size": vocab_size,
        "num_labels": num_labels,
        "task": task,
        "token_type_ids": with_token_type_ids,
        "sequence_length": sequence_length,
        "device": device.type,
        "device_name": device_name(device),
        "bf16_units": cpu_bf16_units() if device.type == "cpu" else None,
        "cores": usable_cores() if device.type == "cpu" else None,
        "memory_mb": None if device.type == "cuda" else round(total_memory_mb()),
        "torch": torch.__version__,
    }


def cached_result(
    path: Path | None,
    inputs: dict[str, Any],
    effective: int,
    cap: int,
    log: Callable[[str], None],
) -> ProbeResult | None:
    """The kept measurement of these exact inputs, re-split for ``effective``, when its
    candidates answer the search up to ``cap``; else None."""
    if path is None or not path.exists():
        return None
    try:
        kept = read_json(path)
        if kept.get("inputs") != inputs:
            return None
        raw = kept["result"]
        candidates = [Candidate(**c) for c in raw["candidates"]]
        precision, reason = str(raw["precision"]), str(raw["precision_reason"])
        timings = dict(raw["timings"])
        parameters = dict(raw.get("parameters", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    max_fit = covered_limit(candidates, cap)
    if max_fit is None:
        log(f"probe: the measurement in {path} stops below batch {cap}; measuring again")
        return None
    batch, accumulation = choose_batch_size(effective, max_fit)
    log(
        f"probe: reusing the measurement in {path} (same model shape, sequence length "
        f"{inputs['sequence_length']}, device, budget); delete it to measure again"
    )
    log(
        f"probe: largest fitting batch {max_fit}; training with batch {batch} x "
        f"{accumulation} accumulation steps = {effective}, in {precision}"
    )
    return ProbeResult(
        device=str(raw["device"]),
        sequence_length=int(raw["sequence_length"]),
        max_fitting_batch_size=max_fit,
        batch_size=batch,
        accumulation_steps=accumulation,
        effective_batch_size=effective,
        budget_mb=raw.get("budget_mb"),
        candidates=[c for c in candidates if c.batch_size <= cap],
        device_name=str(raw.get("device_name", "")),
        search_cap=cap,
        precision=precision,
        precision_reason=reason,
        timings=timings,
        parameters=parameters,
        reused=True,
    )


def run_probe(
    params: ProbeInputs,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    log: Callable[[str], None],
    cache: str | Path | None = None,
) -> ProbeResult:
    """Probe the batch size for ``params.model`` on this device (reads the model section but
    its dropout, the probe section, and train's effective_batch_size, optimizer, momentum and
    precision; and train.threads, so that the speeds are those of training).

    ``cache``: where the measurement is kept; reused when the inputs are the same.
    ``timings["probe_seconds"]``: the wall time of this call (tiny when reused).
    """
    started = time.perf_counter()
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.training.data import data_info, load_tokenized, max_sequence_length
    from nlpflow.training.device import resolve_device, torch_threads

    device = resolve_device(params.probe.device)
    data = load_tokenized(data_dir)
    info = data_info(data, data_dir)
    seq_len = max_sequence_length(data)
    if seq_len < 1:
        raise UserError(f"{data_dir} holds no sequences to probe with")
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=params.model.trust_remote_code)
    with_types = "token_type_ids" in data["train"].column_names
    effective = params.train.effective_batch_size
    inputs = probe_inputs(
        params, device, seq_len, len(tokenizer), info.num_labels, info.task, with_types
    )
    cache_path = Path(cache) if cache else None
    result = cached_result(cache_path, inputs, effective, search_cap(params), log)
    if result is None:
        with torch_threads(params.train.threads):  # speeds measured as training will run
            result = _measure(params, data_dir, tokenizer, info, seq_len, with_types, device,
                              log, inputs, cache_path)  # fmt: skip
    result.timings["probe_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _measure(
    params: ProbeInputs,
    data_dir: str | Path,
    tokenizer: Any,
    info: Any,
    seq_len: int,
    with_types: bool,
    device: torch.device,
    log: Callable[[str], None],
    inputs: dict[str, Any],
    cache_path: Path | None,
) -> ProbeResult:
    from nlpflow.families.train import train_family
    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.lora import parameter_counts
    from nlpflow.seeding import seed_everything
    from nlpflow.training.device import device_name, precision_name, resolve_precision
    from nlpflow.training.memory import memory_budget_mb, release_memory
    from nlpflow.training.optim import build_optimizer

    probe = params.probe
    effective = params.train.effective_batch_size
    cap = search_cap(params)
    # auto on the CPU is decided after the search, by measuring: search in fp32.
    decide = device.type == "cpu" and params.train.precision == "auto"
    search_dtype, _ = resolve_precision("fp32" if decide else params.train.precision, device)

    # Neither the seed nor the dropout rate changes what a step holds in memory (any rate
    # above 0 keeps its masks for the backward pass): fixed values, so neither is an input.
    seed_everything(PROBE_SEED)
    shape = params.model.with_dropout(PROBE_DROPOUT)
    # model.lora as train builds it: only the adapters get gradients and optimizer state.
    model = build_model(shape, tokenizer, info.label_names, seq_len, info.task)
    parameters = parameter_counts(model)
    family = train_family(info.task)
    family.probe_model(model)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
    tp = params.train
    runner = StepRunner(
        model,
        device,
        seq_len,
        info.num_labels,
        with_token_type_ids=with_types,
        seed=PROBE_SEED,
        family=family,
        make_optimizer=lambda: build_optimizer(model, 1e-6, 0.0, tp.optimizer, tp.momentum),
        precision=search_dtype,
    )
    release_memory(device)
    # The CPU budget is taken once the model is resident, from what the system has left.
    budget = memory_budget_mb(probe.memory_budget) if device.type == "cpu" else None

    candidates: list[Candidate] = []
    run_one = catch_oom(lambda size: runner.run(size, budget), device)
    # One unrecorded step first: one-time costs (lazy kernel and allocator set-up) would
    # otherwise be billed to the first candidate.
    run_one(1)

    def try_batch(size: int) -> bool:
        cand = run_one(size)
        candidates.append(cand)
        peak = "?" if cand.peak_memory_mb is None else f"{cand.peak_memory_mb:.1f} MB"
        speed = "" if cand.examples_per_second is None else f"  {cand.examples_per_second:.3g} ex/s"
        log(
            f"probe: batch {size:>5}  {'fits' if cand.fits else 'does not fit'}  peak {peak}{speed}"
        )
        return cand.fits

    max_fit, _ = search_batch_size(try_batch, cap, probe.max_candidates)
    if max_fit < 1:
        where = f"the {budget:.0f} MB budget (probe.memory_budget)" if budget else device.type
        raise UserError(
            f"even batch size 1 at sequence length {seq_len} does not fit {where}; "
            "raise probe.memory_budget, shorten tokenizer.max_length or use a smaller model"
        )
    batch, accumulation = choose_batch_size(effective, max_fit)

    timings: dict[str, Any] = {}
    effect = batch_size_effect(candidates)
    if effect is not None:
        timings["batch_size_effect"] = effect
        if device.type == "cpu" and effect["flat"]:
            log(f"probe: {effect['note']}")
    known = None
    if decide:
        dtype, reason, timings["precision"] = decide_cpu_precision(runner, batch, budget, log)
        known = timings["precision"].get("seconds_per_step", {}).get(precision_name(dtype))
    else:
        dtype = search_dtype
        reason = f"train.precision {params.train.precision} on {device.type}"
    runner.precision = dtype
    if device.type == "cpu":
        timings["threads"] = compare_threads(runner, batch, params.train.threads, log, known)
    runner.forget_steps()
    release_memory(device)

    precision = precision_name(dtype)
    log(
        f"probe: largest fitting batch {max_fit}; training with batch {batch} x "
        f"{accumulation} accumulation steps = {effective}, in {precision}"
    )
    result = ProbeResult(
        device=device.type,
        sequence_length=seq_len,
        max_fitting_batch_size=max_fit,
        batch_size=batch,
        accumulation_steps=accumulation,
        effective_batch_size=effective,
        budget_mb=budget,
        candidates=candidates,
        device_name=device_name(device),
        search_cap=cap,
        precision=precision,
        precision_reason=reason,
        timings=timings,
        parameters=parameters,
    )
    if cache_path is not None:
        write_json(cache_path, {"inputs": inputs, "result": result.to_json()})
    return result


# --------------------------------------------------------------------------- what to tell


def batch_size_effect(candidates: list[Candidate]) -> dict[str, Any] | None:
    """How throughput changes from the smallest to the largest fitting measured batch.

    ``gain``: examples per second at the largest over the smallest, minus 1; ``flat`` when
    below :data:`FLAT_GAIN` (on the CPU, where a batch mostly adds rows to the same matrix
    products, a larger batch often buys no speed). None with fewer than two timed sizes.
    """
    timed = [c for c in candidates if c.fits and c.examples_per_second]
    if len(timed) < 2:
        return None
    small = min(timed, key=lambda c: c.batch_size)
    large = max(timed, key=lambda c: c.batch_size)
    assert small.examples_per_second and large.examples_per_second
    gain = large.examples_per_second / small.examples_per_second - 1
    flat = gain < FLAT_GAIN
    how = "barely changes" if flat else "changes"
    note = (
        f"batch size {how} throughput on this device: {small.examples_per_second:.3g} "
        f"examples/s at batch {small.batch_size}, {large.examples_per_second:.3g} at batch "
        f"{large.batch_size} ({gain:+.0%})"
    )
    if flat:
        note += (
            "; a larger batch buys memory use, not speed, here: choose "
            "train.effective_batch_size for the optimisation alone"
        )
    return {
        "smallest_batch": small.batch_size,
        "largest_batch": large.batch_size,
        "gain": round(gain, 3),
        "flat": flat,
        "note": note,
    }


def decide_cpu_precision(
    runner: StepRunner, batch: int, budget_mb: float | None, log: Callable[[str], None]
) -> tuple[torch.dtype | None, str, dict[str, Any]]:
    """``train.precision: auto`` on the CPU: bf16 autocast when this CPU has bf16 matrix
    units and a step at ``batch`` is at least :data:`BF16_MIN_SPEEDUP` times faster in it
    (and fits ``budget_mb``), else fp32.

    Returns the autocast dtype (None for fp32), the reason in words (no measured numbers:
    it goes into the plan) and the timings (seconds per step of each, the speed-up).
    """
    import torch

    from nlpflow.training.device import cpu_bf16_units
    from nlpflow.training.memory import measure_peak

    units = cpu_bf16_units()
    if not units:
        reason = (
            "train.precision auto: this CPU reports no bf16 matrix units (amx_bf16, "
            "avx512_bf16), where bf16 is emulated and slower: fp32"
        )
        log(f"probe: {reason}")
        return None, reason, {"bf16_units": []}
    fp32_step, warm = runner.stepper(batch, None)
    if not warm:
        fp32_step()
    bf16_step, _ = runner.stepper(batch, torch.bfloat16)
    with measure_peak(runner.device) as peak:
        bf16_step()  # its first step: the optimizer state is allocated, as in training
    timings: dict[str, Any] = {"bf16_units": units, "batch_size": batch}
    if peak.peak_mb is not None:
        timings["bf16_peak_memory_mb"] = round(peak.peak_mb, 2)
    if budget_mb is not None and peak.peak_mb is not None and peak.peak_mb > budget_mb:
        reason = (
            f"train.precision auto: a bf16 step at batch {batch} does not fit "
            "probe.memory_budget: fp32"
        )
        log(f"probe: {reason}")
        return None, reason, timings
    best = compare_steps({"fp32": fp32_step, "bf16": bf16_step}, warm_up=False)
    speedup = best["fp32"] / best["bf16"]
    timings.update(
        seconds_per_step={k: float(f"{v:.4g}") for k, v in best.items()},
        bf16_speedup=float(f"{speedup:.4g}"),
    )
    runner.model.zero_grad(set_to_none=True)
    faster = speedup >= BF16_MIN_SPEEDUP
    verdict = "faster" if faster else f"less than {BF16_MIN_SPEEDUP}x faster"
    reason = (
        f"train.precision auto: bf16 autocast measured {verdict} than fp32 at batch {batch} "
        f"on this CPU ({', '.join(units)}): {'bf16' if faster else 'fp32'}"
    )
    log(
        f"probe: precision auto: a step at batch {batch} takes {best['bf16']:.3f} s in bf16 "
        f"autocast, {best['fp32']:.3f} s in fp32 ({speedup:.2f}x): training in "
        f"{'bf16' if faster else 'fp32'}"
    )
    return (torch.bfloat16 if faster else None), reason, timings


def compare_threads(
    runner: StepRunner,
    batch: int,
    train_threads: int,
    log: Callable[[str], None],
    known: float | None = None,
) -> dict[str, Any]:
    """Seconds per step at ``batch`` on one thread and on every usable core, and what that
    means for ``train.threads`` (said on the console; the choice stays the user's, since
    results are bit-identical only at a fixed thread count).

    ``known``: seconds per step of this batch and precision already measured at the
    current thread count (by the precision comparison), so only the other count is timed.
    """
    import torch

    from nlpflow.training.device import torch_threads

    cores = usable_cores()
    if cores == 1:
        log("probe: threads: this process may use one core only; train.threads=1 is all there is")
        return {"cores": 1}
    step, warm = runner.stepper(batch, runner.precision)
    if not warm:
        step()

    def on(threads: int) -> Callable[[], None]:
        def run() -> None:
            with torch_threads(threads):
                step()

        return run

    counts = [1, cores]
    current = torch.get_num_threads()
    reuse = known if current in counts else None
    if reuse is not None:
        counts.remove(current)
    best = compare_steps({str(n): on(n) for n in counts}, warm_up=False)
    if reuse is not None:
        best[str(current)] = reuse
    runner.model.zero_grad(set_to_none=True)
    speedup = best["1"] / best[str(cores)]
    if speedup >= 1:
        how = f"{speedup:.2f}x faster than 1"
    else:  # threads that wait for each other: steps too small, or the cores are busy
        how = f"{1 / speedup:.2f}x slower than 1 (small steps, or other work on the cores)"
    now = f"train.threads is {train_threads}" + (" (torch's default)" if train_threads == 0 else "")
    log(
        f"probe: threads: a step at batch {batch} takes {best['1']:.3f} s on 1 thread, "
        f"{best[str(cores)]:.3f} s on {cores}: {cores} threads are {how}. {now}; results "
        f"are bit-identical at a fixed count, so the choice is yours (train.threads: 1 or {cores})"
    )
    return {
        "batch_size": batch,
        "cores": cores,
        "seconds_per_step": {k: float(f"{v:.4g}") for k, v in best.items()},
        "speedup": float(f"{speedup:.4g}"),
    }


def plot_candidates(result: ProbeResult, path: str | Path) -> None:
    """A PNG of every fitting candidate's peak memory and speed against its batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in result.candidates if c.fits]
    fig, mem_ax = plt.subplots(figsize=(6, 3.6))
    sizes = [c.batch_size for c in rows]
    mem_ax.plot(sizes, [c.peak_memory_mb or 0.0 for c in rows], "o-", color="tab:blue")
    mem_ax.set_xscale("log", base=2)
    mem_ax.set_xlabel("batch size")
    mem_ax.set_ylabel("peak memory (MB)", color="tab:blue")
    speed_ax = mem_ax.twinx()
    speed_ax.plot(sizes, [c.examples_per_second or 0.0 for c in rows], "s--", color="tab:orange")
    speed_ax.set_ylabel("examples per second", color="tab:orange")
    failed = [c.batch_size for c in result.candidates if not c.fits]
    for size in failed:
        mem_ax.axvline(size, color="tab:red", alpha=0.3, linestyle=":")
    mem_ax.set_title(
        f"probe on {result.device}: largest fitting batch {result.max_fitting_batch_size}"
        + (f" (budget {result.budget_mb:.0f} MB)" if result.budget_mb else ""),
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


@dataclass
class BatchPlan:
    """What the train stage takes from the probe (``data/probe/plan.json``)."""

    device: str
    batch_size: int
    accumulation_steps: int
    max_fitting_batch_size: int
    device_name: str = ""
    precision: str = ""  # fp32, bf16 or fp16, decided by the probe; "" in plans made before
    precision_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, path: str | Path, effective_batch_size: int) -> BatchPlan:
        """Read and check the plan against ``train.effective_batch_size``."""
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path} not found; run the probe stage first (dvc repro probe)")
        raw = read_json(path)
        try:
            plan = cls(
                device=str(raw["device"]),
                batch_size=int(raw["batch_size"]),
                accumulation_steps=int(raw["accumulation_steps"]),
                max_fitting_batch_size=int(raw["max_fitting_batch_size"]),
                device_name=str(raw.get("device_name", "")),
                precision=str(raw.get("precision", "")),
                precision_reason=str(raw.get("precision_reason", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: missing or bad value for {err}; rerun the probe") from None
        if plan.batch_size * plan.accumulation_steps != effective_batch_size:
            raise UserError(
                f"{path} was made for an effective batch of "
                f"{plan.batch_size} x {plan.accumulation_steps}, but train.effective_batch_size "
                f"is {effective_batch_size}; rerun the probe stage (dvc repro probe)"
            )
        return plan

    def check_device(self, log: Callable[[str], None]) -> None:
        """Warn when the plan was probed on another device than the one here.

        DVC cannot see the machine: a repository moved to a GPU machine keeps a CPU plan
        until the probe reruns.
        """
        import torch

        from nlpflow.training.device import device_name, resolve_device

        if self.device == "cpu" and torch.cuda.is_available():
            log(
                "warning: the batch plan was probed on the CPU but CUDA is available here; "
                "rerun the probe to train on the GPU (dvc repro -f probe)"
            )
        elif self.device_name and self.device == "cuda":
            here = device_name(resolve_device("cuda"))
            if here != self.device_name:
                log(
                    f"warning: the batch plan was probed on {self.device_name}, this is {here}; "
                    "rerun the probe (dvc repro -f probe) if the batch does not fit"
                )
