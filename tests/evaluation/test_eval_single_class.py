"""Only one class in validation or test (a small imbalanced file): the metrics come out, the
report warns, and it never recommends a metric that is undefined on the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluation import tiny


@pytest.fixture(scope="module")
def single_class_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Evaluate and error_analysis on data whose validation holds only 'yes' and whose test
    holds only 'no' (train keeps both, mostly 'no': the majority baseline is perfect on test,
    which used to make the report say "judge the model by macro-F1 and PR-AUC")."""
    from stages import error_analysis, evaluate

    root = tmp_path_factory.mktemp("single-class")
    mp = pytest.MonkeyPatch()
    mp.setattr(tiny, "POSITIVE_RATES", {"train": 0.25, "validation": 1.0, "test": 0.0})
    try:
        paths = tiny.make_all(root)
    finally:
        mp.undo()
    params = root / "params.yaml"
    params.write_text("evaluate:\n  bootstrap_resamples: 20\n", encoding="utf-8")
    evaluate.main(["--params", str(params), "--model", str(paths["model"]), "--processed",
                   str(paths["processed"]), "--tokenized", str(paths["tokenized"]),
                   "--predictions", str(root / "predictions"), "--metrics",
                   str(root / "evaluate.json"), "--plots", str(root / "plots")])  # fmt: skip
    error_analysis.main(["--params", str(params), "--predictions", str(root / "predictions"),
                         "--processed", str(paths["processed"]), "--evaluate-metrics",
                         str(root / "evaluate.json"), "--report", str(root / "errors.md"),
                         "--metrics", str(root / "error_analysis.json")])  # fmt: skip
    return root


def test_metrics_say_a_class_is_missing(single_class_run: Path) -> None:
    metrics = json.loads((single_class_run / "evaluate.json").read_text())
    assert metrics["validation"]["classes_missing"] == 1
    assert metrics["test"]["classes_missing"] == 1
    assert "pr_auc" not in metrics["test"]  # no positive: undefined
    assert "roc_auc" not in metrics["test"] and "roc_auc" not in metrics["validation"]


def test_the_report_warns_and_recommends_no_undefined_metric(single_class_run: Path) -> None:
    report = (single_class_run / "errors.md").read_text()
    assert "**⚠ Classes missing from test:** no 'yes' example, only 'no'" in report
    assert "read the recall of 'no' only" in report
    assert "majority" in report  # the baselines are shown ...
    assert "judge the model by" not in report  # ... but no undefined metric is recommended
    assert "PR-AUC" not in report.split("## Model and baselines")[0].split("Classes missing")[0]


def test_a_split_with_both_classes_gets_no_warning(tmp_path: Path) -> None:
    from nlpflow.evaluation.report import ReportInputs, missing_classes

    rows = [tiny.prediction("a", "a b", "b a", "anagram", "yes", 0.9),
            tiny.prediction("b", "a b", "b c", "substituted", "no", 0.2)]  # fmt: skip
    inp = ReportInputs(rows=rows, slices={}, text_fields=tiny.TEXT_FIELDS,
                       metadata_fields=[], label_names=tiny.LABEL_NAMES, max_examples=5)  # fmt: skip
    assert missing_classes(inp) == []
    assert missing_classes(ReportInputs(**{**inp.__dict__, "rows": rows[:1]})) == ["no"]
