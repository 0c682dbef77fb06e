"""Precision, threads and the compile option (no GPU here: CUDA is faked where needed)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import torch

from nlpflow.errors import UserError
from nlpflow.training.device import autocast, cpu_bf16_units, resolve_precision, torch_threads

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_precision_choices() -> None:
    # auto is fp32 until the probe has measured; bf16 is asked for explicitly.
    assert resolve_precision("auto", CPU) == (None, "fp32")
    assert resolve_precision("fp32", CPU) == (None, "fp32")
    dtype, note = resolve_precision("fp16", CPU)
    assert dtype is None and "is for CUDA" in note
    dtype, note = resolve_precision("bf16", CPU)
    assert dtype == torch.bfloat16 and note.startswith("bf16 autocast on the CPU")
    assert isinstance(autocast(CPU, None), contextlib.nullcontext)
    assert isinstance(autocast(CPU, torch.float16), contextlib.nullcontext)
    with autocast(CPU, torch.bfloat16):
        out = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert out.dtype == torch.bfloat16
    with pytest.raises(UserError) as info:
        resolve_precision("int8", CPU)
    assert "use auto, fp32, bf16 or fp16" in str(info.value)


def test_bf16_units_read_from_cpuinfo_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: X\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_units(str(info)) == ["amx_bf16", "avx512_bf16"]
    info.write_text("flags\t\t: fpu sse avx2\n")
    assert cpu_bf16_units(str(info)) == []
    assert cpu_bf16_units(str(tmp_path / "absent")) == []


def test_cuda_mixed_precision_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faked: no GPU on this machine; only the decision logic is tested.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", CUDA)[0] == torch.bfloat16
    assert resolve_precision("fp16", CUDA) == (
        torch.float16,
        "fp16 mixed precision with loss scaling",
    )
    assert resolve_precision("fp32", CUDA)[0] is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA)[0] == torch.float16
    with pytest.raises(UserError, match="no bf16"):
        resolve_precision("bf16", CUDA)


def test_threads_are_set_and_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(2) as n:
        assert n == torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with torch_threads(0) as n:
        assert n == before


def test_compile_option_wraps_the_forward_and_saves_plain_weights(
    tiny_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch.compile itself takes tens of seconds on the CPU: here it is replaced by a wrapper
    # that records the call, to check the wiring (the saved model has no compile prefixes).
    from safetensors.torch import load_file

    from nlpflow.training.loop import train
    from nlpflow.training.probe import BatchPlan
    from tests.training.tiny import tiny_params

    calls: list[dict[str, Any]] = []

    def fake_compile(model: torch.nn.Module, **kwargs: Any) -> torch.nn.Module:
        calls.append(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    data, tok = tiny_data
    result = train(
        tiny_params(epochs=1, compile=True), data, tok, BatchPlan("cpu", 16, 1, 64),
        tmp_path / "models", tmp_path / "ckpt", log=lambda _: None,
    )  # fmt: skip
    assert calls == [{"dynamic": True}]
    assert result.summary["steps"] == 6
    names = load_file(str(tmp_path / "models/last/model.safetensors")).keys()
    assert not [n for n in names if n.startswith("_orig_mod")]


def test_train_computes_in_the_precision_the_plan_decided(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # train.precision auto: the plan's decision (bf16 here) is what the loop runs in.
    from nlpflow.training.loop import train
    from nlpflow.training.probe import BatchPlan
    from tests.training.tiny import tiny_params

    data, tok = tiny_data
    runs = {}
    for precision in ("bf16", "fp32"):
        plan = BatchPlan("cpu", 32, 1, 32, precision=precision)
        runs[precision] = train(
            tiny_params(epochs=1), data, tok, plan, tmp_path / precision / "models",
            tmp_path / precision / "ckpt", log=lambda _: None,
        )  # fmt: skip
    assert runs["bf16"].summary["setup"]["precision"] == "bf16"
    assert runs["fp32"].summary["setup"]["precision"] == "fp32"
    # Same seed and data: only the arithmetic differs, so the losses differ, a little.
    bf16, fp32 = ([r["loss"] for r in runs[p].steps] for p in ("bf16", "fp32"))
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)


def test_gpu_check_skips_every_check_without_cuda() -> None:
    # The prepared GPU check, as a user runs it on a machine with no GPU (CUDA hidden).
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    script = root / "benchmarks" / "gpu_check.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    names = ["bf16 training", "fp16 training", "probe OOM search", "torch.compile",
             "two processes (NCCL)"]  # fmt: skip
    assert [line.split(":")[0] for line in lines] == [f"SKIP  {n}" for n in names]
    assert all("no CUDA device here" in line for line in lines)
