"""Which rows go into which optimizer step, on which process, in which micro-batch.

An epoch's order is a pure function of the shuffle generator's state at the epoch start, so
a run resumed mid-epoch regenerates the same order and skips the steps already taken.

``length_grouped`` batching (the default): shuffle all rows, cut the order into pools of
``POOL_STEPS`` optimizer steps, sort each pool by length bucket (``LENGTH_BUCKET`` tokens
wide; rows keep their shuffled order within a bucket), cut it into steps, and shuffle the
steps. Every step holds rows of similar length (little padding) and the steps still come in
random order. ``random``: plain shuffled steps.

Why buckets and not exact lengths: when the label depends on the length (the built-in
anagram task: a pair whose two words differ in length is never an anagram, and pairs of even
total length are all near misses), steps of one exact length hold one class each, and a
model trained on them learns nothing (measured: validation accuracy 0.49, against 0.83 with
random batches). Buckets two tokens wide put neighbouring lengths in one step, which keeps
both classes in it (0.83 again) and costs little padding (AG News with MiniLM's tokenizer:
0.963 of the tokens are real, against 0.973 sorted exactly, 0.943 with buckets of 4 and
0.44 in random batches).

Data parallelism: each step's rows are dealt out to the processes (``rows[rank::world]``,
so every process gets rows of the same lengths), and each process cuts its share into
micro-batches of at most the probe's batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Batching = Literal["length_grouped", "random"]
POOL_STEPS = 50  # steps per sorted pool: as transformers' LengthGroupedSampler (mega-batch)
LENGTH_BUCKET = 2  # tokens: rows of lengths 15 and 16 are one bucket, in random order


def epoch_steps(
    lengths: torch.Tensor, step_size: int, generator: torch.Generator, batching: Batching
) -> list[torch.Tensor]:
    """The row indices of each optimizer step of one epoch (the last may be short)."""
    import torch

    n = int(lengths.shape[0])
    order = torch.randperm(n, generator=generator)
    if batching == "random":
        return list(order.split(step_size))
    if batching != "length_grouped":
        raise ValueError(f"unknown batching {batching!r}")
    steps: list[torch.Tensor] = []
    for pool in order.split(step_size * POOL_STEPS):
        # Longest bucket first within a pool; stable, so a bucket keeps the shuffled order.
        buckets = torch.div(lengths[pool] + LENGTH_BUCKET - 1, LENGTH_BUCKET, rounding_mode="floor")
        by_length = torch.argsort(buckets, descending=True, stable=True)
        steps.extend(pool[by_length].split(step_size))
    # Pools are whole multiples of a step except the last: at most one short step, as in
    # random batching. The steps are shuffled so that lengths come in random order.
    perm = torch.randperm(len(steps), generator=generator)
    return [steps[i] for i in perm.tolist()]


def shard(step: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This process's rows of one step: every ``world``-th row, starting at ``rank``."""
    return step[rank::world]


def micro_batches(
    rows: torch.Tensor, batch_size: int, lengths: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """``rows`` cut into micro-batches of at most ``batch_size``, as even as possible.

    ``[10, 10, 10, 2]`` would waste the last forward on 2 rows; ``[8, 8, 8, 8]`` does the
    same work in equal parts. The number of micro-batches is the smallest that fits. With
    ``lengths`` (of all rows, indexed by row) the rows are sorted by length first, so each
    micro-batch pads to less; the step's gradient is the same sum.
    """
    import torch

    n = int(rows.shape[0])
    if n == 0:
        return []
    count = -(-n // batch_size)
    if lengths is not None and count > 1:
        rows = rows[torch.argsort(lengths[rows], stable=True)]
    base, extra = divmod(n, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    return list(rows.split(sizes))
