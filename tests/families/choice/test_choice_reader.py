"""Multiple-choice files: SWAG/WinoGrande layouts read exactly, bad rows refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpflow.data.files import BadRows
from nlpflow.errors import UserError
from nlpflow.families.choice.config import ChoiceParams
from nlpflow.families.choice.reader import Expected, read_choice_file
from nlpflow.params import DataParams


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(
    path: Path,
    text_fields: list[str] | None = None,
    options: list[str] | None = None,
    label_field: str = "label",
    label_base: int = 0,
    policy: str = "fail",
    expected: Expected | None = None,
) -> tuple[list[dict[str, Any]], Expected, BadRows]:
    params = DataParams(
        text_fields=text_fields or ["context"], label_field=label_field, on_bad_rows=policy
    )
    choice = ChoiceParams(options=options or ["options"], label_base=label_base)
    bad = BadRows(policy)
    rows, n = read_choice_file(path, params, choice, bad, expected)
    return rows, n, bad


GOOD = [
    {"context": "The cat sat", "options": ["on the mat", "in orbit", "as a cloud"], "label": 0},
    {"context": "She opened", "options": ["a book", "the sky", "ten"], "label": 2, "src": "x"},
]


def test_jsonl_with_a_list_column(tmp_path: Path) -> None:
    rows, n, bad = _read(_jsonl(tmp_path / "t.jsonl", GOOD))
    assert n.count == 3
    assert rows == [
        {"context": "The cat sat", "options": ["on the mat", "in orbit", "as a cloud"], "label": 0, "_line": 1},
        {"context": "She opened", "options": ["a book", "the sky", "ten"], "label": 2, "src": "x", "_line": 2},
    ]  # fmt: skip
    assert not bad.rows


def test_swag_csv_joins_the_context_fields_and_reads_option_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "video-id": ["v1", "v2"],
            "sent1": ["Students lower their eyes", "He, smiling,"],
            "sent2": ["The teacher", 'says "hi"'],
            "ending0": ["walks in.", "and waves."],
            "ending1": ["flies, away.", "then\nleaves."],
            "ending2": ["sings.", "sits."],
            "ending3": ["eats chalk.", "stands."],
            "label": [0, 3],
        }
    )
    path = tmp_path / "swag.csv"
    frame.to_csv(path, index=False)
    rows, n, _ = _read(
        path, ["sent1", "sent2"], [f"ending{i}" for i in range(4)], label_field="label"
    )
    assert n.count == 4
    assert rows[0]["context"] == "Students lower their eyes The teacher"
    assert rows[1]["context"] == 'He, smiling, says "hi"'
    assert rows[1]["options"] == ["and waves.", "then\nleaves.", "sits.", "stands."]
    assert [r["label"] for r in rows] == [0, 3]
    assert rows[0]["video-id"] == "v1"  # other columns are metadata


def test_winogrande_labels_count_from_one(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "wg.jsonl",
        [
            {"sentence": "The trophy didn't fit: _ was big.", "option1": "trophy", "option2": "case", "answer": "1"},
            {"sentence": "The trophy didn't fit: _ was small.", "option1": "trophy", "option2": "case", "answer": "2"},
        ],
    )  # fmt: skip
    rows, n, _ = _read(path, ["sentence"], ["option1", "option2"], "answer", label_base=1)
    assert n == Expected(2, "data.choice.options (2 columns)")
    assert [r["label"] for r in rows] == [0, 1]
    with pytest.raises(UserError) as err:
        _read(path, ["sentence"], ["option1", "option2"], "answer", label_base=0)
    assert str(err.value) == (
        f"{path}, line 2, column 'answer': label 2 is out of range (0 to 1 for 2 options); "
        "if the labels count from 1, set data.choice.label_base: 1"
    )


def test_labels_as_integral_floats_and_strings_are_indices(tmp_path: Path) -> None:
    rows = [{**GOOD[0], "label": value} for value in (1.0, " 2 ", "0", "1.0")]
    got, _, _ = _read(_jsonl(tmp_path / "t.jsonl", rows))
    assert [r["label"] for r in got] == [1, 2, 0, 1]


BAD_ROWS = [
    ({"context": "c", "options": ["a", "", "b"], "label": 0}, "column 'options': option 2 is empty; fill it in or remove the row"),
    ({"context": "c", "options": ["a", None, "b"], "label": 0}, "column 'options': option 2 is missing; fill it in or remove the row"),
    ({"context": "c", "options": ["a", 3, "b"], "label": 0}, "column 'options': option 2 is not text (3); fill it in or remove the row"),
    ({"context": "c", "options": "a b c", "label": 0}, "column 'options': the options are a str, not a list; give a list of option texts, or name the option columns in data.choice.options"),
    ({"context": "c", "label": 0}, "column 'options': the options are missing; give a list of option texts, or name the option columns in data.choice.options"),
    ({"context": "c", "options": ["a", "b"], "label": 0}, "column 'options': 2 options, but every row needs 3 as in t.jsonl (its most common count); a data set has one number of options (the model scores N options per example): give the row that many or remove it"),
    ({"context": "c", "options": ["a", "b", "c", "d"], "label": 0}, "column 'options': 4 options, but every row needs 3 as in t.jsonl (its most common count); a data set has one number of options (the model scores N options per example): give the row that many or remove it"),
    ({"context": "c", "options": ["a", "b", "c"], "label": 3}, "column 'label': label 3 is out of range (0 to 2 for 3 options); if the labels count from 1, set data.choice.label_base: 1"),
    ({"context": "c", "options": ["a", "b", "c"], "label": -1}, "column 'label': label -1 is out of range (0 to 2 for 3 options); if the labels count from 1, set data.choice.label_base: 1"),
    ({"context": "c", "options": ["a", "b", "c"], "label": "B"}, "column 'label': label 'B' is not an option index; the label is the index of the right option, 0 to 2 for 3 options"),
    ({"context": "c", "options": ["a", "b", "c"], "label": 1.5}, "column 'label': label 1.5 is not an option index; the label is the index of the right option, 0 to 2 for 3 options"),
    ({"context": "c", "options": ["a", "b", "c"], "label": True}, "column 'label': label True is not an option index; the label is the index of the right option, 0 to 2 for 3 options"),
    ({"context": "c", "options": ["a", "b", "c"], "label": ""}, "column 'label': the label is empty; fill it in (0 to 2 for 3 options)"),
    ({"context": "c", "options": ["a", "b", "c"]}, "column 'label': the label is missing; fill it in (0 to 2 for 3 options)"),
    ({"context": "  ", "options": ["a", "b", "c"], "label": 0}, "column 'context': the context (context) is empty; fill it in or remove the row"),
    ({"context": None, "options": ["a", "b", "c"], "label": 0}, "column 'context': the context is missing; fill it in or remove the row"),
    ({"context": 7, "options": ["a", "b", "c"], "label": 0}, "column 'context': the context is not text (7); fill it in or remove the row"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_a_bad_row_is_one_line_naming_file_line_and_column(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [*GOOD, row, GOOD[0]])
    with pytest.raises(UserError) as err:
        _read(path)
    assert str(err.value) == f"{path}, line 3, {message}"


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_under_skip_a_bad_row_is_counted_and_the_rest_kept(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [*GOOD, row, GOOD[0]])
    rows, _, bad = _read(path, policy="skip")
    assert [r["_line"] for r in rows] == [1, 2, 4]
    assert [(b.line, b.column) for b in bad.rows] == [(3, message.split("'")[1])]
    assert message.split("; ")[0].endswith(bad.rows[0].reason)


def test_the_most_common_count_sets_n_and_later_files_must_match(tmp_path: Path) -> None:
    # the first row is the odd one out: it is named, not the rows after it
    first = {"context": "c", "options": ["a", "b"], "label": 0}
    path = _jsonl(tmp_path / "train.jsonl", [first, *GOOD])
    with pytest.raises(UserError) as err:
        _read(path)
    assert str(err.value).startswith(f"{path}, line 1, column 'options': 2 options, but every ")
    _, n, _ = _read(_jsonl(tmp_path / "ok.jsonl", GOOD))
    other = _jsonl(tmp_path / "test.jsonl", [first])
    with pytest.raises(UserError) as err:
        _read(other, expected=n)
    assert "every row needs 3 as in ok.jsonl (its most common count)" in str(err.value)


def test_fewer_than_two_options_is_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [{"context": "c", "options": ["a"], "label": 0}] * 2)
    with pytest.raises(UserError) as err:
        _read(path)
    assert str(err.value) == (
        f"{path}: most rows have 1 option(s) in 'options'; a multiple-choice row needs at least 2"
    )


def test_an_empty_csv_option_cell_names_its_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ctx,o1,o2,label\nhello,a,b,1\nworld,a,,0\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        _read(path, options=["o1", "o2"], text_fields=["ctx"])
    assert str(err.value) == (
        f"{path}, line 3, column 'o2': option 2 is empty; fill it in or remove the row"
    )


def test_a_csv_list_column_and_missing_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("context,options,label\nhi,\"['a', 'b']\",0\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        _read(path)
    assert str(err.value).startswith(
        f"{path}: column 'options' holds text, not a list of options; in a CSV or TSV file "
        "each option is a column"
    )
    with pytest.raises(UserError) as err:
        _read(path, options=["ending0", "ending1"])
    assert str(err.value).startswith(
        f"{path}, line 1: the first row ['context', 'options', 'label'] does not name the "
        "columns ['context', 'ending0', 'ending1', 'label']"
    )
    jsonl = _jsonl(tmp_path / "t.jsonl", GOOD)
    with pytest.raises(UserError) as err:
        _read(jsonl, options=["ending0", "ending1"])
    assert str(err.value).startswith(
        f"{jsonl}: column(s) ['ending0', 'ending1'] not found; the file has ['context', "
        "'options', 'label']"
    )


def test_own_column_names_in_the_file_are_kept_apart(tmp_path: Path) -> None:
    rows = [{"q": "c", "options": ["a", "b"], "answer": 1, "label": "x", "context": "y"}] * 2
    got, _, bad = _read(_jsonl(tmp_path / "t.jsonl", rows), ["q"], label_field="answer")
    assert got[0]["label"] == 1 and got[0]["label_in_file"] == "x"
    assert got[0]["context"] == "c" and got[0]["context_in_file"] == "y"
    assert any("'label' is kept as 'label_in_file'" in n for n in bad.notes)


def test_a_right_option_repeated_as_a_wrong_one_is_noted(tmp_path: Path) -> None:
    rows = [*GOOD, {"context": "c", "options": ["x", "y", "x"], "label": 2}]
    got, _, bad = _read(_jsonl(tmp_path / "t.jsonl", rows))
    assert len(got) == 3
    assert bad.notes == [
        "t.jsonl: 1 row(s) repeat the right option's text as a wrong option (e.g. line 3); "
        "no model can answer them"
    ]


def test_every_row_bad_is_an_error_even_under_skip(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [{"context": "c", "options": ["a", "b"], "label": 5}])
    with pytest.raises(UserError) as err:
        _read(path, policy="skip")
    assert str(err.value) == (
        f"{path}: no usable data rows; every row was bad (see data.on_bad_rows)"
    )


# Texts pandas writes and our reader must give back exactly: quotes, delimiters, line breaks.
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(lambda t: t.strip() != "")


@st.composite
def _frames(draw: st.DrawFn) -> tuple[list[str], list[list[str]], list[int]]:
    n_options = draw(st.integers(2, 5))
    n_rows = draw(st.integers(1, 6))
    contexts = [draw(_TEXT) for _ in range(n_rows)]
    options = [[draw(_TEXT) for _ in range(n_options)] for _ in range(n_rows)]
    labels = [draw(st.integers(0, n_options - 1)) for _ in range(n_rows)]
    return contexts, options, labels


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames(), st.sampled_from(["jsonl", "csv", "tsv", "parquet"]))
def test_whatever_pandas_writes_reads_back_exactly(
    data: tuple[list[str], list[list[str]], list[int]], fmt: str
) -> None:
    contexts, options, labels = data
    width = len(options[0])
    names = [f"ending{j}" for j in range(width)]
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t.{fmt}"
        if fmt == "jsonl":
            frame = pd.DataFrame({"context": contexts, "options": options, "label": labels})
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
            rows, n, _ = _read(path)
        else:
            columns = {
                "context": contexts,
                **{c: [o[j] for o in options] for j, c in enumerate(names)},
            }
            frame = pd.DataFrame({**columns, "label": labels})
            if fmt == "parquet":
                frame.to_parquet(path, index=False)
            else:
                frame.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
            rows, n, _ = _read(path, options=names)
    assert n.count == width
    assert [r["context"] for r in rows] == [c.strip() for c in contexts]
    assert [r["options"] for r in rows] == options
    assert [r["label"] for r in rows] == labels
