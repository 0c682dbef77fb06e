"""The preprocess stage end to end on tiny generated data and on a local CSV file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk

from stages import preprocess


def _run(params: Path, tmp_path: Path) -> tuple[Path, dict]:
    out, metrics = tmp_path / "processed", tmp_path / "metrics" / "preprocess.json"
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ]
    )
    return out, json.loads(metrics.read_text())


def test_builtin_anagram(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    out, report = _run(write_params(), tmp_path)
    ds = load_from_disk(str(out))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].features["label"].names == ["no", "yes"]
    assert {"id", "first", "second", "label", "kind"} <= set(ds["train"].column_names)
    assert sum(report["splits"][s]["rows"] for s in ds) == 240
    assert report["splits"]["train"]["labels"]["yes"] == sum(ds["train"]["label"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["text_fields"] == ["first", "second"] and meta["metadata_fields"] == ["kind"]
    ids = {s: set(ds[s]["id"]) for s in ds}
    assert not ids["train"] & ids["test"]


def test_local_csv_with_one_text_field(tmp_path: Path, write_params: Callable[..., Path]) -> None:
    csv = tmp_path / "reviews.csv"
    csv.write_text(
        "review,sentiment,source\n"
        + "".join(f"text number {i},{['bad', 'good', 'ok'][i % 3]},web\n" for i in range(90))
    )
    params = write_params(
        data={"source": str(csv), "text_fields": ["review"], "label_field": "sentiment"}
    )
    out, report = _run(params, tmp_path)
    ds = load_from_disk(str(out))
    assert ds["train"].features["label"].names == ["bad", "good", "ok"]
    assert ds["test"].column_names == ["id", "review", "label", "source"]
    assert report["splits"]["test"]["labels"] == {"bad": 3, "good": 3, "ok": 3}


def test_bad_file_fails_cleanly_and_writes_nothing(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "broken.csv"
    csv.write_text("text,label\nfine,a\n,\n")
    params = write_params(data={"source": str(csv), "text_fields": ["text"]})
    with pytest.raises(SystemExit) as exit_info:
        _run(params, tmp_path)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"error: {csv}, line 3, column 'label': the label is empty; fill it in or remove the row"
    )
    assert not (tmp_path / "processed").exists() and not (tmp_path / "metrics").exists()
