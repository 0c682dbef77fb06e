"""Regression data: numeric labels read from CSV, TSV and JSONL; a non-numeric label refused
with one line naming the file, the line and the value (or skipped and listed); the built-in
generator; the criterion's standardisation and the train side's hooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.families.regression.builtin import MODIFIERS, generate_regression, letter_values
from nlpflow.params import DataParams, RegressionParams
from stages import preprocess

TEXTS = [f"review number {i} says {'good' if i % 3 else 'bad'} things" for i in range(60)]


def _rows(label: Callable[[int], Any]) -> list[dict[str, Any]]:
    return [{"text": t, "rating": label(i)} for i, t in enumerate(TEXTS)]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        lines = [f"text{sep}rating"] + [f"{r['text']}{sep}{r['rating']}" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _params(source: Path, **extra: Any) -> DataParams:
    return DataParams(
        source=str(source), text_fields=["text"], label_field="rating", task="regression",
        **extra,
    )  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_numeric_labels_are_read_from_each_format(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"ratings{suffix}", _rows(lambda i: round(i * 0.25 - 3.5, 2)))
    data = load_splits(_params(path), seed=0)
    assert data.task == "regression" and data.label_names == ["rating"]
    got = sorted(r["rating"] for s in data.splits.values() for r in s)
    assert got == sorted(round(i * 0.25 - 3.5, 2) for i in range(60))
    dataset = to_dataset_dict(data)
    assert dataset["train"].features["label"].dtype == "float64"
    assert sorted(dataset["train"]["label"]) == sorted(r["rating"] for r in data.splits["train"])


@pytest.mark.parametrize(
    ("suffix", "line", "shown"),
    [(".csv", 9, "'great'"), (".tsv", 9, "'great'"), (".jsonl", 8, "'great'")],
)
def test_a_non_numeric_label_is_one_line_naming_file_line_and_value(
    tmp_path: Path,
    write_params: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    line: int,
    shown: str,
) -> None:
    path = _write(tmp_path / f"ratings{suffix}", _rows(lambda i: "great" if i == 7 else i / 10))
    params = write_params(
        data={"source": str(path), "text_fields": ["text"], "label_field": "rating",
              "task": "regression"}
    )  # fmt: skip
    out = tmp_path / "processed"
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(["--params", str(params), "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"error: {path}, line {line}, column 'rating': label {shown} is not a number"
    )
    assert not out.exists()


def test_bad_labels_skipped_when_asked_and_listed(tmp_path: Path) -> None:
    labels = {3: "n/a", 10: "inf", 20: ""}
    path = _write(tmp_path / "r.jsonl", _rows(lambda i: labels.get(i, i / 10)))
    data = load_splits(_params(path, on_bad_rows="skip"), seed=0)
    assert sum(len(s) for s in data.splits.values()) == 57
    reasons = sorted((b.line, b.reason) for b in data.bad_rows.rows)
    assert [line for line, _ in reasons] == [4, 11, 21]
    assert "not a number" in reasons[0][1] and "empty" in reasons[2][1]


def test_a_constant_target_is_refused(tmp_path: Path) -> None:
    from nlpflow.errors import UserError

    path = _write(tmp_path / "r.csv", _rows(lambda i: 1.5))
    with pytest.raises(UserError) as info:
        load_splits(_params(path), seed=0)
    assert "every train label is 1.5" in str(info.value)


def test_the_builtin_data_is_seeded_and_its_scores_follow_the_rule() -> None:
    params = RegressionParams(size=200, min_letters=3, max_letters=5, alphabet=6)
    rows = generate_regression(params, seed=7)
    assert rows == generate_regression(params, seed=7)
    assert rows != generate_regression(params, seed=8)
    values = letter_values(6, 7)
    assert sorted(values.values()) == pytest.approx(list(np.linspace(-1, 1, 6)))
    for r in rows:
        letters = r["second"].split()
        assert 3 <= len(letters) <= 5 and set(letters) <= set(values)
        expected = MODIFIERS[r["first"]] * np.mean([values[c] for c in letters])
        assert r["score"] == pytest.approx(expected, abs=1e-6)


def test_the_criterion_standardises_on_train_and_restores() -> None:
    from nlpflow.families.regression.train import RegressionCriterion, RegressionTrain
    from nlpflow.params import TrainParams
    from nlpflow.training.data import PaddedSplit

    labels = torch.tensor([1.0, 2.0, 3.0, 6.0])
    split = PaddedSplit(torch.zeros(4, 2, dtype=torch.int32), None, torch.full((4,), 2), labels)
    fam = RegressionTrain()
    crit = fam.criterion(TrainParams(), ["y"], split, overfit=False)
    assert isinstance(crit, RegressionCriterion)
    assert crit.mean == pytest.approx(3.0) and crit.std == pytest.approx(np.std([1, 2, 3, 6]))
    out = torch.tensor([[0.0], [1.0], [-1.0], [0.5]])  # (B, 1) logits, standardised
    z = (labels - 3.0) / crit.std
    assert float(crit.sum(out, labels)) == pytest.approx(float(((out[:, 0] - z) ** 2).sum()))
    np.testing.assert_allclose(crit.restore(out).numpy(), out[:, 0].numpy() * crit.std + 3.0)
    assert crit.denominator(labels) == 4.0 and not crit.measures_accuracy
    huber = fam.criterion(TrainParams(loss="huber", huber_delta=0.5), ["y"], split, False)
    expected = torch.nn.functional.huber_loss(out[:, 0], z, reduction="sum", delta=0.5)
    assert float(huber.sum(out, labels)) == pytest.approx(float(expected))

    from nlpflow.errors import UserError

    with pytest.raises(UserError) as info:
        fam.criterion(TrainParams(loss="cross_entropy"), ["y"], split, False)
    assert "train.loss 'cross_entropy' does not apply to a regression task" in str(info.value)
    with pytest.raises(UserError) as info:
        fam.criterion(TrainParams(class_weights="balanced"), ["y"], split, False)
    assert "class_weights" in str(info.value)


def test_early_stopping_metrics_of_the_task_only() -> None:
    from nlpflow.errors import UserError
    from nlpflow.families.train import train_family

    fam = train_family("regression")
    fam.check_monitor("rmse", ["y"])
    with pytest.raises(UserError) as info:
        fam.check_monitor("f1_macro", ["y"])
    assert "f1_macro is not measured on a regression task" in str(info.value)
    assert "rmse" in str(info.value)
