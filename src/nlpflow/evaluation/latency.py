"""Inference cost of the saved model: per-example latency and batched throughput.

Measured in the evaluate stage (``--latency metrics/latency.json``) so that a study can trade
quality against speed (``metrics/latency.json:ms_per_example`` as a second objective). The figures are wall
times on the machine that ran the stage, with the torch threads it had: compare them between
experiments run on the same machine only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nlpflow.evaluation.predict import forward_batches


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``: short and long inputs alike, no RNG."""
    return sorted({int(i) for i in np.linspace(0, n - 1, num=k)}) if k < n else list(range(n))


def _timed_batches(
    model: Any, ids: list[list[int]], types: list[list[int]] | None, batch: int, pad_id: int
) -> list[float]:
    """Seconds spent producing each batch's probabilities (padding and tensors included)."""
    times: list[float] = []
    batches = forward_batches(model, ids, batch, pad_id, types, progress=False)
    while True:
        start = time.perf_counter()
        if next(batches, None) is None:
            return times
        times.append(time.perf_counter() - start)


def measure_latency(
    model: Any, tokenized: Any, pad_id: int, batch_size: int, examples: int, warmup: int = 4
) -> dict[str, Any]:
    """Latency at batch size 1 and throughput at ``batch_size`` on ``examples`` inputs of a
    tokenized split (``input_ids``, maybe ``token_type_ids``); empty when ``examples`` is 0.

    ``ms_per_example`` is the median of single-example calls (what a request to a served model
    costs), ``p90_ms_per_example`` its 90th percentile, ``examples_per_second`` the rate of
    length-sorted batches (what scoring a file costs; the best of three passes). ``warmup`` calls are made first and not
    counted: the first calls pay for lazy initialisation.
    """
    import torch

    n = len(tokenized)
    if examples <= 0 or n == 0:
        return {}
    rows = _spread(n, examples)
    subset = tokenized.select(rows)
    ids = [list(x) for x in subset["input_ids"]]
    types = (
        [list(x) for x in subset["token_type_ids"]]
        if "token_type_ids" in subset.column_names
        else None
    )
    was_training = model.training
    model.eval()
    try:
        head = ids[: max(1, min(warmup, len(ids)))]
        _timed_batches(model, head, types[: len(head)] if types else None, 1, pad_id)
        single = np.array(_timed_batches(model, ids, types, 1, pad_id))
        # Best of three passes, as timeit does: a few batches are too few to average out a
        # stall caused by another process, and the fastest pass is the machine's real rate.
        batched = min(sum(_timed_batches(model, ids, types, batch_size, pad_id)) for _ in range(3))
    finally:
        model.train(was_training)
    device = next(model.parameters()).device
    return {
        "examples": len(ids),
        "ms_per_example": float(np.median(single) * 1000),
        "p90_ms_per_example": float(np.percentile(single, 90) * 1000),
        "examples_per_second": float(len(ids) / batched),
        "batch_size": batch_size,
        "device": device.type,
        "threads": torch.get_num_threads(),
    }
