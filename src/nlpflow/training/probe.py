"""Batch-size probe: the largest batch that fits this device, by doubling then bisection.

The search (:func:`search_batch_size`) is a pure function of a ``try_batch(size) -> bool``
callable, so tests can fake out-of-memory and check the exact sizes tried. The rest builds
the real model and runs one full training step (forward, backward, AdamW step) per
candidate on a worst-case batch: ``size`` copies of the longest sequence in the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.io import read_json

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from nlpflow.params import Params


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

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics/probe.json``."""
        out = asdict(self)
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
            self.device, self.batch_size, self.accumulation_steps, self.max_fitting_batch_size
        )

    def plot_rows(self) -> list[dict[str, Any]]:
        """Fitting candidates for ``dvc plots`` (``plots/probe/candidates.json``)."""
        return [
            {k: row[k] for k in ("batch_size", "peak_memory_mb", "examples_per_second")}
            for row in self.to_json()["candidates"]
            if row["fits"]
        ]


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

    def _batch(self, size: int) -> dict[str, torch.Tensor]:
        import torch

        ids = self.row.expand(size, -1).contiguous()
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.arange(size) % self.num_labels,
        }
        if self.with_token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return {k: v.to(self.device) for k, v in batch.items()}

    def run(self, size: int, budget_mb: float | None) -> Candidate:
        """One measured step (fresh optimizer, so its state counts), then timed steps."""
        import torch

        from nlpflow.training.device import autocast
        from nlpflow.training.memory import measure_peak, release_memory

        # What the previous candidate left behind must not count against this one. On the
        # CPU there are no cached blocks to drop and no cycles hold tensors: skip the slow gc.
        release_memory(self.device, collect=self.device.type == "cuda")
        self.model.train()
        batch = self._batch(size)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-6)

        def step() -> None:
            with autocast(self.device):
                loss = self.model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        try:
            with measure_peak(self.device) as peak:
                step()
            fits = budget_mb is None or peak.peak_mb is None or peak.peak_mb <= budget_mb
            return Candidate(size, fits, peak.peak_mb, self._speed(step, size) if fits else None)
        finally:
            # Gradients would otherwise count as resident memory for the next candidate.
            self.model.zero_grad(set_to_none=True)

    def _speed(self, step: Callable[[], None], size: int) -> float:
        """Examples per second of a warm step: the fastest of up to 3 (within ~1 s).

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
            if spent > 1.0:
                break
        return size / max(best, 1e-9)


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


def run_probe(
    params: Params, data_dir: str | Path, tokenizer_dir: str | Path, log: Callable[[str], None]
) -> ProbeResult:
    """Probe the batch size for ``params.model`` on this device (reads seed, model, probe and
    ``train.effective_batch_size`` only)."""
    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.seeding import seed_everything
    from nlpflow.training.data import label_names, load_tokenized, max_sequence_length
    from nlpflow.training.device import resolve_device
    from nlpflow.training.memory import memory_budget_mb, release_memory

    probe = params.probe
    device = resolve_device(probe.device)
    data = load_tokenized(data_dir)
    labels = label_names(data)
    seq_len = max_sequence_length(data)
    if seq_len < 1:
        raise UserError(f"{data_dir} holds no sequences to probe with")
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=params.model.trust_remote_code)

    seed_everything(params.seed)
    model = build_model(params.model, tokenizer, labels, seq_len)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
    runner = StepRunner(
        model,
        device,
        seq_len,
        len(labels),
        with_token_type_ids="token_type_ids" in data["train"].column_names,
        seed=params.seed,
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
        log(f"probe: batch {size:>5}  {'fits' if cand.fits else 'does not fit'}  peak {peak}")
        return cand.fits

    max_fit, _ = search_batch_size(try_batch, probe.max_batch_size, probe.max_candidates)
    if max_fit < 1:
        where = f"the {budget:.0f} MB budget (probe.memory_budget)" if budget else device.type
        raise UserError(
            f"even batch size 1 at sequence length {seq_len} does not fit {where}; "
            "raise probe.memory_budget, shorten tokenizer.max_length or use a smaller model"
        )
    effective = params.train.effective_batch_size
    batch, accumulation = choose_batch_size(effective, max_fit)
    log(
        f"probe: largest fitting batch {max_fit}; training with batch {batch} x "
        f"{accumulation} accumulation steps = {effective}"
    )
    return ProbeResult(
        device=device.type,
        sequence_length=seq_len,
        max_fitting_batch_size=max_fit,
        batch_size=batch,
        accumulation_steps=accumulation,
        effective_batch_size=effective,
        budget_mb=budget,
        candidates=candidates,
    )


@dataclass
class BatchPlan:
    """What the train stage takes from ``metrics/probe.json``."""

    device: str
    batch_size: int
    accumulation_steps: int
    max_fitting_batch_size: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, path: str | Path, effective_batch_size: int) -> BatchPlan:
        """Read and check ``metrics/probe.json`` against ``train.effective_batch_size``."""
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
