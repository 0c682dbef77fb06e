"""The whole multiple-choice pipeline on the built-in data: the six stage mains in-process.

A tiny BERT from a config learns ``builtin:choice`` (which option belongs to the category the
context names) past every heuristic baseline, with the paired interval of the margin above 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stages import error_analysis, evaluate, model_card, preprocess, probe, tokenize, train
from tests.conftest import dump_params, tiny_params

CHOICE: dict[str, Any] = {
    "data": {
        "source": "builtin:choice",
        "task": "choice",
        "text_fields": ["context"],
        "label_field": "label",
        "choice": {"size": 1200, "num_options": 4},
    },
    "tokenizer": {"vocab_size": 400, "max_length": 32},
    "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
    "train": {
        "epochs": 8,
        "precision": "fp32",  # "auto" times bf16 against fp32: the choice varies by machine
        "effective_batch_size": 32,
        "lr": 0.003,
        "early_stopping": {"metric": "accuracy", "patience": 0},
    },
    "evaluate": {"bootstrap_resamples": 300, "latency_examples": 4},
}


def _run_pipeline(tmp: Path, params: dict[str, Any]) -> None:
    path = tmp / "params.yaml"
    path.write_text(dump_params(params))
    p = ["--params", str(path)]
    preprocess.main(p)
    tokenize.main(p)
    probe.main([*p, "--data", "data/tokenized", "--tokenizer", "models/tokenizer",
                "--out", "metrics/probe.json", "--timing", "metrics/probe_timing.json",
                "--plot", "plots/probe/candidates.json", "--image", "plots/probe/candidates.png",
                "--plan", "data/probe/plan.json", "--cache", "data/probe/measurements.json"])  # fmt: skip
    train.main([*p, "--data", "data/tokenized", "--tokenizer", "models/tokenizer",
                "--probe", "data/probe/plan.json", "--models", "models",
                "--checkpoints", "checkpoints", "--metrics", "metrics/train.json",
                "--timing", "metrics/train_timing.json", "--plots", "plots/train",
                "--logs", "logs/train"])  # fmt: skip
    evaluate.main([*p, "--model", "models/best", "--processed", "data/processed",
                   "--tokenized", "data/tokenized", "--predictions", "data/predictions",
                   "--metrics", "metrics/evaluate.json", "--plots", "plots/evaluate",
                   "--latency", "metrics/latency.json"])  # fmt: skip
    error_analysis.main([*p, "--predictions", "data/predictions", "--processed",
                         "data/processed", "--evaluate-metrics", "metrics/evaluate.json",
                         "--model", "models/best", "--tokenized", "data/tokenized",
                         "--figures", "plots/evaluate", "--plots", "plots/error_analysis",
                         "--report", "reports/errors.md",
                         "--metrics", "metrics/error_analysis.json"])  # fmt: skip
    model_card.main(p)


def test_the_model_beats_every_heuristic_baseline(tmp_path: Path) -> None:
    _run_pipeline(tmp_path, tiny_params(**CHOICE))
    test = json.loads(Path("metrics/evaluate.json").read_text())["test"]
    baselines = test["baselines"]
    assert set(baselines) == {"position", "longest", "overlap"}
    best = max(b["accuracy"] for b in baselines.values())
    assert best < 0.35  # the built-in data defeats the heuristics (chance is 0.25)
    assert test["accuracy"] > best + 0.25
    for b in baselines.values():
        assert b["margin_ci"]["accuracy"]["low"] > 0.15
    # (a perfect score has the degenerate interval [1, 1])
    assert test["ci"]["accuracy"]["low"] <= test["accuracy"] <= test["ci"]["accuracy"]["high"]
    assert set(test["per_position"]) == {"0", "1", "2", "3"}
    tokenized = json.loads(Path("metrics/tokenize.json").read_text())["splits"]["test"]
    assert tokenized["examples"] == test["n"]  # rows, not (context, option) pairs
    assert tokenized["unknown_token_rate"] < 0.01
    record = json.loads(Path("data/predictions/test.jsonl").read_text().splitlines()[0])
    assert len(record["options"]) == 4
    assert set(record["probabilities"]) == {"0", "1", "2", "3"}
    assert abs(sum(record["probabilities"].values()) - 1) < 1e-9
    assert record["prediction"] == max(record["probabilities"], key=record["probabilities"].get)
    report = Path("reports/errors.md").read_text()
    assert "## Errors by gold position" in report
    assert "## Confident wrong choices" in report
    errors = json.loads(Path("metrics/error_analysis.json").read_text())
    assert errors["test"]["n"] == test["n"]
    card = Path("models/best/README.md").read_text()
    assert "pipeline_tag: multiple-choice" in card and "AutoModelForMultipleChoice" in card
    # nlpflow predict on new rows: as evaluate predicts them; bad rows rejected, not dropped
    from nlpflow.predict import predict_file

    rows = [json.loads(x) for x in Path("data/predictions/test.jsonl").read_text().splitlines()]
    new = [{"context": r["context"], "options": r["options"]} for r in rows[:3]]
    new.insert(1, {"context": "x", "options": ["only", "three", "options"]})
    Path("new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    summary = predict_file("models/best", "new.jsonl", "out.jsonl", log=lambda _: None)
    assert summary.predicted == 3 and [r.row for r in summary.rejects] == [2]
    assert "expected a list of 4 option texts, got 3 options" in summary.rejects[0].reason
    got = [json.loads(x) for x in Path("out.jsonl").read_text().splitlines()]
    for out, ref in zip(got, rows[:3], strict=True):
        assert out["prediction"] == ref["prediction"]
        assert out["score"] == pytest.approx(ref["confidence"], abs=1e-9)
    # nlpflow compare reads the records as a classifier's over the option positions
    from nlpflow.evaluation.compare import compare, read_side

    side = read_side("data/predictions/test.jsonl", "test")
    c = compare(side, side, resamples=50)
    assert c.task == "sequence"
    assert c.metrics["accuracy"]["a"] == pytest.approx(test["accuracy"], abs=1e-6)
