"""The preprocess stage on users' files that used to go silently wrong (issue 10).

Each runs the real stage on a tiny generated file and checks the processed data, the data
card, the metrics and the console, and for the label-column clash the tokenize stage after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk

from stages import preprocess, tokenize


def _run(params: Path, tmp_path: Path) -> tuple[Path, dict, str]:
    out = tmp_path / "processed"
    preprocess.main(
        [
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "preprocess.json"),
            "--plots",
            str(tmp_path / "plots"),
            "--report",
            str(tmp_path / "data.md"),
        ]
    )
    report = json.loads((tmp_path / "preprocess.json").read_text())
    return out, report, (tmp_path / "data.md").read_text()


def test_a_file_label_column_beside_the_chosen_label_field(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`text,label,label_text` with label_field label_text: the labels are label_text's, the
    file's own `label` column is kept as metadata under another name, and tokenize runs."""
    path = tmp_path / "reviews.csv"
    names = ["negative", "positive"]
    path.write_text(
        "text,label,label_text\n"
        + "".join(f"review number {i},{i % 2},{names[i % 2]}\n" for i in range(60))
    )
    params = write_params(
        data={"source": str(path), "text_fields": ["text"], "label_field": "label_text"}
    )
    out, report, card = _run(params, tmp_path)
    ds = load_from_disk(str(out))
    assert ds["train"].features["label"].names == ["negative", "positive"]
    assert ds["train"].column_names == ["id", "text", "label", "label_in_file"]
    for row in ds["train"]:
        assert names[int(row["label_in_file"])] == names[row["label"]]
    note = (
        "reviews.csv: the column 'label' is kept as 'label_in_file' (the processed data writes "
        "its own 'label' column)"
    )
    assert report["reading"] == [note]
    assert note in card
    assert f"preprocess: {note}" in capsys.readouterr().out
    tokenize.main(
        [
            "--params",
            str(params),
            "--data",
            str(out),
            "--out",
            str(tmp_path / "tokenized"),
            "--tokenizer-out",
            str(tmp_path / "tokenizer"),
            "--metrics",
            str(tmp_path / "tokenize.json"),
            "--report",
            str(tmp_path / "tokenization.md"),
        ]
    )
    tok = load_from_disk(str(tmp_path / "tokenized"))
    assert tok["train"]["labels"] == ds["train"]["label"]


def test_a_class_missing_from_validation_or_test_is_a_warning(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train = tmp_path / "train.csv"
    train.write_text(
        "text,label\n" + "".join(f"t{i},{'ham' if i % 5 else 'spam'}\n" for i in range(40))
    )
    test = tmp_path / "test.csv"
    test.write_text("text,label\n" + "".join(f"x{i},ham\n" for i in range(6)))
    params = write_params(
        data={"files": {"train": str(train), "test": str(test)}, "text_fields": ["text"]}
    )
    _, report, card = _run(params, tmp_path)
    # Validation is carved from train: 8 spam x 1/9 rounds down to none there either.
    warnings = [
        f"the {split} split has only one class ('ham', {n} rows): ROC-AUC, PR-AUC and MCC are "
        "undefined and accuracy says nothing there; add data or change data.splits"
        for split, n in (("validation", 3), ("test", 6))
    ]
    assert report["splits"]["validation"]["labels"] == {"ham": 3, "spam": 0}
    assert report["warnings"] == warnings
    console = capsys.readouterr().out
    for warning in warnings:
        assert f"- **{warning}**" in card
        assert f"preprocess: warning: {warning}" in console


IOB1_TRAIN = [
    # IOB1: entities start with I-; B- only between two adjacent entities of one type
    "EU I-ORG\nrejects O\nGerman I-MISC\ncall O\n",
    "Peter I-PER\nBlackburn I-PER\n",
    "the O\nUN I-ORG\nsaid O\n",
    "Reuters I-ORG\nreported O\n",
]
IOB1_TEST = [
    "Acme I-ORG\nGlobex B-ORG\nmerged O\n",  # B-ORG: a second ORG right after the first
    "in O\nParis I-LOC\n",  # LOC is never in train
    "Oslo I-LOC\nrains O\n",
]


def test_iob1_conll_is_converted_and_unseen_tags_are_warnings(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text("-DOCSTART- O\n\n" + "\n".join(IOB1_TRAIN * 10))
    test.write_text("\n".join(IOB1_TEST))
    params = write_params(
        data={
            "files": {"train": str(train), "test": str(test)},
            "text_fields": ["tokens"],
            "label_field": "tags",
            "leakage": "warn",
        }
    )
    out, report, card = _run(params, tmp_path)
    ds = load_from_disk(str(out))
    names = ds["test"].features["label"].feature.names
    tags = [[names[t] for t in row] for row in ds["test"]["label"]]
    assert tags == [["B-ORG", "B-ORG", "O"], ["O", "B-LOC"], ["B-LOC", "O"]]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source_tag_scheme"] == "IOB1" and meta["tag_scheme"] == "IOB2"
    assert report["source_tag_scheme"] == "IOB1"
    assert "converted to IOB2 on reading" in card
    warning = (
        "tag(s) never seen in train occur in the test split: B-LOC (2x); the model cannot "
        "predict them, so every such word counts as an error"
    )
    assert report["warnings"] == [warning]
    console = capsys.readouterr().out
    assert f"preprocess: warning: {warning}" in console


def test_label_names_that_matplotlib_or_markdown_would_misread(
    tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    """Label names come from the file; a "$" must not reach matplotlib's mathtext parser
    (it raised after the processed data were written: a partial output)."""
    labels = ["$\\frac$", "a|b", "^_^"]
    path = tmp_path / "odd.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{labels[i % 3]}\n" for i in range(60)))
    params = write_params(data={"source": str(path), "text_fields": ["text"]})
    _, report, card = _run(params, tmp_path)
    assert report["label_names"] == sorted(labels)
    assert "| a\\|b |" in card
    assert (tmp_path / "plots" / "lengths.png").stat().st_size > 0
