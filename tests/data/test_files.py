"""Local files: rows read, and bad input named by file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.data.files import read_rows, split_files
from nlpflow.data.prepare import load_splits
from nlpflow.errors import UserError
from nlpflow.params import DataParams


def test_csv_tsv_jsonl_read(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",pos\nbye,neg\n')
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello\tpos\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 0}\n')
    rows = read_rows(tmp_path / "a.csv", "auto", ["text"], "label")
    assert [(r["text"], r["label"], r["_line"]) for r in rows] == [
        ("hello, world", "pos", 2), ("bye", "neg", 3)
    ]
    assert read_rows(tmp_path / "a.tsv", "auto", ["text"], "label")[0]["text"] == "hello"
    rows = read_rows(tmp_path / "a.jsonl", "auto", ["text"], "label")
    assert [(r["label"], r["_line"]) for r in rows] == [("1", 1), ("0", 3)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", "", "e.csv: the file is empty"),
        ("h.csv", "text,label\n", "h.csv: no data rows"),
        ("m.csv", "body,label\nx,1\n", "m.csv: column(s) ['text'] not found; the file has ['body', 'label']"),
        ("l.csv", "text,label\nx,1\ny,\n", "l.csv, line 3, column 'label': the label is empty"),
        ("r.csv", "text,label\nx,1\ny,1,extra\n", "r.csv, line 3: expected 2 columns as in the header, found 3"),
        ("s.csv", "text,label\nx,1\ny\n", "s.csv, line 3: expected 2 columns as in the header, found 1"),
        ("j.jsonl", '{"text": "x", "label": 1}\n{"text": "y", \n', "j.jsonl, line 2: not valid JSON"),
        ("t.jsonl", '{"text": "x", "label": [1]}\n', "t.jsonl, line 1, column 'label': label [1] is a list"),
        ("x.txt", "text,label\n", "cannot tell the format from the extension '.txt'"),
    ],
)
def test_bad_files_get_one_clear_message(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as err:
        read_rows(path, "auto", ["text"], "label")
    assert message in str(err.value)


def test_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\n\xff\xfe,1\n")
    with pytest.raises(UserError) as err:
        read_rows(path, "auto", ["text"], "label")
    assert "bad.csv: not valid UTF-8 at byte" in str(err.value)


def test_directory_source_carves_validation_from_train(tmp_path: Path) -> None:
    lines = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(100))
    (tmp_path / "train.csv").write_text("text,label\n" + lines)
    (tmp_path / "test.csv").write_text("text,label\nx,a\ny,b\n")
    data = load_splits(DataParams(source=str(tmp_path), text_fields=["text"]), seed=0)
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 100
    assert len(data.splits["validation"]) > 0 and len(data.splits["test"]) == 2
    assert data.label_names == ["a", "b"]
    assert split_files(tmp_path).keys() == {"train", "test"}


def test_directory_without_train_file(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(UserError) as err:
        split_files(tmp_path)
    assert "no train file found" in str(err.value) and "notes.md" in str(err.value)
