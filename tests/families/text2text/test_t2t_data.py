"""Text-to-text data: input/target files as users write them, and the built-in task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpflow.data.files import BadRows
from nlpflow.errors import UserError
from nlpflow.families.text2text.data import (
    generate_text2text,
    read_text2text_rows,
    spell_number,
)
from nlpflow.families.text2text.params import Text2TextDataParams
from nlpflow.params import DataParams

PARAMS = DataParams(source="x")


def test_csv_tsv_jsonl_parquet_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('input,target,topic\n"hi, you",hello,greet\nbye,later,x\n')
    (tmp_path / "a.tsv").write_text("target\tinput\nB\tA\n")
    (tmp_path / "a.jsonl").write_text(
        '{"input": "2+2", "target": 4}\n\n{"input": "x", "target": "y"}\n'
    )
    pq.write_table(pa.table({"input": ["a", "b"], "target": ["c", "d"]}), tmp_path / "a.parquet")
    bad = BadRows("fail")
    rows = read_text2text_rows(tmp_path / "a.csv", PARAMS, bad)
    assert [(r["input"], r["target"], r["topic"], r["_line"]) for r in rows] == [
        ("hi, you", "hello", "greet", 2),
        ("bye", "later", "x", 3),
    ]
    assert [
        (r["input"], r["target"]) for r in read_text2text_rows(tmp_path / "a.tsv", PARAMS, bad)
    ] == [("A", "B")]
    rows = read_text2text_rows(tmp_path / "a.jsonl", PARAMS, bad)
    assert [(r["target"], r["_line"]) for r in rows] == [("4", 1), ("y", 3)]
    rows = read_text2text_rows(tmp_path / "a.parquet", PARAMS, bad)
    assert [(r["input"], r["target"], r["_line"]) for r in rows] == [("a", "c", 1), ("b", "d", 2)]
    assert bad.rows == []


def test_other_field_names(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("document,summary\nlong text,short\n")
    rows = read_text2text_rows(
        tmp_path / "a.csv", PARAMS, BadRows("fail"), input_field="document", target_field="summary"
    )
    assert rows[0]["document"] == "long text" and rows[0]["summary"] == "short"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "a.csv",
            "input,target\nfine,ok\nno target,\n",
            "a.csv, line 3, column 'target': the target is empty",
        ),
        ("a.csv", "input,target\n  ,ok\n", "a.csv, line 2, column 'input': the input is empty"),
        (
            "a.jsonl",
            '{"input": "a", "target": "b"}\n{"input": "a"}\n',
            "a.jsonl, line 2, column 'target': the target is missing",
        ),
        (
            "a.jsonl",
            '{"input": "a", "target": ["x"]}\n',
            "column 'target': the target ['x'] is a list; it must be text",
        ),
        (
            "a.jsonl",
            '{"input": 1.5, "target": "x"}\n',
            "column 'input': the input 1.5 is a float; it must be text",
        ),
        (
            "a.jsonl",
            '{"input": "a", "target": true}\n',
            "the target True is a bool; it must be text",
        ),
        (
            "a.csv",
            "text,label\na,b\n",
            "a.csv, line 1: the first row ['text', 'label'] does not name the columns ['input', 'target']",
        ),
        (
            "a.jsonl",
            '{"text": "a", "label": "b"}\n',
            "column(s) ['input', 'target'] not found; the file has ['text', 'label']",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, name: str, content: str, expected: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError) as err:
        read_text2text_rows(tmp_path / name, PARAMS, BadRows("fail"))
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_skip_counts_bad_rows(tmp_path: Path) -> None:
    lines = [
        {"input": "a", "target": "b"},
        {"input": "c", "target": ""},
        {"input": "d", "target": {"x": 1}},
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    bad = BadRows("skip")
    rows = read_text2text_rows(tmp_path / "a.jsonl", PARAMS, bad)
    assert [r["input"] for r in rows] == ["a"]
    assert [(b.line, b.column) for b in bad.rows] == [(2, "target"), (3, "target")]


def test_every_row_bad_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("input,target\na,\n")
    with pytest.raises(UserError) as err:
        read_text2text_rows(tmp_path / "a.csv", PARAMS, BadRows("skip"))
    assert "no usable data rows" in str(err.value)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (407, "four hundred seven"),
        (1000, "one thousand"),
        (4021, "four thousand twenty one"),
        (9999, "nine thousand nine hundred ninety nine"),
        (115_019, "one hundred fifteen thousand nineteen"),
    ],
)
def test_spell_number(n: int, words: str) -> None:
    assert spell_number(n) == words


def test_builtin_is_seeded_distinct_and_right() -> None:
    params = Text2TextDataParams(size=300)
    rows = generate_text2text(params, seed=1)
    assert rows == generate_text2text(params, seed=1)
    assert rows != generate_text2text(params, seed=2)
    assert len({r["input"] for r in rows}) == 300
    kinds = {r["kind"] for r in rows}
    assert kinds == {"sort", "spell"}
    for row in rows:
        word, *rest = row["input"].split()
        assert word == row["kind"]
        if word == "sort":
            assert row["target"].split() == sorted(rest)
            assert params.min_letters <= len(rest) <= params.max_letters
        else:
            assert row["target"] == spell_number(int("".join(rest)))


def test_builtin_size_beyond_distinct_inputs_is_refused() -> None:
    params = Text2TextDataParams(size=100, kinds={"spell": 1.0}, max_number=20)
    with pytest.raises(UserError) as err:
        generate_text2text(params, seed=0)
    assert "data.text2text.size 100 is more distinct inputs" in str(err.value)


def test_params_validation() -> None:
    with pytest.raises(UserError) as err:
        Text2TextDataParams(kinds={"sorting": 1.0}).validate("data.text2text")
    assert "data.text2text.kinds has unknown kinds ['sorting']" in str(err.value)


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_example_params_files_are_valid(kind: str) -> None:
    from pathlib import Path

    from nlpflow.params import load_params

    root = Path(__file__).resolve().parents[3]
    params = load_params(root / "examples" / f"text2text-{kind}" / "params.yaml")
    assert params.data.source == "builtin:text2text"
    assert params.model.text2text.kind == kind
    assert params.train.early_stopping.metric == "loss"
