"""Precision, threads and the compile option (no GPU here: CUDA is faked where needed)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import torch

from nlpflow.errors import UserError
from nlpflow.training.device import autocast, resolve_precision, torch_threads

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_computes_in_fp32() -> None:
    assert resolve_precision("auto", CPU) == (None, "fp32")
    dtype, note = resolve_precision("bf16", CPU)
    assert dtype is None and "is for CUDA" in note
    assert isinstance(autocast(CPU, torch.bfloat16), contextlib.nullcontext)


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
