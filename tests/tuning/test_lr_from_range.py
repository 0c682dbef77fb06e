"""`nlpflow tune --lr-from-range`: the train.lr range centred on the range test's suggestion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nlpflow.params import load_params
from nlpflow.tuning.command import lr_centred_on_range
from tests.tuning.test_command import project, refused


def test_the_lr_range_is_centred_on_the_suggestion_with_its_width_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = {
        "train.lr": {"type": "float", "low": 0.0003, "high": 0.03, "log": True,
                     "grid": [0.0003, 0.003, 0.03]},
        "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.3},
    }  # fmt: skip
    repo = project(tmp_path, space=space)
    metrics = repo / "metrics" / "lr_range.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"suggested_lr": 0.02, "rule": "steepest"}))
    tune = load_params(repo / "params.yaml").tune
    moved = lr_centred_on_range(tune, metrics).space
    lr = moved["train.lr"]
    assert (lr.low, lr.high) == (0.002, 0.2)
    assert math.sqrt(lr.low * lr.high) == pytest.approx(0.02)
    assert lr.log and lr.grid == [0.002, 0.02, 0.2]
    assert moved["train.warmup_ratio"] == tune.space["train.warmup_ratio"]
    assert "centred on the range test's suggestion 0.02" in capsys.readouterr().out


def test_without_a_range_test_tune_says_how_to_run_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = project(tmp_path)
    err = refused(capsys, "--repo", str(repo), "--lr-from-range")
    assert "metrics/lr_range.json not found" in err and "dvc repro lr_range" in err
