"""`nlpflow tune` refuses what would make a study dishonest, with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.cli import main
from tests.conftest import ROOT, run


def project(tmp_path: Path, **tune: Any) -> Path:
    """A git repository holding params.yaml (no DVC needed to be refused)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tune"].update(tune)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty",
         "-m", "init"], tmp_path)  # fmt: skip
    return tmp_path


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["tune", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_epochs_in_the_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, space={"train.epochs": {"type": "int", "low": 2, "high": 8}})
    assert "epoch budget" in refused(capsys, "--repo", str(repo))


def test_a_single_seed_decides_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path)
    assert "tune.seeds must be 0 or >= 2" in refused(capsys, "--repo", str(repo), "--seeds", "1")


def test_selection_on_test_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = project(tmp_path, objectives=[{"metric": "metrics/evaluate.json:test.f1_macro"}])
    assert "leaks the test set" in refused(capsys, "--repo", str(repo))


def test_a_pruner_metric_moving_the_wrong_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = project(tmp_path, pruner={"kind": "median", "metric": "loss"})
    assert "would stop the best trials" in refused(capsys, "--repo", str(repo))


def test_a_report_of_a_study_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = project(tmp_path)
    assert "no study named 'nlpflow'" in refused(capsys, "--repo", str(repo), "--report-only")
