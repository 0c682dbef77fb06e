"""`nlpflow review`: params, metrics with intervals and changed plots of a change, in markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.cli import main
from tests.conftest import run

DVC_YAML = {
    "stages": {},
    "metrics": ["metrics/train.json", "metrics/evaluate.json"],
    "plots": [
        {"Training curves": {"template": "linear", "x": "epoch",
                             "y": {"plots/train/epochs.tsv": ["train_loss", "val_loss"]}}},
        {"Confusion": {"template": "confusion", "x": "actual",
                       "y": {"plots/evaluate/confusion.json": "predicted"}}},
    ],
}  # fmt: skip


def evaluate(f1: float, low: float, high: float) -> dict[str, Any]:
    split = {"n": 100, "accuracy": f1 + 0.01, "f1_macro": f1,
             "ci": {"f1_macro": {"low": low, "high": high},
                    "accuracy": {"low": low, "high": high + 0.01}},
             "baselines": {"majority": {"accuracy": 0.5}}}  # fmt: skip
    return {"validation": split, "test": split}


def write(repo: Path, lr: float, f1: float, ci: tuple[float, float], stop: str,
          losses: list[float], png: bytes, quoted_yes: bool) -> None:  # fmt: skip
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "plots/train").mkdir(parents=True, exist_ok=True)
    (repo / "plots/evaluate").mkdir(parents=True, exist_ok=True)
    label = "'yes'" if quoted_yes else "yes"  # `dvc exp run -S` drops the quotes
    (repo / "params.yaml").write_text(
        f"seed: 42\ntrain:\n  lr: {lr}\n  epochs: 12\nevaluate:\n  positive_label: {label}\n"
    )
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (repo / "metrics/evaluate.json").write_text(json.dumps(evaluate(f1, *ci)))
    train = {"epochs_run": len(losses), "stop_reason": stop, "best": {"val_f1_macro": f1}}
    (repo / "metrics/train.json").write_text(json.dumps(train))
    rows = "".join(f"{i + 1}\t{v}\t{v + 0.1}\n" for i, v in enumerate(losses))
    (repo / "plots/train/epochs.tsv").write_text("epoch\ttrain_loss\tval_loss\n" + rows)
    (repo / "plots/evaluate/confusion.png").write_bytes(png)
    (repo / "plots/evaluate/confusion.json").write_text("[]")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "t@example.com"], repo)
    run(["git", "config", "user.name", "t"], repo)
    write(repo, 0.002, 0.80, (0.75, 0.85), "max_epochs", [0.7, 0.5, 0.4], b"PNG-1", True)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "base"], repo)
    return repo


def review(repo: Path, *args: str) -> str:
    out = repo.parent / "review" / "review.md"
    assert main(["review", "--repo", str(repo), "--out", str(out), *args]) == 0
    return out.read_text()


def test_workspace_change_against_main(repo: Path) -> None:
    write(repo, 0.001, 0.86, (0.81, 0.90), "early_stopping", [0.6, 0.3], b"PNG-2", False)
    text = review(repo, "--base", "main")

    assert "### Parameters (1 changed)" in text
    assert "| `train.lr` | 0.002 | 0.001 |" in text
    assert "positive_label" not in text  # yes vs 'yes' is the same string
    assert (
        "| evaluate: `validation.f1_macro` | 0.8 (95% CI 0.7500–0.8500) | "
        "0.86 (95% CI 0.8100–0.9000) | +0.06 (outside base interval) |" in text
    )
    assert "| train: `stop_reason` | max_epochs | early_stopping | changed |" in text
    assert "| train: `epochs_run` | 3 | 2 | -1 |" in text
    assert "baselines" not in text.split("<details>")[0]  # only in the full list
    assert "`nlpflow compare`" in text

    images = repo.parent / "review" / "images"
    overlay = images / "plot_Training_curves.png"
    assert (
        overlay.read_bytes().startswith(b"\x89PNG")
        and "![Training curves](images/plot_Training_curves.png)" in text
    )
    assert (images / "base_plots_evaluate_confusion.png").read_bytes() == b"PNG-1"
    assert (images / "target_plots_evaluate_confusion.png").read_bytes() == b"PNG-2"
    assert "Confusion" not in text.split("### Plots")[1].split("<details>")[0]  # not a line plot


def test_an_experiment_against_a_revision(repo: Path) -> None:
    write(repo, 0.004, 0.70, (0.6, 0.8), "max_epochs", [0.7, 0.5, 0.4], b"PNG-1", False)
    run(["git", "add", "-A"], repo)
    tree = run(["git", "write-tree"], repo).stdout.strip()
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    sha = run(["git", "commit-tree", tree, "-p", head, "-m", "exp"], repo).stdout.strip()
    run(["git", "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/lr-big", sha], repo)
    run(["git", "reset", "-q", "--hard"], repo)

    text = review(repo, "--base", "HEAD", "--target", "lr-big")
    assert text.startswith("## Review: experiment `lr-big` vs `HEAD`")
    assert "| `train.lr` | 0.002 | 0.004 |" in text
    assert "-0.1 (outside base interval)" in text
    assert "### Plots (0 changed)" in text


def test_nothing_changed(repo: Path) -> None:
    text = review(repo)
    assert "No parameter changed." in text and "No plot changed." in text
    assert (
        "| evaluate: `validation.f1_macro` | 0.8 (95% CI 0.7500–0.8500) | "
        "0.8 (95% CI 0.7500–0.8500) | = |" in text
    )


def test_each_side_s_intervals_carry_the_level_it_was_evaluated_at(repo: Path) -> None:
    write(repo, 0.002, 0.80, (0.77, 0.83), "max_epochs", [0.7, 0.5, 0.4], b"PNG-1", True)
    with (repo / "params.yaml").open("a") as fh:
        fh.write("  confidence_level: 0.9\n")  # under evaluate:, the file's last section
    text = review(repo)
    assert "| `evaluate.confidence_level` | — | 0.9 |" in text
    assert (
        "| evaluate: `validation.f1_macro` | 0.8 (95% CI 0.7500–0.8500) | "
        "0.8 (90% CI 0.7700–0.8300) |" in text
    )


def test_an_unknown_revision_is_one_clear_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["review", "--repo", str(repo), "--base", "nope"]) == 2
    assert "'nope' is neither a git revision nor a DVC experiment" in capsys.readouterr().err
