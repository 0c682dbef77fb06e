"""The training loop on tiny data: resume, stale checkpoints, NaN stop, accumulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from nlpflow.params import Params
from nlpflow.training.loop import TrainResult, train
from nlpflow.training.probe import BatchPlan
from tests.training.tiny import tiny_params

PLAN = BatchPlan(device="cpu", batch_size=8, accumulation_steps=2, max_fitting_batch_size=64)


class Interrupted(Exception):
    """Stands in for a crash after a checkpoint was written."""


def run(
    tiny_data: tuple[Path, Path],
    out: Path,
    params: Params,
    plan: BatchPlan = PLAN,
    **kwargs: Any,
) -> tuple[TrainResult, list[str]]:
    data_dir, tok_dir = tiny_data
    lines: list[str] = []
    result = train(
        params, data_dir, tok_dir, plan, out / "models", out / "checkpoints",
        log=lines.append, **kwargs,
    )  # fmt: skip
    return result, lines


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_interrupted_and_resumed_equals_uninterrupted(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(epochs=3)
    full, _ = run(tiny_data, tmp_path / "full", params)

    def crash_after_first(epoch: int) -> None:
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(tiny_data, tmp_path / "cut", params, on_epoch_end=crash_after_first)
    assert not (tmp_path / "cut" / "models").exists(), "no model before the run ends"
    resumed, lines = run(tiny_data, tmp_path / "cut", params)

    assert any(line.startswith("resuming from epoch 1") for line in lines)
    assert resumed.summary["resumed_from_epoch"] == 1
    assert full.summary["resumed_from_epoch"] is None
    for kind in ("last", "best"):
        assert_same_weights(tmp_path / "full/models" / kind, tmp_path / "cut/models" / kind)
    assert resumed.steps == full.steps  # losses, lrs and grad norms, bit for bit
    assert resumed.epochs == full.epochs
    skip = {"seconds", "examples_per_second", "resumed_from_epoch"}
    assert {k: v for k, v in resumed.summary.items() if k not in skip} == {
        k: v for k, v in full.summary.items() if k not in skip
    }


def test_same_params_give_bit_identical_weights(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(epochs=2)
    run(tiny_data, tmp_path / "a", params)
    run(tiny_data, tmp_path / "b", params)
    assert_same_weights(tmp_path / "a/models/last", tmp_path / "b/models/last")


def test_checkpoint_of_other_params_is_not_resumed(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    run(tiny_data, tmp_path, tiny_params(epochs=2, lr=3e-3))
    changed, lines = run(tiny_data, tmp_path, tiny_params(epochs=2, lr=1e-3))

    assert changed.summary["resumed_from_epoch"] is None
    assert not any(line.startswith("resuming from") for line in lines)
    message = next(line for line in lines if "other params" in line)
    assert "section train differs" in message
    assert "train.lr 0.003 -> 0.001" in message
    assert "starting fresh" in message
    # What is left is this run's alone.
    metas = [
        json.loads((p / "meta.json").read_text()) for p in (tmp_path / "checkpoints").iterdir()
    ]
    assert {m["sections"]["train"]["lr"] for m in metas} == {1e-3}


def test_other_probe_split_is_not_resumed(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    run(tiny_data, tmp_path, tiny_params(epochs=1))
    other = BatchPlan("cpu", batch_size=16, accumulation_steps=1, max_fitting_batch_size=64)
    result, lines = run(tiny_data, tmp_path, tiny_params(epochs=1), plan=other)
    assert result.summary["resumed_from_epoch"] is None
    assert any("section probe differs" in line for line in lines)


def test_keeps_the_last_two_checkpoints_and_best(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    result, _ = run(tiny_data, tmp_path, tiny_params(epochs=4))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best", "epoch-3", "epoch-4"]
    best = json.loads((tmp_path / "checkpoints/best/meta.json").read_text())
    assert best["epoch"] == result.summary["best_epoch"]
    # Loop state loads with weights_only=True: no pickled code in a checkpoint.
    state = torch.load(tmp_path / "checkpoints/epoch-4/state.pt", weights_only=True)
    assert state["epoch"] == 4 and state["global_step"] == result.summary["steps"]
    assert set(state["rng"]) >= {"python", "numpy", "torch", "shuffle"}


def test_rerun_after_completion_resumes_without_training(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = run(tiny_data, tmp_path, tiny_params(epochs=2))
    again, lines = run(tiny_data, tmp_path, tiny_params(epochs=2))
    assert any(line.startswith("resuming from epoch 2") for line in lines)
    assert again.steps == first.steps
    assert again.summary["stop_reason"] == first.summary["stop_reason"] == "max_epochs"


def test_nan_loss_stops_at_once(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    # An absurd learning rate makes the weights overflow float32 after one step.
    params = tiny_params(epochs=3, lr=1e30, warmup_ratio=0.0, max_grad_norm=0.0)
    result, lines = run(tiny_data, tmp_path, params)
    summary = result.summary
    assert summary["stop_reason"] == "non_finite_loss"
    assert "non-finite loss" in summary["stop_detail"]
    assert summary["steps"] == 1  # the step with the NaN loss was not taken
    assert summary["epochs_run"] == 0
    assert all(row["loss"] is not None for row in result.steps)
    assert any(line.startswith("stopping: non-finite loss") for line in lines)
    json.dumps(summary, allow_nan=False)  # NaN never reaches the metrics file
    assert (tmp_path / "models/best/config.json").exists()


def test_early_stopping_records_its_reason(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    # lr so small nothing changes: the monitored loss cannot improve by min_delta.
    params = tiny_params(
        epochs=10,
        lr=1e-9,
        early_stopping={"metric": "loss", "mode": "min", "patience": 2, "min_delta": 0.1},
    )
    result, lines = run(tiny_data, tmp_path, params)
    assert result.summary["stop_reason"] == "early_stopping"
    assert result.summary["epochs_run"] == 3  # best at 1, then 2 evaluations without
    assert result.summary["best_epoch"] == 1
    assert result.summary["monitor"]["metric"] == "loss"
    assert "patience 2" in result.summary["stop_detail"]
    assert any(line.startswith("early stopping:") for line in lines)


def test_gradient_accumulation_keeps_the_effective_batch(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # Without dropout, 16 x 1, 8 x 2 and 4 x 4 are the same optimisation up to rounding.
    params = tiny_params(epochs=1)
    params.model.dropout = 0.0
    out = {}
    for batch, accumulation in [(16, 1), (8, 2), (4, 4)]:
        plan = BatchPlan("cpu", batch, accumulation, 64)
        result, _ = run(tiny_data, tmp_path / f"{batch}", params, plan=plan)
        assert result.summary["steps"] == 6  # 96 rows / 16 per step
        out[batch] = weights(tmp_path / f"{batch}/models/last")
    for name, ref in out[16].items():
        for batch in (8, 4):
            torch.testing.assert_close(out[batch][name], ref, rtol=1e-4, atol=1e-5)
