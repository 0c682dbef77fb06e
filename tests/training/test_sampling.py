"""Batches: length-grouped steps, sharding over processes, even micro-batches."""

from __future__ import annotations

import pytest
import torch

from nlpflow.training.sampling import POOL_STEPS, epoch_steps, micro_batches, shard


def lengths(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(5, 200, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batching", ["length_grouped", "random"])
def test_every_row_once_per_epoch(batching: str) -> None:
    n, size = 1000, 32
    steps = epoch_steps(lengths(n), size, torch.Generator().manual_seed(1), batching)  # type: ignore[arg-type]
    rows = torch.cat(steps)
    assert sorted(rows.tolist()) == list(range(n))
    assert sum(len(s) < size for s in steps) <= 1, "at most one short step"
    assert len(steps) == -(-n // size)


def test_length_grouped_steps_hold_similar_lengths_in_random_order() -> None:
    n, size = 3200, 32
    lens = lengths(n)
    steps = epoch_steps(lens, size, torch.Generator().manual_seed(1), "length_grouped")
    real = sum(int(lens[s].sum()) for s in steps)
    padded = sum(int(lens[s].max()) * len(s) for s in steps)
    assert real / padded > 0.9
    random = epoch_steps(lens, size, torch.Generator().manual_seed(1), "random")
    r_real = sum(int(lens[s].sum()) for s in random)
    r_padded = sum(int(lens[s].max()) * len(s) for s in random)
    assert r_real / r_padded < 0.6
    # Not sorted overall: the steps of a pool are shuffled.
    longest = [int(lens[s].max()) for s in steps]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    assert len(steps) > POOL_STEPS


def test_order_is_a_function_of_the_generator_state() -> None:
    lens = lengths(500)
    gen = torch.Generator().manual_seed(4)
    state = gen.get_state()
    first = epoch_steps(lens, 16, gen, "length_grouped")
    after = gen.get_state()
    gen.set_state(state)
    again = epoch_steps(lens, 16, gen, "length_grouped")
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert torch.equal(gen.get_state(), after), "a replay leaves the generator where it was"


def test_shards_partition_a_step() -> None:
    step = torch.arange(10, 21)
    parts = [shard(step, r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == step.tolist()
    assert [len(p) for p in parts] == [4, 4, 3]


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [(32, 10, [8, 8, 8, 8]), (30, 10, [10, 10, 10]), (7, 10, [7]), (0, 4, []), (5, 2, [2, 2, 1])],
)
def test_micro_batches_are_even_and_fit(n: int, size: int, expected: list[int]) -> None:
    parts = micro_batches(torch.arange(n), size)
    assert [len(p) for p in parts] == expected
    assert torch.cat(parts).tolist() == list(range(n)) if parts else n == 0


def test_only_rank_0_of_a_real_group_is_the_main_process() -> None:
    from nlpflow.training.distributed import is_main_process, launched_by_torchrun

    assert is_main_process({}) and not launched_by_torchrun({})
    assert is_main_process({"RANK": "0", "WORLD_SIZE": "2"})
    assert not is_main_process({"RANK": "1", "WORLD_SIZE": "2"})
    # a RANK left in the shell without a group: the process is on its own, so it is the main
    assert is_main_process({"RANK": "3"}) and is_main_process({"RANK": "3", "WORLD_SIZE": "1"})
