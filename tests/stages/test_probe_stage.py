"""The probe stage end to end on tiny data, in process (``stages.probe.main``)."""

from __future__ import annotations

import json
import os
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
    "search_cap",
    "precision",
    "precision_reason",
    "timings",
    "parameters",
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True)
def _one_core(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # The thread comparison (1 against all cores) is tested in the first test below; the
    # others see one core, so they skip it and stay cheap on a busy machine.
    if request.node.name != "test_probe_stage_writes_metrics_and_plot":
        monkeypatch.setattr("nlpflow.training.probe.usable_cores", lambda: 1)


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
            "--timing", str(tmp_path / "metrics/probe_timing.json"),
            "--plot", str(tmp_path / "plots/probe/candidates.json"),
            "--image", str(tmp_path / "plots/probe/candidates.png"),
            "--plan", str(tmp_path / "plan.json"),
            "--cache", str(tmp_path / "measurements.json"),
        ]
    )  # fmt: skip
    assert code == 0
    # probe.json holds the outcome; the machine's measurements are in probe_timing.json.
    outcome = json.loads((tmp_path / "metrics/probe.json").read_text())
    measured = json.loads((tmp_path / "metrics/probe_timing.json").read_text())
    assert "budget_mb" not in outcome and "timings" not in outcome
    assert all(set(c) == {"batch_size", "fits"} for c in outcome["candidates"])
    cands = [{**c, **m} for c, m in zip(outcome["candidates"], measured["candidates"], strict=True)]
    apart = {k: measured[k] for k in ("budget_mb", "timings") if k in measured}
    result: dict[str, Any] = {**outcome, **apart, "candidates": cands}
    return result


def test_probe_stage_writes_metrics_and_plot(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    result = probe(tmp_path, tiny)
    assert set(result) == KEYS
    assert result["device"] == "cpu"
    assert result["budget_mb"] > 0
    assert result["sequence_length"] == 15  # the longest tiny pair: [CLS] 6 [SEP] 6 [SEP]
    # Only what the plan can use: up to the effective batch (24), not max_batch_size (64).
    assert result["search_cap"] == 24
    assert [c["batch_size"] for c in result["candidates"]] == [1, 2, 4, 8, 16, 24]
    assert result["max_fitting_batch_size"] == 24
    assert (result["batch_size"], result["accumulation_steps"]) == (24, 1)
    assert result["effective_batch_size"] == 24
    for cand in result["candidates"]:
        assert set(cand) == {"batch_size", "fits", "peak_memory_mb", "examples_per_second"}
        assert cand["fits"] and cand["peak_memory_mb"] >= 0 and cand["examples_per_second"] > 0
    assert result["precision"] in ("fp32", "bf16")
    assert result["precision_reason"].startswith("train.precision auto")

    # Timer readings, apart from the results: one thread against all cores at batch 24.
    timings = result["timings"]
    assert timings["probe_seconds"] > 0
    threads = timings["threads"]
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        assert threads["batch_size"] == 24 and threads["cores"] == cores
        per_step = threads["seconds_per_step"]
        assert set(per_step) == {"1", str(cores)} and all(v > 0 for v in per_step.values())
        assert threads["speedup"] == pytest.approx(per_step["1"] / per_step[str(cores)], rel=0.01)
        assert (
            f"a step at batch 24 takes {per_step['1']:.3f} s on 1 thread" in capsys.readouterr().err
        )
    assert timings["batch_size_effect"]["largest_batch"] == 24

    # The train stage's input: the plan alone, no timings (so DVC reruns train only when the
    # plan itself changes).
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan == {"device": "cpu", "batch_size": 24, "accumulation_steps": 1,
                    "max_fitting_batch_size": 24, "device_name": result["device_name"],
                    "precision": result["precision"],
                    "precision_reason": result["precision_reason"]}  # fmt: skip
    assert (tmp_path / "plots/probe/candidates.png").read_bytes()[:4] == b"\x89PNG"

    plot = json.loads((tmp_path / "plots/probe/candidates.json").read_text())
    assert plot == [
        {k: c[k] for k in ("batch_size", "peak_memory_mb", "examples_per_second")}
        for c in result["candidates"]
    ]


def test_auto_precision_on_a_cpu_without_bf16_units_is_fp32(
    tmp_path: Path, tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nlpflow.training.device.cpu_bf16_units", lambda: [])
    result = probe(tmp_path, tiny)
    assert result["precision"] == "fp32"
    assert "no bf16 matrix units" in result["precision_reason"]
    assert result["timings"]["precision"] == {"bf16_units": []}


@pytest.mark.parametrize(("bf16_seconds", "chosen"), [(0.5, "bf16"), (0.95, "fp32")])
def test_auto_precision_on_a_cpu_with_bf16_units_follows_the_measurement(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    bf16_seconds: float,
    chosen: str,
) -> None:
    # The timer is faked (a real comparison on a tiny model goes either way): bf16 2x or
    # 1.05x faster than fp32; the margin to choose it is 1.1x. The steps themselves run.
    from nlpflow.training import probe as probe_module

    monkeypatch.setattr("nlpflow.training.device.cpu_bf16_units", lambda: ["avx512_bf16"])
    real = probe_module.compare_steps

    def timed(variants: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, float]:
        if set(variants) != {"fp32", "bf16"}:
            return real(variants, *args, **kwargs)
        for run in variants.values():
            run()
        return {"fp32": 1.0, "bf16": bf16_seconds}

    monkeypatch.setattr(probe_module, "compare_steps", timed)
    result = probe(tmp_path, tiny)
    assert result["precision"] == chosen
    assert result["precision_reason"].endswith(f"(avx512_bf16): {chosen}")
    assert result["timings"]["precision"]["bf16_speedup"] == pytest.approx(
        1 / bf16_seconds, abs=0.001
    )
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["precision"] == chosen


def test_a_small_budget_is_respected(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    # 2 MB: batch 1 needs kilobytes, batch 256 of a 15-token pair several MB.
    result = probe(
        tmp_path, tiny, train={"effective_batch_size": 256}, memory_budget=2, max_batch_size=256
    )
    assert result["budget_mb"] == 2
    cands = result["candidates"]
    assert any(not c["fits"] for c in cands), cands
    for c in cands:  # "fits" is "the measured peak is within the budget" (peaks are rounded)
        if abs(c["peak_memory_mb"] - 2) > 0.01:
            assert c["fits"] == (c["peak_memory_mb"] < 2), cands
    assert result["max_fitting_batch_size"] == max(c["batch_size"] for c in cands if c["fits"])
    assert result["batch_size"] <= result["max_fitting_batch_size"]
    assert result["batch_size"] * result["accumulation_steps"] == 256


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
    assert [c["batch_size"] for c in cands] == [1, 2, 4, 8, 16, 24, 20, 22, 21]
    assert [c["fits"] for c in cands] == [True] * 5 + [False, True, False, False]
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
    # A smaller effective batch, another learning rate or seed: the same measurement, re-split.
    again = probe(tmp_path, tiny, train={"effective_batch_size": 12, "lr": 0.5})
    assert measured == []
    assert "reusing the measurement" in capsys.readouterr().err
    assert again["candidates"] == [c for c in first["candidates"] if c["batch_size"] <= 12]
    assert (again["batch_size"], again["accumulation_steps"]) == (12, 1)
    assert again["precision"] == first["precision"]
    # A larger one: the kept search stopped at 24 with everything fitting, so it is measured.
    larger = probe(tmp_path, tiny, train={"effective_batch_size": 48})
    assert measured and measured[-1] == 48 and larger["max_fitting_batch_size"] == 48
    assert "stops below batch 48; measuring again" in capsys.readouterr().err
    # Another budget (or model shape, optimizer, sequence length, device): measured again.
    measured.clear()
    probe(tmp_path, tiny, memory_budget=4000)
    assert measured, "a new budget is measured"


def test_token_task_probe(tmp_path: Path) -> None:
    from tests.training.tiny import make_tiny_token_data

    result = probe(tmp_path, make_tiny_token_data(tmp_path / "data"), max_batch_size=8)
    assert result["max_fitting_batch_size"] == 8 and result["sequence_length"] > 4
