"""The probe stage end to end on tiny data, in process (``stages.probe.main``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nlpflow.training.probe import Candidate, StepRunner
from stages.probe import main
from tests.training.tiny import make_tiny_data, one_torch_thread, write_params

KEYS = {
    "device",
    "sequence_length",
    "max_fitting_batch_size",
    "batch_size",
    "accumulation_steps",
    "effective_batch_size",
    "budget_mb",
    "candidates",
    "device_name",
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_data(tmp_path_factory.mktemp("probe-data"))


def probe(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    train: dict[str, Any] | None = None,
    **probe_params: Any,
) -> dict[str, Any]:
    params = write_params(
        tmp_path / "params.yaml",
        {
            "seed": 3,
            "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
            "probe": {"max_batch_size": 64, **probe_params},
            "train": {"effective_batch_size": 24, **(train or {})},
        },
    )
    data, tok = tiny
    code = main(
        [
            "--params", str(params), "--data", str(data), "--tokenizer", str(tok),
            "--out", str(tmp_path / "metrics/probe.json"),
            "--plot", str(tmp_path / "plots/probe/candidates.json"),
            "--image", str(tmp_path / "plots/probe/candidates.png"),
            "--plan", str(tmp_path / "plan.json"),
            "--cache", str(tmp_path / "measurements.json"),
        ]
    )  # fmt: skip
    assert code == 0
    result: dict[str, Any] = json.loads((tmp_path / "metrics/probe.json").read_text())
    return result


def test_probe_stage_writes_metrics_and_plot(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    result = probe(tmp_path, tiny)
    assert set(result) == KEYS
    assert result["device"] == "cpu"
    assert result["budget_mb"] > 0
    assert result["sequence_length"] == 15  # the longest tiny pair: [CLS] 6 [SEP] 6 [SEP]
    assert [c["batch_size"] for c in result["candidates"]] == [1, 2, 4, 8, 16, 32, 64]
    assert result["max_fitting_batch_size"] == 64
    # 24 = 24 x 1: the largest divisor of the effective batch that fits.
    assert (result["batch_size"], result["accumulation_steps"]) == (24, 1)
    assert result["effective_batch_size"] == 24
    for cand in result["candidates"]:
        assert set(cand) == {"batch_size", "fits", "peak_memory_mb", "examples_per_second"}
        assert cand["fits"] and cand["peak_memory_mb"] >= 0 and cand["examples_per_second"] > 0

    # The train stage's input: the plan alone, no timings (so DVC reruns train only when the
    # plan itself changes).
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan == {"device": "cpu", "batch_size": 24, "accumulation_steps": 1,
                    "max_fitting_batch_size": 64, "device_name": result["device_name"]}  # fmt: skip
    assert (tmp_path / "plots/probe/candidates.png").read_bytes()[:4] == b"\x89PNG"

    plot = json.loads((tmp_path / "plots/probe/candidates.json").read_text())
    assert plot == [
        {k: c[k] for k in ("batch_size", "peak_memory_mb", "examples_per_second")}
        for c in result["candidates"]
    ]


def test_a_small_budget_is_respected(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    # 2 MB: batch 1 needs kilobytes, batch 256 of a 15-token pair several MB.
    result = probe(tmp_path, tiny, memory_budget=2, max_batch_size=256)
    assert result["budget_mb"] == 2
    cands = result["candidates"]
    assert any(not c["fits"] for c in cands), cands
    for c in cands:  # "fits" is "the measured peak is within the budget" (peaks are rounded)
        if abs(c["peak_memory_mb"] - 2) > 0.01:
            assert c["fits"] == (c["peak_memory_mb"] < 2), cands
    assert result["max_fitting_batch_size"] == max(c["batch_size"] for c in cands if c["fits"])
    assert result["batch_size"] <= result["max_fitting_batch_size"]
    assert result["batch_size"] * result["accumulation_steps"] == 24


def test_out_of_memory_candidates_are_recorded(
    tmp_path: Path, tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faked because no GPU is here: above 20 rows the step raises what CUDA raises.
    real_run = StepRunner.run

    def run(self: StepRunner, size: int, budget_mb: float | None) -> Candidate:
        if size > 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_run(self, size, budget_mb)

    monkeypatch.setattr(StepRunner, "run", run)
    result = probe(tmp_path, tiny)
    cands = result["candidates"]
    assert [c["batch_size"] for c in cands] == [1, 2, 4, 8, 16, 32, 24, 20, 22, 21]
    assert [c["fits"] for c in cands] == [True] * 5 + [False, False, True, False, False]
    assert all(c["peak_memory_mb"] is None for c in cands if not c["fits"])
    assert result["max_fitting_batch_size"] == 20
    assert (result["batch_size"], result["accumulation_steps"]) == (12, 2)  # 24 = 12 x 2
    plot = json.loads((tmp_path / "plots/probe/candidates.json").read_text())
    assert [row["batch_size"] for row in plot] == [1, 2, 4, 8, 16, 20]


def test_missing_data_is_one_clear_line(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params(tmp_path / "params.yaml", {})
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--params", str(params), "--data", str(tmp_path / "nope"),
                "--tokenizer", str(tiny[1]), "--out", str(tmp_path / "p.json"),
                "--plot", str(tmp_path / "c.json"),
            ]
        )  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope not found" in err and "tokenize" in err
    assert "\n" not in err
    assert not (tmp_path / "p.json").exists()


def test_probe_reruns_only_when_its_inputs_change(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = probe(tmp_path, tiny)
    measured: list[int] = []
    real_run = StepRunner.run

    def counting(self: StepRunner, size: int, budget_mb: float | None) -> Candidate:
        measured.append(size)
        return real_run(self, size, budget_mb)

    monkeypatch.setattr(StepRunner, "run", counting)
    # Another effective batch, learning rate or seed: the same measurement, re-split.
    again = probe(tmp_path, tiny, train={"effective_batch_size": 96, "lr": 0.5})
    assert measured == []
    assert "reusing the measurement" in capsys.readouterr().err
    assert again["candidates"] == first["candidates"]
    assert (again["batch_size"], again["accumulation_steps"]) == (48, 2)
    # Another budget (or model shape, optimizer, sequence length, device): measured again.
    probe(tmp_path, tiny, memory_budget=4000)
    assert measured, "a new budget is measured"


def test_token_task_probe(tmp_path: Path) -> None:
    from tests.training.tiny import make_tiny_token_data

    result = probe(tmp_path, make_tiny_token_data(tmp_path / "data"), max_batch_size=8)
    assert result["max_fitting_batch_size"] == 8 and result["sequence_length"] > 4
