"""The evaluate stage end to end on a tiny saved model and tiny data, then error_analysis on it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from sklearn import metrics as skm

from nlpflow.evaluation.predict import records_to_arrays
from stages import error_analysis as error_analysis_stage
from stages import evaluate as evaluate_stage
from tests.evaluation import tiny

SPLITS = ("validation", "test")
PLOT_STEMS = ("confusion", "roc", "precision_recall", "calibration")


def run_evaluate(inputs: dict[str, Path], out: Path, **override: Path) -> None:
    paths = {
        "model": inputs["model"],
        "processed": inputs["processed"],
        "tokenized": inputs["tokenized"],
        "predictions": out / "data" / "predictions",
        "metrics": out / "metrics" / "evaluate.json",
        "plots": out / "plots" / "evaluate",
        **override,
    }
    argv = ["--params", str(inputs["params"])]
    for key, value in paths.items():
        argv += [f"--{key}", str(value)]
    assert evaluate_stage.main(argv) == 0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    paths = tiny.make_all(root)
    paths["params"] = root / "params.yaml"
    # batch_size 3 does not divide the splits: the last, short batch is exercised too.
    paths["params"].write_text(
        "evaluate:\n  batch_size: 3\n"
        "error_analysis:\n  max_examples: 4\n  length_buckets: [14, 20]\n"
    )
    return paths


@pytest.fixture(scope="module")
def outputs(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run1")
    run_evaluate(inputs, out)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_every_output_and_no_temporary_files(outputs: Path) -> None:
    files = sorted(str(p.relative_to(outputs)) for p in outputs.rglob("*") if p.is_file())
    expected = ["metrics/evaluate.json"]
    expected += [f"data/predictions/{s}.jsonl" for s in SPLITS]
    expected += [f"plots/evaluate/{stem}_{s}.json" for stem in PLOT_STEMS for s in SPLITS]
    expected += [f"plots/evaluate/confusion_{s}.png" for s in SPLITS]
    assert files == sorted(expected)  # nothing else: no *.tmp siblings, no stray files


def test_metrics_file_shape_and_numeric_leaves(outputs: Path) -> None:
    metrics = json.loads((outputs / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == ["validation", "test"]

    def leaves(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [leaf for v in value.values() for leaf in leaves(v)]
        return [value]

    for split in SPLITS:
        m = metrics[split]
        for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "n"):
            assert key in m
        assert set(m["baselines"]["majority"]) == {"accuracy", "f1_macro"}
        assert set(m["per_class"]) == set(tiny.LABEL_NAMES)
        # dvc metrics show/diff flatten the file: keep every leaf a plain number.
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in leaves(m))
    assert metrics["test"]["n"] == tiny.SIZES["test"]


def test_majority_baseline_comes_from_the_train_split(outputs: Path) -> None:
    metrics = json.loads((outputs / "metrics" / "evaluate.json").read_text())
    # Train leans "no" (25% yes); test and validation lean "yes" (75%). Always "no" gets
    # exactly the "no" share right; a test-split majority would have scored 0.75.
    for split in SPLITS:
        assert metrics[split]["baselines"]["majority"]["accuracy"] == 0.25
        # F1 of "no" = 2 * 0.25 / 1.25 = 0.4, of "yes" 0: macro 0.2.
        assert metrics[split]["baselines"]["majority"]["f1_macro"] == 0.2


def test_predictions_follow_the_contract(outputs: Path, inputs: dict[str, Path]) -> None:
    from datasets import load_from_disk

    processed = load_from_disk(str(inputs["processed"]))
    for split in SPLITS:
        rows = read_jsonl(outputs / "data" / "predictions" / f"{split}.jsonl")
        assert [r["id"] for r in rows] == list(processed[split]["id"])  # stable row order
        for row, source in zip(rows, processed[split], strict=True):
            assert set(row) == {
                "id", "first", "second", "kind", "label", "prediction", "confidence",
                "probabilities",
            }  # fmt: skip
            assert (row["first"], row["second"], row["kind"]) == (
                source["first"],
                source["second"],
                source["kind"],
            )
            assert row["label"] == tiny.LABEL_NAMES[source["label"]]
            probs = row["probabilities"]
            assert list(probs) == tiny.LABEL_NAMES
            assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9)
            assert row["prediction"] == max(probs, key=probs.get)
            assert row["confidence"] == probs[row["prediction"]]


def test_metrics_agree_with_sklearn_on_the_predictions_file(outputs: Path) -> None:
    metrics = json.loads((outputs / "metrics" / "evaluate.json").read_text())
    for split in SPLITS:
        rows = read_jsonl(outputs / "data" / "predictions" / f"{split}.jsonl")
        y_true, probs = records_to_arrays(rows, tiny.LABEL_NAMES)
        y_pred = probs.argmax(axis=1)
        m = metrics[split]
        kw = {"labels": [0, 1], "average": "macro", "zero_division": 0}
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-6)
        assert m["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, **kw), abs=1e-6)
        assert m["precision_macro"] == pytest.approx(
            skm.precision_score(y_true, y_pred, **kw), abs=1e-6
        )
        assert m["recall_macro"] == pytest.approx(skm.recall_score(y_true, y_pred, **kw), abs=1e-6)
        assert m["log_loss"] == pytest.approx(skm.log_loss(y_true, probs, labels=[0, 1]), abs=1e-6)
        # The confusion plot data is the same predictions, one record per example.
        records = json.loads(
            (outputs / "plots" / "evaluate" / f"confusion_{split}.json").read_text()
        )
        assert records == [{"actual": r["label"], "predicted": r["prediction"]} for r in rows]
        roc = json.loads((outputs / "plots" / "evaluate" / f"roc_{split}.json").read_text())
        assert (roc[0]["fpr"], roc[-1]["fpr"], roc[-1]["tpr"]) == (0.0, 1.0, 1.0)


def test_same_inputs_give_identical_outputs(
    inputs: dict[str, Path], outputs: Path, tmp_path: Path
) -> None:
    run_evaluate(inputs, tmp_path)
    for rel in [
        "metrics/evaluate.json",
        "data/predictions/test.jsonl",
        "plots/evaluate/roc_test.json",
        "plots/evaluate/confusion_test.png",
    ]:
        assert (tmp_path / rel).read_bytes() == (outputs / rel).read_bytes(), rel


def test_error_analysis_runs_on_the_evaluate_outputs(
    inputs: dict[str, Path], outputs: Path, tmp_path: Path
) -> None:
    argv = [
        "--params", str(inputs["params"]),
        "--predictions", str(outputs / "data" / "predictions"),
        "--processed", str(inputs["processed"]),
        "--evaluate-metrics", str(outputs / "metrics" / "evaluate.json"),
        "--report", str(tmp_path / "errors.md"),
        "--metrics", str(tmp_path / "error_analysis.json"),
    ]  # fmt: skip
    assert error_analysis_stage.main(argv) == 0
    metrics = json.loads((tmp_path / "error_analysis.json").read_text())["test"]
    evaluate = json.loads((outputs / "metrics" / "evaluate.json").read_text())["test"]
    assert metrics["n"] == evaluate["n"]
    assert metrics["accuracy"] == pytest.approx(evaluate["accuracy"])
    assert sum(s["n"] for s in metrics["slices"]["kind"].values()) == evaluate["n"]
    assert "model margin" in (tmp_path / "errors.md").read_text()


def test_missing_model_exits_2_and_keeps_old_outputs(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "metrics" / "evaluate.json"
    old.parent.mkdir(parents=True)
    old.write_text('{"old": 1}\n')
    with pytest.raises(SystemExit) as exc:
        run_evaluate(inputs, tmp_path, model=tmp_path / "no-model")
    assert exc.value.code == 2
    assert "config.json not found; run the train stage first" in capsys.readouterr().err
    assert old.read_text() == '{"old": 1}\n'
    assert not (tmp_path / "data").exists() and not (tmp_path / "plots").exists()


def test_bad_params_exit_2_before_any_work(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  batch_size: 0\n")
    with pytest.raises(SystemExit) as exc:
        run_evaluate({**inputs, "params": params}, tmp_path)
    assert exc.value.code == 2
    assert "evaluate.batch_size must be >= 1" in capsys.readouterr().err


def test_tokenized_rows_out_of_order_are_refused(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datasets import load_from_disk

    tokenized = load_from_disk(str(inputs["tokenized"]))
    # Reversing the test split breaks the positional join with the processed rows.
    tokenized["test"] = tokenized["test"].select(range(len(tokenized["test"]) - 1, -1, -1))
    shuffled = tmp_path / "tokenized"
    tokenized.save_to_disk(str(shuffled))
    with pytest.raises(SystemExit):
        run_evaluate(inputs, tmp_path / "out", tokenized=shuffled)
    assert "does not line up" in capsys.readouterr().err


def test_processed_without_meta_is_refused(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    processed = tmp_path / "processed"
    shutil.copytree(inputs["processed"], processed)
    (processed / "meta.json").unlink()
    with pytest.raises(SystemExit):
        run_evaluate(inputs, tmp_path / "out", processed=processed)
    assert "meta.json not found; run the preprocess stage" in capsys.readouterr().err
