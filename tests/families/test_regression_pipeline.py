"""The regression family through the six stages, in process, on its built-in data with a
tiny model: the model must beat the train mean and TF-IDF + ridge by a clear margin, early
stopping on validation RMSE (mode min), and every output a user reads must be there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages import error_analysis, evaluate, preprocess, probe, tokenize, train
from tests.conftest import dump_params, tiny_params

REGRESSION = {
    "data": {
        "source": "builtin:regression",
        "text_fields": ["first", "second"],
        "label_field": "score",
        "regression": {"size": 900, "min_letters": 3, "max_letters": 5, "alphabet": 6},
    },
    "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
              "dropout": 0.0},
    "probe": {"max_batch_size": 32, "max_candidates": 8},
    # The model sits on the train mean's plateau for a hundred-odd steps, then learns: the
    # best checkpoint is chosen by validation RMSE (mode min), with no patience stop.
    "train": {"epochs": 20, "effective_batch_size": 32, "lr": 0.003, "warmup_ratio": 0.05,
              "early_stopping": {"metric": "rmse", "mode": "min", "patience": 0}},
    "evaluate": {"bootstrap_resamples": 200, "baselines": ["mean", "tfidf_ridge"]},
    "error_analysis": {"length_buckets": "auto", "behaviour": {"invariance": [],
                       "directional": [], "templates": ""}},
}  # fmt: skip


def run_stages(root: Path, params: Path) -> None:
    """The six stages with the paths dvc.yaml gives them, under ``root``."""
    a = ["--params", str(params)]
    preprocess.main(
        [
            *a,
            "--out",
            str(root / "processed"),
            "--metrics",
            str(root / "data.json"),
            "--plots",
            str(root / "plots-data"),
            "--report",
            str(root / "data.md"),
        ]
    )
    tokenize.main(
        [
            *a,
            "--data",
            str(root / "processed"),
            "--out",
            str(root / "tokenized"),
            "--tokenizer-out",
            str(root / "tokenizer"),
            "--metrics",
            str(root / "tokenize.json"),
            "--report",
            str(root / "tokenization.md"),
        ]
    )
    probe.main(
        [
            *a,
            "--data",
            str(root / "tokenized"),
            "--tokenizer",
            str(root / "tokenizer"),
            "--out",
            str(root / "probe.json"),
            "--plot",
            str(root / "candidates.json"),
            "--plan",
            str(root / "plan.json"),
        ]
    )
    train.main(
        [
            *a,
            "--data",
            str(root / "tokenized"),
            "--tokenizer",
            str(root / "tokenizer"),
            "--probe",
            str(root / "plan.json"),
            "--models",
            str(root / "models"),
            "--checkpoints",
            str(root / "checkpoints"),
            "--metrics",
            str(root / "train.json"),
            "--plots",
            str(root / "plots-train"),
        ]
    )
    evaluate.main(
        [
            *a,
            "--model",
            str(root / "models" / "best"),
            "--processed",
            str(root / "processed"),
            "--tokenized",
            str(root / "tokenized"),
            "--predictions",
            str(root / "predictions"),
            "--metrics",
            str(root / "evaluate.json"),
            "--plots",
            str(root / "plots-evaluate"),
        ]
    )
    error_analysis.main([*a, "--predictions", str(root / "predictions"), "--processed",
                         str(root / "processed"), "--evaluate-metrics",
                         str(root / "evaluate.json"), "--model", str(root / "models" / "best"),
                         "--tokenized", str(root / "tokenized"), "--figures",
                         str(root / "plots-evaluate"), "--plots", str(root / "plots-errors"),
                         "--report", str(root / "errors.md"), "--metrics",
                         str(root / "error_analysis.json")])  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regression")
    params = root / "params.yaml"
    params.write_text(dump_params(tiny_params(**REGRESSION)))
    run_stages(root, params)
    return root


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_model_beats_both_baselines_by_a_clear_margin(run: Path) -> None:
    test = _json(run / "evaluate.json")["test"]
    base = test["baselines"]
    # The train mean and a bag of words of each field cannot see the target (R² about 0).
    assert base["mean"]["r2"] < 0.05 and base["tfidf_ridge"]["r2"] < 0.2, base
    assert test["rmse"] < 0.6 * min(base["mean"]["rmse"], base["tfidf_ridge"]["rmse"]), test
    assert test["r2"] > 0.6
    # Even the interval's worst end beats the mean.
    assert test["ci"]["rmse"]["high"] < base["mean"]["rmse"]
    assert test["baselines"]["mean"]["margin"]["rmse"] == pytest.approx(
        test["rmse"] - base["mean"]["rmse"], abs=2e-6
    )


def test_predictions_are_in_the_targets_units_and_the_metrics_follow_from_them(
    run: Path,
) -> None:
    from nlpflow.families.regression.builtin import MODIFIERS, letter_values, score
    from nlpflow.families.regression.metrics import regression_metrics

    text = (run / "predictions" / "test.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    y = np.asarray([r["label"] for r in rows])
    p = np.asarray([r["prediction"] for r in rows])
    values = letter_values(6, tiny_params()["seed"])
    for r in rows[:20]:  # the labels are the generator's own scores
        assert r["first"] in MODIFIERS
        assert r["label"] == pytest.approx(score(r["first"], r["second"].split(), values), abs=1e-6)
        assert r["residual"] == pytest.approx(r["prediction"] - r["label"])
    metrics = _json(run / "evaluate.json")["test"]
    for key, value in regression_metrics(y, p).items():
        assert metrics[key] == pytest.approx(value, abs=2e-6), key
    config = _json(run / "models" / "best" / "config.json")
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
    train_targets = [float(v) for v in _load_train_targets(run)]
    assert config["target_mean"] == pytest.approx(np.mean(train_targets), abs=1e-6)
    assert config["target_std"] == pytest.approx(np.std(train_targets), abs=1e-6)


def _load_train_targets(run: Path) -> list[float]:
    from datasets import load_from_disk

    return list(load_from_disk(str(run / "processed"))["train"]["label"])


def test_training_monitors_validation_rmse(run: Path) -> None:
    summary = _json(run / "train.json")
    assert summary["monitor"]["metric"] == "rmse" and summary["monitor"]["mode"] == "min"
    assert summary["monitor"]["best"] == pytest.approx(summary["best"]["val_rmse"])
    header = (run / "plots-train" / "epochs.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["epoch", "step", "train_loss", "val_loss", "val_mse", "val_rmse",
                      "val_mae", "val_r2", "val_pearson", "val_spearman"]  # fmt: skip
    assert "initial_loss" not in summary["health"]  # no ln(K) for a number


def test_reports_plots_and_data_card(run: Path) -> None:
    data = _json(run / "data.json")
    assert data["task"] == "regression" and data["imbalance_ratio"] is None
    assert set(data["splits"]["train"]["target"]) >= {"mean", "std", "p50"}
    assert "## Target (`score`)" in (run / "data.md").read_text()
    for name in (
        "predicted_vs_true_test.json",
        "residuals_test.json",
        "predicted_vs_true_test.png",
    ):
        assert (run / "plots-evaluate" / name).is_file(), name
    points = _json(run / "plots-evaluate" / "residuals_test.json")
    assert set(points[0]) == {"predicted", "residual"}
    report = (run / "errors.md").read_text()
    for heading in ("## Largest residuals", "### Input length", "### True target range",
                    "## Baselines"):  # fmt: skip
        assert heading in report, heading
    errors = _json(run / "error_analysis.json")["test"]
    assert errors["rmse"] == pytest.approx(_json(run / "evaluate.json")["test"]["rmse"], abs=2e-6)
    assert sum(s["n"] for s in errors["slices"]["target"].values()) == errors["n"]
    # JSON keys without dots or spaces (DVC flattens them into column names); bounds inside.
    quartiles = errors["slices"]["target"]
    assert list(quartiles) == ["q1", "q2", "q3", "q4"]
    assert quartiles["q1"]["low"] <= quartiles["q1"]["high"] <= quartiles["q2"]["low"]


def test_the_lr_range_test_runs_on_the_regression_loss(run: Path) -> None:
    from stages import lr_range

    params = run / "lr_params.yaml"
    params.write_text(
        dump_params(tiny_params(**REGRESSION, lr_range={"steps": 12, "min_lr": 1e-4}))
    )
    out = run / "lr_range.json"
    lr_range.main(["--params", str(params), "--data", str(run / "tokenized"), "--tokenizer",
                   str(run / "tokenizer"), "--probe", str(run / "plan.json"), "--metrics",
                   str(out), "--plot", str(run / "lr.tsv"), "--image", str(run / "lr.png")])  # fmt: skip
    header, *rows = (run / "lr.tsv").read_text().splitlines()
    losses = [float(r.split("\t")[header.split("\t").index("loss")]) for r in rows]
    assert len(losses) >= 8 and _json(out)["stop_reason"] in ("completed", "diverged")
    # The standardised MSE starts near 1 (the train mean's own loss on train): the loss is
    # the regression criterion's, not a cross-entropy.
    assert 0.3 < losses[0] < 3.0, losses
