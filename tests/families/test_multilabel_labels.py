"""Label lists read from CSV, TSV, JSONL and Parquet, and bad label fields refused in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlpflow.data.files import BadRows
from nlpflow.errors import UserError
from nlpflow.families.multilabel.labels import (
    LabelFormat,
    check_known_labels,
    label_lists,
    multi_hot,
    read_multilabel_rows,
)
from nlpflow.params import DataParams


def _params(**kw: Any) -> DataParams:
    base: dict[str, Any] = {"source": "x", "text_fields": ["text"], "label_field": "labels"}
    base.update(kw)
    return DataParams(**base)


def _read(path: Path, fmt: LabelFormat | None = None, **kw: Any) -> list[dict[str, Any]]:
    return read_multilabel_rows(path, _params(**kw), fmt or LabelFormat(), BadRows("fail"))


def _error(path: Path, fmt: LabelFormat | None = None, **kw: Any) -> str:
    with pytest.raises(UserError) as err:
        _read(path, fmt, **kw)
    return str(err.value)


def test_every_format_reads_lists(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('text,labels\nhi,"x, y"\nyo,\nhm,y\n')
    (tmp_path / "a.tsv").write_text("text\tlabels\nhi\tx|y\nyo\t\n")
    (tmp_path / "a.jsonl").write_text(
        '{"text": "hi", "labels": ["x", "y"]}\n{"text": "yo", "labels": []}\n'
        '{"text": "n", "labels": [3]}\n'
    )
    pq.write_table(
        pa.table({"text": ["hi", "yo"], "labels": [["x", "y"], []]}), tmp_path / "a.parquet"
    )
    rows = _read(tmp_path / "a.csv")
    assert [(r["labels"], r["_line"]) for r in rows] == [(["x", "y"], 2), ([], 3), (["y"], 4)]
    assert [r["labels"] for r in _read(tmp_path / "a.tsv", LabelFormat(delimiter="|"))] == [
        ["x", "y"],
        [],
    ]
    assert [r["labels"] for r in _read(tmp_path / "a.jsonl")] == [["x", "y"], [], ["3"]]
    assert [r["labels"] for r in _read(tmp_path / "a.parquet")] == [["x", "y"], []]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.jsonl",
            '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "x,y"}\n',
            "a.jsonl, line 2, column 'labels': the label field 'x,y' is a str, not a list; "
            'write a list such as ["x"]',
        ),
        (
            "a.jsonl",
            '{"text": "a", "labels": ["x", 1.5]}\n',
            "a.jsonl, line 1, column 'labels': label 1.5 in ['x', 1.5] is a float; labels must "
            "be strings or integers",
        ),
        (
            "a.jsonl",
            '{"text": "a", "labels": ["x"]}\n{"text": "b"}\n',
            "a.jsonl, line 2, column 'labels': the label field is missing",
        ),
        (
            "a.jsonl",
            '{"text": "a", "labels": ["x", "x"]}\n',
            "a.jsonl, line 1, column 'labels': label 'x' is given twice in ['x', 'x']",
        ),
        (
            "a.csv",
            'text,labels\na,x\nb,"x,,y"\n',
            "a.csv, line 3, column 'labels': an empty label in 'x,,y'; remove it",
        ),
        (
            "a.csv",
            "text,labels\na,\"['x', 'y']\"\n",
            "a.csv, line 2, column 'labels': the label field \"['x', 'y']\" looks like a list "
            "literal; in a CSV/TSV file write the labels separated by ','",
        ),
        (
            "a.jsonl",
            '{"text": 5, "labels": ["x"]}\n',
            "a.jsonl, line 1, column 'text': expected text, got 5",
        ),
    ],
)
def test_bad_label_fields_are_refused_in_one_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    text = _error(path)
    assert text.startswith(f"{path.parent}/{message}")
    assert "\n" not in text


def test_empty_policy_and_declared_labels(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": []}\n')
    assert len(_read(path)) == 2  # allowed by default
    text = _error(path, LabelFormat(empty="fail"))
    assert text.startswith(f"{path}, line 2, column 'labels': the example has no label")
    text = _error(path, LabelFormat(labels=("y", "z")))
    assert text == (
        f"{path}, line 1, column 'labels': label 'x' is not one of the declared labels "
        "['y', 'z']; fix the label or add it to the declared list"
    )


def test_skip_policy_collects_bad_label_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "x"}\n{"text": "c", "labels": []}\n'
    )
    bad = BadRows("skip")
    rows = read_multilabel_rows(path, _params(on_bad_rows="skip"), LabelFormat(), bad)
    assert [r["text"] for r in rows] == ["a", "c"]
    assert [(b.line, b.column) for b in bad.rows] == [(2, "labels")]


def test_labels_unknown_to_train_are_refused_with_their_file_and_line(tmp_path: Path) -> None:
    files = {"train": tmp_path / "train.jsonl", "test": tmp_path / "test.jsonl"}
    splits = {
        "train": [{"labels": ["x"], "_line": 1}, {"labels": ["y", "x"], "_line": 2}],
        "test": [{"labels": ["y"], "_line": 1}, {"labels": ["z"], "_line": 2}],
    }
    with pytest.raises(UserError) as err:
        check_known_labels(splits, files, "labels", LabelFormat(), BadRows("fail"))
    assert str(err.value).startswith(
        f"{files['test']}, line 2, column 'labels': label 'z' occurs in no train example"
    )
    kept, names, warnings = check_known_labels(
        splits, files, "labels", LabelFormat(), bad := BadRows("skip")
    )
    assert names == ["x", "y"]
    assert [len(v) for v in kept.values()] == [2, 1]
    assert [b.line for b in bad.rows] == [2]
    assert warnings == []
    _, names, warnings = check_known_labels(
        {"train": splits["train"], "test": splits["test"][:1]},
        files,
        "labels",
        LabelFormat(labels=("y", "x", "w")),
        BadRows("fail"),
    )
    assert names == ["w", "x", "y"]
    assert warnings == [
        "declared label(s) ['w'] occur in no train example: the model cannot learn them and "
        "scores 0 on them"
    ]


def test_multi_hot_round_trip() -> None:
    names = ["a", "b", "c"]
    m = multi_hot([["c", "a"], [], ["b"]], names)
    assert m.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert m.dtype == np.int8
    assert label_lists(m, names) == [["a", "c"], [], ["b"]]
    with pytest.raises(ValueError) as err:
        multi_hot([["d"]], names)
    assert "label 'd' of example 0" in str(err.value)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"delimiter": ""}, "data.multilabel.delimiter must be one character"),
        ({"delimiter": '"'}, "data.multilabel.delimiter must be one character"),
        ({"labels": ["a", "a"]}, "data.multilabel.labels names ['a'] more than once"),
        ({"empty": "skip"}, "data.multilabel.empty"),
    ],
)
def test_multilabel_params_checked(section: dict[str, Any], message: str) -> None:
    from nlpflow.params import parse_params

    with pytest.raises(UserError) as err:
        parse_params({"data": {"multilabel": section}})
    assert message in str(err.value)
