"""The evaluate stage end to end on a tiny saved model and tiny data, then error_analysis on it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from nlpflow.evaluation.predict import records_to_arrays
from stages import error_analysis as error_analysis_stage
from stages import evaluate as evaluate_stage
from tests.evaluation import tiny

SPLITS = ("validation", "test")
PLOT_STEMS = ("confusion", "roc", "precision_recall", "calibration")
PNG_STEMS = ("confusion", "confusion_normalized", "roc", "precision_recall", "calibration")


def run_evaluate(inputs: dict[str, Path], out: Path, **override: Path) -> None:
    paths = {
        "model": inputs["model"],
        "processed": inputs["processed"],
        "tokenized": inputs["tokenized"],
        "predictions": out / "data" / "predictions",
        "metrics": out / "metrics" / "evaluate.json",
        "plots": out / "plots" / "evaluate",
        "latency": out / "metrics" / "latency.json",
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
        "evaluate:\n  batch_size: 3\n  bootstrap_resamples: 200\n"
        "error_analysis:\n  max_examples: 4\n  length_buckets: [14, 20]\n"
        "  behaviour:\n    max_examples: 10\n    max_template_cases: 5\n"
        "    templates: builtin:anagram\n"
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
    expected = ["metrics/evaluate.json", "metrics/latency.json"]
    expected += [f"data/predictions/{s}.jsonl" for s in SPLITS]
    expected += [f"plots/evaluate/{stem}_{s}.json" for stem in PLOT_STEMS for s in SPLITS]
    expected += [f"plots/evaluate/{stem}_{s}.png" for stem in PNG_STEMS for s in SPLITS]
    assert files == sorted(expected)  # nothing else: no *.tmp siblings, no stray files


def test_metrics_file_shape_and_numeric_leaves(outputs: Path) -> None:
    metrics = json.loads((outputs / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == ["validation", "test", "threshold"]
    assert set(metrics["threshold"]) == {"fixed", "tuned", "used"}
    # Timed on validation (all 16 inputs: fewer than evaluate.latency_examples' 64).
    latency = json.loads((outputs / "metrics" / "latency.json").read_text())
    assert latency["examples"] == tiny.SIZES["validation"] and latency["batch_size"] == 3
    assert 0 < latency["ms_per_example"] <= latency["p90_ms_per_example"]

    def leaves(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [leaf for v in value.values() for leaf in leaves(v)]
        return [value]

    for split in SPLITS:
        m = metrics[split]
        for key in (
            "accuracy", "balanced_accuracy", "mcc", "precision_macro", "recall_macro",
            "f1_macro", "f1_micro", "f1_weighted", "roc_auc", "pr_auc", "log_loss", "ece", "n",
        ):  # fmt: skip
            assert key in m, key
        assert set(m["baselines"]) == {"majority", "stratified", "tfidf_logreg"}
        assert {"accuracy", "f1_macro", "pr_auc", "margin"} <= set(m["baselines"]["majority"])
        for key in ("accuracy", "f1_macro", "pr_auc", "roc_auc", "mcc"):
            ci = m["ci"][key]
            assert ci["low"] <= m[key] <= ci["high"], key
        assert set(m["at_threshold"]) == {"fixed", "tuned"}
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
        # The file's predicted labels are the decision (threshold) the metrics score.
        y_pred = [tiny.LABEL_NAMES.index(r["prediction"]) for r in rows]
        m = metrics[split]
        approx = lambda v: pytest.approx(v, abs=1e-6)  # noqa: E731 - rounded to 6 places
        assert m["accuracy"] == approx(skm.accuracy_score(y_true, y_pred))
        assert m["balanced_accuracy"] == approx(skm.balanced_accuracy_score(y_true, y_pred))
        assert m["mcc"] == approx(skm.matthews_corrcoef(y_true, y_pred))
        for avg in ("micro", "macro", "weighted"):
            kw = {"labels": [0, 1], "average": avg, "zero_division": 0}
            assert m[f"f1_{avg}"] == approx(skm.f1_score(y_true, y_pred, **kw))
            assert m[f"precision_{avg}"] == approx(skm.precision_score(y_true, y_pred, **kw))
            assert m[f"recall_{avg}"] == approx(skm.recall_score(y_true, y_pred, **kw))
        per_class = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=[0, 1], zero_division=0
        )
        for i, name in enumerate(tiny.LABEL_NAMES):
            got = m["per_class"][name]
            assert [got["precision"], got["recall"], got["f1"]] == [
                approx(per_class[0][i]), approx(per_class[1][i]), approx(per_class[2][i])
            ]  # fmt: skip
        assert m["log_loss"] == approx(skm.log_loss(y_true, probs, labels=[0, 1]))
        assert m["roc_auc"] == approx(skm.roc_auc_score(y_true, probs[:, 1]))
        assert m["pr_auc"] == approx(skm.average_precision_score(y_true, probs[:, 1]))
        # The confusion plot data is the same predictions, one record per example.
        records = json.loads(
            (outputs / "plots" / "evaluate" / f"confusion_{split}.json").read_text()
        )
        assert records == [{"actual": r["label"], "predicted": r["prediction"]} for r in rows]
        roc = json.loads((outputs / "plots" / "evaluate" / f"roc_{split}.json").read_text())
        assert (roc[0]["fpr"], roc[-1]["fpr"], roc[-1]["tpr"]) == (0.0, 1.0, 1.0)
        calibration = json.loads(
            (outputs / "plots" / "evaluate" / f"calibration_{split}.json").read_text()
        )
        assert sum(b["n"] for b in calibration) == len(rows)


def test_tuned_threshold_is_applied_and_both_are_reported(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  bootstrap_resamples: 0\n  tune_threshold: true\n")
    run_evaluate({**inputs, "params": params}, tmp_path)
    metrics = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    t = metrics["threshold"]
    assert t["used"] == t["tuned"] and t["fixed"] == 0.5
    rows = read_jsonl(tmp_path / "data" / "predictions" / "test.jsonl")
    assert all(
        (r["prediction"] == "yes") == (r["probabilities"]["yes"] >= t["tuned"] - 1e-6) for r in rows
    )
    assert metrics["test"]["at_threshold"]["tuned"]["threshold"] == t["tuned"]
    assert "ci" in metrics["test"] and metrics["test"]["ci"] == {}  # no resamples, no intervals


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


def test_error_analysis_runs_on_the_evaluate_outputs_with_the_model(
    inputs: dict[str, Path], outputs: Path, tmp_path: Path
) -> None:
    argv = [
        "--params", str(inputs["params"]),
        "--predictions", str(outputs / "data" / "predictions"),
        "--processed", str(inputs["processed"]),
        "--evaluate-metrics", str(outputs / "metrics" / "evaluate.json"),
        "--model", str(inputs["model"]),
        "--tokenized", str(inputs["tokenized"]),
        "--figures", str(outputs / "plots" / "evaluate"),
        "--plots", str(tmp_path / "plots" / "error_analysis"),
        "--report", str(tmp_path / "reports" / "errors.md"),
        "--metrics", str(tmp_path / "error_analysis.json"),
    ]  # fmt: skip
    assert error_analysis_stage.main(argv) == 0
    metrics = json.loads((tmp_path / "error_analysis.json").read_text())["test"]
    evaluate = json.loads((outputs / "metrics" / "evaluate.json").read_text())["test"]
    assert metrics["n"] == evaluate["n"]
    assert metrics["accuracy"] == pytest.approx(evaluate["accuracy"])
    assert sum(s["n"] for s in metrics["slices"]["kind"].values()) == evaluate["n"]
    behaviour = metrics["behaviour"]
    assert {"invariance_whitespace", "invariance_case"} <= set(behaviour)
    assert behaviour["invariance_whitespace"]["tested"] == 10  # behaviour.max_examples
    assert "a_reversed_word_is_an_anagram" in behaviour
    report = (tmp_path / "reports" / "errors.md").read_text()
    assert "**Behavioural failure rates:**" in report and "(95% CI" in report
    # Figures are linked relative to the report, and exist.
    links = re.findall(r"\]\((\.\./[^)]+\.png)\)", report)
    assert "../plots/error_analysis/slices_test.png" in links
    assert all((tmp_path / "reports" / link).resolve().is_file() for link in links)


def test_behavioural_predictor_reproduces_the_evaluate_predictions(
    inputs: dict[str, Path], outputs: Path
) -> None:
    # Perturbed inputs are encoded like the tokenize stage encoded the originals: the
    # unperturbed test examples must get the probabilities the evaluate stage wrote.
    from nlpflow.evaluation.behaviour import ModelPredictor

    rows = read_jsonl(outputs / "data" / "predictions" / "test.jsonl")
    predictor = ModelPredictor(inputs["model"], tiny.LABEL_NAMES, tiny.TEXT_FIELDS, 32)
    probs = predictor([{f: r[f] for f in tiny.TEXT_FIELDS} for r in rows])
    _, written = records_to_arrays(rows, tiny.LABEL_NAMES)
    np.testing.assert_allclose(probs, written, atol=1e-6)


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
    from nlpflow.data.saved import read_tokenized, write_saved

    tokenized, meta = read_tokenized(inputs["tokenized"])
    # Reversing the test split breaks the positional join with the processed rows.
    tokenized["test"] = tokenized["test"].select(range(len(tokenized["test"]) - 1, -1, -1))
    shuffled = tmp_path / "tokenized"
    write_saved(shuffled, tokenized, meta)
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


# --------------------------------------------------------------------------- token tasks


@pytest.fixture(scope="module")
def token_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("token")
    # max_length 12 cuts the longer sentences: their last words get no model output.
    paths = tiny.make_token_all(root, max_length=12)
    paths["params"] = root / "params.yaml"
    paths["params"].write_text("evaluate:\n  bootstrap_resamples: 200\n")
    out = root / "out"
    run_evaluate(paths, out)
    paths["out"] = out
    return paths


def test_token_task_metrics_follow_seqeval_on_the_predictions_file(
    token_run: dict[str, Path],
) -> None:
    from nlpflow.evaluation.entities import entity_metrics

    out = token_run["out"]
    metrics = json.loads((out / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == ["validation", "test"]  # no threshold: not a binary task
    latency = json.loads((out / "metrics" / "latency.json").read_text())
    assert latency["examples"] == tiny.TOKEN_SIZES["validation"]  # token models are timed too
    for split in SPLITS:
        rows = read_jsonl(out / "data" / "predictions" / f"{split}.jsonl")
        m = metrics[split]
        assert m["n"] == tiny.TOKEN_SIZES[split]
        expected = entity_metrics([r["label"] for r in rows], [r["prediction"] for r in rows])
        for key in ("precision", "recall", "f1", "f1_macro", "f1_weighted", "token_accuracy"):
            assert m[key] == pytest.approx(expected[key], abs=1e-6), key
        for kind, scores in expected["per_type"].items():
            assert m["per_type"][kind] == pytest.approx(scores, abs=1e-6)
        words = sum(len(r["label"]) for r in rows)
        right = sum(t == p for r in rows for t, p in zip(r["label"], r["prediction"], strict=True))
        assert m["token_accuracy"] == pytest.approx(right / words, abs=1e-6)
        # Truncated words: predicted O with no probabilities, and counted.
        truncated = sum(r["truncated"] for r in rows)
        assert truncated > 0 and m["truncated_words"] == truncated
        for r in rows:
            assert len(r["prediction"]) == len(r["tokens"]) == len(r["label"])
            cut = r["probabilities"][len(r["tokens"]) - r["truncated"] :]
            assert all(p is None for p in cut)
        assert set(m["baselines"]) == {"majority", "word_majority"}
        assert m["baselines"]["majority"]["f1"] == 0.0  # always O finds no entity
        assert (
            m["ci"]["token_accuracy"]["low"]
            <= m["token_accuracy"]
            <= m["ci"]["token_accuracy"]["high"]
        )


def test_error_analysis_of_a_token_task(token_run: dict[str, Path], tmp_path: Path) -> None:
    out = token_run["out"]
    params = tmp_path / "params.yaml"
    params.write_text("error_analysis:\n  length_buckets: auto\n")
    argv = [
        "--params", str(params),
        "--predictions", str(out / "data" / "predictions"),
        "--processed", str(token_run["processed"]),
        "--evaluate-metrics", str(out / "metrics" / "evaluate.json"),
        "--model", str(token_run["model"]),
        "--report", str(tmp_path / "errors.md"),
        "--metrics", str(tmp_path / "error_analysis.json"),
    ]  # fmt: skip
    assert error_analysis_stage.main(argv) == 0
    metrics = json.loads((tmp_path / "error_analysis.json").read_text())["test"]
    assert metrics["n"] == tiny.TOKEN_SIZES["test"]
    assert set(metrics["slices"]) == {"template", "label", "length"}
    report = (tmp_path / "errors.md").read_text()
    assert "entity F1" in report and "### entity type in the sentence" in report
    assert "implemented for sequence classification" in report


def test_latency_is_timed_only_when_its_file_is_asked_for(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--params", str(inputs["params"]), "--model", str(inputs["model"]),
            "--processed", str(inputs["processed"]), "--tokenized", str(inputs["tokenized"]),
            "--predictions", str(tmp_path / "predictions"),
            "--metrics", str(tmp_path / "metrics.json"), "--plots", str(tmp_path / "plots")]  # fmt: skip
    assert evaluate_stage.main(argv) == 0
    assert "latency:" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "plots", "predictions"]
