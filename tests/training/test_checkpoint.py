"""Checkpoint identity, RNG capture and the checkpoint directory's housekeeping."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from nlpflow.training.checkpoint import (
    CheckpointDir,
    capture_rng,
    describe_difference,
    differing_sections,
    restore_rng,
    run_sections,
    sections_hash,
)
from nlpflow.training.probe import BatchPlan
from tests.training.tiny import tiny_params

PLAN = BatchPlan("cpu", 8, 2, 64)


def draws(gen: torch.Generator) -> tuple[float, float, float, list[int]]:
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(1)),
        torch.randperm(10, generator=gen).tolist(),
    )


def test_rng_round_trip_through_weights_only_load(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    draws(gen)
    torch.save(capture_rng(gen), tmp_path / "rng.pt")
    expected = draws(gen)

    draws(gen)  # move every generator on
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), gen)
    assert draws(gen) == expected


def test_hash_depends_on_every_section() -> None:
    base = run_sections(tiny_params(), PLAN, "data-a")
    variants = [
        run_sections(tiny_params(lr=1e-4), PLAN, "data-a"),
        run_sections(tiny_params(), BatchPlan("cpu", 16, 1, 64), "data-a"),
        run_sections(tiny_params(), PLAN, "data-b"),
    ]
    variants.append(run_sections(dataclasses.replace(tiny_params(), seed=8), PLAN, "data-a"))
    wider = tiny_params()
    wider.model.hidden_size *= 2
    variants.append(run_sections(wider, PLAN, "data-a"))
    hashes = {sections_hash(base)} | {sections_hash(v) for v in variants}
    assert len(hashes) == 6
    assert differing_sections(base, variants[4]) == ["model"]
    assert sections_hash(base) == sections_hash(run_sections(tiny_params(), PLAN, "data-a"))
    assert differing_sections(base, variants[2]) == ["data"]
    assert differing_sections(base, variants[3]) == ["seed"]


def test_difference_names_the_keys() -> None:
    old = {"seed": 1, "train": {"lr": 0.1, "early_stopping": {"patience": 3}}}
    new = {"seed": 1, "train": {"lr": 0.2, "early_stopping": {"patience": 5}}}
    assert describe_difference(old, new) == (
        "train.early_stopping.patience 3 -> 5, train.lr 0.1 -> 0.2"
    )


def test_leftovers_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / ".step-3.abc123.tmp").mkdir(parents=True)
    (root / ".step-2.old.999").mkdir()
    (root / "notes.txt").write_text("the user's own file")
    ckpts = CheckpointDir(root, run_sections(tiny_params(), PLAN, "d"), log=print)
    assert ckpts.find_resumable() is None
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_unreadable_checkpoint_is_reported_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / "step-4").mkdir(parents=True)  # no meta.json: not ours to trust
    lines: list[str] = []
    ckpts = CheckpointDir(root, run_sections(tiny_params(), PLAN, "d"), log=lines.append)
    assert ckpts.find_resumable() is None
    assert not (root / "step-4").exists()
    assert "has no readable meta.json" in lines[0] and "starting fresh" in lines[0]


def test_runtime_is_part_of_the_identity_and_bookkeeping_is_not() -> None:
    base = run_sections(tiny_params(), PLAN, "d", {"processes": 1, "threads": 1})
    two = run_sections(tiny_params(), PLAN, "d", {"processes": 2, "threads": 1})
    assert differing_sections(base, two) == ["runtime"]
    kept = run_sections(tiny_params(keep_checkpoints=5, tensorboard=True), PLAN, "d",
                        {"processes": 1, "threads": 1})  # fmt: skip
    assert sections_hash(kept) == sections_hash(base)
