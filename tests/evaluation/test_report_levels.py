"""reports/errors.md states the level its intervals were computed at: `evaluate.confidence_level`,
never a fixed 95%."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nlpflow.evaluation.metrics import wilson_interval
from nlpflow.io import write_jsonl
from stages import error_analysis as stage
from tests.evaluation import tiny

P = tiny.prediction
Z90 = 1.6448536269514722  # the standard normal's 95th percentile: a two-sided 90% interval


@pytest.fixture
def project(tmp_path: Path) -> Path:
    tiny.write_meta(tmp_path / "data" / "processed")
    rows = [
        P("t0", "a b c d", "d c b a", "anagram", "yes", 0.9),
        P("t1", "a b c d", "a b c", "dropped", "no", 0.7),
        P("t2", "a b c d e", "a b c d", "dropped", "no", 0.95),
        P("t3", "a b c d", "a b c d e", "added", "no", 0.2),
        P("t4", "a b c d e f", "a b c d e z", "substituted", "no", 0.4),
        P("t5", "a b c d e f g h", "h g f e d c b a", "anagram", "yes", 0.3),
    ]
    write_jsonl(tmp_path / "data" / "predictions" / "test.jsonl", rows)
    (tmp_path / "metrics").mkdir()
    split = {"n": 6, "accuracy": 0.5, "ci": {"accuracy": {"low": 0.25, "high": 0.75}},
             "baselines": {"majority": {"accuracy": 0.6667, "margin": {"accuracy": -0.1667}}}}  # fmt: skip
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps({"test": split}))
    return tmp_path


def run_stage(project: Path, level: float) -> str:
    (project / "params.yaml").write_text(
        f"evaluate:\n  confidence_level: {level}\nerror_analysis:\n  max_examples: 2\n"
    )
    args = ["--params", str(project / "params.yaml"),
            "--predictions", str(project / "data" / "predictions"),
            "--processed", str(project / "data" / "processed"),
            "--evaluate-metrics", str(project / "metrics" / "evaluate.json"),
            "--report", str(project / "reports" / "errors.md"),
            "--metrics", str(project / "metrics" / "error_analysis.json")]  # fmt: skip
    assert stage.main(args) == 0
    return (project / "reports" / "errors.md").read_text()


def test_errors_md_says_the_configured_level_and_computes_slices_at_it(project: Path) -> None:
    text = run_stage(project, 0.9)
    assert "accuracy 0.5000 (90% CI 0.2500–0.7500)" in text
    assert "with a 90% Wilson interval" in text and "| 90% CI |" in text
    assert "95%" not in text
    # the `dropped` slice: 0 of 2 right; its Wilson interval at 90%, not at 95%
    low, high = wilson_interval(0, 2, z=Z90)
    row = next(line for line in text.splitlines() if line.startswith("| dropped ") or
               line.startswith("| **dropped**"))  # fmt: skip
    assert f"{low:.2f}–{high:.2f}" in row
    assert high < wilson_interval(0, 2)[1]  # narrower than the 95% one it replaced


def test_the_default_level_is_95(project: Path) -> None:
    text = run_stage(project, 0.95)
    assert re.search(r"accuracy 0\.5000 \(95% CI 0\.2500–0\.7500\)", text)
    assert "90%" not in text
